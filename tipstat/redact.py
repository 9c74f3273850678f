"""The one rule for a value that might identify a person: describe it, never show it.

Every message tipstat writes (errors, warnings, accounting, the command line in every mode) shows
a cell of an input table only where it is provably safe: a number in a count column, a code of
a code list (:mod:`tipstat.ictip.redact` holds the code-list part of the rule). Anything else is
*described* by its kind and length (:func:`describe`), and :func:`hidden` wraps the description
as a :class:`Hidden` value that a :class:`~tipstat.errors.Problem` prints as it is and that no
later layer hides again.

Examples
--------
>>> describe("Maria Lopez"), describe("1990-01-02"), describe(19900101), describe(None)
('text of 11 characters', 'a date', 'a number of 8 digits', 'a blank')
>>> h = hidden("Ann")
>>> str(h), repr(h), isinstance(h, Hidden)
('<text of 3 characters>', '<text of 3 characters>', True)
"""

from __future__ import annotations

import math
import numbers
import re
from datetime import date, datetime

import numpy as np
import pandas as pd

__all__ = ["Hidden", "describe", "hidden", "is_blank", "safe_value"]

_FULL_DATE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[T ].*)?$")
_DIGITS = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


class Hidden(str):
    """A description standing in for a value that is not shown (``<text of 3 characters>``).

    Its ``repr`` has no quotes, so a :class:`~tipstat.errors.Problem` prints it as it is, and
    the command line passes it through instead of describing the description.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def hidden(value: object) -> Hidden:
    """``value`` replaced by its description in angle brackets (:func:`describe`)."""
    return Hidden(f"<{describe(value)}>")


def is_blank(value: object) -> bool:
    """True for ``None``, NaN, NaT, ``pd.NA`` and text that is empty after stripping."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.floating) and np.isnan(value):
        return True
    if isinstance(value, str):
        return value.strip() in ("", "nan", "NaN", "None", "<NA>", "NaT")
    return False


def describe(value: object) -> str:
    """What kind of value this is, never the value itself.

    Examples
    --------
    >>> [describe(v) for v in ("Ann", " 2024 ", 3.5, "12/03/1990", pd.Timestamp("2024-01-01"))]
    ['text of 3 characters', 'a number of 4 digits', 'a number', 'a date', 'a date']
    """
    if is_blank(value):
        return "a blank"
    if isinstance(value, bool | np.bool_):
        return "a true/false value"
    if isinstance(value, datetime | date | np.datetime64 | pd.Timestamp):
        return "a date"
    if isinstance(value, numbers.Integral):
        return f"a number of {len(str(abs(int(value))))} digits"
    if isinstance(value, numbers.Real):
        return "a number"
    if isinstance(value, str):
        text = value.strip()
        if _DIGITS.match(text):
            return f"a number of {len(text.lstrip('+-'))} digits"
        if _NUMBER.match(text):
            return "a number"
        if _FULL_DATE.match(text):
            return "a date"
        n = len(text)
        return f"text of {n} character{'' if n == 1 else 's'}"
    if isinstance(value, bytes):
        return f"bytes of length {len(value)}"
    return f"a value of type {type(value).__name__}"


_CODE = re.compile(r"^[A-Z_][A-Z0-9_]*(\.[A-Z0-9_]+)*(;[A-Z_][A-Z0-9_]*(\.[A-Z0-9_]+)*)*$")
_DATE_LIKE = re.compile(r"\d{1,4}[-./]\d{1,2}[-./]\d{1,4}|^\d{8}$")


def safe_value(value: object) -> object:
    """A problem's value as the command line shows it: only where it cannot identify a person.

    Shown: numbers (not 8-digit date-like ones), and text shaped like a code (``F``, ``_U``,
    ``XXA``, ``SEX.PROS``, ``Y0T17``: capitals, digits, ``_ . ;``) or a plain number.
    Anything else (a name, a date, free text) is described (:func:`hidden`:
    ``<text of 6 characters>``); a value a library layer already described passes as it is.
    This is the last line of the rule for values no layer below described (the command line
    applies it to every problem it prints); :mod:`tipstat.ictip.redact` knows the code lists.
    Limit: an all-capital word that happens to be a name (``LI``) is shaped like a code.

    Examples
    --------
    >>> [safe_value(v) for v in ("Q", "SEX.PROS", 12, "1990-01-02", "Ritafi")]
    ['Q', 'SEX.PROS', 12, '<a date>', '<text of 6 characters>']
    """
    if isinstance(value, Hidden):
        return str(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        text = str(int(value)) if float(value).is_integer() else ""
        return value if not _DATE_LIKE.search(text) else str(hidden(value))
    text = str(value).strip()
    if (_CODE.match(text) or _NUMBER.match(text)) and not _DATE_LIKE.search(text) \
            and len(text) <= 24:
        return text
    return str(hidden(text))
