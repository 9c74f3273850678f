"""The one rule for showing a value of a victim record in a message.

A cell of a victim record may hold a name, a date of birth or an identifier, whatever its column
says it should hold (a name typed into ``sex``, a birth date typed into the age column, a record
id built from a name and a birth date). Every error, warning and accounting text of
:mod:`tipstat.ictip` therefore shows a value only where it is *provably safe*:

* in a coded column, a value that is in the column's public vocabulary (a code of its code
  list or a spelling of a shipped crosswalk), or that has the *shape* of a code of that list:
  upper-case letters, digits and ``_`` with at least one letter, dot-separated segments no
  longer than the list's own (``Q`` in ``sex``, ``XYZ`` in ``exploitation``; ``NETH`` is too
  long for a country, ``1987`` has no letter);
* in ``entity_id``, an upper-case agency code with a letter (``POL_NORTH``), or an entity the
  caller named itself;
* in a number column, a number: below 1000 in ages and 0/1 list columns, below 10^7 in counts
  (an 8-digit number could be a birth date written YYYYMMDD).

Everything else (record ids, person keys, dates, names, free text, any column not listed) is
*described* instead: ``"text of 7 characters"``, ``"a date"``, ``"a number of 8 digits"``.

Examples
--------
>>> safe_to_show("Q", "sex"), safe_to_show("Maria", "sex"), safe_to_show("ROU", "citizenship")
(True, False, True)
>>> describe("Maria Lopez"), describe("1990-01-02"), describe(19900101), describe(None)
('text of 11 characters', 'a date', 'a number of 8 digits', 'a blank')
>>> shown("2024-05-01", "identification_date")
(None, 'a date')
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from ..redact import describe, is_blank
from . import codelists

__all__ = ["CODED_COLUMNS", "NUMBER_COLUMNS", "describe", "is_blank", "safe_to_show", "shown"]

#: Columns whose values are codes of a code list (column -> code list).
CODED_COLUMNS = {
    "sex": "sex", "gender": "sex", "identification_status": "id_status", "age_group": "age_group",
    "ageBroad": "age_group", "majorityStatus": "age_group", "person_key_scheme": "person_key_scheme",
    "entity_type": "entity_type", "exploitation": "exploitation_form",
    "form_code": "exploitation_form", "sex_exploitation": "exploitation_form",
    "exploitation_stratum": "exploitation_stratum", "citizenship_group": "citizenship_group",
    "country_of_identification": "country", "citizenship": "country", "country": "country",
}
#: Columns that hold numbers; the value is a safe bound on what is shown (None: any number).
NUMBER_COLUMNS: dict[str, float | None] = {
    "age_at_identification": 1000.0, "age_at_exploitation_start": 1000.0, "count": 1e7,
}
_FLAGS = frozenset({"0", "1", "true", "false", "yes", "no", "0.0", "1.0"})
_ENTITY = re.compile(r"^(?=[^A-Z]*[A-Z])[A-Z0-9][A-Z0-9_.\-]{0,31}$")  # with a letter
_FULL_DATE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[T ].*)?$")
_DIGITS = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


@lru_cache(maxsize=64)
def _vocabulary(codelist: str, version: str) -> tuple[frozenset[str], re.Pattern[str]]:
    """Codes and crosswalk spellings of a code list, and the shape of its codes."""
    try:
        cl = codelists.load(codelist, version)
    except Exception:  # an unknown version: nothing is provably safe but the shape of nothing
        return frozenset(), re.compile(r"^(?!)$")
    words = set(cl.codes)
    for src in codelists.crosswalks():
        name, _, to = src.partition("__")
        if to != version:
            continue
        xw = codelists.crosswalk(name, version)
        for key in ([codelist] + (["sex_exploitation"] if codelist == "exploitation_form" else [])):
            words |= set(xw.get(key, {}))
    segs = [c.split(".") for c in cl.codes]
    depth = max(len(s) for s in segs)
    longest = max(len(p) for s in segs for p in s)
    if codelist == "country":  # ISO 3166-1 alpha-2 or alpha-3
        shape = re.compile(r"^(?:[A-Z]{2,3}|_[A-Z])$")
    else:
        seg = rf"[A-Z0-9_]{{1,{longest}}}"
        shape = re.compile(rf"^(?=[^A-Z]*[A-Z]){seg}(?:\.{seg}){{0,{depth - 1}}}$")
    return frozenset(words), shape


def safe_to_show(value: object, column: str | None, *, version: str = codelists.DEFAULT_VERSION,
                 known: Iterable[str] = (), kind: str | None = None) -> bool:
    """Whether ``value`` of ``column`` may appear in a message (module docstring).

    ``known`` are further values the caller supplied itself (entity ids of its own mapping),
    which are safe to echo back. ``kind`` overrides what the column name says: ``"count"``
    (a number below 10^7: an 8-digit number could be a birth date written YYYYMMDD),
    ``"flag"`` (a 0/1 list column) and ``"age"`` (numbers below 1000).

    Examples
    --------
    >>> safe_to_show("LAB", "entity_id"), safe_to_show("Kamira Dorlen", "entity_id")
    (True, False)
    >>> safe_to_show(111, "age_at_identification"), safe_to_show(19900101, "age_at_identification")
    (True, False)
    >>> safe_to_show("ab12", "source_record_id")  # record ids are never shown
    False
    """
    if is_blank(value) or isinstance(value, bool | np.bool_):
        return False
    bounds = {"count": 1e7, "flag": 1000.0, "age": 1000.0}
    if kind in bounds or (kind is None and column in NUMBER_COLUMNS):
        bound = bounds[kind] if kind is not None else NUMBER_COLUMNS[str(column)]
        if isinstance(value, str):
            value = float(value.strip()) if _NUMBER.match(value.strip()) else None
        if not isinstance(value, numbers.Real):
            return False
        return bound is None or (math.isfinite(float(value)) and abs(float(value)) < bound)
    if column is None:
        return False
    if not isinstance(value, str):
        return False
    text = value.strip()
    if text in {str(k) for k in known}:
        return True
    if column == "entity_id":
        return bool(_ENTITY.match(text))
    if column == "is_deleted":
        return text.lower() in _FLAGS
    if column in CODED_COLUMNS:
        words, shape = _vocabulary(CODED_COLUMNS[column], version)
        return text in words or bool(shape.match(text))
    return False


def shown(value: object, column: str | None, *, version: str = codelists.DEFAULT_VERSION,
          known: Iterable[str] = (), kind: str | None = None) -> tuple[object, str | None]:
    """``(value, None)`` when the value may be shown, else ``(None, description)``.

    Blank values give ``(None, None)``: there is nothing to hide or describe.
    """
    if is_blank(value):
        return None, None
    if safe_to_show(value, column, version=version, known=known, kind=kind):
        return (value.strip() if isinstance(value, str) else value), None
    return None, describe(value)
