"""Validation of IC-TIP coded victim records: every rule of ICTIP.md §6.3.

Errors reject the input with one :class:`~tipstat.InputError` listing *every* bad value (rule,
column, row, value, what was expected), so a data holder can fix a file in one pass. Values of
identifying columns (person keys, birth dates, names) are never shown: the row is cited instead.
Warnings are collected in a :class:`ValidationReport` (and issued once as a
:class:`~tipstat.TipstatWarning`).

Error rules (numbers as in ICTIP.md §6.3)

1. unknown code in a coded column (after alias and crosswalk mapping); invalid ISO-3 code;
2. duplicate ``(entity_id, source_record_id)``; duplicate ``record_id``;
3. ``entity_id`` not in the ``reporting_entity`` table; an entity with records that is not
   mapped to exactly one list;
4. dates: birth date after identification date; identification date in the future; age outside
   0-110; ``age_group`` inconsistent with the age; age at exploitation start after age at
   identification; age inconsistent with birth date (more than 1 year apart); unreadable dates;
5. ``_U`` combined with substantive codes in a multi-valued field; a child code whose parent is
   inconsistent (code-list files, and HTCDS sub-types without their parent type);
6. for MSE: ``person_key`` missing, an unrecognised scheme, or a key that does not have the form
   of its scheme (looks like a name or a date);
7. clear identifiers (names, free text, exact birth dates) outside secure mode;
8. capture-history input (:func:`validate_capture_table`);
9. population tables (:mod:`tipstat.indicator`).

Warning rules W1-W8 are listed with :data:`WARNING_RULES`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, TipstatWarning
from . import codelists

__all__ = ["WARNING_RULES", "Issue", "ValidationReport", "derive_age_group", "exploitation_stratum",
           "validate_capture_table"]

WARNING_RULES = {
    "W1": "only 2 lists, or a list with fewer than 10 persons in a stratum",
    "W2": "a list shares no person with any other list; MLE does not exist",
    "W3": "duplicate capture patterns in an aggregated table (aggregated)",
    "W4": "covariate conflicts across a person's records; high share of _U in a covariate",
    "W5": "records with identification status outside the inclusion set or NOT_VICTIM (dropped)",
    "W6": "records outside the analysis period or country (dropped); list periods differ",
    "W7": "small cells (<5) in published outputs (suppressed)",
    "W8": "CTDC input: no person key, MSE disabled (descriptive use only)",
}

#: Coded columns of the victim-record table and their code lists.
CODED = {"sex": "sex", "identification_status": "id_status", "age_group": "age_group",
         "person_key_scheme": "person_key_scheme"}
COUNTRY_COLUMNS = ("country_of_identification",)
MAX_AGE = 110
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_SLK581 = re.compile(r"^[A-Z2]{5}\d{8}[129]$")
_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")
_NAME_LIKE = re.compile(r"^[^\W\d_]{2,}(?:[\s'-][^\W\d_]{2,})+$")


@dataclass(frozen=True)
class Issue:
    """One warning: its rule (``W1`` ... ``W8``), a message, and how many records/persons."""

    rule: str
    message: str
    count: int = 0

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


@dataclass
class ValidationReport:
    """Warnings collected while reading, linking and stratifying records."""

    issues: list[Issue] = field(default_factory=list)

    def add(self, rule: str, message: str, count: int = 0, *, emit: bool = True) -> None:
        issue = Issue(rule, message, int(count))
        self.issues.append(issue)
        if emit:
            warnings.warn(str(issue), TipstatWarning, stacklevel=3)

    def rules(self) -> set[str]:
        return {i.rule for i in self.issues}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([(i.rule, i.message, i.count) for i in self.issues],
                            columns=["rule", "message", "count"])

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues) or "no warnings"


class _Errors:
    """Collects problems of all rules, raised together at the end."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.rules: set[int] = set()

    def add(self, rule: int, column: str | None, rows: Sequence, values: Sequence | None,
            expected: str) -> None:
        if len(rows) == 0:
            return
        self.rules.add(rule)
        vals = [None] * len(rows) if values is None else list(values)
        self.problems += [Problem(column, r, v, f"rule {rule}: {expected}")
                          for r, v in zip(rows, vals, strict=True)]

    def raise_if_any(self, what: str) -> None:
        if self.problems:
            rules = ", ".join(str(r) for r in sorted(self.rules))
            raise InputError(
                f"{what}: {len(self.problems)} problem(s), ICTIP.md 6.3 error rule(s) {rules}",
                self.problems)


def _blank(s: pd.Series) -> np.ndarray:
    return (s.isna() | s.astype(str).str.strip().isin(["", "nan", "NaN", "None", "<NA>"])).to_numpy()


def map_codes(values: pd.Series, codelist: str, version: str, sources: Sequence[str],
              *, blank: str | None = "_U") -> tuple[pd.Series, np.ndarray]:
    """Map raw values to codes of ``codelist``: exact code, then each crosswalk in ``sources``
    (exact, then case-insensitive). Returns the mapped series and a mask of unknown values."""
    cl = codelists.load(codelist, version)
    table: dict[str, str] = {c: c for c in cl.codes}
    lower: dict[str, str] = {c.lower(): c for c in cl.codes}
    for src in sources:
        xw = codelists.crosswalk(src, version).get(codelist, {})
        for k, v in xw.items():
            table.setdefault(k, v)
            lower.setdefault(k.lower(), v)
    raw = values.astype(object)
    isblank = _blank(raw)
    text = raw.where(~isblank, "").astype(str).str.strip()
    uniq = pd.unique(text[~isblank])
    lookup = {u: table.get(u, lower.get(u.lower())) for u in uniq}
    mapped = text.map(lookup)
    if blank is not None:
        mapped[isblank] = blank
    bad = mapped.isna().to_numpy() & ~isblank
    return mapped, bad


def derive_age_group(age: pd.Series, level: int = 2) -> pd.Series:
    """Age group code of an age in completed years (``_U`` where missing).

    Level 1: ``Y0T17`` / ``Y_GE18``; level 2: ``Y0T11``, ``Y12T17``, ``Y18T24``, ``Y25T34``,
    ``Y35T44``, ``Y45T54``, ``Y_GE55``.

    Examples
    --------
    >>> import pandas as pd
    >>> derive_age_group(pd.Series([5, 17, 18, 60, None]), level=2).tolist()
    ['Y0T11', 'Y12T17', 'Y18T24', 'Y_GE55', '_U']
    """
    # na_value: a nullable Int64 age column with blanks (pandas < 3 reads it so) cannot become
    # float without it
    a = pd.to_numeric(age, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if level == 1:
        edges, labels = [18], ["Y0T17", "Y_GE18"]
    else:
        edges = [12, 18, 25, 35, 45, 55]
        labels = ["Y0T11", "Y12T17", "Y18T24", "Y25T34", "Y35T44", "Y45T54", "Y_GE55"]
    idx = np.searchsorted(np.asarray(edges, dtype=float), np.nan_to_num(a, nan=-1), side="right")
    out = np.asarray(labels, dtype=object)[idx]
    out[np.isnan(a)] = "_U"
    return pd.Series(out, index=age.index, dtype=object)


def exploitation_stratum(tops: set[str]) -> str:
    """Single-valued exploitation stratum of a set of level-1 form codes.

    ``SEX`` and ``LAB`` -> ``MIX``; else ``SEX`` -> ``SEX``; ``LAB`` -> ``LAB``; ``ORG`` ->
    ``ORG``; ``OTH`` -> ``OTH``; nothing known -> ``_U``. (ICTIP.md leaves SEX+OTH and ORG+OTH
    undefined; tipstat lets the SEX/LAB family, then ORG, take precedence.)

    Examples
    --------
    >>> exploitation_stratum({"SEX", "LAB"}), exploitation_stratum({"OTH"}), exploitation_stratum(set())
    ('MIX', 'OTH', '_U')
    """
    if "SEX" in tops and "LAB" in tops:
        return "MIX"
    for code in ("SEX", "LAB", "ORG", "OTH"):
        if code in tops:
            return code
    return "_U"


def map_exploitation(values: pd.Series, version: str, sources: Sequence[str],
                     errors: _Errors) -> tuple[pd.Series, pd.Series]:
    """Map a multi-valued (``;``-separated) form column; returns (codes joined by ``;``, stratum)."""
    cl = codelists.load("exploitation_form", version)
    table: dict[str, str] = {c: c for c in cl.codes}
    lower: dict[str, str] = {c.lower(): c for c in cl.codes}
    for src in sources:
        for k, v in codelists.crosswalk(src, version).get("exploitation_form", {}).items():
            table.setdefault(k, v)
            lower.setdefault(k.lower(), v)
    isblank = _blank(values)
    text = values.astype(object).where(~isblank, "").astype(str)
    cache: dict[str, tuple[str, str, str | None, str | None]] = {}
    codes_out = np.empty(len(values), dtype=object)
    strata = np.empty(len(values), dtype=object)
    bad_rows, bad_vals, mix_rows = [], [], []
    for i, (idx, raw) in enumerate(zip(values.index, text, strict=True)):
        if isblank[i]:
            codes_out[i], strata[i] = "_U", "_U"
            continue
        hit = cache.get(raw)
        if hit is None:
            parts = [p.strip() for p in re.split(r"[;|]", raw) if p.strip()]
            codes: list[str] = []
            unknown = None
            for p in parts:
                m = table.get(p, lower.get(p.lower()))
                if m is None:
                    unknown = p
                    break
                codes += m.split(";")
            codes = sorted(set(codes))
            mixed = "_U" in codes and len(codes) > 1
            tops = {cl.top(c) for c in codes} - {"_U"}
            hit = (";".join(codes), exploitation_stratum(tops), unknown, "mix" if mixed else None)
            cache[raw] = hit
        codes_out[i], strata[i] = hit[0], hit[1]
        if hit[2] is not None:
            bad_rows.append(idx)
            bad_vals.append(hit[2])
        if hit[3]:
            mix_rows.append(idx)
    errors.add(1, "exploitation", bad_rows, bad_vals,
               f"codes of exploitation_form@{version} separated by ';'")
    errors.add(5, "exploitation", mix_rows, None, "'_U' alone, not with substantive codes")
    return (pd.Series(codes_out, index=values.index), pd.Series(strata, index=values.index))


def check_person_keys(df: pd.DataFrame, errors: _Errors) -> None:
    """Rule 6: a key for every record, a known scheme, and a key of the scheme's form."""
    key = df["person_key"]
    missing = _blank(key)
    errors.add(6, "person_key", list(df.index[missing]), None, "a pseudonymous person key")
    scheme = df["person_key_scheme"].astype(str)
    text = key.astype(str)
    ok = np.ones(len(df), dtype=bool)
    hmac_ = (scheme == "HMAC_SHA256").to_numpy()
    ok[hmac_] = text[hmac_].str.match(_HEX64).to_numpy()
    slk = (scheme == "SLK581").to_numpy()
    ok[slk] = text[slk].str.match(_SLK581).to_numpy()
    other = ~(hmac_ | slk)
    if other.any():
        t = text[other]
        ok[other] = ~(t.str.contains(_DATE_LIKE) | t.str.match(_NAME_LIKE)).to_numpy()
    bad = ~ok & ~missing
    errors.add(6, "person_key", list(df.index[bad]), None,
               "a key of the declared person_key_scheme (HMAC_SHA256: 64 hex characters; "
               "SLK581: 14 characters), not a name or a date")


def validate_capture_table(df: pd.DataFrame, lists: Sequence[str] | None = None, *,
                           count: str = "count", strata: Sequence[str] = (),
                           version: str = codelists.DEFAULT_VERSION,
                           report: ValidationReport | None = None):
    """Rule 8 and W3: check an aggregated capture-history table and build CaptureHistories.

    List columns must be 0/1, counts whole and non-negative, no all-zero pattern with a positive
    count, at least 2 lists (these checks are the engine's, :meth:`CaptureHistories.from_frame`),
    and stratum columns named like a code list (``sex``, ``age_group``,
    ``exploitation_stratum``/``exploitation``, ``citizenship_group``) must hold codes of it.
    Duplicate patterns are aggregated with a W3 warning.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"sex": ["F", "M", "F"], "A": [1, 0, 1], "B": [0, 1, 1],
    ...                    "count": [3, 4, 2]})
    >>> validate_capture_table(df, ["A", "B"], strata=["sex"]).n_observed
    9
    """
    from ..histories import CaptureHistories

    report = report if report is not None else ValidationReport()
    errors = _Errors()
    names = {"sex": "sex", "age_group": "age_group", "exploitation_stratum": "exploitation_stratum",
             "exploitation": "exploitation_stratum", "citizenship_group": "citizenship_group"}
    for col in strata:
        if col in names and col in df.columns:
            cl = codelists.load(names[col], version)
            bad = ~df[col].isin(cl.codes).to_numpy()
            errors.add(8, col, list(df.index[bad]), list(df.loc[bad, col]),
                       f"a code of {cl.name}@{version}")
    errors.raise_if_any("capture-history table")
    if lists is None:
        lists = [c for c in df.columns if c != count and c not in strata]
    key = [*strata, *lists]
    dup = df.duplicated(subset=key, keep=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        h = CaptureHistories.from_frame(df, count=count, strata=list(strata) or None, lists=lists)
    if dup.any():
        report.add("W3", f"{int(dup.sum())} rows repeat a capture pattern; their counts were summed",
                   int(dup.sum()))
    return h


def check_dates(df: pd.DataFrame, errors: _Errors, today: date,
                birth: pd.Series | None = None) -> None:
    """Rule 4 on the parsed columns of ``df`` (``identification_date`` as datetime; ages as
    numbers; ``age_group`` as codes); ``birth`` the birth dates (values never shown)."""
    idd = df["identification_date"]
    future = (idd > pd.Timestamp(today)).to_numpy()
    errors.add(4, "identification_date", list(df.index[future]),
               [str(v.date()) for v in idd[future]], f"a date not after today ({today})")
    if "age_at_identification" in df.columns:
        age = df["age_at_identification"]
        out = (age.notna() & ((age < 0) | (age > MAX_AGE) | (age % 1 != 0))).to_numpy()
        errors.add(4, "age_at_identification", list(df.index[out]), list(age[out]),
                   f"a whole number of years in 0-{MAX_AGE}")
        if "age_group_given" in df.columns:
            given = df["age_group_given"]
            has = (given != "_U").to_numpy() & age.notna().to_numpy() & ~out
            lvl2 = derive_age_group(age, 2)
            lvl1 = derive_age_group(age, 1)
            cl = codelists.load("age_group")
            top = given.map(cl.tops).fillna(given)
            level = given.map(cl.levels).fillna(1)
            agree = np.where(level == 2, given == lvl2, top == lvl1)
            bad = has & ~agree
            errors.add(4, "age_group", list(df.index[bad]), list(given[bad]),
                       "the age group of age_at_identification")
        if "age_at_exploitation_start" in df.columns:
            start = df["age_at_exploitation_start"]
            bad = (start.notna() & age.notna() & (start > age)).to_numpy()
            errors.add(4, "age_at_exploitation_start", list(df.index[bad]), list(start[bad]),
                       "an age not above age_at_identification")
            neg = (start.notna() & ((start < 0) | (start > MAX_AGE))).to_numpy()
            errors.add(4, "age_at_exploitation_start", list(df.index[neg]), list(start[neg]),
                       f"a whole number of years in 0-{MAX_AGE}")
    if birth is not None:
        b = pd.to_datetime(birth, errors="coerce", format="ISO8601")
        unreadable = (b.isna() & ~pd.Series(_blank(birth), index=birth.index)).to_numpy()
        errors.add(4, "birth_date", list(df.index[unreadable]), None, "a date (YYYY-MM-DD)")
        after = (b > idd).to_numpy()
        errors.add(4, "birth_date", list(df.index[after]), None,
                   "a birth date not after identification_date")
        if "age_at_identification" in df.columns:
            from ..linkage.keys import age_in_years

            derived = age_in_years(birth, idd).astype(float)
            age = df["age_at_identification"].astype(float)
            off = (np.abs(derived - age) > 1).fillna(False).to_numpy()
            errors.add(4, "age_at_identification", list(df.index[off]), None,
                       "an age within 1 year of the age from birth_date")


def check_codes(df: pd.DataFrame, mapping: Mapping[str, str], version: str,
                sources: Sequence[str], errors: _Errors) -> pd.DataFrame:
    """Rule 1 on the coded columns present in ``df``; returns the mapped columns."""
    out = {}
    for col, clname in mapping.items():
        if col not in df.columns:
            continue
        blank = None if col == "person_key_scheme" else "_U"
        mapped, bad = map_codes(df[col], clname, version, sources, blank=blank)
        errors.add(1, col, list(df.index[bad]), list(df.loc[bad, col]),
                   f"a code of {clname}@{version} (or a known alias)")
        out[col] = mapped
    return pd.DataFrame(out, index=df.index)


def check_countries(values: pd.Series, column: str, version: str, sources: Sequence[str],
                    errors: _Errors, *, multi: bool = False) -> pd.Series:
    """ISO-3 codes (``XXA`` stateless, ``_U`` unknown); alpha-2 through the crosswalk."""
    if not multi:
        mapped, bad = map_codes(values, "country", version, [*sources, "iso3166-alpha2"])
        errors.add(1, column, list(values.index[bad]), list(values[bad]), "an ISO 3166-1 alpha-3 code")
        return mapped
    if not values.astype(str).str.contains(r"[;|,]").any():
        return check_countries(values, column, version, sources, errors, multi=False)
    isblank = _blank(values)
    parts = values.astype(object).where(~isblank, "_U").astype(str).str.split(r"[;|,]")
    flat = parts.explode().str.strip()
    mapped, bad = map_codes(flat, "country", version, [*sources, "iso3166-alpha2"])
    rows = flat.index[bad]
    errors.add(1, column, list(dict.fromkeys(rows)), [values[r] for r in dict.fromkeys(rows)],
               "ISO 3166-1 alpha-3 codes separated by ';'")
    return mapped.fillna("_U").groupby(level=0).agg(lambda s: ";".join(sorted(set(s))))


def citizenship_group(citizenship: pd.Series, country: pd.Series) -> pd.Series:
    """``NAT`` / ``FOR`` / ``STL`` / ``_U`` of ``;``-joined ISO-3 citizenships.

    Examples
    --------
    >>> import pandas as pd
    >>> citizenship_group(pd.Series(["NLD", "ROU;NLD", "XXA", "_U", "NGA"]),
    ...                   pd.Series(["NLD"] * 5)).tolist()
    ['NAT', 'NAT', 'STL', '_U', 'FOR']
    """
    out = []
    for cit, ctry in zip(citizenship, country, strict=True):
        codes = set(str(cit).split(";")) - {"_U", ""}
        if not codes:
            out.append("_U")
        elif ctry in codes:
            out.append("NAT")
        elif codes == {"XXA"}:
            out.append("STL")
        elif str(ctry) in ("_U", "", "nan", "None"):
            out.append("_U")
        else:
            out.append("FOR")
    return pd.Series(out, index=citizenship.index, dtype=object)
