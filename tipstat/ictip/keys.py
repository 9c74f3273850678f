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
import math
import os
import re
import secrets
import unicodedata
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, TipstatWarning

__all__ = ["IDENTIFIER_COLUMNS", "MIN_SECRET_BITS", "PUBLISHED_SECRETS", "Secret",
           "check_no_identifiers", "generate_secret", "identifier_columns", "normalise_date",
           "normalise_name", "parse_date", "parse_dates", "person_keys", "pseudonymise",
           "read_secret", "secret_strength"]

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


#: Least estimated entropy of a secret, in bits (a random 128-bit key; :func:`generate_secret`
#: gives 256).
MIN_SECRET_BITS = 128

#: Secrets published in tipstat's own documentation, docstrings, examples and tests (and in
#: earlier versions of them). A published secret is known to every attacker, however random it
#: looks, so it is refused. ``docs/privacy.md`` shows the last one as an example of a refused key.
PUBLISHED_SECRETS = frozenset({
    "a-long-secret-held-by-the-linkage-unit",
    "0123456789abcdef",
    "0123456789abcdef-demo",
    "test-secret-0123456789",
    "a-secret-of-sufficient-length",
    "htcds-test-secret-123",
    "synthetic-0123456789abcdef",
    "changeme-changeme-changeme",
    "q7Vt3kR9xWz2LmP8sHc4NbJ6yFd1GaE5uTo0KiQw",
})

# Words an attacker tries first: common passwords and the vocabulary of this domain. A word from
# this list is charged as one guess among a few thousand (11 bits), not by its letters.
_COMMON_WORDS = frozenset("""
password passwort passphrase secret secrets private confidential key keys token salt pepper
admin administrator root user login letmein welcome default changeme change test testing demo
example sample dummy temp temporary qwerty qwertz azerty asdf zxcv iloveyou love dragon monkey
master shadow sunshine princess football baseball soccer hello world summer winter spring
autumn freedom trustno trust nobody abc abcd abcdef alpha beta gamma delta omega server
linkage link unit police ngo shelter agency agencies ministry interior justice labour labor
inspectorate border guard social services task force national office office referral
victim victims trafficking traffick human persons person people child children migrant
ictip htcds tipstat unodc iom sdg glotip hmac sha sha256 hash hashing pseudonym pseudonymise
pseudonymize record records data database country government official statistics statistic
office stat stats census survey year month day date birth name names family given first last
long short strong weak random secure security safe hidden super good best strong very much
sufficient length enough more than one two three four five six seven eight nine ten zero
january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday
the and for with this that from your our my you it is are was be have not all any
""".split())

_PUBLISHED = "it is published in tipstat's documentation, so everyone knows it"
_HEX = frozenset("0123456789abcdefABCDEF")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ")
_SEPARATORS = frozenset(" -_.,;:/+")
_WORD_COST = 11.0       # bits: one word among ~2,000 common ones
_LETTER_COST = 2.5      # bits per letter of a pronounceable word not in the list
_MIN_DISTINCT = 10      # fewer different characters (or bytes) is low diversity
_ANALYSED = 256         # characters looked at (a longer secret is judged on its start)


def _pool_bits(units: Sequence[int], text: bool) -> float:
    """Bits per character of a brute-force search over the character classes used."""
    if not text:
        return 8.0
    chars = [chr(u) for u in units]
    if len(chars) >= 2 and all(c in _HEX for c in chars) and (
            all(not c.isupper() for c in chars) or all(not c.islower() for c in chars)):
        return 4.0
    pool = 0
    pool += 26 if any("a" <= c <= "z" for c in chars) else 0
    pool += 26 if any("A" <= c <= "Z" for c in chars) else 0
    pool += 10 if any(c.isdigit() and c.isascii() for c in chars) else 0
    pool += 33 if any(c in _PUNCT for c in chars) else 0
    pool += 100 if any(not c.isascii() for c in chars) else 0
    return math.log2(max(pool, 2))


def _word_spans(text: str) -> list[tuple[int, int, float, bool]]:
    """(start, end, cost, listed) of dictionary words and pronounceable letter runs."""
    out = []
    for m in re.finditer(r"[A-Za-z]+", text):
        run, start = m.group(), m.start()
        low = run.lower()
        i = 0
        while i < len(run):  # greedy longest listed word inside the run
            for j in range(len(run), i + 2, -1):
                if low[i:j] in _COMMON_WORDS:
                    out.append((start + i, start + j, _WORD_COST, True))
                    i = j
                    break
            else:
                i += 1
        single_case = re.fullmatch(r"[A-Z]?[a-z]+|[A-Z]+", run) is not None
        vowels = sum(ch in "aeiouy" for ch in low)
        hex_only = all(ch in "abcdef" for ch in low)  # hex digits spell few words
        if len(run) >= 3 and single_case and vowels >= max(1, 0.2 * len(run)) and not hex_only:
            out.append((start, m.end(), _LETTER_COST * len(run), False))
    return out


def _pattern_costs(units: list[int], per: float, unit: str = "characters"
                   ) -> tuple[list[float], list[str]]:
    """Cost in bits of each character after runs, sequences and repeated blocks are charged as
    one pattern each, and what was found (described by kind and length only)."""
    n = len(units)
    cost = [per] * n
    found: list[str] = []
    i = 0
    while i < n:
        # a run of one character, or a sequence with a constant step of 1 or 2 (0123, aceg)
        j = i + 1
        while j < n and units[j] == units[i]:
            j += 1
        if j - i >= 4:
            cost[i:j] = [per + math.log2(j - i)] + [0.0] * (j - i - 1)
            found.append(f"a run of {j - i} identical {unit}")
            i = j
            continue
        if i + 1 < n and abs(units[i + 1] - units[i]) in (1, 2):
            step = units[i + 1] - units[i]
            j = i + 1
            while j < n and units[j] - units[j - 1] == step:
                j += 1
            if j - i >= 4:
                cost[i:j] = [per + math.log2(j - i) + 2] + [0.0] * (j - i - 1)
                found.append(f"a sequence of {j - i} consecutive {unit}")
                i = j
                continue
        # a block of at least 4 characters seen before (overlap allowed: abababab)
        best = 0
        length = 4
        while i + length <= n and _contains(units[: i + length - 1], units[i:i + length]):
            best = length
            length += 1
        if best:
            cost[i:i + best] = [math.log2(max(i, 2)) + math.log2(best)] + [0.0] * (best - 1)
            found.append(f"a repeated block of {best} {unit}")
            i += best
            continue
        i += 1
    return cost, found


def _contains(hay: list[int], needle: list[int]) -> bool:
    m = len(needle)
    return any(hay[k:k + m] == needle for k in range(len(hay) - m + 1))


def secret_strength(value: str | bytes) -> tuple[float, list[str]]:
    """Conservative estimate of a secret's entropy in bits, and its weaknesses.

    A brute-force search over the character classes used (lower case, upper case, digits,
    punctuation, other; 4 bits for hexadecimal, 8 for binary bytes) costs ``log2(pool)`` bits per
    character. Patterns cost much less: a run of one character, a sequence (``0123``,
    ``fedc``, ``aceg``) or a block seen before is charged as one guess; a common word (passwords,
    the words of this domain) as 11 bits; any other pronounceable word as 2.5 bits a letter.
    A secret published in tipstat's documentation (:data:`PUBLISHED_SECRETS`) counts as 0 bits.
    Weaknesses are described by kind and length, never by content.

    Parameters
    ----------
    value : str or bytes
        The candidate secret; bytes that are printable UTF-8 text are judged as that text.

    Returns
    -------
    bits : float
        Estimated entropy; :class:`Secret` needs at least :data:`MIN_SECRET_BITS`.
    weaknesses : list of str

    Examples
    --------
    >>> bits, why = secret_strength("password-1234567890")
    >>> round(bits), why
    (34, ['a sequence of 9 consecutive characters', '1 common word'])
    >>> secret_strength(generate_secret())[0] >= MIN_SECRET_BITS
    True
    """
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            text = raw.decode("utf-8")
            value = text if text.isprintable() else raw
        except UnicodeDecodeError:
            value = raw
    if isinstance(value, str):
        stripped = value.strip()
        if stripped in PUBLISHED_SECRETS or stripped.lower() in {s.lower() for s in
                                                                 PUBLISHED_SECRETS}:
            return 0.0, [_PUBLISHED]
        units = [ord(c) for c in value[:_ANALYSED]]
        is_text = True
    else:
        units = list(value[:_ANALYSED])
        is_text = False
    if not units:
        return 0.0, ["it is empty"]
    per = _pool_bits(units, is_text)
    cost, found = _pattern_costs(units, per, "characters" if is_text else "bytes")
    if is_text:
        text = "".join(chr(u) for u in units)
        n_words = n_common = 0
        in_word = [False] * len(text)
        for start, end, word_cost, listed in _word_spans(text):
            span = sum(cost[start:end])
            if word_cost < span:
                cost[start:end] = [word_cost] + [0.0] * (end - start - 1)
                n_words += 1
                n_common += listed
                in_word[start:end] = [True] * (end - start)
        for p, ch in enumerate(text):  # the separators of a passphrase are nearly free
            if ch in _SEPARATORS and (p == 0 or in_word[p - 1]) and (
                    p + 1 == len(text) or in_word[p + 1]):
                cost[p] = min(cost[p], 2.0)
        low = text.lower()
        for pub in PUBLISHED_SECRETS:  # a published secret with a few characters added
            at = low.find(pub.lower())
            if at >= 0:
                cost[at:at + len(pub)] = [math.log2(len(PUBLISHED_SECRETS))] + [0.0] * (
                    len(cost[at:at + len(pub)]) - 1)
                found.append("it contains a secret published in tipstat's documentation")
        if n_words:
            plural = "s" if n_words > 1 else ""
            found.append(f"{n_words} common word{plural}" if n_common == n_words else
                         f"{n_words} word{plural}" if n_common == 0 else
                         f"{n_words} words ({n_common} of them common)")
    distinct = len(set(units))
    bits = float(sum(cost))
    if distinct < _MIN_DISTINCT:
        kind = "character" if is_text else "byte"
        found.append(f"only {distinct} different {kind}{'' if distinct == 1 else 's'}")
        bits = min(bits, len(units) * math.log2(max(distinct, 2)) / 2)
    return bits, list(dict.fromkeys(found))


def generate_secret() -> str:
    """A new random linkage secret: 32 random bytes (256 bits) from the operating system's
    cryptographic generator, as 43 URL-safe characters (``secrets.token_urlsafe(32)``).

    This is what ``tipstat keygen`` prints. Keep it in a file readable only by the linkage unit
    (``chmod 600``) or in an environment variable, share it with the agencies over a separate
    channel, and never put it in the data, a script, a notebook or a command line.

    Examples
    --------
    >>> s = generate_secret()
    >>> len(s), Secret(s)
    (43, Secret(***))
    """
    return secrets.token_urlsafe(32)


def read_secret(path: str | os.PathLike[str] | None = None, env: str | None = "TIPSTAT_SECRET"
                ) -> Secret:
    """Read the linkage secret from a file or, without a file, from an environment variable.

    Never from a command-line value: a command line is kept in the shell's history and shown in
    the process list to every user of the machine.

    Parameters
    ----------
    path : path, optional
        A file holding the secret (e.g. written by ``tipstat keygen > key.txt``). One trailing
        newline (``\\n`` or ``\\r\\n``) and a leading UTF-8 byte-order mark are removed; nothing
        else. A file that other users may read gives a :class:`~tipstat.errors.TipstatWarning`
        (``chmod 600`` it).
    env : str, optional
        Name of the environment variable read when ``path`` is None.

    Returns
    -------
    Secret
        Checked like any :class:`Secret`: weak or published secrets are refused.

    Raises
    ------
    InputError
        No file / variable, an unreadable or empty file, or a weak secret. The message names the
        file or variable, never the secret.

    Examples
    --------
    >>> import os
    >>> os.environ["TIPSTAT_SECRET"] = generate_secret()
    >>> read_secret()
    Secret(***)
    >>> del os.environ["TIPSTAT_SECRET"]
    """
    if path is not None:
        where = f"secret file {os.fspath(path)!r}"
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
                mode = os.fstat(fh.fileno()).st_mode
        except OSError as exc:
            raise InputError(f"cannot read the {where}: {exc.strerror or type(exc).__name__}"
                             ) from None
        if os.name == "posix" and mode & 0o077:
            warnings.warn(f"the {where} can be read by other users of this machine; make it "
                          "readable only by you (chmod 600)", TipstatWarning, stacklevel=2)
    elif env:
        where = f"environment variable {env}"
        text = os.environ.get(env)
        if text is None:
            raise InputError(f"no linkage secret: give a secret file, or set the {where} "
                             "(make a secret with `tipstat keygen`)")
        raw = text.encode("utf-8", errors="surrogateescape")
    else:
        raise InputError("no linkage secret: give a secret file or an environment variable")
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    if not raw:
        raise InputError(f"the {where} is empty (make a secret with `tipstat keygen`)")
    try:
        return Secret(raw)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


class Secret:
    """A secret key whose value is never shown (``repr``/``str`` print ``Secret(***)``).

    The key of every person is an HMAC under this secret, so whoever holds it, and whoever can
    guess it, can test a guessed name and birth date against the keys. A secret is therefore
    refused unless its estimated entropy (:func:`secret_strength`) is at least
    :data:`MIN_SECRET_BITS` (128) bits: no short, repetitive or sequential secret, no common
    words, no secret published in tipstat's documentation. Make one with :func:`generate_secret`
    (``tipstat keygen``) and read it with :func:`read_secret`. See the threat model in the
    privacy guide (``docs/privacy.md``).

    Parameters
    ----------
    value : str, bytes or Secret
        At least 16 bytes and 128 bits of estimated entropy.

    Raises
    ------
    InputError
        Saying why the secret is weak (by kind and length, never showing it) and how to make a
        good one.

    Examples
    --------
    >>> s = Secret(generate_secret())
    >>> s
    Secret(***)
    >>> Secret("abcdefgh12345678")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tipstat.errors.InputError: the linkage secret is too weak ...
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes | Secret) -> None:
        if isinstance(value, Secret):
            self._value = value._value
            return
        if not isinstance(value, str | bytes | bytearray | memoryview):
            raise InputError(f"the linkage secret must be text or bytes, not "
                             f"{type(value).__name__}")
        raw = value.encode("utf-8", errors="surrogateescape") if isinstance(value, str) \
            else bytes(value)
        if len(raw) < 16:
            raise InputError(f"the linkage secret must be at least 16 bytes long; it has "
                             f"{len(raw)} (a short secret can be guessed). {_HOW_TO}")
        bits, weaknesses = secret_strength(value)
        if weaknesses == [_PUBLISHED]:
            raise InputError("the linkage secret is refused: it is published in tipstat's "
                             "documentation, so every attacker knows it, however random it "
                             f"looks. {_HOW_TO}")
        if bits < MIN_SECRET_BITS:
            why = "; ".join(weaknesses) or "it is too short for the characters it uses"
            raise InputError(
                f"the linkage secret is too weak to resist a dictionary attack: about "
                f"{bits:.0f} bits of entropy where at least {MIN_SECRET_BITS} are needed ({why}). "
                f"{_HOW_TO}")
        self._value = raw

    @classmethod
    def _unchecked(cls, value: str | bytes) -> Secret:
        """A Secret without the strength check: ONLY for the synthetic countries of
        :mod:`tipstat.simulate`, whose keys derive from a seed so that a run repeats bit for bit.
        Never used for real data (a test checks that nothing else calls it)."""
        out = cls.__new__(cls)
        out._value = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return out

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __reduce__(self):  # never pickle the value by accident
        raise TypeError("a Secret cannot be pickled")


_HOW_TO = ("Make a good one with `tipstat keygen` (or tipstat.ictip.keys.generate_secret(): "
           "32 random bytes) and keep it in a file only you can read, or in the TIPSTAT_SECRET "
           "environment variable; see the privacy guide (docs/privacy.md).")


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
            "(tipstat.ictip.keys.pseudonymise) or pass secure=True inside a secure environment",
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
    >>> k = person_keys(df, generate_secret())
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
    >>> out = pseudonymise(df, generate_secret(), reference_date="identification_date")
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
