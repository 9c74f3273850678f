"""Declared checks of parameters shared by every estimator (one definition each).

>>> is_level(0.95), is_level(95), is_level("0.95"), is_level(None), is_level(True)
(True, False, False, False, False)
"""

from __future__ import annotations

import math
import numbers

from .errors import InputError

__all__ = ["DEFAULT_SEED", "check_ci", "check_level", "check_seed", "is_level"]

#: The seed of every random step when the caller gives none: the same call gives the same numbers.
DEFAULT_SEED = 2024


def is_level(level: object) -> bool:
    """Whether ``level`` is an interval coverage: a real number strictly between 0 and 1 (not a
    string, a boolean, None or NaN)."""
    return (isinstance(level, numbers.Real) and not isinstance(level, bool)
            and math.isfinite(float(level)) and 0 < float(level) < 1)


def check_level(level: object, where: str) -> None:
    """Raise :class:`~tipstat.InputError` unless ``level`` is an interval coverage (see
    :func:`is_level`); ``where`` names the function in the message."""
    if not is_level(level):
        raise InputError(f"{where}: level={level!r}; expected a number strictly between 0 and 1 "
                         "(e.g. 0.95)")


def check_ci(ci: object, allowed: tuple[str, ...], where: str) -> None:
    """Raise :class:`~tipstat.InputError` unless ``ci`` (the interval method) is one of
    ``allowed``."""
    if not isinstance(ci, str) or ci not in allowed:
        raise InputError(f"{where}: ci={ci!r}; expected one of {', '.join(map(repr, allowed))}")


def check_seed(seed: object, where: str) -> int:
    """The seed as an ``int``; :class:`~tipstat.InputError` unless it is a non-negative integer
    (``None`` is refused: a missing seed would make the result unrepeatable; the default of every
    estimator is :data:`DEFAULT_SEED`).

    >>> check_seed(7, "f")
    7
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise InputError(f"{where}: seed={seed!r}; expected a non-negative integer (default "
                         f"{DEFAULT_SEED}; the same seed gives the same result)")
    return int(seed)
