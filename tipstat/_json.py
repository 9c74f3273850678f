"""Plain JSON values from numpy/pandas results (one definition, for every JSON the package
writes)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """Plain JSON values: non-finite floats -> ``None``, numpy scalars and arrays -> Python,
    tuples -> lists, recursively through dicts and lists.

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"n": np.float64("inf"), "k": np.int64(3), "ci": (1.5, np.nan)})
    {'n': None, 'k': 3, 'ci': [1.5, None]}
    """
    if isinstance(value, Mapping):  # dicts and Estimate.diagnostics
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value
