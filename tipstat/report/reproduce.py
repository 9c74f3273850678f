"""Published MSE estimates beside tipstat's: ``tipstat reproduce STUDY``.

The published figures (point, interval, the method that produced them, the source) are shipped
in ``tipstat/report/data/published.csv``, copied from the cited papers and reports. For each
published figure tipstat

- refits the published model where the publication (or the authors' code) names it
  (``tipstat_terms``), with the interval kind closest to the published one, and
- reruns the published selection rule (``tipstat_selection``, e.g. ``bic:2``) with
  ``tipstat.select_loglinear``.

Figures whose data are not public (Netherlands, Ireland) are shown alone, with a note.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd

from .._checks import DEFAULT_SEED
from ..errors import InputError

__all__ = ["published_table", "reproduce", "studies"]

#: Columns of :func:`reproduce`'s table (stable: ``tipstat reproduce --json`` uses them).
COLUMNS = (
    "study", "title", "dataset", "published_method", "published", "published_lower",
    "published_upper", "published_interval", "source", "approach", "tipstat_method",
    "tipstat_model", "status", "n_hat", "lower", "upper", "ci_method", "relative_difference",
    "note",
)


@lru_cache(maxsize=1)
def _table() -> pd.DataFrame:
    with resources.files(__package__).joinpath("data", "published.csv").open("r") as f:
        return pd.read_csv(f, dtype={"tipstat_terms": str, "tipstat_selection": str})


def published_table() -> pd.DataFrame:
    """The published estimates shipped with tipstat (a copy), one row per published figure,
    with the source of each.

    Examples
    --------
    >>> from tipstat.report.reproduce import published_table
    >>> t = published_table()
    >>> int(t.loc[t.dataset == "UK_5", "estimate"].iloc[0])
    11313
    """
    return _table().copy()


def studies() -> list[str]:
    """Keys of the studies that :func:`reproduce` knows (``uk-2013``, ``kosovo``, ...)."""
    return list(dict.fromkeys(_table()["study"]))


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def _match(study: str) -> pd.DataFrame:
    t = _table()
    key = _norm(study)
    if not key:
        raise InputError("reproduce: empty study name; known studies: " + ", ".join(studies()))
    hit = t[t["study"].map(_norm) == key]
    if hit.empty:
        hit = t[t["dataset"].fillna("").map(_norm) == key]
    if hit.empty:
        hit = t[t["study"].map(_norm).str.startswith(key) | t["title"].map(_norm).str.startswith(key)]
    if hit.empty:
        raise InputError(f"reproduce: unknown study {study!r}; known studies: {', '.join(studies())}")
    return hit


def _rel(a: float, b: float) -> float:
    return (a - b) / b if math.isfinite(a) and b else math.nan


def reproduce(study: str, *, selection: bool = True, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Published estimates of a study beside tipstat's numbers and methods.

    Parameters
    ----------
    study : str
        A study key (``"uk-2013"``, ``"new-orleans"``, ``"western-us"``, ``"kosovo"``,
        ``"korea"``, ``"netherlands"``, ``"australia"``, ``"ireland"``), a title prefix
        (``"UK 2013"``) or a bundled dataset name (``"UK_5"``).
    selection : bool
        Also rerun the published selection rule with ``tipstat.select_loglinear``.
    seed : int
        Seed for any random step of the selection rule (default
        :data:`tipstat.models.DEFAULT_SEED`).

    Returns
    -------
    pandas.DataFrame
        One row per published figure and tipstat approach (``"published model"``,
        ``"selection rule"`` or ``"published only"``), columns :data:`COLUMNS`.
        ``relative_difference`` is ``(tipstat - published) / published``.

    Examples
    --------
    >>> from tipstat.report.reproduce import reproduce
    >>> r = reproduce("UK 2013", selection=False)
    >>> row = r.iloc[0]
    >>> int(row.published), round(row.n_hat), row.ci_method
    (11313, 11313, 'wald')
    """
    import tipstat

    rows: list[dict[str, Any]] = []
    for _, p in _match(study).iterrows():
        base = {
            "study": p["study"], "title": p["title"],
            "dataset": p["dataset"] if isinstance(p["dataset"], str) else None,
            "published_method": p["method"], "published": float(p["estimate"]),
            "published_lower": float(p["lower"]), "published_upper": float(p["upper"]),
            "published_interval": p["interval"], "source": p["source"],
        }
        note = p["note"] if isinstance(p["note"], str) else ""
        done = False
        if base["dataset"] and isinstance(p["tipstat_terms"], str):
            h = tipstat.datasets.load(base["dataset"])
            ci = p["tipstat_ci"] if isinstance(p["tipstat_ci"], str) else "profile"
            est = tipstat.fit_loglinear(h, p["tipstat_terms"], ci=ci)
            rows.append({**base, "approach": "published model", "tipstat_method": est.method,
                         "tipstat_model": p["tipstat_terms"], "status": est.status,
                         "n_hat": est.n_hat, "lower": est.ci[0], "upper": est.ci[1],
                         "ci_method": est.ci_method,
                         "relative_difference": _rel(est.n_hat, base["published"]), "note": note})
            done = True
        rule = p["tipstat_selection"] if isinstance(p["tipstat_selection"], str) else ""
        if selection and base["dataset"] and rule:
            from ..models.registry import get

            criterion, _, order = rule.partition(":")
            h = tipstat.datasets.load(base["dataset"])
            kwargs: dict[str, Any] = {"max_order": int(order)} if order else {}
            est = get("select_loglinear").call(h, criterion, seed=seed, **kwargs)
            rows.append({**base, "approach": "selection rule", "tipstat_method": est.method,
                         "tipstat_model": est.model, "status": est.status, "n_hat": est.n_hat,
                         "lower": est.ci[0], "upper": est.ci[1], "ci_method": est.ci_method,
                         "relative_difference": _rel(est.n_hat, base["published"]),
                         "note": f"tipstat.select_loglinear(criterion={criterion!r}"
                                 + (f", max_order={order}" if order else "") + ")"})
            done = True
        if not done:
            rows.append({**base, "approach": "published only", "tipstat_method": None,
                         "tipstat_model": None, "status": None, "n_hat": math.nan,
                         "lower": math.nan, "upper": math.nan, "ci_method": None,
                         "relative_difference": math.nan, "note": note})
    return pd.DataFrame(rows, columns=list(COLUMNS))
