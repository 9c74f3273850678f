"""Reading a table from a file: the one reader of CSV, TSV, Excel, ODS and Parquet files.

Every table tipstat reads from a file goes through :func:`read_cells`: agency exports of victim
records (:func:`tipstat.ictip.read_records`), entity maps and population tables
(:mod:`tipstat.pipeline`), capture-history tables (the command line). Rows are labelled by their
line in the file (line 1 is the header), as error messages cite them, and a file that cannot be
read is an :class:`~tipstat.errors.InputError` that names the file and the kind of trouble,
never a cell (a parser's own message can quote one).

This module knows no IC-TIP, no linkage and no model; it imports only :mod:`tipstat.errors`.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from pathlib import Path

import pandas as pd

from .errors import InputError

__all__ = ["CASE_SHEET", "EXCEL_ENGINES", "read_cells", "read_header"]

#: Reader engine of each workbook suffix.
EXCEL_ENGINES = {".xlsx": "openpyxl", ".xlsm": "openpyxl", ".xls": "xlrd", ".ods": "odf"}
#: The sheet of the IOM HTCDS v2.0 template that holds the records.
CASE_SHEET = "Case Sheet"
_INSTALL = {
    "openpyxl": "pip install 'tipstat[ictip]' (or: pip install openpyxl)",
    "odf": "pip install 'tipstat[ictip]' (or: pip install odfpy)",
    "xlrd": "pip install xlrd, or save the file as .xlsx",
}
_MANGLED = re.compile(r"^(?P<base>.+)\.(?P<n>\d+)$")
_SEPARATORS = (",", ";", "\t", "|")


def read_cells(path: str | Path, *, sheet: str | int | None = None,
               prefer_sheet: str | None = None, raw: bool = True,
               header_only: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The cells of a table file and its header as written.

    The kind of file is told by its suffix (``.xlsx``/``.xlsm``/``.xls``/``.ods`` workbooks,
    ``.parquet``) and otherwise it is read as text: UTF-8 (a byte-order mark is dropped), the
    separator being the most frequent of ``,`` ``;`` tab ``|`` on the header line.

    Parameters
    ----------
    path : path
        The file.
    sheet : str or int, optional
        Sheet of a workbook (name or position); default ``prefer_sheet`` when the workbook has
        it, else the first sheet.
    prefer_sheet : str, optional
        Sheet read by default when present (the HTCDS template's ``"Case Sheet"``).
    raw : bool
        ``True``: every cell as written (objects; only an empty cell is missing), as records
        are validated cell by cell. ``False``: numbers as numbers and pandas' usual missing-value
        markers, as a count table is read.
    header_only : bool
        Read the header line alone (no rows): for telling a file's layout by its column names.

    Returns
    -------
    cells : pandas.DataFrame
        Indexed by line in the file (the header is line 1, so the first row is line 2). A
        repeated column name keeps its name (pandas would rename the second ``sex`` to
        ``sex.1``).
    header : list of str
        The column names as written (stripped), for finding repeated names.

    Raises
    ------
    InputError
        Naming the file and what is wrong with it (empty, a workbook under a text suffix,
        UTF-16, binary, not UTF-8, a row with more fields than the header, a missing reader
        package, a missing sheet), never a cell.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "lists.csv"
    >>> _ = path.write_text("entity_id;list_id\\nPOL;P\\nNGO;N\\n", encoding="utf-8")
    >>> cells, header = read_cells(path)
    >>> cells.index.tolist(), header, cells.loc[3, "list_id"]
    ([2, 3], ['entity_id', 'list_id'], 'N')
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in EXCEL_ENGINES:
        df, header, _ = _read_workbook(path, EXCEL_ENGINES[suffix], sheet, prefer_sheet, raw,
                                       header_only)
    elif suffix == ".parquet":
        df, header = _read_parquet(path, raw)
    else:
        df, header = _read_text(path, raw, header_only)
    if len(header) == len(df.columns):  # undo pandas' renaming of a repeated 'sex' to 'sex.1'
        df.columns = [h if h else str(c) for h, c in zip(header, df.columns, strict=True)]
    df.index = pd.RangeIndex(2, len(df) + 2)  # line numbers (line 1 is the header)
    return df, header


def read_header(path: str | Path, *, prefer_sheet: str | None = None) -> tuple[list[str], str | None]:
    """The column names of a table file and, for a workbook, the sheet they were read from.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_text("A,B,count\\n1,0,5\\n", encoding="utf-8")
    >>> read_header(path)
    (['A', 'B', 'count'], None)
    """
    path = Path(path)
    if path.suffix.lower() in EXCEL_ENGINES:
        _, header, sheet = _read_workbook(path, EXCEL_ENGINES[path.suffix.lower()], None,
                                          prefer_sheet, True, True)
        return header, sheet
    _, header = read_cells(path, header_only=True)
    return header, None


def _read_text(path: Path, raw: bool, header_only: bool) -> tuple[pd.DataFrame, list[str]]:
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{name} cannot be opened ({type(exc).__name__})") from None
    if not data.strip():
        raise InputError(f"{name} is empty (no header line): an agency with no records sends "
                         "the header line alone")
    if data[:4] == b"PK\x03\x04":
        raise InputError(f"{name} is a spreadsheet workbook (xlsx/ods), not CSV text: give it its "
                         "own extension (.xlsx or .ods)")
    if data[:4] == b"\xd0\xcf\x11\xe0":
        raise InputError(f"{name} is an old Excel workbook (.xls), not CSV text: save it as .xlsx "
                         "or CSV UTF-8")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InputError(f"{name} is UTF-16 text; save it as 'CSV UTF-8'")
    if b"\x00" in data[:65536]:
        raise InputError(f"{name} is not a text file (it holds binary data); give a CSV "
                         "(UTF-8), an Excel (.xlsx) or an ODS file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text (byte {exc.start} cannot be decoded); "
                         "save it as 'CSV UTF-8' (it may be in a Windows code page)") from None
    first = text.splitlines()[0] if text.splitlines() else ""
    counts = {sep: first.count(sep) for sep in _SEPARATORS}
    sep = max(counts, key=lambda k: counts[k]) if max(counts.values()) > 0 else ","
    try:
        header = next(csv.reader([first], delimiter=sep))
    except csv.Error:
        header = first.split(sep)
    options = (dict(dtype=object, keep_default_na=False, na_values=[""]) if raw else {})
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, skip_blank_lines=True,
                         nrows=0 if header_only else None, **options)
    except pd.errors.EmptyDataError:
        raise InputError(f"{name} is empty (no header line)") from None
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f" at line {m.group(1)}" if m else ""
        raise InputError(f"{name} cannot be read as CSV{where}: a row has more fields than the "
                         f"header (a separator {sep!r} inside an unquoted value?)") from None
    return df, [h.strip().lstrip("\ufeff") for h in header]


def _read_workbook(path: Path, engine: str, sheet: str | int | None, prefer: str | None,
                   raw: bool, header_only: bool) -> tuple[pd.DataFrame, list[str], str]:
    name = path.name
    try:
        with warnings.catch_warnings():  # openpyxl: "Data Validation extension is not supported"
            warnings.simplefilter("ignore", UserWarning)
            xf = pd.ExcelFile(path, engine=engine)
    except ImportError:
        raise InputError(f"reading {name} needs the {engine} package: {_INSTALL[engine]}") from None
    except Exception as exc:  # zip, XML and format errors of the readers
        raise InputError(f"{name} cannot be read as a {path.suffix} workbook "
                         f"({type(exc).__name__}); is it damaged or of another type?") from None
    with xf:
        names = [str(n) for n in xf.sheet_names]
        if sheet is None:
            chosen: str | int = prefer if prefer is not None and prefer in names else 0
        else:
            chosen = sheet
        if isinstance(chosen, str) and chosen not in names:
            raise InputError(f"{name} has no sheet {chosen!r}; its sheets are {names}")
        if isinstance(chosen, int) and not 0 <= chosen < len(names):
            raise InputError(f"{name} has {len(names)} sheet(s); sheet={chosen} does not exist")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                df = pd.read_excel(xf, sheet_name=chosen, dtype=object if raw else None,
                                   nrows=0 if header_only else None)
        except Exception as exc:
            raise InputError(f"{name}: sheet {chosen!r} cannot be read "
                             f"({type(exc).__name__})") from None
    header = [str(c).strip() for c in df.columns]
    mangled = []
    for c in header:  # pandas renames a repeated header 'sex' to 'sex.1'
        m = _MANGLED.match(c)
        mangled.append(m["base"] if m and m["base"] in header else c)
    return df, mangled, chosen if isinstance(chosen, str) else names[chosen]


def _read_parquet(path: Path, raw: bool) -> tuple[pd.DataFrame, list[str]]:
    try:
        df = pd.read_parquet(path)
    except ImportError:
        raise InputError(f"reading {path.name} needs pyarrow: pip install pyarrow, or save the "
                         "table as CSV") from None
    except Exception as exc:  # the readers' errors of a damaged file
        raise InputError(f"{path.name} cannot be read as a Parquet file "
                         f"({type(exc).__name__})") from None
    if raw:
        df = df.astype(object).where(df.notna(), None)
    return df, [str(c).strip() for c in df.columns]
