"""The checks every estimator attaches to its result (the estimator contract, issue 16).

Each public estimator ends with one call, ``return attach_checks(est, h, check=check)``: the
table-level checks of :func:`tipstat.validate.assumption_warnings` (lack of fit of the model
reported, dependence and heterogeneity against models that assume independent lists,
heterogeneity beyond the interactions of the other log-linear models and model averages, sparse
tables, two lists, and, where a cheap refit exists, leave-one-list-out instability) are added to
``Estimate.warnings`` as :class:`~tipstat.estimate.Caveat` s. ``check=False`` returns the result
as it is: model searches, bootstrap replicates and internal-consistency refits call the
estimators that way and do not pay for checks nobody reads.

The checks themselves live in :mod:`tipstat.validate` (they read results and call no estimator
back); this module only knows how a model tells whether it assumes independent lists
(:func:`independence_submodel`), which :mod:`tipstat.validate` reads from
``diagnostics["assumes_independence"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..estimate import Estimate
from ..histories import CaptureHistories, pattern_matrix
from ..validate import _with_caveats, assumption_warnings, check_assumptions

__all__ = ["LOO_MAX_LISTS", "attach_checks", "independence_submodel"]

#: Leave-one-list-out refits (``unstable``) are run by default up to this many lists (K refits
#: of a ``2^(K-1)``-cell table: milliseconds each up to here).
LOO_MAX_LISTS = 8

#: The diagnostics the checks read (besides ``deviance`` and ``df``; with ``refit`` also the
#: interval and status): ``changes`` that leave these alone are applied in the same copy.
_READ_DIAGNOSTICS = ("assumes_independence", "model_averaged", "coefficients", "fitted")
_MISSING = object()


def independence_submodel(matrix: np.ndarray) -> bool:
    """Whether a log-linear design (``2**K`` rows, pattern ``c`` in row ``c``) is the
    independence model or a submodel of it (M0), i.e. every column is affine in the list
    indicators: ``v_c = v_0 + sum_j x_cj (v_{e_j} - v_0)`` for every pattern ``c``.

    Decided from the numbers of the design, not from its name: heterogeneity columns (``f^2/2``,
    ``2^f - 1``...) and behavioural ones are not affine, so Mh, Mth, Mb and models with
    interactions are not independence models.

    Examples
    --------
    >>> import tipstat
    >>> d = tipstat.loglinear_design(["A", "B", "C"], "independence")
    >>> independence_submodel(d.matrix), independence_submodel(
    ...     tipstat.loglinear_design(["A", "B", "C"], "A:B").matrix)
    (True, False)
    """
    m = np.asarray(matrix, dtype=float)
    rows = m.shape[0]
    k = rows.bit_length() - 1
    if rows != 2**k or k < 1:
        return False
    pat = pattern_matrix(k, include_unobserved=True).astype(float)
    units = m[[1 << j for j in range(k)]] - m[0]
    pred = m[0] + pat @ units
    return bool(np.allclose(pred, m, rtol=1e-9, atol=1e-9 * max(1.0, float(np.abs(m).max()))))


def attach_checks(est: Estimate, h: CaptureHistories, *, check: bool = True,
                  independence: bool | None = None,
                  refit: Callable[[CaptureHistories], Estimate] | None = None,
                  changes: Mapping[str, Any] | None = None) -> Estimate:
    """``est`` with the table-level checks of :func:`tipstat.validate.check_assumptions` added
    (``check=True``), on the pooled table when ``h`` is stratified.

    Parameters
    ----------
    est : Estimate
        The estimator's result.
    h : CaptureHistories
        The table it was estimated from.
    check : bool
        False: return ``est`` unchanged but for ``independence`` (inner fits).
    independence : bool, optional
        Whether the model assumes independent, homogeneous lists (written to
        ``diagnostics["assumes_independence"]``, which turns on the dependence and
        heterogeneity checks); None leaves what the estimate says.
    refit : callable, optional
        ``refit(table without one list) -> Estimate``, for the leave-one-list-out check; run
        only up to :data:`LOO_MAX_LISTS` lists.
    changes : mapping, optional
        Fields of ``est`` to replace (as ``dataclasses.replace(est, **changes)``) before the
        checks. Built in the same copy as the checks' caveats (one :class:`Estimate` instead of
        two) when the changes leave what the checks read alone (``deviance``, ``df``, the
        diagnostics ``assumes_independence``, ``model_averaged``, ``coefficients`` and
        ``fitted``; no ``refit``); otherwise replaced first. The result is the same either way.

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("Kosovo_4")
    >>> est = tipstat.fit_loglinear(h, "independence", check=False)
    >>> [w.code for w in attach_checks(est, h).warnings]
    ['lack_of_fit', 'dependence', 'heterogeneity']
    """
    if independence is not None and est.diagnostics.get("assumes_independence") != independence:
        est = replace(est, diagnostics={**est.diagnostics,
                                        "assumes_independence": bool(independence)})
    if changes and (not check or _changes_read(est, changes, refit)):
        est, changes = replace(est, **changes), None
    if not check:
        return est
    hp = h.pooled() if h.n_strata > 1 else h
    if refit is not None and hp.k > LOO_MAX_LISTS:
        refit = None
    if not changes:
        return check_assumptions(est, hp, refit=refit)
    return _with_caveats(est, assumption_warnings(hp, est, refit=refit), changes)


def _changes_read(est: Estimate, changes: Mapping[str, Any],
                  refit: Callable[[CaptureHistories], Estimate] | None) -> bool:
    """Whether the checks of ``replace(est, **changes)`` could differ from those of ``est``."""
    if refit is not None or "deviance" in changes or "df" in changes:
        return True
    new = changes.get("diagnostics")
    if new is None:
        return False
    old = est.diagnostics or {}
    return any(new.get(key, _MISSING) is not old.get(key, _MISSING) for key in _READ_DIAGNOSTICS)
