"""Reading IC-TIP coded victim records (CSV, Excel, the IOM HTCDS template, DataFrames).

One input row is a *victim record as held by one reporting entity* (ICTIP.md §6.1). The IC-TIP
layout has the columns

==============================  ===========================================================
``entity_id``                    reporting entity (required); mapped to an MSE list
``source_record_id``             the entity's own record id (or ``record_id``; one required)
``person_key``                   pseudonymous key, with ``person_key_scheme`` (default
                                 ``HMAC_SHA256``); or clear identifiers plus ``secret=``
``identification_date``          required (YYYY-MM-DD)
``identification_status``        ``PRESUMED`` / ``IDENTIFIED`` / ``NOT_VICTIM`` / ``_U``
``country_of_identification``    ISO-3 (defaults to ``ref_area``)
``sex``                          ``F`` / ``M`` / ``_O`` / ``_U``
``age_at_identification``        whole years, 0-110 (optional)
``age_group``                    code (optional; derived from the age when known)
``age_at_exploitation_start``    optional
``citizenship``                  ISO-3 codes separated by ``;`` (``XXA`` stateless)
``exploitation``                 form codes separated by ``;`` (the multi-valued child table
                                 ``victim_record_exploitation`` flattened into one column)
``is_deleted``                   optional 0/1 (soft delete)
==============================  ===========================================================

Blank coded values mean "not recorded" and become ``_U``. Values are mapped through the
crosswalks of the format (``htcds-2.0``, ``aliases``, ``iso3166-alpha2``). Every rule of
ICTIP.md §6.3 is checked (:mod:`tipstat.ictip.validation`); records that are valid but out of
scope are kept in :attr:`Records.frame` with their exclusion reason, so the accounting
``read = used + excluded`` always holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, Problem
from ..linkage import keys as _keys
from . import codelists
from . import validation as V

__all__ = ["Records", "read_records"]

Source = pd.DataFrame | str | os.PathLike

#: HTCDS v2.0 system names -> IC-TIP layout.
HTCDS_COLUMNS = {
    "prs_FirstName": "given_name", "prs_SecondName": "family_name", "prs_Birthdate": "birth_date",
    "prs_Gender": "sex", "prs_Citizenship": "citizenship",
    "vic_TraffickingStatus": "identification_status",
    "vic_TypeOfExploitation": "exploitation", "vic_TypeOfSexExploitation": "sex_exploitation",
}
KEY_FIELDS = ("family_name", "given_name", "birth_date", "sex")
INCLUDE_DEFAULT = ("PRESUMED", "IDENTIFIED")
OUTPUT_COLUMNS = ["record_id", "entity_id", "list_id", "person_key", "person_key_scheme",
                  "identification_date", "identification_status", "country_of_identification",
                  "sex", "age_at_identification", "age_group", "age_group_l1",
                  "age_at_exploitation_start", "citizenship", "citizenship_group", "exploitation",
                  "exploitation_stratum", "excluded"]


@dataclass
class Records:
    """Validated, coded and pseudonymised victim records, with their accounting.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per record read (index: the row label used in error messages), columns
        :data:`OUTPUT_COLUMNS`. No clear identifier. ``excluded`` is ``""`` for a used record,
        otherwise the reason it is out of scope.
    lists : tuple of str
        MSE lists, in the order of the entity -> list mapping.
    version : str
        Code-list version.
    report : ValidationReport
        Warnings collected so far.
    list_periods : pandas.DataFrame or None
        ``list_id, period_start, period_end`` where the list definition gave them.
    """

    frame: pd.DataFrame
    lists: tuple[str, ...]
    version: str = codelists.DEFAULT_VERSION
    report: V.ValidationReport = field(default_factory=V.ValidationReport)
    list_periods: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def used(self) -> pd.DataFrame:
        """The records in scope (``excluded == ""``)."""
        return self.frame[self.frame["excluded"] == ""]

    @property
    def n_read(self) -> int:
        return len(self.frame)

    def accounting(self) -> pd.DataFrame:
        """``read``, ``used`` and ``excluded: <reason>`` record counts; read = used + excluded.

        Examples
        --------
        >>> from tipstat import simulate
        >>> c = simulate.country(n_victims=300, seed=1)
        >>> recs = c.read(period=c.year)
        >>> acc = recs.accounting().set_index("item")["records"]
        >>> int(acc["read"]) == int(acc["used"]) + int(acc.filter(like="excluded").sum())
        True
        """
        ex = self.frame["excluded"]
        rows = [("read", len(ex)), ("used", int((ex == "").sum()))]
        rows += [(f"excluded: {r}", int(n)) for r, n in ex[ex != ""].value_counts().sort_index().items()]
        out = pd.DataFrame(rows, columns=["item", "records"])
        assert out.records[0] == out.records[1:].sum()
        return out

    def exclude(self, mask: np.ndarray | pd.Series, reason: str, rule: str | None = None) -> Records:
        """A copy where the used records under ``mask`` are excluded for ``reason``."""
        mask = np.asarray(mask, dtype=bool) & (self.frame["excluded"] == "").to_numpy()
        if not mask.any():
            return self
        frame = self.frame.copy()
        frame.loc[mask, "excluded"] = reason
        report = V.ValidationReport(list(self.report.issues))
        if rule:
            report.add(rule, f"{int(mask.sum())} record(s) excluded: {reason}", int(mask.sum()))
        return replace(self, frame=frame, report=report)

    def restrict(self, period: Any = None, ref_area: str | None = None) -> Records:
        """Exclude records identified outside ``period`` or outside ``ref_area`` (W6).

        ``period``: a year (``2024``), a ``(start, end)`` pair of dates (inclusive), or a string
        understood by :class:`pandas.Period` (``"2024"``, ``"2024Q1"``).
        """
        out = self
        if period is not None:
            start, end = _period_bounds(period)
            d = self.frame["identification_date"]
            out = out.exclude(((d < start) | (d > end)).to_numpy(),
                              f"identification date outside {start.date()}..{end.date()}", "W6")
            if self.list_periods is not None:
                lp = self.list_periods.dropna()
                if len(lp) and (lp.period_start.nunique() > 1 or lp.period_end.nunique() > 1):
                    out.report.add("W6", "the lists' coverage periods differ: "
                                   + ", ".join(f"{r.list_id} {r.period_start}..{r.period_end}"
                                               for r in lp.itertuples()))
        if ref_area is not None:
            c = self.frame["country_of_identification"]
            out = out.exclude((c != ref_area).to_numpy(), f"identified outside {ref_area}", "W6")
        return out

    def __repr__(self) -> str:
        return (f"Records(read={self.n_read}, used={len(self.used)}, lists={list(self.lists)}, "
                f"version={self.version!r})")


def _period_bounds(period: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    if isinstance(period, tuple | list) and len(period) == 2:
        return pd.Timestamp(period[0]), pd.Timestamp(period[1])
    try:
        p = pd.Period(str(period), freq="Y") if isinstance(period, int | np.integer) else \
            pd.Period(str(period))
    except (ValueError, TypeError) as exc:
        raise InputError(f"period={period!r} is not a year, a (start, end) pair or a "
                         "pandas Period string") from exc
    return p.start_time.normalize(), p.end_time.normalize()


def _load_one(src: Source, fmt: str, sheet: str | int | None) -> tuple[pd.DataFrame, str]:
    if isinstance(src, pd.DataFrame):
        return src.copy(), ""
    path = Path(src)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    name = path.name
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        import warnings

        with warnings.catch_warnings():  # openpyxl: "Data Validation extension is not supported"
            warnings.simplefilter("ignore", UserWarning)
            if fmt == "htcds":
                sheet = "Case Sheet" if sheet is None else sheet
                df = pd.read_excel(path, sheet_name=sheet, header=0, dtype=object)
                df = df.iloc[1:]  # the row of human-readable labels under the system names
                df.index = df.index + 2  # 1-based line numbers in the sheet
            else:
                df = pd.read_excel(path, sheet_name=0 if sheet is None else sheet, dtype=object)
                df.index = df.index + 2
    else:
        df = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""])
        df.index = df.index + 2  # line numbers (line 1 is the header)
    return df, name


def _gather(source: Source | Sequence[Source] | Mapping[str, Source], fmt: str,
            sheet: str | int | None) -> pd.DataFrame:
    if isinstance(source, Mapping):
        items = list(source.items())
    elif isinstance(source, pd.DataFrame | str | os.PathLike):
        items = [(None, source)]
    else:
        items = [(None, s) for s in source]
    frames = []
    for entity, src in items:
        df, name = _load_one(src, fmt, sheet)
        if fmt == "htcds":
            df = _from_htcds(df)
        if entity is not None:
            if "entity_id" in df.columns and (df["entity_id"].astype(str) != str(entity)).any():
                raise InputError(f"source for entity {entity!r} has an entity_id column with other "
                                 "values; give either the mapping key or the column")
            df["entity_id"] = str(entity)
        label = name or (str(entity) if entity is not None else "")
        if len(items) > 1:
            prefix = label or str(len(frames))
            df.index = [f"{prefix}:{r}" for r in df.index]
        frames.append(df)
    out = pd.concat(frames, axis=0, ignore_index=False) if len(frames) > 1 else frames[0]
    if not out.index.is_unique:
        raise InputError("row labels repeat across sources; give each DataFrame a unique index "
                         "or pass a mapping {entity_id: source}")
    return out


def _from_htcds(df: pd.DataFrame) -> pd.DataFrame:
    cols = list(df.columns)
    first = cols[0]
    blank = df.drop(columns=[first]).isna().all(axis=1) if len(cols) > 1 else df.isna().all(axis=1)
    df = df[~blank.to_numpy()]  # empty rows of the template are not records
    out = pd.DataFrame(index=df.index)
    out["source_record_id"] = (df[first].astype(str) if str(first).startswith("Unnamed")
                               else pd.Series(df.index.astype(str), index=df.index))
    for src, dst in HTCDS_COLUMNS.items():
        if src in df.columns:
            out[dst] = df[src]
    for c in ("cas_IncomingReferralDate", "identification_date", "entity_id", "record_id",
              "country_of_identification", "is_deleted"):
        if c in df.columns:
            out["identification_date" if c == "cas_IncomingReferralDate" else c] = df[c]
    return out


def _list_map(entity_to_list: Mapping[str, str] | pd.DataFrame,
              errors: V._Errors) -> tuple[dict[str, str], tuple[str, ...], pd.DataFrame | None]:
    if isinstance(entity_to_list, pd.DataFrame):
        need = [c for c in ("entity_id", "list_id") if c not in entity_to_list.columns]
        if need:
            raise InputError(f"the list definition needs columns {need}")
        d = entity_to_list.astype({"entity_id": str, "list_id": str})
        multi = d.groupby("entity_id")["list_id"].nunique()
        bad = multi[multi > 1].index
        errors.add(3, "entity_id", [f"list definition: {e}" for e in bad], list(bad),
                   "an entity mapped to exactly one list_id")
        mapping = dict(zip(d.entity_id, d.list_id, strict=True))
        lists = tuple(dict.fromkeys(d.list_id))
        periods = None
        if {"period_start", "period_end"} <= set(d.columns):
            periods = d.groupby("list_id", sort=False)[["period_start", "period_end"]].first()
            periods = periods.reset_index()
        return mapping, lists, periods
    mapping = {str(k): str(v) for k, v in dict(entity_to_list).items()}
    return mapping, tuple(dict.fromkeys(mapping.values())), None


def read_records(
    source: Source | Sequence[Source] | Mapping[str, Source],
    entity_to_list: Mapping[str, str] | pd.DataFrame,
    *,
    format: str = "ictip",
    entities: pd.DataFrame | None = None,
    secret: str | bytes | _keys.Secret | None = None,
    key_fields: Sequence[str] = KEY_FIELDS,
    version: str = codelists.DEFAULT_VERSION,
    period: Any = None,
    ref_area: str | None = None,
    include_status: Sequence[str] = INCLUDE_DEFAULT,
    today: date | str | None = None,
    secure: bool = False,
    sheet: str | int | None = None,
) -> Records:
    """Read, map, validate and pseudonymise victim records of several reporting entities.

    Parameters
    ----------
    source : DataFrame, path, list of them, or mapping ``{entity_id: source}``
        CSV or Excel files or DataFrames in the IC-TIP layout (module docstring) or, with
        ``format="htcds"``, in the IOM HTCDS v2.0 layout (the Excel template's "Case Sheet", or
        a CSV with its system names; ``cas_IncomingReferralDate`` is taken as the identification
        date, the template's row number as ``source_record_id``, and the entity from the mapping
        key). Empty template rows are not records.
    entity_to_list : mapping or DataFrame
        ``{entity_id: list_id}``, or a list-definition table with ``entity_id, list_id`` and
        optionally ``period_start, period_end``.
    entities : DataFrame, optional
        The ``reporting_entity`` table (``entity_id`` and optionally ``entity_type``,
        ``country``); records of entities not in it are rejected (rule 3).
    secret : str, bytes or Secret, optional
        When the records hold clear identifiers (``family_name``, ``given_name``,
        ``birth_date``), the key is HMAC-SHA-256 of their normalised values (see
        :mod:`tipstat.linkage.keys`) and they are dropped; age is derived from the birth date.
    period, ref_area : optional
        Scope: records identified outside the period or the country are excluded (W6).
    include_status : sequence of str
        Identification statuses counted as victims; others are excluded (W5). ``NOT_VICTIM`` is
        always excluded.
    today : date, optional
        For the "identification date in the future" rule (default: today's date).
    secure : bool
        Secure linkage mode: clear identifiers are allowed (and kept out of :attr:`Records.frame`
        all the same). Without it, identifier columns and no ``secret`` are an error (rule 7).

    Returns
    -------
    Records

    Raises
    ------
    InputError
        Listing every violation of the error rules 1-7 of ICTIP.md §6.3, by rule, column, row
        and value (values of identifying columns are not shown).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "entity_id": ["POL", "POL", "NGO1"], "source_record_id": ["1", "2", "a"],
    ...     "person_key": ["a" * 64, "b" * 64, "a" * 64],
    ...     "identification_date": ["2024-02-01", "2024-03-01", "2024-05-05"],
    ...     "identification_status": ["PRESUMED", "NOT_VICTIM", "IDENTIFIED"],
    ...     "sex": ["F", "M", "female"], "age_at_identification": [16, 30, 16],
    ...     "exploitation": ["SEX.PROS", "LAB", "SEX"]})
    >>> recs = read_records(df, {"POL": "P", "NGO1": "N"}, today="2025-01-01")
    >>> recs.accounting().values.tolist()
    [['read', 3], ['used', 2], ['excluded: NOT_VICTIM', 1]]
    >>> recs.used[["list_id", "sex", "age_group_l1", "exploitation_stratum"]].values.tolist()
    [['P', 'F', 'Y0T17', 'SEX'], ['N', 'F', 'Y0T17', 'SEX']]
    """
    if format not in ("ictip", "htcds"):
        raise InputError(f"format={format!r}; expected 'ictip' or 'htcds'")
    if secret is not None:  # a weak secret stops the run here, not as a missing key per row
        secret = _keys.Secret(secret)
    today_ = pd.Timestamp(today if today is not None else date.today()).date()
    errors = V._Errors()
    report = V.ValidationReport()
    sources = ["aliases"] + (["htcds-2.0"] if format == "htcds" else [])
    raw = _gather(source, format, sheet)
    if len(raw) == 0:
        raise InputError("no records: the input is empty")
    n_raw = len(raw)

    # --- columns present --------------------------------------------------------------------
    if "source_record_id" not in raw.columns and "record_id" not in raw.columns:
        raise InputError("a record id column is required: 'source_record_id' or 'record_id'")
    for col in ("entity_id", "identification_date"):
        if col not in raw.columns:
            raise InputError(f"required column {col!r} not found; the table has {list(raw.columns)}")

    # --- rule 7: clear identifiers ----------------------------------------------------------
    ident = _keys.identifier_columns(raw)
    has_clear = any(c in raw.columns for c in key_fields if c != "sex")
    if ident and secret is None and not secure:
        _keys.check_no_identifiers(raw, secure=False, what="victim-record table")

    # --- rule 1: codes ----------------------------------------------------------------------
    coded = V.check_codes(raw, V.CODED, version, sources, errors)
    df = pd.DataFrame(index=raw.index)
    df["entity_id"] = raw["entity_id"].astype(str).str.strip()
    if "source_record_id" in raw.columns:
        df["source_record_id"] = raw["source_record_id"].astype(str).str.strip()
    df["record_id"] = (raw["record_id"].astype(str).str.strip() if "record_id" in raw.columns
                       else df["entity_id"] + ":" + df["source_record_id"])
    for col in ("sex", "identification_status", "age_group"):
        df[col if col != "age_group" else "age_group_given"] = (
            coded[col] if col in coded else pd.Series("_U", index=raw.index))
    if "country_of_identification" in raw.columns:
        df["country_of_identification"] = V.check_countries(
            raw["country_of_identification"], "country_of_identification", version, sources, errors)
        if ref_area is not None:
            df.loc[df["country_of_identification"] == "_U", "country_of_identification"] = ref_area
    else:
        df["country_of_identification"] = ref_area if ref_area is not None else "_U"
    if ref_area is not None and ref_area not in codelists.load("country", version):
        raise InputError(f"ref_area={ref_area!r} is not an ISO 3166-1 alpha-3 code")
    df["citizenship"] = (V.check_countries(raw["citizenship"], "citizenship", version, sources,
                                           errors, multi=True)
                         if "citizenship" in raw.columns else "_U")
    df["citizenship_group"] = V.citizenship_group(df["citizenship"], df["country_of_identification"])
    expl = raw["exploitation"] if "exploitation" in raw.columns else \
        raw.get("form_code", pd.Series(np.nan, index=raw.index, dtype=object))
    if "sex_exploitation" in raw.columns:  # HTCDS sub-type: a child of SEX (rule 5)
        sub_table = codelists.crosswalk("htcds-2.0", version)["sex_exploitation"]
        sub_x = pd.Series([sub_table.get(str(v).strip()) for v in raw["sex_exploitation"]],
                          index=raw.index)
        given = ~V._blank(raw["sex_exploitation"])
        unknown = given & sub_x.isna().to_numpy()
        errors.add(1, "sex_exploitation", list(raw.index[unknown]),
                   list(raw["sex_exploitation"][unknown]), "an HTCDS vic_TypeOfSexExploitation value")
        parent_ok = expl.astype(str).str.contains("Sexual", case=False).to_numpy()
        orphan = given & ~unknown & ~parent_ok
        errors.add(5, "sex_exploitation", list(raw.index[orphan]),
                   list(raw["sex_exploitation"][orphan]),
                   "a sexual-exploitation sub-type only with type of exploitation "
                   "'Sexual exploitation' (its parent)")
        ok = given & ~unknown
        expl = expl.astype(object).copy()
        expl[ok] = [f"{e};{s}" if not V._blank(pd.Series([e]))[0] else s
                    for e, s in zip(expl[ok], sub_x[ok], strict=True)]
    df["exploitation"], df["exploitation_stratum"] = V.map_exploitation(expl, version, sources, errors)

    # --- dates and ages (rule 4) ------------------------------------------------------------
    idd = pd.to_datetime(raw["identification_date"], errors="coerce", format="ISO8601")
    missing_date = idd.isna().to_numpy()
    errors.add(4, "identification_date", list(raw.index[missing_date]),
               list(raw["identification_date"][missing_date]),
               "a date (YYYY-MM-DD); identification_date is required")
    df["identification_date"] = idd
    for col in ("age_at_identification", "age_at_exploitation_start"):
        if col in raw.columns:
            num = pd.to_numeric(raw[col], errors="coerce")
            unreadable = num.isna().to_numpy() & ~V._blank(raw[col])
            errors.add(4, col, list(raw.index[unreadable]), list(raw[col][unreadable]),
                       "a whole number of years")
            df[col] = num
    birth = raw["birth_date"] if "birth_date" in raw.columns else None
    V.check_dates(df, errors, today_, birth)

    # --- rule 2: duplicates -----------------------------------------------------------------
    if "source_record_id" in df.columns:
        dup = df.duplicated(["entity_id", "source_record_id"], keep=False).to_numpy()
        errors.add(2, "source_record_id", list(df.index[dup]), list(df["source_record_id"][dup]),
                   "a unique (entity_id, source_record_id)")
    if "record_id" in raw.columns:
        dup = df["record_id"].duplicated(keep=False).to_numpy()
        errors.add(2, "record_id", list(df.index[dup]), list(df["record_id"][dup]),
                   "a unique record_id")

    # --- rule 3: entities and lists ---------------------------------------------------------
    mapping, lists, periods = _list_map(entity_to_list, errors)
    if entities is not None:
        if "entity_id" not in entities.columns:
            raise InputError("the reporting_entity table needs an 'entity_id' column")
        known = set(entities["entity_id"].astype(str))
        bad = ~df["entity_id"].isin(known).to_numpy()
        errors.add(3, "entity_id", list(df.index[bad]), list(df["entity_id"][bad]),
                   "an entity_id of the reporting_entity table")
        if "entity_type" in entities.columns:
            et = entities.set_index(entities.index.map(lambda i: f"reporting_entity:{i}"))
            V.check_codes(et, {"entity_type": "entity_type"}, version, sources, errors)
        if "country" in entities.columns:
            et = entities.set_index(entities.index.map(lambda i: f"reporting_entity:{i}"))
            V.check_countries(et["country"], "country", version, sources, errors)
    unmapped = ~df["entity_id"].isin(mapping.keys()).to_numpy()
    errors.add(3, "entity_id", list(df.index[unmapped]), list(df["entity_id"][unmapped]),
               f"an entity mapped to one list ({sorted(mapping)})")
    df["list_id"] = df["entity_id"].map(mapping)

    # --- rule 6/7: person keys --------------------------------------------------------------
    if secret is not None and has_clear:
        absent = [c for c in key_fields if c not in raw.columns]
        if absent:
            raise InputError(f"secret given but identifier column(s) {absent} are missing")
        kf = raw[list(key_fields)].copy()
        if "sex" in kf.columns:
            kf["sex"] = df["sex"]  # the code, so that 'Feminine' and 'F' give the same key
        try:
            df["person_key"] = _keys.person_keys(kf, secret, key_fields)
        except InputError as exc:  # unreadable dates: never show the values
            errors.problems += [replace(p, expected="rule 4: " + p.expected) for p in exc.problems]
            errors.rules.add(4)
            df["person_key"] = None
        df["person_key_scheme"] = "HMAC_SHA256"
        if birth is not None and "age_at_identification" not in df.columns:
            df["age_at_identification"] = _keys.age_in_years(birth, idd).astype(float)
    elif "person_key" in raw.columns:
        df["person_key"] = raw["person_key"].astype(object).where(~V._blank(raw["person_key"]), None)
        df["person_key_scheme"] = coded["person_key_scheme"] if "person_key_scheme" in coded \
            else "HMAC_SHA256"
        if "person_key_scheme" in coded:
            unknown = coded["person_key_scheme"].isna().to_numpy()
            errors.problems = [p for p in errors.problems
                               if not (p.column == "person_key_scheme")]
            errors.add(6, "person_key_scheme", list(df.index[unknown]),
                       list(raw["person_key_scheme"][unknown]),
                       "a person_key_scheme code (HMAC_SHA256, SLK581, REGISTER_ID, BLOOM_CLK)")
            df.loc[unknown, "person_key_scheme"] = "?"
    else:
        raise InputError("rule 6: no person_key column and no secret to compute one from "
                         f"identifiers {list(key_fields)}; MSE needs a person key for every record")
    V.check_person_keys(df, errors)
    errors.raise_if_any("victim records")

    # --- derived columns --------------------------------------------------------------------
    if "age_at_identification" not in df.columns:
        df["age_at_identification"] = np.nan
    if "age_at_exploitation_start" not in df.columns:
        df["age_at_exploitation_start"] = np.nan
    derived = V.derive_age_group(df["age_at_identification"], 2)
    df["age_group"] = np.where(derived != "_U", derived, df["age_group_given"])
    cl = codelists.load("age_group", version)
    df["age_group_l1"] = df["age_group"].map(cl.tops)
    df["excluded"] = ""
    frame = df.reindex(columns=OUTPUT_COLUMNS)
    recs = Records(frame, lists, version, report, periods,
                   meta={"format": format, "rows_in_source": n_raw, "secure": secure})
    # --- scope (W5, W6) ---------------------------------------------------------------------
    bad_inc = [s for s in include_status if s not in codelists.load("id_status", version)]
    if bad_inc:
        raise InputError(f"include_status: {bad_inc} are not id_status codes")
    st = frame["identification_status"]
    if "is_deleted" in raw.columns:
        flag = raw["is_deleted"].astype(str).str.strip().str.lower()
        bad = ~flag.isin(["", "0", "1", "true", "false", "nan", "none", "yes", "no"]).to_numpy()
        if bad.any():
            raise InputError("is_deleted must be 0/1 or true/false",
                             [Problem("is_deleted", r, v, "0/1 or true/false")
                              for r, v in zip(raw.index[bad], raw["is_deleted"][bad], strict=True)])
        recs = recs.exclude(flag.isin(["1", "true", "yes"]).to_numpy(), "deleted (is_deleted)")
    recs = recs.exclude((st == "NOT_VICTIM").to_numpy(), "NOT_VICTIM", "W5")
    recs = recs.exclude((~st.isin(include_status)).to_numpy(),
                        f"status outside {sorted(include_status)}", "W5")
    return recs.restrict(period=period, ref_area=ref_area)


def problems_of(exc: InputError, rule: int) -> list[Problem]:
    """The problems of one error rule in an :class:`InputError` raised by :func:`read_records`."""
    return [p for p in exc.problems if p.expected.startswith(f"rule {rule}:")]


#: CTDC column aliases (case-insensitive; some parsers misspell or rename columns).
CTDC_ALIASES = {"countryofexploition": "CountryOfExploitation",
                "recruiterrelationuknown": "recruiterRelationUnknown"}


def read_ctdc(source: Source, *, version: str = codelists.DEFAULT_VERSION) -> Records:
    """Read a CTDC dataset (k-anonymised Global Dataset or Global Synthetic Dataset) for
    descriptive use.

    CTDC rows are anonymised victim records without a person key or a list, so they cannot feed
    MSE (ICTIP.md 6.3 warning W8): :func:`tipstat.ictip.capture_histories` refuses them. Codes
    are mapped through the ``ctdc`` crosswalk: ``gender`` -> ``sex``, ``ageBroad`` (or
    ``majorityStatus``) -> level-1 ``age_group``, the ``is*`` / ``typeOf*`` flag columns (value
    1) -> exploitation codes, ``citizenship`` (ISO alpha-2 or alpha-3) -> ISO-3,
    ``yearOfRegistration`` -> ``identification_date`` (1 January of that year). ``-99`` and
    blanks are unknown; a blank flag is "not recorded", not "no".

    Examples
    --------
    >>> import pandas as pd, warnings
    >>> df = pd.DataFrame({"yearOfRegistration": [2019, 2020], "gender": ["Woman", "Man"],
    ...                    "ageBroad": ["9--17", "30--38"], "citizenship": ["UKR", "-99"],
    ...                    "isSexualExploit": [1, None], "isForcedLabour": [None, 1]})
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     r = read_ctdc(df)
    >>> r.frame[["sex", "age_group_l1", "exploitation_stratum", "citizenship"]].values.tolist()
    [['F', 'Y0T17', 'SEX', 'UKR'], ['M', 'Y_GE18', 'LAB', '_U']]
    """
    raw, _ = _load_one(source, "ictip", None)
    rename = {}
    for c in raw.columns:
        key = str(c).strip().lower()
        rename[c] = CTDC_ALIASES.get(key, str(c).strip())
    raw = raw.rename(columns=rename)
    if "Unnamed: 0" in raw.columns:
        raw = raw.drop(columns=["Unnamed: 0"])
    errors = V._Errors()
    missing = raw.isin(["-99", -99]) | raw.isna()
    raw = raw.mask(missing)
    df = pd.DataFrame(index=raw.index)
    sex = raw["gender"] if "gender" in raw.columns else pd.Series(np.nan, index=raw.index)
    df["sex"], bad = V.map_codes(sex, "sex", version, ["ctdc", "aliases"])
    errors.add(1, "gender", list(raw.index[bad]), list(sex[bad]), "a CTDC gender value")
    agecol = "ageBroad" if "ageBroad" in raw.columns else (
        "majorityStatus" if "majorityStatus" in raw.columns else None)
    age = raw[agecol] if agecol else pd.Series(np.nan, index=raw.index)
    df["age_group"], bad = V.map_codes(age, "age_group", version, ["ctdc"])
    errors.add(1, agecol, list(raw.index[bad]), list(age[bad]), "a CTDC ageBroad / majorityStatus value")
    df["age_group_l1"] = df["age_group"]
    flags = codelists.crosswalk("ctdc", version).get("exploitation_form", {})
    cols = [c for c in raw.columns if c in flags]
    codes = []
    for i in range(len(raw)):
        row = [flags[c] for c in cols if str(raw.iloc[i][c]).strip() in ("1", "1.0", "True")]
        codes.append(";".join(row) if row else "")
    expl = pd.Series(codes, index=raw.index, dtype=object)
    df["exploitation"], df["exploitation_stratum"] = V.map_exploitation(expl, version, [], errors)
    cit = raw["citizenship"] if "citizenship" in raw.columns else pd.Series(np.nan, index=raw.index)
    df["citizenship"] = V.check_countries(cit, "citizenship", version, [], errors)
    year = pd.to_numeric(raw.get("yearOfRegistration", pd.Series(np.nan, index=raw.index)),
                         errors="coerce")
    df["identification_date"] = pd.to_datetime(year.astype("Int64").astype(str) + "-01-01",
                                                errors="coerce")
    errors.raise_if_any("CTDC records")
    df["identification_status"] = "IDENTIFIED"
    df["excluded"] = ""
    frame = df.reindex(columns=OUTPUT_COLUMNS)
    report = V.ValidationReport()
    report.add("W8", "CTDC input has no person key and no list membership: MSE is disabled, "
               "descriptive use only", len(frame))
    return Records(frame, (), version, report, None,
                   meta={"format": "ctdc", "mse": False, "rows_in_source": len(raw)})
