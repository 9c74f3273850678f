"""Stratified capture histories from linked persons.

Pipeline (ICTIP.md §6.4 steps 2-9): scope (period) -> link persons on the pseudonymous key ->
de-duplicate within lists -> resolve covariates (:func:`tipstat.linkage.persons`) -> pivot
persons x lists -> aggregate by (strata, pattern) (here). The linked persons are handed in:
this module reads the person table and imports no linkage. Persons with a missing covariate
are never dropped: they form an explicit unknown stratum ``_U`` (which
:func:`tipstat.models.stratified.fit_stratified` can share out with the EM algorithm,
``missing="em"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, TipstatWarning
from ..histories import CaptureHistories
from .records import Records

__all__ = ["BY_COLUMNS", "capture_histories"]

#: Stratifying variables: name in ``by`` -> column of the person table.
BY_COLUMNS = {"sex": "sex", "age_group": "age_group_l1", "age_group_l2": "age_group",
              "exploitation": "exploitation_stratum", "exploitation_stratum": "exploitation_stratum",
              "citizenship_group": "citizenship_group", "year": "year"}
#: Share of ``_U`` in a stratifying covariate above which W4 warns.
HIGH_UNKNOWN = 0.2
#: Fewer persons than this on a list within a stratum gives W1.
SMALL_LIST = 10


def capture_histories(
    persons: Any,
    by: Sequence[str] = ("sex", "age_group", "exploitation"),
    *,
    unknown: str = "stratum",
) -> CaptureHistories:
    """Stratified capture histories of the distinct linked persons.

    Parameters
    ----------
    persons : tipstat.linkage.Persons
        Linked persons (:func:`tipstat.linkage.persons` on the records of
        :func:`tipstat.ictip.read_records`, or :func:`tipstat.linkage.link_exact`): any object
        with a person table ``frame`` (one 0/1 column per list and the resolved covariates) and
        its ``lists``.
    by : sequence of str
        Stratifying covariates: ``"sex"``, ``"age_group"`` (level 1: child / adult),
        ``"age_group_l2"``, ``"exploitation"`` (the single exploitation stratum),
        ``"citizenship_group"``, ``"year"`` (of the first identification). ``[]`` for none.
    unknown : ``"stratum"`` or ``"error"``
        Persons with an unknown covariate form the explicit stratum ``_U`` (default), or are an
        error. They are never dropped.

    Returns
    -------
    CaptureHistories
        Lists in the order of the list definition; strata named as in ``by``. The total
        ``n_observed`` is the number of distinct persons (never the sum of list sizes).

    Warns
    -----
    TipstatWarning
        W1 (only 2 lists; a list with fewer than 10 persons in a stratum), W2 (a list sharing no
        person with the others), W4 (more than 20% ``_U`` in a covariate).

    Examples
    --------
    >>> import warnings
    >>> from tipstat import simulate
    >>> from tipstat.linkage import persons
    >>> c = simulate.country(n_victims=2000, seed=3)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     h = capture_histories(persons(c.read(period=c.year)), by=["sex"])
    >>> h.strata, h.n_observed == c.n_detected
    (('sex',), True)
    """
    frame = getattr(persons, "frame", None)
    lists_of = getattr(persons, "lists", None)
    if (isinstance(persons, Records) or not isinstance(frame, pd.DataFrame) or lists_of is None
            or not set(map(str, lists_of)) <= set(map(str, frame.columns))):
        raise InputError(f"capture_histories: expected linked persons (tipstat.linkage.persons("
                         f"records) or link_exact), got {type(persons).__name__}; link the "
                         "records first")
    if isinstance(by, str):
        raise InputError(f"by={by!r}: expected a list of stratifying variables, e.g. ['sex']")
    bad = [b for b in by if b not in BY_COLUMNS]
    if bad:
        raise InputError(f"by: unknown stratifying variable(s) {bad}; choose from {sorted(BY_COLUMNS)}")
    if unknown not in ("stratum", "error"):
        raise InputError(f"unknown={unknown!r}; expected 'stratum' or 'error'")
    lists = list(lists_of)
    if len(lists) < 2:
        raise InputError(f"MSE needs at least two lists; the list definition has {lists}")
    cols = [BY_COLUMNS[b] for b in by]
    data = pd.DataFrame({b: frame[c].astype(str) for b, c in zip(by, cols, strict=True)})
    for b in by:
        share = float((data[b] == "_U").mean())
        if unknown == "error" and share > 0:
            raise InputError(f"{int((data[b] == '_U').sum())} person(s) have unknown {b} "
                             "(unknown='error')")
        if share > HIGH_UNKNOWN:
            warnings.warn(f"[W4] {100 * share:.0f}% of persons have unknown {b} (_U)",
                          TipstatWarning, stacklevel=2)
    for name in lists:
        data[name] = frame[name].to_numpy()
    data["count"] = 1
    agg = data.groupby([*by, *lists], sort=True, as_index=False)["count"].sum()
    h = CaptureHistories.from_frame(agg, count="count", strata=list(by) or None, lists=lists)
    _structure_warnings(h)
    return h


def _structure_warnings(h: CaptureHistories) -> None:
    if h.k == 2:
        warnings.warn("[W1] only 2 lists: the independence assumption cannot be tested",
                      TipstatWarning, stacklevel=3)
    pat = h.patterns
    for j, name in enumerate(h.lists):
        others = (pat.sum(axis=1) > 1) & (pat[:, j] == 1)
        if h.counts[others].sum() == 0:
            warnings.warn(f"[W2] list {name} shares no person with any other list; consider "
                          "merging or dropping it", TipstatWarning, stacklevel=3)
    if h.strata:
        sizes = h.stratum_counts @ pat  # n_strata x k
        small = np.argwhere(sizes < SMALL_LIST)
        if len(small):
            idx = h.strata_index
            shown = [f"{h.lists[j]} in {dict(idx.iloc[s])}" for s, j in small[:5]]
            warnings.warn(f"[W1] {len(small)} (stratum, list) pair(s) with fewer than {SMALL_LIST} "
                          f"persons, e.g. {'; '.join(shown)}", TipstatWarning, stacklevel=3)
