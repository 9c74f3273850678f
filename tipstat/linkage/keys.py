"""Pseudonymous person keys: HMAC-SHA-256 of normalised identifiers with a user-held secret.

The key of a person is

.. math::

    \\mathrm{key} = \\mathrm{HMAC\\text{-}SHA256}\\big(s,\\; n(\\text{family}) \\,|\\, n(\\text{given})
                    \\,|\\, d(\\text{birth date}) \\,|\\, \\text{sex}\\big)

in hexadecimal (64 characters), where ``s`` is the secret held by the linkage unit and shared
with the data holders, ``n`` normalises a name (Unicode NFKD, diacritics removed, a few
transliterations, upper case, everything but A-Z and 0-9 removed) and ``d`` writes a date as
``YYYYMMDD``. Without the secret the key cannot be recomputed, so a dictionary attack on names and
birth dates (which breaks a plain, unkeyed hash) does not work.

Clear identifiers are used only inside :func:`pseudonymise`, which returns the table without
them; they are never logged or put in error messages (rows are cited by index).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError, Problem

__all__ = ["IDENTIFIER_COLUMNS", "Secret", "check_no_identifiers", "identifier_columns",
           "normalise_date", "normalise_name", "parse_date", "parse_dates", "person_keys",
           "pseudonymise"]

#: Column names (lower case, after removing ``_``/``-``/spaces) that hold clear identifiers.
IDENTIFIER_COLUMNS = frozenset({
    "name", "fullname", "firstname", "givenname", "forename", "secondname", "familyname",
    "surname", "lastname", "middlename", "alias", "aliases", "birthdate", "dateofbirth", "dob",
    "prsfirstname", "prssecondname", "prsbirthdate", "prssalutation", "prsemail", "prshomephone",
    "prsmobilephone", "prsmailingstreet", "prsmailingcity", "prsmailingpostalcode",
    "passport", "passportnumber", "idnumber", "nationalid", "phone", "email", "address",
    "street", "casenotes", "notes", "freetext", "comments",
})

_TRANSLIT = str.maketrans({"ß": "SS", "Æ": "AE", "æ": "AE", "Ø": "O", "ø": "O", "Ł": "L",
                           "ł": "L", "Đ": "D", "đ": "D", "Þ": "TH", "þ": "TH", "Œ": "OE",
                           "œ": "OE", "ı": "I"})
_NON_ALNUM = re.compile(r"[^A-Z0-9]")


class Secret:
    """A secret key whose value is never shown (``repr``/``str`` print ``Secret(***)``).

    Parameters
    ----------
    value : str or bytes
        At least 16 bytes. Keep it outside the analysis data (e.g. an environment variable).

    Examples
    --------
    >>> s = Secret("a-long-secret-held-by-the-linkage-unit")
    >>> s
    Secret(***)
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes | Secret) -> None:
        if isinstance(value, Secret):
            value = value._value
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if len(raw) < 16:
            raise InputError("the linkage secret must be at least 16 bytes long "
                             "(a short secret can be guessed)")
        self._value = raw

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __reduce__(self):  # never pickle the value by accident
        raise TypeError("a Secret cannot be pickled")


def normalise_name(value: object) -> str:
    """Upper-case ASCII letters and digits of a name; ``""`` for missing.

    Examples
    --------
    >>> normalise_name("  Zoë-Anne  O'Brien ")
    'ZOEANNEOBRIEN'
    >>> normalise_name("Łukasz Müßig")
    'LUKASZMUSSIG'
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    text = str(value).translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    return _NON_ALNUM.sub("", text)


_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})"
                       r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?$")
_BASIC_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_PARTIAL_DATE = re.compile(r"^\d{4}(?:-\d{1,2})?$")
#: Years a date of birth or of identification can have.
DATE_YEARS = (1800, 2200)


def parse_date(value: object) -> pd.Timestamp | None:
    """The calendar day of a full date; ``None`` for a missing value.

    Accepted: ``YYYY-MM-DD`` (optionally with a time and a UTC offset, which are ignored: the
    day is the one written), ``YYYYMMDD`` as text or as an 8-digit integer, and date / datetime
    / Timestamp objects (a timezone-aware one gives its own local day). One rule for the key and
    for the age, so that ``19900101`` is 1 January 1990 in both.

    Raises
    ------
    ValueError
        For anything else, with a message that describes the value without showing it: a
        partial date (``"2024"``, ``"2024-05"``), a day-first or other text, a number that is
        not ``YYYYMMDD``, a year outside :data:`DATE_YEARS`, an impossible day.

    Examples
    --------
    >>> str(parse_date("1990-03-07").date()), str(parse_date(19900307).date())
    ('1990-03-07', '1990-03-07')
    >>> parse_date("2024")
    Traceback (most recent call last):
    ...
    ValueError: a partial date (year or year-month only), not a full date
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating) and np.isnan(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise ValueError("a true/false value, not a date")
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, datetime.datetime):  # pd.Timestamp too
        return pd.Timestamp(value.year, value.month, value.day)
    if isinstance(value, datetime.date):
        return pd.Timestamp(value.year, value.month, value.day)
    if isinstance(value, int | np.integer) or (isinstance(value, float | np.floating)
                                                and float(value).is_integer()):
        text = str(int(value))
        if not _BASIC_DATE.match(text):
            raise ValueError("a number that is not a date written YYYYMMDD")
    elif isinstance(value, str):
        text = value.strip()
        if text in ("", "nan", "NaN", "NaT", "None", "<NA>"):
            return None
    else:
        raise ValueError(f"a value of type {type(value).__name__}, not a date")
    m = _ISO_DATE.match(text) or _BASIC_DATE.match(text)
    if m is None:
        if _PARTIAL_DATE.match(text):
            raise ValueError("a partial date (year or year-month only), not a full date")
        raise ValueError("not a date written YYYY-MM-DD")
    y, mo, d = (int(g) for g in m.groups()[:3])
    if not DATE_YEARS[0] <= y <= DATE_YEARS[1]:
        raise ValueError(f"a date outside the years {DATE_YEARS[0]}-{DATE_YEARS[1]}")
    try:
        return pd.Timestamp(datetime.date(y, mo, d))
    except ValueError:
        raise ValueError("not a calendar date (month or day out of range)") from None


def parse_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """:func:`parse_date` over a column: ``(days as datetime64, problem)`` where ``problem`` is
    ``None`` or the description of why a non-missing value is not a date (never the value)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        days = values.dt.normalize()
        bad = days.notna() & ((days.dt.year < DATE_YEARS[0]) | (days.dt.year > DATE_YEARS[1]))
        why = pd.Series(np.where(bad, f"a date outside the years {DATE_YEARS[0]}-{DATE_YEARS[1]}",
                                 None), index=values.index, dtype=object)
        return days.where(~bad).astype("datetime64[us]"), why
    obj = values.astype(object)
    parsed: dict[object, tuple[object, str | None]] = {}
    days, why = [], []
    for v in obj:
        try:
            hit = parsed.get(v)
        except TypeError:  # unhashable cell
            hit = None
        if hit is None:
            try:
                hit = (parse_date(v), None)
            except ValueError as exc:
                hit = (None, str(exc))
            try:
                parsed[v] = hit
            except TypeError:
                pass
        days.append(hit[0])
        why.append(hit[1])
    out = pd.Series(pd.to_datetime(pd.Series(days, dtype=object), errors="coerce").to_numpy(),
                    index=values.index).astype("datetime64[us]")
    return out, pd.Series(why, index=values.index, dtype=object)


def normalise_date(value: object) -> str:
    """``YYYYMMDD`` of a date (:func:`parse_date`); ``""`` for missing.

    Raises ``ValueError`` (without the value) for anything that is not a full date.

    Examples
    --------
    >>> normalise_date("1990-03-07"), normalise_date(19900307)
    ('19900307', '19900307')
    """
    ts = parse_date(value)
    return "" if ts is None else ts.strftime("%Y%m%d")


def _norm_key(col: str) -> str:
    return re.sub(r"[\s_\-]", "", str(col)).lower()


def identifier_columns(df: pd.DataFrame) -> list[str]:
    """Columns of ``df`` whose names say they hold clear personal identifiers."""
    return [c for c in df.columns if _norm_key(c) in IDENTIFIER_COLUMNS]


def check_no_identifiers(df: pd.DataFrame, *, secure: bool = False, what: str = "table") -> None:
    """Refuse a table that still holds clear identifiers (ICTIP.md 6.3 rule 7).

    Raises
    ------
    InputError
        Naming the columns (never their values), unless ``secure=True`` (explicit secure
        linkage mode inside a protected environment).
    """
    if secure:
        return
    cols = identifier_columns(df)
    if cols:
        raise InputError(
            f"the {what} holds clear personal identifiers; pseudonymise them first "
            "(tipstat.linkage.keys.pseudonymise) or pass secure=True inside a secure environment",
            [Problem(c, None, None, "no clear identifier column outside secure mode") for c in cols],
        )


def person_keys(df: pd.DataFrame, secret: str | bytes | Secret,
                fields: Sequence[str] = ("family_name", "given_name", "birth_date", "sex"),
                date_fields: Sequence[str] = ("birth_date",)) -> pd.Series:
    """HMAC-SHA-256 keys (64 hex characters) of the normalised ``fields`` of each row.

    Rows whose identifying fields are all missing get a missing key (they cannot be linked and
    are reported by validation, rule 6).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"family_name": ["Doe", "DOE "], "given_name": ["Ann", "ann"],
    ...                    "birth_date": ["1990-01-02", "1990-01-02"], "sex": ["F", "F"]})
    >>> k = person_keys(df, Secret("0123456789abcdef-demo"))
    >>> bool(k[0] == k[1]), len(k[0])
    (True, 64)
    """
    key = Secret(secret)._value
    absent = [f for f in fields if f not in df.columns]
    if absent:
        raise InputError(f"identifier column(s) {absent} not found; have {list(df.columns)}")
    parts = []
    problems = []
    for f in fields:
        col = df[f]
        if f in date_fields:
            out = []
            for idx, v in zip(df.index, col, strict=True):
                try:
                    out.append(normalise_date(v))
                except (ValueError, TypeError):
                    problems.append(Problem(f, idx, None, "a date (YYYY-MM-DD)"))
                    out.append("")
            parts.append(out)
        else:
            parts.append([normalise_name(v) for v in col])
    if problems:
        raise InputError("identifier dates that cannot be read (values not shown)", problems)
    keys = []
    for values in zip(*parts, strict=True):
        if not any(values):
            keys.append(None)
            continue
        msg = "|".join(values).encode("ascii")
        keys.append(hmac.new(key, msg, hashlib.sha256).hexdigest())
    return pd.Series(keys, index=df.index, name="person_key", dtype=object)


def pseudonymise(df: pd.DataFrame, secret: str | bytes | Secret,
                 fields: Sequence[str] = ("family_name", "given_name", "birth_date", "sex"),
                 *, keep: Sequence[str] = ("sex",), reference_date: str | None = None,
                 date_fields: Sequence[str] = ("birth_date",)) -> pd.DataFrame:
    """Replace clear identifiers by ``person_key`` (scheme ``HMAC_SHA256``).

    The identifier columns in ``fields`` and every other column that looks like a clear
    identifier (:data:`IDENTIFIER_COLUMNS`) are removed, except the non-identifying ones in
    ``keep`` (sex is a covariate). When ``birth_date`` is removed and ``reference_date`` names
    a date column (e.g. ``"identification_date"``) without an ``age_at_identification``, the
    age in completed years is derived first.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"family_name": ["Doe"], "given_name": ["Ann"],
    ...                    "birth_date": ["1990-01-02"], "sex": ["F"],
    ...                    "identification_date": ["2024-05-01"]})
    >>> out = pseudonymise(df, "0123456789abcdef-demo", reference_date="identification_date")
    >>> sorted(out.columns)
    ['age_at_identification', 'identification_date', 'person_key', 'person_key_scheme', 'sex']
    >>> int(out.age_at_identification[0])
    34
    """
    out = df.copy()
    out["person_key"] = person_keys(df, secret, fields, date_fields)
    out["person_key_scheme"] = np.where(out["person_key"].isna(), None, "HMAC_SHA256")
    if (reference_date and "birth_date" in df.columns and reference_date in df.columns
            and "age_at_identification" not in df.columns):
        out["age_at_identification"] = age_in_years(df["birth_date"], df[reference_date])
    drop = [c for c in {*fields, *identifier_columns(df)} if c in out.columns and c not in keep]
    return out.drop(columns=drop)


def age_in_years(birth: pd.Series, at: pd.Series) -> pd.Series:
    """Completed years between two date columns (``<NA>`` where either is missing).

    Examples
    --------
    >>> import pandas as pd
    >>> age_in_years(pd.Series(["2000-06-15"]), pd.Series(["2018-06-14"])).tolist()
    [17]
    """
    b, _ = parse_dates(pd.Series(birth))
    a, _ = parse_dates(pd.Series(at))
    a.index = b.index
    years = a.dt.year - b.dt.year - ((a.dt.month * 100 + a.dt.day) < (b.dt.month * 100 + b.dt.day))
    return years.astype("Int64")
