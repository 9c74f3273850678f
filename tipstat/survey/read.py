"""Reading survey microdata files: CSV, Excel, SPSS, Stata, SAS.

Value labels of SPSS, Stata and SAS files are applied and kept as pandas categoricals (all
labelled levels, also those nobody chose, so an empty domain stays visible). Statistical-file
readers (``pyreadstat``) are imported only when such a file is read.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import InputError

__all__ = ["FORMATS", "read_survey"]

#: File suffix -> format read by :func:`read_survey`.
FORMATS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv",
    ".xlsx": "excel", ".xlsm": "excel",
    ".sav": "spss", ".zsav": "spss", ".por": "spss_por",
    ".dta": "stata",
    ".sas7bdat": "sas", ".xpt": "sas_xport",
}


def read_survey(path: str | Path, *, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a survey microdata file into a DataFrame (one row per respondent).

    Parameters
    ----------
    path : str or Path
        A ``.csv``/``.txt`` file (comma, semicolon, tab or ``|`` delimited, read from the
        header line; decimal point ``.``) or ``.tsv`` file, an Excel workbook (``.xlsx``, ``.xlsm``),
        SPSS (``.sav``, ``.zsav``, ``.por``), Stata (``.dta``) or SAS (``.sas7bdat``,
        ``.xpt``) file. SPSS/Stata/SAS files need the ``survey`` extra (``pyreadstat``).
    sheet : str or int, optional
        Excel sheet (name or 0-based position; default the first). Only for Excel files.

    Returns
    -------
    pandas.DataFrame
        Columns as in the file, rows in file order with a 0-based RangeIndex (row ``i`` of the
        frame is data row ``i + 1`` of the file, the numbering every error message uses).
        Labelled values become categoricals with every labelled level.

    Raises
    ------
    InputError
        The file does not exist, its suffix is not a known format, or it cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = p.write_text("stratum,psu,weight,flag\\n1,1,10.5,0\\n1,2,11.0,1\\n")
    >>> read_survey(p).shape
    (2, 4)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"read_survey: no such file: {path.name!r}")
    suffix = path.suffix.lower()
    kind = FORMATS.get(suffix)
    if kind is None:
        raise InputError(f"read_survey: unknown file type {suffix!r}; expected one of "
                         f"{', '.join(sorted(FORMATS))}")
    if sheet is not None and kind != "excel":
        raise InputError("read_survey: sheet= applies to Excel workbooks only")
    try:
        if kind in ("csv", "tsv"):
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else _delimiter(path))
        elif kind == "excel":
            frame = pd.read_excel(path, sheet_name=0 if sheet is None else sheet,
                                  engine="openpyxl")
        else:
            frame = _read_stat(path, kind)
    except InputError:
        raise
    except (ValueError, KeyError, OSError, UnicodeDecodeError) as exc:
        # the reader's message may quote the file's content: name the file and the kind only
        raise InputError(f"read_survey: could not read {path.name!r} as {kind} "
                         f"({type(exc).__name__})") from None
    return frame.reset_index(drop=True)


def _delimiter(path: Path) -> str:
    """The delimiter of a text file's header line: the most frequent of ``,`` ``;`` tab ``|``
    (``,`` on a tie; many statistical offices export with ``;``)."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] > counts[","] else ","


def _read_stat(path: Path, kind: str) -> pd.DataFrame:
    try:
        import pyreadstat
    except ImportError:
        raise InputError("read_survey: SPSS, Stata and SAS files need pyreadstat "
                         "(pip install 'tipstat[survey]')") from None
    reader = {"spss": pyreadstat.read_sav, "spss_por": pyreadstat.read_por,
              "stata": pyreadstat.read_dta, "sas": pyreadstat.read_sas7bdat,
              "sas_xport": pyreadstat.read_xport}[kind]
    # SAS transport files carry no value labels (and their reader takes no label options)
    options = ({} if kind == "sas_xport" else
               {"apply_value_formats": True, "formats_as_category": True,
                "formats_as_ordered_category": False})
    try:
        frame, meta = reader(str(path), **options)
    except (pyreadstat.ReadstatError, getattr(pyreadstat, "PyreadstatError", OSError),
            ValueError, OSError) as exc:
        raise InputError(f"read_survey: could not read {path.name!r} as {kind} "
                         f"({type(exc).__name__})") from None
    # every labelled level becomes a category, also those nobody chose (an empty domain must
    # stay visible); values without a label keep their own category
    labels = getattr(meta, "variable_value_labels", None) or {}
    for col, mapping in labels.items():
        if col in frame.columns and isinstance(frame[col].dtype, pd.CategoricalDtype):
            seen = list(frame[col].cat.categories)
            wanted = list(dict.fromkeys([*mapping.values(), *seen]))
            frame[col] = frame[col].cat.set_categories(wanted)
    return frame
