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
from . import codelists, redact
from .keys import IDENTIFIER_COLUMNS

__all__ = ["WARNING_RULES", "Issue", "ValidationReport", "derive_age_group", "exploitation_stratum",
           "record_like_columns", "validate_capture_table"]

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
    """Collects problems of all rules, raised together at the end.

    Every value goes through :func:`tipstat.ictip.redact.shown`: it is kept in the
    :class:`Problem` only where it cannot identify a person, otherwise the problem describes it
    (``found text of 7 characters, not shown``). ``known`` holds, per column, values the caller
    supplied itself (its entity ids), which may be echoed.
    """

    def __init__(self, version: str = codelists.DEFAULT_VERSION) -> None:
        self.problems: list[Problem] = []
        self.rules: set[int] = set()
        self.version = version
        self.known: dict[str, set[str]] = {}

    def add(self, rule: int, column: str | None, rows: Sequence, values: Sequence | None,
            expected: str, *, kind: str | None = None) -> None:
        if len(rows) == 0:
            return
        self.rules.add(rule)
        if values is None:
            self.problems += [Problem(column, r, None, f"rule {rule}: {expected}") for r in rows]
            return
        known = self.known.get(str(column), ())
        for r, v in zip(rows, list(values), strict=True):
            value, desc = redact.shown(v, column, version=self.version, known=known, kind=kind)
            text = f"rule {rule}: {expected}" + (f"; found {desc}, not shown" if desc else "")
            self.problems.append(Problem(column, r, value, text))

    def raise_if_any(self, what: str) -> None:
        if self.problems:
            rules = ", ".join(str(r) for r in sorted(self.rules))
            raise InputError(
                f"{what}: {len(self.problems)} problem(s), ICTIP.md 6.3 error rule(s) {rules}",
                self.problems)


def _blank(s: pd.Series) -> np.ndarray:
    """Missing or empty cells (``None``, NaN, NaT, ``""``, ``"nan"`` ...), for any dtype."""
    obj = s.astype(object)
    text = obj.map(lambda v: v.strip() if isinstance(v, str) else v)
    return (obj.isna() | text.isin(["", "nan", "NaN", "NaT", "None", "<NA>"])).to_numpy(dtype=bool)


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
    text = [("" if b else str(v).strip()) for v, b in zip(raw, isblank, strict=True)]
    lookup: dict[str, str | None] = {}
    for u in dict.fromkeys(text):
        lookup[u] = table.get(u, lower.get(u.lower()))
    mapped = pd.Series([lookup[t] for t in text], index=values.index, dtype=object)
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
    text = [("" if b else str(v)) for v, b in zip(values.astype(object), isblank, strict=True)]
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


def check_person_keys(df: pd.DataFrame, errors: _Errors, skip: np.ndarray | None = None) -> None:
    """Rule 6: a key for every record, a known scheme, and a key of the scheme's form.

    Rows under ``skip`` have no key because of a problem already reported (an unreadable birth
    date): they are not reported again."""
    key = df["person_key"]
    missing = _blank(key) & (True if skip is None else ~np.asarray(skip, dtype=bool))
    errors.add(6, "person_key", list(df.index[missing]), None, "a pseudonymous person key")
    scheme = df["person_key_scheme"].astype(object).map(str)
    text = key.astype(object).map(lambda v: "" if v is None else str(v))
    ok = np.ones(len(df), dtype=bool)
    hmac_ = (scheme == "HMAC_SHA256").to_numpy()
    ok[hmac_] = text[hmac_].str.match(_HEX64).to_numpy()
    slk = (scheme == "SLK581").to_numpy()
    ok[slk] = text[slk].str.match(_SLK581).to_numpy()
    other = ~(hmac_ | slk)
    if other.any():
        t = text[other]
        ok[other] = ~(t.str.contains(_DATE_LIKE) | t.str.match(_NAME_LIKE)).to_numpy()
    bad = ~ok & ~_blank(key)
    errors.add(6, "person_key", list(df.index[bad]), None,
               "a key of the declared person_key_scheme (HMAC_SHA256: 64 hex characters; "
               "SLK581: 14 characters), not a name or a date")


#: Column names (after :func:`_record_key`) that mark a file of victim records, not a count table.
RECORD_MARKERS = frozenset({"personkey", "personkeyscheme", "sourcerecordid", "recordid",
                            "entityid", "identificationdate", "birthdate", "familyname",
                            "givenname"})
_HTCDS_FIELD = re.compile(r"^(?:prs|vic|cas|con)_", re.IGNORECASE)
#: Most lists a capture table may have (2^K - 1 cells per stratum).
MAX_LISTS = 20
#: Counts must be exactly representable (float64 integers), far above any real count.
MAX_COUNT = 2 ** 53


def _record_key(col: object) -> str:
    return re.sub(r"[\s_\-]", "", str(col)).lower()


def record_like_columns(columns: Sequence[object]) -> list[str]:
    """Columns whose names say the table holds victim records or identifiers, not counts.

    Examples
    --------
    >>> record_like_columns(["A", "B", "count", "prs_FirstName", "DOB"])
    ['prs_FirstName', 'DOB']
    """
    return [str(c) for c in columns
            if _record_key(c) in IDENTIFIER_COLUMNS or _record_key(c) in RECORD_MARKERS
            or _HTCDS_FIELD.match(str(c))]


def _numbers(values: pd.Series) -> pd.Series:
    """Each cell as a float (NaN where it is not a number; booleans are not numbers)."""
    def one(x: object) -> float:
        if isinstance(x, bool | np.bool_) or x is None:
            return np.nan
        try:
            return float(x.strip()) if isinstance(x, str) else float(x)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return np.nan
    return pd.Series([one(x) for x in values.astype(object)], index=values.index, dtype=float)


def validate_capture_table(df: pd.DataFrame, lists: Sequence[str] | None = None, *,
                           count: str = "count", strata: Sequence[str] = (),
                           version: str = codelists.DEFAULT_VERSION,
                           report: ValidationReport | None = None):
    """Rule 8 and W3: check an aggregated capture-history table and build CaptureHistories.

    A table whose column names say it holds victim records or identifiers (``prs_FirstName``,
    ``family_name``, ``birth_date``, ``name``, ``dob``, ``person_key``, ``entity_id`` ...) is
    refused by those names alone: its cells are never read into a message. List columns must be
    0/1, counts whole, non-negative and below 2^53, no all-zero pattern with a positive count,
    2 to 20 lists (the engine's checks, :meth:`CaptureHistories.from_frame`), and stratum
    columns named like a code list (``sex``, ``age_group``, ``exploitation_stratum`` /
    ``exploitation``, ``citizenship_group``) must hold codes of it. Messages show a bad cell
    only when it is a number in a count or list column, or has the shape of a code in a coded
    stratum (:mod:`tipstat.ictip.redact`); otherwise they describe it. Duplicate patterns are
    aggregated with a W3 warning.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"sex": ["F", "M", "F"], "A": [1, 0, 1], "B": [0, 1, 1],
    ...                    "count": [3, 4, 2]})
    >>> validate_capture_table(df, ["A", "B"], strata=["sex"]).n_observed
    9
    """
    from ..histories import CaptureHistories

    if not isinstance(df, pd.DataFrame):
        raise InputError(f"expected a pandas DataFrame, got {type(df).__name__}")
    report = report if report is not None else ValidationReport()
    strata = [strata] if isinstance(strata, str) else list(strata or ())
    names = [str(c) for c in df.columns]
    dups = sorted({c for c in names if names.count(c) > 1})
    if dups:
        raise InputError(f"capture-history table: column name(s) {dups} appear more than once")
    record_cols = record_like_columns(df.columns)
    if record_cols:
        raise InputError(
            "this looks like a file of victim records, not a capture-history (count) table: "
            "its columns name identifiers or record fields, so none of its cells is shown. Read "
            "records with tipstat.ictip.read_records (command line: tipstat histories / "
            "indicator), which pseudonymises and links them",
            [Problem(c, None, None, "no identifier or record column in a count table")
             for c in record_cols])
    valued = [i + 1 for i, c in enumerate(names)
              if redact.describe(c).startswith(("a date", "a number of")) and len(c) >= 6]
    if valued:
        raise InputError(
            f"capture-history table: column(s) {valued} (by position) are named by a date or a "
            "long number: the first line looks like a record, not a header (names not shown)")
    absent = [c for c in [count, *strata] if c not in df.columns]
    if absent:
        raise InputError(f"capture-history table: column(s) {absent} not found among its "
                         f"{len(names)} columns")
    if lists is None:
        lists = [c for c in df.columns if c != count and c not in strata]
    lists = list(lists)
    absent = [c for c in lists if c not in df.columns]
    if absent:
        raise InputError(f"capture-history table: list column(s) {absent} not found among its "
                         f"{len(names)} columns")
    if len(lists) < 2:
        raise InputError(f"capture-history table: {len(lists)} list column(s); MSE needs at "
                         f"least 2 (every column other than {count!r} and the strata is a list)")
    if len(lists) > MAX_LISTS:
        raise InputError(f"capture-history table: {len(lists)} list columns; at most {MAX_LISTS} "
                         "(every column other than the count and the strata is a list; merge "
                         "lists or name the strata)")
    errors = _Errors(version)
    for col in lists:
        v = df[col].astype(object)
        num = _numbers(v)
        bad = ~(num.isin([0, 1]).to_numpy() | v.map(lambda x: isinstance(x, bool | np.bool_))
                .to_numpy(dtype=bool))
        errors.add(8, str(col), list(df.index[bad]), list(v[bad]), "0 or 1 in a list column",
                   kind="flag")
    c = df[count].astype(object)
    cnum = _numbers(c)
    with np.errstate(invalid="ignore"):
        okc = (cnum.notna() & np.isfinite(cnum) & (cnum >= 0) & (cnum % 1 == 0)
               & (cnum < MAX_COUNT)).to_numpy(dtype=bool)
    errors.add(8, str(count), list(df.index[~okc]), list(c[~okc]),
               "a whole number of persons, >= 0 and below 2^53", kind="count")
    codes = {"sex": "sex", "age_group": "age_group", "exploitation_stratum": "exploitation_stratum",
             "exploitation": "exploitation_stratum", "citizenship_group": "citizenship_group"}
    for col in strata:
        if col in codes:
            cl = codelists.load(codes[col], version)
            bad = ~df[col].isin(cl.codes).to_numpy()
            errors.add(8, col, list(df.index[bad]), list(df.loc[bad, col]),
                       f"a code of {cl.name}@{version}")
    errors.raise_if_any("capture-history table")
    key = [*strata, *lists]
    dup = df.duplicated(subset=key, keep=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TipstatWarning)
            h = CaptureHistories.from_frame(df, count=count, strata=strata or None, lists=lists)
    except InputError as exc:  # keep its message, show only numbers of count/list columns
        first = str(exc).split("\n", 1)[0]
        safe = []
        for p in exc.problems:
            kind = "count" if p.column == count else ("flag" if p.column in lists else None)
            value, _ = redact.shown(p.value, p.column, version=version, kind=kind) \
                if kind else (None, None)
            safe.append(Problem(p.column, p.row, value, p.expected))
        raise InputError(first, safe) from None
    if dup.any():
        report.add("W3", f"{int(dup.sum())} rows repeat a capture pattern; their counts were summed",
                   int(dup.sum()))
    return h


def check_dates(df: pd.DataFrame, errors: _Errors, today: date,
                birth: pd.Series | None = None, birth_problem: pd.Series | None = None) -> None:
    """Rule 4 on the parsed columns of ``df`` (``identification_date`` as datetime; ages as
    numbers; ``age_group_given`` as codes). ``birth`` holds the birth dates parsed by
    :func:`tipstat.ictip.keys.parse_dates` and ``birth_problem`` why a value could not be
    read; birth dates are never shown. Ages derived from a birth date must lie in 0-110 like
    given ones (a birth date of 1890 or 0001-01-01 is an error, not an age of 134)."""
    idd = df["identification_date"]
    future = (idd > pd.Timestamp(today)).to_numpy()
    errors.add(4, "identification_date", list(df.index[future]), None,
               f"a date not after today ({today})")
    age = df["age_at_identification"] if "age_at_identification" in df.columns else None
    if age is not None:
        out = (age.notna() & ((age < 0) | (age > MAX_AGE) | (age % 1 != 0))).to_numpy()
        errors.add(4, "age_at_identification", list(df.index[out]), list(age[out]),
                   f"a whole number of years in 0-{MAX_AGE}")
        if "age_group_given" in df.columns:
            given = df["age_group_given"].astype(object)
            has = (given != "_U").to_numpy() & age.notna().to_numpy() & ~out
            lvl2 = derive_age_group(age, 2)
            lvl1 = derive_age_group(age, 1)
            cl = codelists.load("age_group", errors.version)
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
            neg = (start.notna() & ((start < 0) | (start > MAX_AGE) | (start % 1 != 0))).to_numpy()
            errors.add(4, "age_at_exploitation_start", list(df.index[neg]), list(start[neg]),
                       f"a whole number of years in 0-{MAX_AGE}")
    if birth is not None:
        why = birth_problem if birth_problem is not None else \
            pd.Series(None, index=birth.index, dtype=object)
        unreadable = why.notna().to_numpy()
        for reason in dict.fromkeys(why[unreadable]):
            rows = df.index[(why == reason).to_numpy()]
            errors.add(4, "birth_date", list(rows), None,
                       f"a full date YYYY-MM-DD; found {reason} (value not shown)")
        b = pd.Series(birth.to_numpy(), index=df.index)
        after = (b > idd).to_numpy()
        errors.add(4, "birth_date", list(df.index[after]), None,
                   "a birth date not after identification_date")
        years = (idd.dt.year - b.dt.year
                 - ((idd.dt.month * 100 + idd.dt.day) < (b.dt.month * 100 + b.dt.day)))
        years = years.astype(float)
        old = (years > MAX_AGE).to_numpy()
        errors.add(4, "birth_date", list(df.index[old]), None,
                   f"a birth date giving an age of 0-{MAX_AGE} at identification")
        if age is not None:
            off = (np.abs(years - age.astype(float)) > 1).fillna(False).to_numpy() & ~old & ~after
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
    isblank = _blank(values)
    text = pd.Series([("_U" if b else str(v)) for v, b in zip(values.astype(object), isblank,
                                                              strict=True)],
                     index=values.index, dtype=object)
    if not text.str.contains(r"[;|,]").any():
        return check_countries(values, column, version, sources, errors, multi=False)
    parts = text.str.split(r"[;|,]")
    flat = parts.explode().astype(object).map(lambda v: str(v).strip())
    mapped, bad = map_codes(flat, "country", version, [*sources, "iso3166-alpha2"])
    first_bad = flat[bad].groupby(level=0, sort=False).first()
    errors.add(1, column, list(first_bad.index), list(first_bad),
               "ISO 3166-1 alpha-3 codes separated by ';'")
    joined = mapped.fillna("_U").groupby(level=0, sort=False).agg(lambda s: ";".join(sorted(set(s))))
    return joined.reindex(values.index).astype(object)


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
