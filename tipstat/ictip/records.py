"""Reading IC-TIP coded victim records (CSV, Excel, ODS, the IOM HTCDS template, DataFrames).

One input row is a *victim record as held by one reporting entity* (ICTIP.md §6.1). The IC-TIP
layout has the columns

==============================  ===========================================================
``entity_id``                    reporting entity (required, or the mapping key); an MSE list
``source_record_id``             the entity's own record id (or ``record_id``; one required)
``person_key``                   pseudonymous key, with ``person_key_scheme`` (default
                                 ``HMAC_SHA256``); or clear identifiers plus ``secret=``
``identification_date``          required (YYYY-MM-DD, a full date)
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
``read = used + excluded`` always holds, in total and per source file. A column the layout does
not know stops the read (with a did-you-mean suggestion) unless ``extra_columns="ignore"``.
Messages never show a value that could identify a person (:mod:`tipstat.ictip.redact`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, Problem
from . import codelists
from . import keys as _keys
from . import validation as V
from .redact import is_blank
from .sources import (  # noqa: F401  (HTCDS_COLUMNS, KNOWN_COLUMNS: part of this module's API)
    FORMATS,
    HTCDS_COLUMNS,
    KEY_FIELDS,
    KNOWN_COLUMNS,
    Source,
    _blank_to_nan,
    _format_of,
    _items,
    _prepare,
    _read_table,
    _text,
)

__all__ = ["KNOWN_COLUMNS", "Records", "read_records"]

INCLUDE_DEFAULT = ("PRESUMED", "IDENTIFIED")

OUTPUT_COLUMNS = ["record_id", "entity_id", "list_id", "person_key", "person_key_scheme",
                  "identification_date", "identification_status", "country_of_identification",
                  "sex", "age_at_identification", "age_group", "age_group_l1",
                  "age_at_exploitation_start", "citizenship", "citizenship_group", "exploitation",
                  "exploitation_stratum", "excluded", "source"]


@dataclass
class Records:
    """Validated, coded and pseudonymised victim records, with their accounting.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per record read (index: the row label used in error messages), columns
        :data:`OUTPUT_COLUMNS`. No clear identifier. ``excluded`` is ``""`` for a used record,
        otherwise the reason it is out of scope; ``source`` names the file (or mapping key) the
        record came from.
    lists : tuple of str
        MSE lists, in the order of the entity -> list mapping.
    version : str
        Code-list version.
    report : ValidationReport
        Warnings collected so far.
    list_periods : pandas.DataFrame or None
        ``list_id, period_start, period_end`` where the list definition gave them.
    meta : dict
        ``format`` (per source), ``sources`` (one dict per source: ``source``, ``format``,
        ``records``, ``blank_rows``, ``ignored_columns``), ``rows_in_source``, ``secure``.
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

    def accounting(self, by_source: bool = False) -> pd.DataFrame:
        """``read``, ``used`` and ``excluded: <reason>`` record counts; read = used + excluded.

        After them come rows that are not records and were not read: ``blank rows (not
        records)`` and ``ignored column: <name>`` (read with ``extra_columns="ignore"``; the
        count is the number of records with a value in that column).

        Parameters
        ----------
        by_source : bool
            Add one column per source file (or mapping key), in input order; the ``records``
            column is their sum.

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
        src = (self.frame["source"] if "source" in self.frame.columns
               else pd.Series("", index=self.frame.index))
        reasons = sorted(ex[ex != ""].unique())
        items = ["read", "used", *[f"excluded: {r}" for r in reasons]]
        masks = [np.ones(len(ex), dtype=bool), (ex == "").to_numpy(),
                 *[(ex == r).to_numpy() for r in reasons]]
        sources = [s["source"] for s in self.meta.get("sources", [])] or list(dict.fromkeys(src))
        out = pd.DataFrame({"item": items, "records": [int(m.sum()) for m in masks]})
        if by_source:
            for s in sources:
                inside = (src == s).to_numpy()
                out[s] = [int((m & inside).sum()) for m in masks]
        assert out.records[0] == out.records[1] + out.records[2:].sum()
        extra: list[dict[str, Any]] = []
        for info in self.meta.get("sources", []):
            per = {"blank rows (not records)": info.get("blank_rows", 0)}
            per.update({f"ignored column: {c}": n for c, n in info.get("ignored_columns", {}).items()})
            for item, n in per.items():
                if not n and item.startswith("blank"):
                    continue
                row = next((r for r in extra if r["item"] == item), None)
                if row is None:
                    row = {"item": item, "records": 0}
                    extra.append(row)
                row["records"] += int(n)
                if by_source:
                    row[info["source"]] = row.get(info["source"], 0) + int(n)
        if extra:
            more = pd.DataFrame(extra)
            if by_source:
                more = more.reindex(columns=out.columns).fillna(0)
            out = pd.concat([out, more], ignore_index=True)
            out[out.columns[1:]] = out[out.columns[1:]].astype(int)
        return out

    def exclude(self, mask: np.ndarray | pd.Series, reason: str, rule: str | None = None) -> Records:
        """A copy where the used records under ``mask`` are excluded for ``reason``.

        The warning of ``rule`` says how many records, and from which sources when there are
        several, so that no source's records disappear behind one line.
        """
        mask = np.asarray(mask, dtype=bool) & (self.frame["excluded"] == "").to_numpy()
        if not mask.any():
            return self
        frame = self.frame.copy()
        frame.loc[mask, "excluded"] = reason
        report = V.ValidationReport(list(self.report.issues))
        if rule:
            n = int(mask.sum())
            text = f"{n} record(s) excluded: {reason}"
            if "source" in frame.columns and frame["source"].nunique() > 1:
                per = frame.loc[mask, "source"].value_counts(sort=False)
                total = frame["source"].value_counts(sort=False)
                text += " (" + ", ".join(f"{s}: {int(k)} of {int(total[s])}"
                                         for s, k in per.items()) + ")"
            report.add(rule, text, n)
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
        try:
            return pd.Timestamp(period[0]), pd.Timestamp(period[1])
        except (ValueError, TypeError) as exc:
            raise InputError("period: a (start, end) pair of dates was expected") from exc
    try:
        p = pd.Period(str(period), freq="Y") if isinstance(period, int | np.integer) else \
            pd.Period(str(period))
    except (ValueError, TypeError) as exc:
        raise InputError(f"period={period!r} is not a year, a (start, end) pair or a "
                         "pandas Period string") from exc
    return p.start_time.normalize(), p.end_time.normalize()


# ------------------------------------------------------------------------------ reading files
def _list_map(entity_to_list: Mapping[str, str] | pd.DataFrame,
              errors: V._Errors) -> tuple[dict[str, str], tuple[str, ...], pd.DataFrame | None]:
    if isinstance(entity_to_list, pd.DataFrame):
        need = [c for c in ("entity_id", "list_id") if c not in entity_to_list.columns]
        if need:
            raise InputError(f"the list definition needs columns {need}")
        d = entity_to_list.copy()
        d["entity_id"], d["list_id"] = _text(d["entity_id"]), _text(d["list_id"])
        blank = ((d["entity_id"] == "") | (d["list_id"] == "")).to_numpy()
        if blank.any():
            raise InputError("the list definition has blank entity_id or list_id cells",
                             [Problem("entity_id/list_id", r, None, "an entity and its list")
                              for r in d.index[blank]])
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
    if not isinstance(entity_to_list, Mapping):
        raise InputError("entity_to_list must be a mapping {entity_id: list_id} or a table with "
                         f"columns entity_id, list_id; got {type(entity_to_list).__name__}")
    mapping = {str(k).strip(): str(v).strip() for k, v in dict(entity_to_list).items()}
    if not mapping:
        raise InputError("entity_to_list is empty: map every reporting entity to an MSE list")
    return mapping, tuple(dict.fromkeys(mapping.values())), None


def read_records(
    source: Source | Sequence[Source] | Mapping[str, Source],
    entity_to_list: Mapping[str, str] | pd.DataFrame,
    *,
    format: str | Mapping[Any, str] = "auto",
    extra_columns: str = "error",
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
        CSV (UTF-8; the separator ``,``, ``;``, tab or ``|`` is read from the header line),
        Excel (``.xlsx``, needs openpyxl), ODS (``.ods``, needs odfpy) files or DataFrames, in
        the IC-TIP layout (module docstring) or the IOM HTCDS v2.0 layout (the Excel template's
        "Case Sheet", or a CSV with its system names; ``cas_IncomingReferralDate`` is taken as
        the identification date, the template's row number as ``source_record_id``, and the
        entity from the mapping key). Empty rows are not records (counted in the accounting).
        A file with a header line and no rows is an agency with no records.
    entity_to_list : mapping or DataFrame
        ``{entity_id: list_id}``, or a list-definition table with ``entity_id, list_id`` and
        optionally ``period_start, period_end``.
    format : ``"auto"``, ``"ictip"``, ``"htcds"`` or a mapping
        The layout of each source. ``"auto"`` (default) tells it from the columns: HTCDS system
        names (``prs_Gender``, ``vic_TraffickingStatus``, ...) mean HTCDS. A mapping gives it per
        source, keyed by the mapping key of ``source``, the file path or name, or the position;
        sources it does not name are ``"auto"``. IC-TIP and HTCDS sources can be mixed.
    extra_columns : ``"error"`` or ``"ignore"``
        A column that is not in the layout (a misspelt ``exploitaton``, ``gender``) stops the
        read with an :class:`InputError` naming the file and column and suggesting the column
        meant (default); with ``"ignore"`` it is not read and is listed in
        :meth:`Records.accounting` (``ignored column: <name>``).
    entities : DataFrame, optional
        The ``reporting_entity`` table (``entity_id`` and optionally ``entity_type``,
        ``country``); records of entities not in it are rejected (rule 3).
    secret : str, bytes or Secret, optional
        When the records hold clear identifiers (``family_name``, ``given_name``,
        ``birth_date``), the key is HMAC-SHA-256 of their normalised values (see
        :mod:`tipstat.ictip.keys`) and they are dropped; age is derived from the birth date.
        The secret is checked first: a secret that is refused stops the read before anything
        else is looked at.
    key_fields : sequence of str
        Identifier columns the key is computed from.
    version : str
        Code-list version.
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
    sheet : str or int, optional
        Sheet of the Excel / ODS files (default: "Case Sheet" for HTCDS workbooks, else the
        first).

    Returns
    -------
    Records

    Raises
    ------
    InputError
        First for an unusable option or secret, then for files that cannot be read, then for
        column problems of all sources together (unknown, duplicated or missing required
        columns, each named once with its file), then listing every violation of the error
        rules 1-7 of ICTIP.md §6.3 by rule, column and row. A value is shown only where it
        cannot identify a person (:mod:`tipstat.ictip.redact`); otherwise it is described.

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
    # --- options first: a bad secret is reported first and alone ---------------------------
    if secret is not None:
        secret = _keys.Secret(secret)
    formats = [format] if isinstance(format, str) else (
        list(format.values()) if isinstance(format, Mapping) else None)
    if formats is None or any(f not in FORMATS for f in formats):
        raise InputError(f"format={format!r}; expected one of {list(FORMATS)} or a mapping "
                         "{source: format}")
    if extra_columns not in ("error", "ignore"):
        raise InputError(f"extra_columns={extra_columns!r}; expected 'error' or 'ignore'")
    if isinstance(key_fields, str) or not all(isinstance(f, str) for f in key_fields):
        raise InputError("key_fields must be a sequence of column names")
    key_fields = tuple(key_fields)
    codelists.load("sex", version)  # an unknown version is an InputError listing the versions
    if isinstance(include_status, str):
        include_status = [include_status]
    bad_inc = [s for s in include_status if s not in codelists.load("id_status", version)]
    if bad_inc:
        raise InputError(f"include_status: {bad_inc} are not id_status codes")
    if ref_area is not None and ref_area not in codelists.load("country", version):
        raise InputError(f"ref_area={ref_area!r} is not an ISO 3166-1 alpha-3 code")
    try:
        today_ = pd.Timestamp(today if today is not None else date.today()).date()
    except (ValueError, TypeError):
        raise InputError("today: a date (YYYY-MM-DD) was expected") from None
    errors = V._Errors(version)
    report = V.ValidationReport()

    # --- sources and their columns ----------------------------------------------------------
    items = _items(source)
    if isinstance(format, Mapping):
        names: set[Any] = set(range(len(items)))
        for entity, src in items:
            names |= {entity} | ({str(src), Path(src).name} if isinstance(src, str | os.PathLike)
                                 else set())
        stray = [k for k in format if k not in names]
        if stray:
            raise InputError(f"format names source(s) {stray} that are not among the sources "
                             "(keys: mapping keys, file names or paths, or positions)")
    col_problems: list[Problem] = []
    parts = [_prepare(src, entity, _format_of(format, entity, src, i), sheet, extra_columns,
                      key_fields, secret, secure, col_problems,
                      "the table" if len(items) == 1 else f"table {i + 1}")
             for i, (entity, src) in enumerate(items)]
    labels = [p.label for p in parts]
    if len(set(labels)) < len(labels):  # two files of the same name in different folders
        for p, (_, src) in zip(parts, items, strict=True):
            if labels.count(p.label) > 1 and isinstance(src, str | os.PathLike):
                p.label = str(src)
    if len({p.label for p in parts}) < len(parts):
        raise InputError("two sources have the same name; pass a mapping {entity_id: source}")
    if col_problems:
        where = ", ".join(dict.fromkeys(p.label for p in parts))
        raise InputError(f"{len(col_problems)} column problem(s) in {where}; nothing was read",
                         col_problems)
    frames = []
    for p in parts:
        f = p.frame.copy()
        if len(parts) > 1:
            f.index = [f"{p.label}:{r}" for r in f.index]
        f["_source"] = p.label
        frames.append(f)
    with warnings.catch_warnings():  # pandas: concatenating all-NA columns
        warnings.simplefilter("ignore", FutureWarning)
        raw = pd.concat(frames, axis=0) if len(frames) > 1 else frames[0]
    raw = raw.astype(object)
    if len(raw) == 0:
        raise InputError("no records: every source is empty (" + ", ".join(labels) + ")")
    n_raw = len(raw)
    known_entities = set()
    for p in parts:
        if p.entity is not None:
            known_entities.add(p.entity)
    if isinstance(entity_to_list, Mapping):
        known_entities |= {str(k).strip() for k in entity_to_list}
    elif isinstance(entity_to_list, pd.DataFrame) and "entity_id" in entity_to_list.columns:
        known_entities |= set(_text(entity_to_list["entity_id"]))
    if entities is not None and isinstance(entities, pd.DataFrame) and "entity_id" in entities:
        known_entities |= set(_text(entities["entity_id"]))
    errors.known["entity_id"] = known_entities
    for p in parts:  # a source without a status column: its records cannot be in scope
        if "identification_status" not in p.frame.columns and len(p.frame) \
                and "_U" not in include_status:
            report.add("W5", f"{p.label} has no identification_status column: its "
                             f"{len(p.frame)} record(s) have status _U and are excluded "
                             f"(include_status={list(include_status)})", len(p.frame))

    # --- rule 1: codes ----------------------------------------------------------------------
    sources = ["aliases"] + (["htcds-2.0"] if any(p.fmt == "htcds" for p in parts) else [])
    coded = V.check_codes(raw, V.CODED, version, sources, errors)
    df = pd.DataFrame(index=raw.index)
    df["entity_id"] = _text(raw["entity_id"])
    blank_entity = (df["entity_id"] == "").to_numpy()
    errors.add(3, "entity_id", list(df.index[blank_entity]), None, "an entity_id on every row")
    sid = _text(raw["source_record_id"]) if "source_record_id" in raw.columns else \
        pd.Series("", index=raw.index, dtype=object)
    rid = _text(raw["record_id"]) if "record_id" in raw.columns else \
        pd.Series("", index=raw.index, dtype=object)
    df["source_record_id"] = sid.where(sid != "", rid)
    df["record_id"] = rid.where(rid != "", df["entity_id"] + ":" + df["source_record_id"])
    no_id = (df["source_record_id"] == "").to_numpy()
    errors.add(2, "source_record_id", list(df.index[no_id]), None,
               "a record id (source_record_id or record_id) on every row")
    for col in ("sex", "identification_status", "age_group"):
        df[col if col != "age_group" else "age_group_given"] = (
            coded[col].astype(object) if col in coded
            else pd.Series("_U", index=raw.index, dtype=object))
    if "country_of_identification" in raw.columns:
        country = V.check_countries(raw["country_of_identification"], "country_of_identification",
                                    version, sources, errors).astype(object)
        if ref_area is not None:
            country[country == "_U"] = ref_area
        df["country_of_identification"] = country
    else:
        df["country_of_identification"] = ref_area if ref_area is not None else "_U"
    df["citizenship"] = (V.check_countries(raw["citizenship"], "citizenship", version, sources,
                                           errors, multi=True)
                         if "citizenship" in raw.columns else "_U")
    df["citizenship_group"] = V.citizenship_group(df["citizenship"], df["country_of_identification"])
    expl = raw["exploitation"] if "exploitation" in raw.columns else \
        raw.get("form_code", pd.Series(np.nan, index=raw.index, dtype=object))
    expl = expl.astype(object)
    if "sex_exploitation" in raw.columns:  # HTCDS sub-type: a child of SEX (rule 5)
        sub_table = codelists.crosswalk("htcds-2.0", version)["sex_exploitation"]
        sub_raw = _text(raw["sex_exploitation"])
        sub_x = sub_raw.map(lambda v: sub_table.get(v))
        given = (sub_raw != "").to_numpy()
        unknown = given & sub_x.isna().to_numpy()
        errors.add(1, "sex_exploitation", list(raw.index[unknown]),
                   list(raw["sex_exploitation"][unknown]), "an HTCDS vic_TypeOfSexExploitation value")
        parent_ok = _text(expl).str.contains("Sexual", case=False).to_numpy()
        orphan = given & ~unknown & ~parent_ok
        errors.add(5, "sex_exploitation", list(raw.index[orphan]),
                   list(raw["sex_exploitation"][orphan]),
                   "a sexual-exploitation sub-type only with type of exploitation "
                   "'Sexual exploitation' (its parent)")
        ok = given & ~unknown
        expl = expl.copy()
        expl[ok] = [f"{e};{s}" if not is_blank(e) else s
                    for e, s in zip(expl[ok], sub_x[ok], strict=True)]
    df["exploitation"], df["exploitation_stratum"] = V.map_exploitation(expl, version, sources, errors)

    # --- dates and ages (rule 4) ------------------------------------------------------------
    idd, why = _keys.parse_dates(raw["identification_date"])
    for reason, rows in _grouped(why.fillna("a blank"), idd.isna().to_numpy()):
        errors.add(4, "identification_date", rows, None,
                   f"a full date YYYY-MM-DD (identification_date is required); found {reason}")
    df["identification_date"] = idd
    for col in ("age_at_identification", "age_at_exploitation_start"):
        if col in raw.columns:
            num = pd.to_numeric(_blank_to_nan(_text(raw[col])), errors="coerce")
            num = num.astype(float)
            unreadable = num.isna().to_numpy() & ~V._blank(raw[col])
            errors.add(4, col, list(raw.index[unreadable]), list(raw[col][unreadable]),
                       "a whole number of years")
            df[col] = num
    birth = birth_why = None
    if "birth_date" in raw.columns:
        birth, birth_why = _keys.parse_dates(raw["birth_date"])
    V.check_dates(df, errors, today_, birth, birth_why)

    # --- rule 2: duplicates -----------------------------------------------------------------
    has_id = ~no_id & ~blank_entity
    dup = df[has_id].duplicated(["entity_id", "source_record_id"], keep=False)
    errors.add(2, "source_record_id", list(dup.index[dup.to_numpy()]), None,
               "a unique (entity_id, source_record_id)")
    dup_rid = df.loc[has_id, "record_id"].duplicated(keep=False)
    dup_rid = dup_rid & ~dup
    errors.add(2, "record_id", list(dup_rid.index[dup_rid.to_numpy()]), None, "a unique record_id")

    # --- rule 3: entities and lists ---------------------------------------------------------
    mapping, lists, periods = _list_map(entity_to_list, errors)
    if entities is not None:
        if not isinstance(entities, pd.DataFrame) or "entity_id" not in entities.columns:
            raise InputError("the reporting_entity table needs an 'entity_id' column")
        known = set(_text(entities["entity_id"]))
        bad = ~df["entity_id"].isin(known).to_numpy() & ~blank_entity
        errors.add(3, "entity_id", list(df.index[bad]), list(df["entity_id"][bad]),
                   "an entity_id of the reporting_entity table")
        if "entity_type" in entities.columns:
            et = entities.set_index(entities.index.map(lambda i: f"reporting_entity:{i}"))
            V.check_codes(et, {"entity_type": "entity_type"}, version, sources, errors)
        if "country" in entities.columns:
            et = entities.set_index(entities.index.map(lambda i: f"reporting_entity:{i}"))
            V.check_countries(et["country"], "country", version, sources, errors)
    unmapped = ~df["entity_id"].isin(mapping.keys()).to_numpy() & ~blank_entity
    errors.add(3, "entity_id", list(df.index[unmapped]), list(df["entity_id"][unmapped]),
               f"an entity mapped to one list ({sorted(mapping)})")
    df["list_id"] = df["entity_id"].map(mapping)

    # --- rule 6/7: person keys --------------------------------------------------------------
    key = pd.Series(None, index=df.index, dtype=object)
    scheme = pd.Series("HMAC_SHA256", index=df.index, dtype=object)
    date_problem = np.zeros(len(df), dtype=bool)
    if "person_key" in raw.columns:
        given_key = _text(raw["person_key"])
        key[given_key != ""] = given_key[given_key != ""]
        if "person_key_scheme" in coded:
            given_scheme = ~V._blank(raw["person_key_scheme"])
            mapped = coded["person_key_scheme"].astype(object)
            unknown = given_scheme & mapped.isna().to_numpy()
            errors.problems = [p for p in errors.problems if p.column != "person_key_scheme"]
            errors.add(6, "person_key_scheme", list(df.index[unknown]),
                       list(raw["person_key_scheme"][unknown]),
                       "a person_key_scheme code (HMAC_SHA256, SLK581, REGISTER_ID, BLOOM_CLK)")
            scheme[given_scheme] = mapped[given_scheme].fillna("?")
    part_of = raw["_source"].to_numpy()
    clear_parts = {p.label for p in parts
                   if any(f in p.frame.columns for f in key_fields if f != "sex")}
    # identifiers are hashed where a record has no key of its own (a file may mix both)
    clear_rows = np.isin(part_of, list(clear_parts)) & key.isna().to_numpy() if clear_parts \
        else np.zeros(len(df), dtype=bool)
    if secret is not None and clear_rows.any() and all(f in raw.columns for f in key_fields):
        kf = raw.loc[clear_rows, list(key_fields)].astype(object).copy()
        if "sex" in kf.columns:
            kf["sex"] = df.loc[clear_rows, "sex"]  # the code: 'Feminine' and 'F' give one key
        if "birth_date" in kf.columns and birth is not None:
            date_problem = clear_rows & (birth_why.notna().to_numpy())
            kf["birth_date"] = birth[clear_rows].astype(object).where(
                birth[clear_rows].notna(), None)
            kf.loc[date_problem[clear_rows], "birth_date"] = None
        try:
            keys_ = _keys.person_keys(kf, secret, key_fields)
        except InputError as exc:  # other date fields: one problem per row, values not shown
            errors.problems += [replace(p, value=None, expected="rule 4: " + p.expected)
                                for p in exc.problems]
            errors.rules.add(4)
            bad_rows = {p.row for p in exc.problems}
            date_problem |= df.index.isin(list(bad_rows))
            keys_ = pd.Series(None, index=kf.index, dtype=object)
        keys_[date_problem[clear_rows]] = None
        key[clear_rows] = keys_.to_numpy()
    if birth is not None:  # the age from the birth date where none is given (range-checked)
        if "age_at_identification" not in df.columns:
            df["age_at_identification"] = np.nan
        derived = _keys.age_in_years(birth, idd).astype(float).to_numpy()
        fill = df["age_at_identification"].isna().to_numpy() & ~date_problem
        df.loc[fill, "age_at_identification"] = derived[fill]
    df["person_key"] = key
    df["person_key_scheme"] = scheme
    V.check_person_keys(df, errors, skip=date_problem)

    # --- soft delete --------------------------------------------------------------------------
    deleted = np.zeros(len(df), dtype=bool)
    if "is_deleted" in raw.columns:
        flag = _text(raw["is_deleted"]).str.lower()
        bad = ~flag.isin(["", "0", "1", "0.0", "1.0", "true", "false", "yes", "no"]).to_numpy()
        errors.add(1, "is_deleted", list(df.index[bad]), list(raw["is_deleted"][bad]),
                   "0/1, true/false or yes/no")
        deleted = flag.isin(["1", "1.0", "true", "yes"]).to_numpy()
    errors.raise_if_any("victim records")

    # --- derived columns --------------------------------------------------------------------
    for col in ("age_at_identification", "age_at_exploitation_start"):
        if col not in df.columns:
            df[col] = np.nan
    derived = V.derive_age_group(df["age_at_identification"], 2)
    df["age_group"] = np.where(derived != "_U", derived, df["age_group_given"])
    cl = codelists.load("age_group", version)
    df["age_group_l1"] = df["age_group"].map(cl.tops)
    df["excluded"] = ""
    df["source"] = raw["_source"].astype(object)
    frame = df.reindex(columns=OUTPUT_COLUMNS)
    meta_sources = [{"source": p.label, "format": p.fmt, "records": len(p.frame),
                     "blank_rows": p.blank_rows, "ignored_columns": dict(p.ignored)} for p in parts]
    recs = Records(frame, lists, version, report, periods,
                   meta={"format": parts[0].fmt if len(parts) == 1
                         else {p.label: p.fmt for p in parts},
                         "sources": meta_sources, "rows_in_source": n_raw, "secure": secure})
    # --- scope (W5, W6) ---------------------------------------------------------------------
    st = frame["identification_status"]
    recs = recs.exclude(deleted, "deleted (is_deleted)")
    recs = recs.exclude((st == "NOT_VICTIM").to_numpy(), "NOT_VICTIM", "W5")
    recs = recs.exclude((~st.isin(include_status)).to_numpy(),
                        f"status outside {sorted(include_status)}", "W5")
    return recs.restrict(period=period, ref_area=ref_area)


def _grouped(reasons: pd.Series, mask: np.ndarray) -> list[tuple[str, list]]:
    """``(reason, row labels)`` of the rows under ``mask``, by reason."""
    sub = reasons[mask]
    return [(str(r), list(sub.index[(sub == r).to_numpy()])) for r in dict.fromkeys(sub)]


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
    raw, _, header = _read_table(source, None, "ictip")
    dups = sorted({str(c) for c in [*header, *raw.columns]
                   if header.count(c) > 1 or list(raw.columns).count(c) > 1})
    if dups:
        raise InputError(f"column name(s) {dups} appear more than once; each must appear once")
    rename = {}
    for c in raw.columns:
        key = str(c).strip().lower()
        rename[c] = CTDC_ALIASES.get(key, str(c).strip())
    raw = raw.rename(columns=rename)
    if "Unnamed: 0" in raw.columns:
        raw = raw.drop(columns=["Unnamed: 0"])
    if len(raw) == 0:
        raise InputError("no records: the CTDC table is empty")
    errors = V._Errors(version)
    raw = raw.astype(object)
    missing = raw.isin(["-99", -99, "-99.0", -99.0]) | raw.isna()
    raw = raw.mask(missing)
    df = pd.DataFrame(index=raw.index)
    sex = raw["gender"] if "gender" in raw.columns else pd.Series(np.nan, index=raw.index, dtype=object)
    df["sex"], bad = V.map_codes(sex, "sex", version, ["ctdc", "aliases"])
    errors.add(1, "gender", list(raw.index[bad]), list(sex[bad]), "a CTDC gender value")
    agecol = "ageBroad" if "ageBroad" in raw.columns else (
        "majorityStatus" if "majorityStatus" in raw.columns else None)
    age = raw[agecol] if agecol else pd.Series(np.nan, index=raw.index, dtype=object)
    df["age_group"], bad = V.map_codes(age, "age_group", version, ["ctdc"])
    errors.add(1, agecol, list(raw.index[bad]), list(age[bad]), "a CTDC ageBroad / majorityStatus value")
    df["age_group_l1"] = df["age_group"]
    flags = codelists.crosswalk("ctdc", version).get("exploitation_form", {})
    cols = [c for c in raw.columns if c in flags]
    flag_text = {c: _text(raw[c]) for c in cols}
    codes = []
    for i in range(len(raw)):
        row = [flags[c] for c in cols if flag_text[c].iloc[i] in ("1", "1.0", "True", "true")]
        codes.append(";".join(row) if row else "")
    expl = pd.Series(codes, index=raw.index, dtype=object)
    df["exploitation"], df["exploitation_stratum"] = V.map_exploitation(expl, version, [], errors)
    cit = raw["citizenship"] if "citizenship" in raw.columns else \
        pd.Series(np.nan, index=raw.index, dtype=object)
    df["citizenship"] = V.check_countries(cit, "citizenship", version, [], errors)
    year_raw = raw["yearOfRegistration"] if "yearOfRegistration" in raw.columns else \
        pd.Series(np.nan, index=raw.index, dtype=object)
    year = pd.to_numeric(_blank_to_nan(_text(year_raw)), errors="coerce").astype(float)
    ok = (year.notna() & (year % 1 == 0) & (year >= 1900) & (year <= 2200)).to_numpy()
    unreadable = ~ok & ~V._blank(year_raw)
    errors.add(4, "yearOfRegistration", list(raw.index[unreadable]), list(year_raw[unreadable]),
               "a year of registration (a whole number, 1900-2200)")
    df["identification_date"] = pd.to_datetime(
        pd.Series([f"{int(y)}-01-01" if k else None for y, k in zip(year, ok, strict=True)],
                  index=raw.index, dtype=object), errors="coerce")
    errors.raise_if_any("CTDC records")
    df["identification_status"] = "IDENTIFIED"
    df["excluded"] = ""
    df["source"] = ""
    frame = df.reindex(columns=OUTPUT_COLUMNS)
    report = V.ValidationReport()
    report.add("W8", "CTDC input has no person key and no list membership: MSE is disabled, "
               "descriptive use only", len(frame))
    return Records(frame, (), version, report, None,
                   meta={"format": "ctdc", "mse": False, "rows_in_source": len(raw)})
