"""Declared checks of parameters shared by every estimator (one definition each).

>>> is_level(0.95), is_level(95), is_level("0.95"), is_level(None), is_level(True)
(True, False, False, False, False)
"""

from __future__ import annotations

import math
import numbers

__all__ = ["DEFAULT_SEED", "is_level"]

#: The seed of every random step when the caller gives none: the same call gives the same numbers.
DEFAULT_SEED = 2024


def is_level(level: object) -> bool:
    """Whether ``level`` is an interval coverage: a real number strictly between 0 and 1 (not a
    string, a boolean, None or NaN)."""
    return (isinstance(level, numbers.Real) and not isinstance(level, bool)
            and math.isfinite(float(level)) and 0 < float(level) < 1)
