"""How numbers are written for people: the one formatter of the summaries, the command line and
the HTML report.

A number is written with thousands separators and a fixed number of decimals; a missing value
(``None``, NaN) is a dash; infinity is written out; a published count between 1 and the
suppression threshold is ``"<threshold"``. Text output (``Estimate.summary``, the command line)
uses ASCII (``-``, ``inf``), HTML output typographic signs (an en dash, ``∞``, a minus sign).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["count", "number"]

_TEXT = ("-", "inf", "-inf")
_HTML = ("\u2013", "\u221e", "\u2212\u221e")


def number(x: Any, digits: int = 0, *, html: bool = False) -> str:
    """``x`` with thousands separators and ``digits`` decimals.

    ``None`` and NaN are a dash, infinities ``inf``/``-inf`` (``∞``/``−∞`` with ``html=True``),
    booleans ``yes``/``no``; anything that is not a number is written as it is.

    Examples
    --------
    >>> number(1234567.891), number(1234567.891, 2), number(None), number(float("inf"))
    ('1,234,568', '1,234,567.89', '-', 'inf')
    >>> number(float("nan"), html=True), number(-math.inf, html=True), number("n/a")
    ('–', '−∞', 'n/a')
    """
    missing, pos_inf, neg_inf = _HTML if html else _TEXT
    if x is None:
        return missing
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(f):
        return missing
    if math.isinf(f):
        return pos_inf if f > 0 else neg_inf
    return f"{f:,.{digits}f}"


def count(x: Any, threshold: int, *, html: bool = False) -> str:
    """A count of persons as published: from 1 to ``threshold - 1`` it is ``"<threshold"``
    (primary suppression of small counts), otherwise :func:`number` without decimals.

    Examples
    --------
    >>> count(3, 5), count(0, 5), count(12345, 5), count(None, 5, html=True)
    ('<5', '0', '12,345', '–')
    """
    try:
        v = float(x)
    except (TypeError, ValueError):
        return number(x, html=html)
    if 0 < v < threshold:
        return f"<{threshold}"
    return number(v, html=html)
