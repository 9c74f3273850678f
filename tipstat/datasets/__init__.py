"""Published capture-history tables shipped with tipstat, each with its citation.

>>> from tipstat import datasets
>>> h = datasets.load("UK_5")
>>> h.lists
('LA', 'NG', 'PFNCA', 'GO', 'GP')
>>> datasets.info("UK_5")["lists"]["GP"]
'general public'

Files live in ``tipstat/datasets/data/``: one CSV per table (0/1 list columns in pattern-bit
order, optional stratum columns, ``count``; only patterns with a positive count) and
``catalog.json`` with what each list is, the original publication, and where the table was taken
from.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd

from ..errors import InputError
from ..histories import CaptureHistories

__all__ = ["citation", "info", "load", "names"]


@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath("data", "catalog.json").read_text("utf-8")
    return json.loads(text)


def names() -> list[str]:
    """Names of the bundled tables."""
    return sorted(_catalog())


def info(name: str) -> dict[str, Any]:
    """Description, citation, list meanings, strata and observed total of a bundled table."""
    cat = _catalog()
    if name not in cat:
        raise InputError(f"unknown dataset {name!r}; available: {', '.join(names())}")
    return dict(cat[name])


def citation(name: str) -> str:
    """The original publication of a bundled table."""
    return info(name)["citation"]


def load(name: str, strata: bool = True) -> CaptureHistories:
    """Load a bundled table as :class:`~tipstat.CaptureHistories`.

    Parameters
    ----------
    name : str
        One of :func:`names`, e.g. ``"UK_5"``, ``"NewOrleans_8"``, ``"Korea_3"``.
    strata : bool
        Keep stratum columns where the table has them (``Spina_3``: ethnicity); otherwise pool.
    """
    meta = info(name)
    with resources.files(__package__).joinpath("data", f"{name}.csv").open("r") as f:
        df = pd.read_csv(f)
    h = CaptureHistories.from_frame(df, count="count", strata=meta["strata"] or None,
                                    lists=list(meta["lists"]))
    return h if strata or not meta["strata"] else h.pooled()
