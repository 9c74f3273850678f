"""Sources of victim records: reading CSV / Excel / ODS files and DataFrames, checking their
columns, telling IC-TIP from HTCDS, and converting HTCDS to the IC-TIP layout.

Everything here works on column names and file structure; a cell value never reaches a message
(a file without a recognised header is not even listed by its column names, which could be the
values of its first record). :func:`tipstat.ictip.read_records` validates the cells.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, Problem
from ..tables import CASE_SHEET, read_cells, read_header
from . import keys as _keys
from . import validation as V
from .redact import describe, is_blank

__all__ = ["FORMATS", "HTCDS_COLUMNS", "HTCDS_TEMPLATE_COLUMNS", "KEY_FIELDS", "KNOWN_COLUMNS",
           "SYNONYMS", "detect_format", "htcds_columns"]

Source = pd.DataFrame | str | os.PathLike

#: HTCDS v2.0 system names -> IC-TIP layout.
HTCDS_COLUMNS = {
    "prs_FirstName": "given_name", "prs_SecondName": "family_name", "prs_Birthdate": "birth_date",
    "prs_Gender": "sex", "prs_Citizenship": "citizenship",
    "vic_TraffickingStatus": "identification_status",
    "vic_TypeOfExploitation": "exploitation", "vic_TypeOfSexExploitation": "sex_exploitation",
    "cas_IncomingReferralDate": "identification_date",
}
#: The system names of the HTCDS v2.0 single-select template's Case Sheet (IOM, CC BY 4.0).
#: Those not in :data:`HTCDS_COLUMNS` are known but not used (case management, contact data).
HTCDS_TEMPLATE_COLUMNS = frozenset({
    "cas_CaseOwner", "prs_Salutation", "prs_FirstName", "prs_SecondName", "con_Consent",
    "prs_Birthdate", "prs_Gender", "prs_Citizenship", "prs_Title", "prs_Email", "prs_HomePhone",
    "prs_MobilePhone", "prs_MailingCity", "prs_MailingCountry", "prs_MailingState",
    "prs_MailingStreet", "prs_MailingPostalCode", "vic_TraffickingStatus",
    "vic_TraffickinStatusDecisionMakingOrg", "vic_TraffickingStatusDecisionMakingOrg",
    "vic_MethodOfRecruitment", "vic_LocationOfRecruitment", "vic_MethodsOfControl",
    "vic_TypeOfExploitation", "vic_ForcedLabourIndustry", "vic_TypeOfSexExploitation",
    "vic_LocationOfExploitation", "cas_Status", "cas_ReferringOrganisation",
    "cas_IncomingReferralDate", "cas_ReferringPrimaryCaseWorker", "cas_ReasonForIncomingReferral",
    "cas_IncomingReferralDetails", "cas_ReferredOrganisation", "cas_ReferredPrimaryCaseWorker",
    "cas_OutgoingReferralDate", "cas_OutgoingReferralDetails", "cas_ReasonForCaseClosure",
})
_HTCDS_PREFIX = re.compile(r"^(?:prs|vic|cas|con)_[A-Za-z]")
KEY_FIELDS = ("family_name", "given_name", "birth_date", "sex")
FORMATS = ("auto", "ictip", "htcds")
#: Columns of the IC-TIP layout that :func:`read_records` reads (clear identifiers aside).
KNOWN_COLUMNS = (
    "entity_id", "source_record_id", "record_id", "person_key", "person_key_scheme",
    "identification_date", "identification_status", "country_of_identification", "sex",
    "age_at_identification", "age_group", "age_at_exploitation_start", "citizenship",
    "exploitation", "form_code", "sex_exploitation", "is_deleted", "family_name", "given_name",
    "birth_date",
)
#: Common names of layout columns (compared lower case, letters and digits only) -> the column.
SYNONYMS = {
    "gender": "sex", "age": "age_at_identification", "ageatidentification": "age_at_identification",
    "nationality": "citizenship", "status": "identification_status",
    "victimstatus": "identification_status", "form": "exploitation",
    "exploitationform": "exploitation", "typeofexploitation": "exploitation",
    "formofexploitation": "exploitation", "country": "country_of_identification",
    "date": "identification_date", "dateofidentification": "identification_date",
    "agency": "entity_id", "entity": "entity_id", "reportingentity": "entity_id",
    "id": "source_record_id", "caseid": "source_record_id", "recordid": "record_id",
    "key": "person_key", "personkey": "person_key", "deleted": "is_deleted",
    "dob": "birth_date", "dateofbirth": "birth_date", "birthdate": "birth_date",
    "surname": "family_name", "lastname": "family_name", "firstname": "given_name",
    "agegroup": "age_group",
}



def _blank_to_nan(s: pd.Series) -> pd.Series:
    """Empty strings as NaN, keeping the object dtype (``replace("", nan)`` warns of a
    downcast on pandas 2.2, which the hypothesis tests of the lower bounds caught)."""
    return s.where(s != "")


def _text(values: pd.Series) -> pd.Series:
    """Stripped text of each cell as an object column; ``""`` for a blank (any pandas version)."""
    out = [("" if is_blank(v) else v.strip() if isinstance(v, str) else
            str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip())
           for v in values.astype(object)]
    return pd.Series(out, index=values.index, dtype=object)


def _read_table(src: Source, sheet: str | int | None, fmt: str) -> tuple[pd.DataFrame, str, list[str]]:
    """Cells of one source as objects, index = row labels (file line numbers), its label and
    its header as written (for duplicate names). Files are read by :func:`tipstat.tables.read_cells`
    (an HTCDS workbook's "Case Sheet" is preferred unless the format is IC-TIP)."""
    if isinstance(src, pd.DataFrame):
        df = src.copy()
        idx = df.index
        if not (pd.api.types.is_integer_dtype(idx.dtype) and idx.is_unique and idx.nlevels == 1):
            df.index = pd.RangeIndex(len(df))  # row labels that are not plain numbers: positions
        return df, "", [str(c) for c in df.columns]
    if not isinstance(src, str | os.PathLike):
        raise InputError(f"a source must be a file path or a pandas DataFrame, not "
                         f"{type(src).__name__}")
    path = Path(src)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path.name} is a folder; give the record files inside it")
    df, header = read_cells(path, sheet=sheet, prefer_sheet=None if fmt == "ictip" else CASE_SHEET)
    return df, path.name, header


def _norm(col: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(col).lower())


def _suggest(col: str, candidates: Sequence[str]) -> str | None:
    key = _norm(col)
    if key in SYNONYMS and SYNONYMS[key] in candidates:
        return SYNONYMS[key]
    for c in candidates:
        if _norm(c) == key:
            return c
    lower = {c.lower(): c for c in candidates}
    hit = difflib.get_close_matches(str(col).lower(), list(lower), n=1, cutoff=0.75)
    return lower[hit[0]] if hit else None


def htcds_columns(columns: Sequence[object]) -> list[str]:
    """The column names that are IOM HTCDS v2.0 system names: a name of the template's Case
    Sheet (:data:`HTCDS_TEMPLATE_COLUMNS`) or a ``prs_``/``vic_``/``cas_``/``con_`` name.

    Examples
    --------
    >>> htcds_columns(["prs_Gender", "entity_id", "cas_IncomingReferralDate"])
    ['prs_Gender', 'cas_IncomingReferralDate']
    """
    return [str(c) for c in columns
            if str(c) in HTCDS_TEMPLATE_COLUMNS or _HTCDS_PREFIX.match(str(c))]


def _is_htcds(columns: Sequence[str]) -> bool:
    return bool(htcds_columns(columns))


def detect_format(source: Source, *, sheet: str | int | None = None) -> str:
    """The layout of a source of records: ``"htcds"`` when its column names are HTCDS v2.0
    system names (:func:`htcds_columns`; in a workbook, those of its "Case Sheet" when it has
    one), else ``"ictip"``.

    The rule of ``read_records(format="auto")``, applied to the header alone: the pipeline
    tells each file's format before reading, because an HTCDS export has no entity column and
    is attributed to the entity named by its file name.

    Examples
    --------
    >>> import pandas as pd
    >>> detect_format(pd.DataFrame(columns=["prs_Gender", "vic_TypeOfExploitation"]))
    'htcds'
    >>> detect_format(pd.DataFrame(columns=["entity_id", "source_record_id", "sex"]))
    'ictip'
    """
    if isinstance(source, pd.DataFrame):
        columns = [str(c) for c in source.columns]
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"file not found: {path}")
        if sheet is not None:
            columns = read_cells(path, sheet=sheet, header_only=True)[1]
        else:
            columns = read_header(path, prefer_sheet=CASE_SHEET)[0]
    else:
        raise InputError(f"a source must be a file path or a pandas DataFrame, not "
                         f"{type(source).__name__}")
    return "htcds" if _is_htcds(columns) else "ictip"


def _label_row(df: pd.DataFrame) -> bool:
    """Whether the first row is the HTCDS template's row of human-readable labels."""
    if len(df) == 0:
        return False
    cols = [c for c in df.columns if _HTCDS_PREFIX.match(str(c))]
    if not cols:
        return False
    first = df.iloc[0]
    hits = sum(_norm(first[c]) == _norm(str(c).split("_", 1)[1]) for c in cols
               if isinstance(first[c], str))
    return hits >= max(1, len(cols) // 2)


@dataclass
class _Part:
    """One source after reading: IC-TIP columns, and what was found about it."""

    label: str
    frame: pd.DataFrame
    fmt: str
    columns: list[str]
    entity: str | None = None
    blank_rows: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    identifiers: list[str] = field(default_factory=list)


def _blank_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows with no content (the HTCDS template's pre-numbered row-number column aside)."""
    cols = [c for c in df.columns if not str(c).startswith("Unnamed:")]
    if not cols or len(df) == 0:
        return np.zeros(len(df), dtype=bool)
    out = np.ones(len(df), dtype=bool)
    for c in cols:
        out &= V._blank(df[c])
    return out


def _prepare(src: Source, entity: str | None, fmt: str, sheet: str | int | None,
             extra_columns: str, key_fields: Sequence[str], secret: Any, secure: bool,
             problems: list[Problem], default_label: str) -> _Part:
    """Read one source, check its columns (problems collected, never values) and convert it to
    the IC-TIP layout."""
    raw, label, header = _read_table(src, sheet, fmt)
    label = label or (str(entity) if entity is not None else default_label)
    cols = [str(c).strip().lstrip("\ufeff") for c in raw.columns]
    raw.columns = cols
    named = [c for c in header if not c.startswith("Unnamed:")] + \
        [c for c in cols if not c.startswith("Unnamed:")]
    dups = sorted({c for c in named if header.count(c) > 1 or cols.count(c) > 1})
    for c in dups:
        problems.append(Problem(c, None, None, f"a column name used once; {label} has it "
                                               f"{max(header.count(c), cols.count(c))} times"))
    raw = raw.loc[:, ~pd.Index(cols).duplicated()]
    cols = list(raw.columns)
    fmt_here = fmt if fmt != "auto" else ("htcds" if _is_htcds(cols) else "ictip")
    if fmt_here == "htcds" and _label_row(raw):
        raw = raw.iloc[1:]  # the template's row of human-readable labels under the system names
    known = set(KNOWN_COLUMNS) | set(key_fields)
    if fmt_here == "htcds":
        known |= HTCDS_TEMPLATE_COLUMNS
    blank = _blank_rows(raw)
    part = _Part(label, raw, fmt_here, cols, entity, int(blank.sum()))
    raw = raw[~blank]
    unknown = []
    part.identifiers = _keys.identifier_columns(raw)
    for c in cols:
        if c in known or c in part.identifiers:
            continue
        if c.startswith("Unnamed:") and (V._blank(raw[c]).all() or (fmt_here == "htcds"
                                                                     and c == cols[0])):
            continue  # an empty column without a header, or the template's row numbers
        unknown.append(c)
    if fmt_here == "ictip" and _is_htcds(cols):
        problems.append(Problem(None, None, None, f"the IC-TIP layout, but {label} has HTCDS "
                                                  "columns: read it with format='htcds' or 'auto'"))
        return part
    if unknown and not any(c in known for c in cols):
        problems.append(Problem(None, None, None, (
            f"a header line in {label}: none of its {len(cols)} column names is an IC-TIP or "
            "HTCDS column (is the header line missing? the names are not shown, as they could "
            "be the values of a record)")))
        return part
    for c in unknown:
        if extra_columns == "ignore":
            part.ignored[c] = int((~V._blank(raw[c])).sum())
            continue
        kind = describe(c)
        if kind.startswith(("a date", "a number")) or "@" in c:  # a value, not a column name
            pos = cols.index(c) + 1
            problems.append(Problem(f"#{pos}", None, None, (
                f"a column of the {'HTCDS' if fmt_here == 'htcds' else 'IC-TIP'} layout; column "
                f"{pos} of {label} is named by {kind} (not shown: it may be a record's value)")))
            continue
        hint = _suggest(c, sorted(known))
        problems.append(Problem(c, None, None, (
            f"a column of the {'HTCDS' if fmt_here == 'htcds' else 'IC-TIP'} layout; {label} has "
            f"this unknown column" + (f" - did you mean {hint!r}?" if hint else "")
            + " (pass extra_columns='ignore' to read without it)")))
    frame = _from_htcds(raw, cols) if fmt_here == "htcds" else raw[[c for c in cols if c in known]]
    if entity is not None:
        if "entity_id" in frame.columns:
            given = _text(frame["entity_id"])
            if ((given != "") & (given != str(entity))).any():
                problems.append(Problem("entity_id", None, None, (
                    f"the mapping key {entity!r} or no entity_id column; {label} has an entity_id "
                    "column with other values")))
        frame = frame.assign(entity_id=str(entity))
    # --- required columns: reported once per source, never once per row ---------------------
    required = [("entity_id", "rule 3: a required column (or pass {entity_id: file})"),
                ("identification_date", "rule 4: a required column")]
    for col, what in required:
        if col not in frame.columns:
            problems.append(Problem(col, None, None, f"{what}; {label} has none"))
        elif len(frame) and V._blank(frame[col]).all():
            problems.append(Problem(col, None, None, f"{what}; it is blank on every row of {label}"))
    ids = [c for c in ("source_record_id", "record_id") if c in frame.columns]
    if not ids:
        problems.append(Problem("source_record_id", None, None,
                                f"rule 2: a record id column (source_record_id or record_id); "
                                f"{label} has neither"))
    elif len(frame) and np.logical_and.reduce([V._blank(frame[c]) for c in ids]).all():
        problems.append(Problem(ids[0], None, None, f"rule 2: a record id on every row; it is "
                                                    f"blank on every row of {label}"))
    # --- where the person key comes from ----------------------------------------------------
    clear = [f for f in key_fields if f != "sex" and f in frame.columns]
    if "person_key" not in frame.columns:
        if clear and secret is not None:
            for f in key_fields:
                if f not in frame.columns:
                    problems.append(Problem(f, None, None, (
                        f"rule 6: an identifier column of the key (secret given, "
                        f"key_fields={list(key_fields)}); {label} has none")))
        elif not (part.identifiers and not secure):
            problems.append(Problem("person_key", None, None, (
                f"rule 6: a person_key column, or identifier columns {list(key_fields)} and "
                f"secret= to compute one; {label} has " + (
                    f"identifiers {clear} but no secret" if clear else "neither"))))
    if part.identifiers and secret is None and not secure:
        for c in part.identifiers:
            problems.append(Problem(c, None, None, (
                f"rule 7: no clear identifier column outside secure mode ({label}); pass "
                "secret= to hash them into a person key, pseudonymise them first "
                "(tipstat.linkage.pseudonymise) or pass secure=True in a secure environment")))
    part.frame = frame
    return part


def _from_htcds(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    first = cols[0] if cols else None
    if "source_record_id" not in df.columns and "record_id" not in df.columns:
        lines = pd.Series(df.index.astype(str), index=df.index, dtype=object)
        if first is not None and str(first).startswith("Unnamed"):
            num = _text(df[first])
            out["source_record_id"] = num.where(num != "", lines)
        else:
            out["source_record_id"] = lines
    for c in KNOWN_COLUMNS:  # IC-TIP columns an agency added to its HTCDS export
        if c in df.columns:
            out[c] = df[c]
    for src, dst in HTCDS_COLUMNS.items():
        if src in df.columns and dst not in out.columns:
            out[dst] = df[src]
    return out


def _format_of(format: str | Mapping[Any, str], entity: Any, src: Any, position: int) -> str:
    if isinstance(format, str):
        return format
    keys = [entity, position]
    if isinstance(src, str | os.PathLike):
        keys += [str(src), Path(src).name]
    for k in keys:
        if k is not None and k in format:
            return format[k]
    return "auto"


def _items(source: Any) -> list[tuple[str | None, Source]]:
    if isinstance(source, Mapping):
        return [(str(k), v) for k, v in source.items()]
    if isinstance(source, pd.DataFrame | str | os.PathLike):
        return [(None, source)]
    if isinstance(source, Sequence | set | frozenset | tuple) or hasattr(source, "__iter__"):
        items = [(None, s) for s in source]
        if not items:
            raise InputError("no sources given: pass record files, DataFrames or a mapping "
                             "{entity_id: source}")
        return items
    raise InputError(f"source must be a file, a DataFrame, a list of them or a mapping "
                     f"{{entity_id: source}}; got {type(source).__name__}")
