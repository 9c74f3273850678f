"""Checks of an MSE estimate that users can run on their own data.

* :func:`internal_consistency` - the reliability check of Binette & Steorts (2022): each list in
  turn is a population of *known* size, estimated from the other lists' captures of its members.
  How far those estimates fall from the truth (log relative bias) and how often their intervals
  cover it tell how much to trust the same method on the full table. The method is handed in
  (e.g. :func:`tipstat.estimate_population`): checks read results, they import no estimator.
* :func:`dependence_tests` - a model-free test of list independence / homogeneity for every pair
  of lists, on the persons seen on some third list (for whom the 2 x 2 table is complete).
* :func:`heterogeneity_test` - a score test of capture heterogeneity against independent,
  homogeneous lists; :func:`heterogeneity_beyond_model` - the same question for a log-linear
  model with list interactions (a score test of Rasch-type quasi-symmetry terms it lacks).
* :func:`assumption_warnings` / :func:`check_assumptions` - the checks that an estimate's
  assumptions fail, as structured warnings (:class:`~tipstat.estimate.Caveat`: code, message,
  numbers): lack of fit, pairwise dependence or heterogeneity that an independence model
  ignores, sparse tables (empty cells and small list overlaps counted), two lists,
  leave-one-list-out instability. ``check_assumptions`` adds them to ``Estimate.warnings``;
  every estimator calls it on its result (``check=True``).

Reference: Binette, O. & Steorts, R. C. (2022). On the reliability of multiple systems
estimation for the quantification of modern slavery. *Journal of the Royal Statistical Society
Series A*, 185(2), 640-676.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from ._checks import is_level
from .errors import EstimationError, InputError, TipstatWarning
from .estimate import Caveat, Estimate, merge_caveats
from .histories import CaptureHistories

__all__ = [
    "InternalConsistency",
    "assumption_warnings",
    "check_assumptions",
    "dependence_tests",
    "heterogeneity_beyond_model",
    "heterogeneity_test",
    "internal_consistency",
    "sub_histories",
    "without_list",
]

#: Thresholds of the reliability rating (see :attr:`InternalConsistency.indicator`).
RATING_BIAS = (0.10, 0.25)
RATING_COVERAGE = 0.5
#: Fewest members of a list seen on the other lists for the list to enter the check (Binette &
#: Steorts 2022 keep reference lists whose conditioned table has at least 30 persons).
MIN_SEEN = 30


def _as_estimate(result: Any) -> Estimate:
    if isinstance(result, Estimate):
        return result
    for attr in ("estimate", "best", "selected"):
        value = getattr(result, attr, None)
        if isinstance(value, Estimate):
            return value
    if isinstance(result, Sequence) and result and isinstance(result[0], Estimate):
        return result[0]
    raise EstimationError(f"the method returned {type(result).__name__}, not a tipstat.Estimate")


def _takes_check(func: Callable[..., Any]) -> bool:
    """Whether ``func`` has a ``check`` keyword (every tipstat estimator: inner fits skip it)."""
    try:
        return "check" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------- internal consistency
def sub_histories(h: CaptureHistories, target: str) -> tuple[CaptureHistories, int, int]:
    """The other lists' captures of the members of list ``target``.

    Returns ``(histories over the K-1 other lists, n_target, n_missed)``: the members of
    ``target`` cross-classified by the other lists (a table in which ``n_missed`` members,
    those on ``target`` alone, play the part of the unobserved cell, whose size is known).

    Examples
    --------
    >>> import tipstat
    >>> sub, n_true, missed = sub_histories(tipstat.datasets.load("UK_5"), "LA")
    >>> sub.lists, n_true, missed
    (('NG', 'PFNCA', 'GO', 'GP'), 94, 54)
    """
    if target not in h.lists:
        raise InputError(f"unknown list {target!r}; the lists are {list(h.lists)}")
    if h.k < 3:
        raise InputError(f"the internal-consistency check needs at least 3 lists; got {h.k}")
    j = h.lists.index(target)
    codes = np.arange(1, 2**h.k)
    on = (codes >> j) & 1 == 1
    low = codes & ((1 << j) - 1)
    reduced = low | ((codes >> (j + 1)) << j)            # drop bit j
    counts = h.counts
    new = np.zeros(2 ** (h.k - 1), dtype=counts.dtype)
    np.add.at(new, reduced[on], counts[on])
    others = [x for x in h.lists if x != target]
    n_true = new.sum()
    return CaptureHistories(new[1:], others), _scalar(n_true), _scalar(new[0])


def _scalar(x: Any) -> int | float:
    return int(x) if np.issubdtype(np.asarray(x).dtype, np.integer) else float(x)


@dataclass(eq=False)
class InternalConsistency:
    """Result of :func:`internal_consistency`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per list: ``list``, ``n_true`` (its size, the known population), ``n_seen``
        (members on some other list), ``n_hat``, ``lower``, ``upper``, ``log_rel_bias``
        (``log(n_hat / n_true)``), ``covered`` (``lower <= n_true <= upper``), ``status``,
        ``model``, ``note``.
    method : str
        Name of the method checked.
    level : float
        Interval level.
    pooled_strata : bool
        True when a stratified table was pooled before the check.
    min_seen : int
        Lists with fewer members on the other lists were not estimated (status
        ``"too_few_seen"``).
    """

    table: pd.DataFrame
    method: str
    level: float
    pooled_strata: bool = False
    min_seen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> pd.Series:
        """Overall results over the lists whose estimate exists.

        ``mean_log_rel_bias`` (the paper's headline number), ``median_log_rel_bias``,
        ``rmse_log`` (root mean square of the log relative bias), ``coverage`` (share of lists
        whose interval covers their size), ``lists``, ``evaluated`` (estimates that exist),
        ``excluded`` (lists with fewer than ``min_seen`` members on the other lists, not
        estimated), ``bounds`` (lists for which the method gave only a lower bound, status
        ``lower_bound``: no bias, and not in ``coverage``) and ``bounds_hold`` (those whose
        bound is below the list's size), ``failed`` (other lists whose estimate does not exist
        or could not be computed), ``coverage_with_bounds`` (share of the evaluated lists and
        the bounds whose interval covers, or bound holds).
        """
        t = self.table
        ok = np.isfinite(t["log_rel_bias"].to_numpy(dtype=float))
        excluded = (t["status"] == "too_few_seen").to_numpy()
        bounds = (t["status"] == "lower_bound").to_numpy()
        hold = t.loc[bounds, "covered"].dropna().astype(float)
        lrb = t.loc[ok, "log_rel_bias"].to_numpy(dtype=float)
        cov = t.loc[ok, "covered"].dropna().astype(float)
        return pd.Series({
            "method": self.method,
            "lists": len(t),
            "evaluated": int(ok.sum()),
            "excluded": int(excluded.sum()),
            "bounds": int(bounds.sum()),
            "bounds_hold": int(hold.sum()),
            "failed": int((~ok & ~excluded & ~bounds).sum()),
            "mean_log_rel_bias": float(lrb.mean()) if len(lrb) else math.nan,
            "median_log_rel_bias": float(np.median(lrb)) if len(lrb) else math.nan,
            "rmse_log": float(np.sqrt(np.mean(lrb**2))) if len(lrb) else math.nan,
            "coverage": float(cov.mean()) if len(cov) else math.nan,
            "coverage_with_bounds": (float((cov.sum() + hold.sum()) / (len(cov) + len(hold)))
                                     if len(cov) + len(hold) else math.nan),
            "level": self.level,
        }, name="internal_consistency")

    @property
    def indicator(self) -> dict[str, Any]:
        """A reliability indicator for comparison tables and reports.

        ``rating`` is ``"consistent"`` when ``|mean log relative bias| <= 0.10`` and at least
        half of the intervals cover, ``"inconsistent"`` when ``|mean log relative bias| > 0.25``
        or fewer than half cover, ``"questionable"`` in between, and ``"not_assessed"`` when no
        list could be estimated. ``note`` is one readable sentence.
        """
        s = self.summary
        b, c = s["mean_log_rel_bias"], s["coverage"]
        if s["evaluated"] == 0 or not math.isfinite(b):
            rating = "not_assessed"
        elif abs(b) <= RATING_BIAS[0] and (math.isnan(c) or c >= RATING_COVERAGE):
            rating = "consistent"
        elif abs(b) > RATING_BIAS[1] or (not math.isnan(c) and c < RATING_COVERAGE):
            rating = "inconsistent"
        else:
            rating = "questionable"
        direction = "underestimates" if b < 0 else "overestimates"
        note = (f"internal consistency ({s['evaluated']} of {s['lists']} lists): {self.method} "
                f"{direction} known list sizes by {100 * (1 - math.exp(-abs(b))):.0f}% on average "
                f"(mean log relative bias {b:+.2f}); {100 * c:.0f}% of {100 * self.level:g}% "
                "intervals cover") if rating != "not_assessed" else \
            "internal consistency: no list could be estimated from the others"
        if s["excluded"]:
            note += (f" ({s['excluded']} list(s) with fewer than {self.min_seen} members on the "
                     "other lists left out)")
        return {"rating": rating, "mean_log_rel_bias": b, "coverage": c,
                "evaluated": int(s["evaluated"]), "note": note}

    def to_frame(self) -> pd.DataFrame:
        """The per-list table (a copy)."""
        return self.table.copy()

    def __repr__(self) -> str:
        s = self.summary
        return (f"InternalConsistency(method={self.method!r}, lists={s['lists']}, "
                f"mean_log_rel_bias={s['mean_log_rel_bias']:.3f}, coverage={s['coverage']:.2f})")

    def __str__(self) -> str:
        cols = ["list", "n_true", "n_seen", "n_hat", "lower", "upper", "log_rel_bias", "covered",
                "status"]
        return self.table[cols].to_string(index=False) + "\n" + self.indicator["note"]


def internal_consistency(
    h: CaptureHistories,
    method: Callable[[CaptureHistories], Estimate],
    *,
    level: float = 0.95,
    lists: Sequence[str] | None = None,
    min_seen: int = MIN_SEEN,
) -> InternalConsistency:
    """Binette & Steorts' internal-consistency check of an MSE method on a table.

    For each list ``j`` (of size ``n_j``, known), the members of ``j`` are cross-classified by
    the other ``K - 1`` lists; those on ``j`` alone play the unobserved cell. The method
    estimates ``n_j`` from the observed cells of that ``(K-1)``-list table (the persons seen on
    some other list, ``n_seen``), and

    .. math::

        \\mathrm{LRB}_j = \\log(\\hat n_j / n_j), \\qquad
        \\mathrm{covered}_j = [\\, L_j \\le n_j \\le U_j \\,].

    The summary averages them over the lists whose estimate exists (the paper's mean log
    relative bias and coverage; estimates that do not exist are counted as ``failed``, not
    averaged, as the paper drops them). As in the paper, a list enters the check only when at
    least ``min_seen`` of its members are on some other list: below that the ``(K-1)``-list
    table has a handful of persons over up to ``2^(K-1) - 1`` cells, every estimator sits on
    the boundary of its parameter space, and the log relative bias measures the sparsity of the
    table rather than the method. Such lists are kept in the table with status
    ``"too_few_seen"`` and counted in the summary's ``excluded``. A method that is biased on
    the lists, whose sizes are known, is unlikely to be right on the whole population, whose
    size is not; a good score is necessary, not sufficient.

    Parameters
    ----------
    h : CaptureHistories
        At least 3 lists. A stratified table is pooled first (``pooled_strata`` says so).
    method : callable
        ``method(histories) -> Estimate``: a tipstat estimator (tipstat's default is
        :func:`tipstat.estimate_population`; it is called with ``check=False``, the refits need
        no assumption checks) or a lambda around one. The check is named by
        the ``method`` of its estimates when ``method`` is a tipstat function or a lambda, by
        the function's own name otherwise.
    level : float
        Interval level recorded when no list could be estimated (the method chooses the level
        of its intervals, and the check records it).
    lists : sequence of str, optional
        Check only these lists (default: every list).
    min_seen : int
        Fewest members of a list on the other lists for the list to be estimated (default 30,
        Binette & Steorts' filter; 1 estimates every list with some overlap).

    Returns
    -------
    InternalConsistency
        ``.table`` (one row per list), ``.summary``, ``.indicator``.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.validate import internal_consistency
    >>> h = tipstat.datasets.load("Kosovo_4")
    >>> ic = internal_consistency(h, lambda x: tipstat.fit_loglinear(x, "independence"))
    >>> ic.table[["list", "n_true", "n_hat", "covered"]].round(0)
       list  n_true   n_hat covered
    0   EXH    1910  1117.0   False
    1   ABA    1528   894.0   False
    2  OSCE    1786  1259.0   False
    3   HRW     685   546.0   False
    >>> round(ic.summary["mean_log_rel_bias"], 3), ic.indicator["rating"]
    (-0.412, 'inconsistent')
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"expected tipstat.CaptureHistories, got {type(h).__name__}")
    if not is_level(level):
        raise InputError(f"level={level!r} must be between 0 and 1 (e.g. 0.95)")
    if h.k < 3:
        raise InputError(f"the internal-consistency check needs at least 3 lists (each list is "
                         f"estimated from the others); got {h.k}")
    if not callable(method):
        raise InputError(f"method must be a callable h -> Estimate (e.g. "
                         f"tipstat.estimate_population); got {type(method).__name__}")
    if isinstance(min_seen, bool) or not isinstance(min_seen, int | np.integer) or min_seen < 0:
        raise InputError(f"min_seen={min_seen!r} must be a non-negative integer (default "
                         f"{MIN_SEEN})")
    pooled = h.n_strata > 1
    hp = h.pooled() if pooled else h
    targets = list(hp.lists) if lists is None else [str(x) for x in lists]
    unknown = [x for x in targets if x not in hp.lists]
    if unknown:
        raise InputError(f"lists: unknown list(s) {unknown}; the lists are {list(hp.lists)}")
    quiet = _takes_check(method)  # tipstat's estimators: the refits skip their own checks
    name = getattr(method, "__name__", type(method).__name__)
    if name == "<lambda>" or str(getattr(method, "__module__", "")).startswith("tipstat."):
        name = "method"  # named by its estimates (a tipstat estimator names its method)
    rows = []
    est_level = level
    for target in targets:
        sub, n_true, missed = sub_histories(hp, target)
        row: dict[str, Any] = {"list": target, "n_true": n_true, "n_seen": n_true - missed,
                               "n_hat": math.nan, "lower": math.nan, "upper": math.nan,
                               "log_rel_bias": math.nan, "covered": np.nan, "status": "",
                               "model": "", "note": ""}
        if sub.n_observed == 0:
            row.update(status="no_overlap",
                       note="no member of this list is on any other list: nothing to estimate from")
            rows.append(row)
            continue
        if sub.n_observed < min_seen:
            row.update(status="too_few_seen",
                       note=f"{_scalar(sub.n_observed)} members on other lists, fewer than "
                            f"min_seen={int(min_seen)}: not estimated")
            rows.append(row)
            continue
        try:
            est = _as_estimate(method(sub, check=False) if quiet else method(sub))
        except (EstimationError, InputError) as err:
            row.update(status="error", note=str(err).splitlines()[0])
            rows.append(row)
            continue
        est_level = est.level
        row.update(n_hat=est.n_hat, lower=est.ci[0], upper=est.ci[1], status=est.status,
                   model=est.model, note="; ".join(est.warnings))
        if est.ok and est.n_hat > 0:
            row["log_rel_bias"] = math.log(est.n_hat / n_true)
            lo, hi = est.ci
            if math.isfinite(lo) and not math.isnan(hi):
                row["covered"] = bool(lo <= n_true <= hi)
        elif est.status == "lower_bound" and math.isfinite(est.ci[0]):
            # a bound has no point (no bias); it holds when it is below the known size
            row["covered"] = bool(est.ci[0] <= n_true)
        if name == "method" and est.method:
            name = est.method
        rows.append(row)
    table = pd.DataFrame(rows)
    table["covered"] = table["covered"].astype(object)
    return InternalConsistency(table=table, method=name, level=est_level, pooled_strata=pooled,
                               min_seen=int(min_seen))


# ---------------------------------------------------------------------------- assumption checks
def dependence_tests(h: CaptureHistories, *, correction: float = 0.5) -> pd.DataFrame:
    """Test independence of every pair of lists among the persons seen on some third list.

    For lists ``i, j``, take the persons on at least one *other* list: for them the 2 x 2 table
    ``(on i, on j)`` is complete (nobody is unobserved). Under the independence model with
    homogeneous capture probabilities its odds ratio is 1; positive dependence or capture
    heterogeneity makes it larger, negative dependence smaller. The test is the Wald test of the
    log odds ratio with ``correction`` added to each cell (Haldane-Anscombe):

    .. math::

        \\widehat{\\log OR} = \\log\\frac{(n_{11}+c)(n_{00}+c)}{(n_{10}+c)(n_{01}+c)}, \\qquad
        SE = \\sqrt{\\textstyle\\sum 1/(n_{ab}+c)}, \\qquad z = \\widehat{\\log OR} / SE .

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``pair``, ``n`` (persons on some other list), ``n11, n10, n01, n00``,
        ``log_or``, ``se``, ``z``, ``p`` (two-sided), ``p_holm`` (Holm-adjusted over pairs).

    Examples
    --------
    >>> import tipstat
    >>> t = dependence_tests(tipstat.datasets.load("Kosovo_4"))
    >>> t.loc[t.p_holm.idxmin(), "pair"]
    'ABA:OSCE'
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"expected tipstat.CaptureHistories, got {type(h).__name__}")
    if h.k < 3:
        raise InputError(f"dependence_tests needs at least 3 lists; got {h.k}")
    return pd.DataFrame(_dependence_columns(h, correction))


def _dependence_columns(h: CaptureHistories, correction: float = 0.5) -> dict[str, Any]:
    """The columns of :func:`dependence_tests` (``pair`` a list of str, the others float
    arrays), without building the DataFrame (the checks read four of them)."""
    pat = h.patterns.astype(bool)
    y = np.asarray(h.counts, dtype=float)
    pairs = list(combinations(range(h.k), 2))
    cols: dict[str, Any] = {"pair": [f"{h.lists[i]}:{h.lists[j]}" for i, j in pairs]}
    values = np.empty((len(pairs), 9))
    c = correction
    for row, (i, j) in enumerate(pairs):
        others = np.delete(pat, [i, j], axis=1).any(axis=1)
        a, b = pat[others, i], pat[others, j]
        yy = y[others]
        n11, n10 = yy[a & b].sum(), yy[a & ~b].sum()
        n01, n00 = yy[~a & b].sum(), yy[~a & ~b].sum()
        lor = math.log((n11 + c) * (n00 + c) / ((n10 + c) * (n01 + c)))
        se = math.sqrt(sum(1.0 / (v + c) for v in (n11, n10, n01, n00)))
        z = lor / se
        values[row] = (n11 + n10 + n01 + n00, n11, n10, n01, n00, lor, se, z,
                       float(2 * special.ndtr(-abs(z))))   # = 2 norm.sf(|z|)
    for col, name in enumerate(("n", "n11", "n10", "n01", "n00", "log_or", "se", "z", "p")):
        cols[name] = values[:, col].copy()
    # Holm step-down adjustment
    p = cols["p"]
    order = np.argsort(p)
    m = len(p)
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    p_holm = np.empty(m)
    p_holm[order] = adj
    cols["p_holm"] = p_holm
    return cols


# ---------------------------------------------------------------------------- assumption checks
#: A table is sparse (code ``sparse_table``) when fewer than this many persons fall on an
#: observable cell on average (where the chi-square approximations of the fit tests fail)...
SPARSE_MEAN = 5.0
#: ... or when at least this share of its observable cells is empty (a 4-list table with 5 of
#: 15 cells empty: the MLE of many models sits on the boundary of the parameter space) ...
SPARSE_EMPTY_SHARE = 0.2
#: ... or when a list has fewer than this many members seen on some other list (its capture
#: probability and every interaction with it rest on those few persons).
SMALL_OVERLAP = 10
#: The heterogeneity score test is run up to this many lists (2^K cells; beyond, it is skipped).
HETEROGENEITY_MAX_LISTS = 16


def without_list(h: CaptureHistories, target: str) -> CaptureHistories:
    """The table over the other ``K - 1`` lists: list ``target`` removed, its members who are on
    no other list now unobserved (the table a survey without that list would have produced;
    :meth:`CaptureHistories.drop_lists` without its warning, pooled over strata).

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("Korea_3")
    >>> sub = without_list(h, "d")
    >>> sub.lists, sub.counts.tolist(), h.n_observed - sub.n_observed
    (('b', 'c'), [11, 5, 66], 41)
    """
    if target not in h.lists:
        raise InputError(f"unknown list {target!r}; the lists are {list(h.lists)}")
    if h.k < 3:
        raise InputError(f"leaving a list out needs at least 3 lists; got {h.k}")
    hp = h.pooled() if h.n_strata > 1 else h
    with warnings.catch_warnings():      # (drop_lists says who became unobserved: meant here)
        warnings.simplefilter("ignore", TipstatWarning)
        return hp.drop_lists([target])


def _independence_fit(h: CaptureHistories) -> np.ndarray | None:
    """Fitted observable cells of the independence model (Mt), or None when N-hat is infinite.

    The Poisson MLE matches the list sizes ``n_j`` and the observed total ``n``: with
    ``p_j = n_j / N``, ``N`` solves Darroch's (1958) equation ``1 - n/N = prod_j (1 - n_j/N)``
    and ``mu_c = N prod_j p_j^{x_cj} (1 - p_j)^{1 - x_cj}``.
    """
    from scipy.optimize import brentq

    y = np.asarray(h.counts, dtype=float)
    pat = h.patterns.astype(bool)
    n = float(y.sum())
    nj = np.array([y[pat[:, j]].sum() for j in range(h.k)])
    if n <= 0 or nj.sum() <= n * (1 + 1e-12):      # nobody on two lists: N-hat infinite
        return None

    def g(N: float) -> float:
        return float(np.prod(1.0 - nj / N) - (1.0 - n / N))

    hi = 2.0 * n
    while g(hi) > 0:
        hi *= 2.0
        if hi > 1e15:
            return None
    N = n if g(n) <= 0 else brentq(g, n, hi, xtol=1e-10 * n, rtol=1e-13)
    p = nj / N
    return N * np.prod(np.where(pat, p, 1.0 - p), axis=1)


def heterogeneity_test(h: CaptureHistories) -> dict[str, float]:
    """Score test of capture heterogeneity against independent, homogeneous lists (Mt).

    Darroch et al.'s (1993) heterogeneity model Mth adds ``tau f^2 / 2`` to the independence
    model, ``f`` the number of lists a cell is on: with ``tau > 0`` persons are on many lists
    and on one list more often than independent lists with the same sizes give. The score
    statistic of ``tau = 0`` needs only the independence fit ``mu`` (over the observable cells,
    design ``X`` = intercept and list effects, ``z = f^2/2``):

    .. math::

        U = z^\\top (y - \\hat\\mu), \\qquad
        V = z^\\top W z - z^\\top W X (X^\\top W X)^{-1} X^\\top W z, \\quad W = \\mathrm{diag}(\\hat\\mu),
        \\qquad Z = U / \\sqrt{V} \\sim N(0, 1).

    ``p`` is one-sided (heterogeneity, or positive dependence between every pair of lists, gives
    ``Z > 0``; the two cannot be told apart from one table). Needs 3 to
    :data:`HETEROGENEITY_MAX_LISTS` lists and some person on two lists; else ``z`` and ``p``
    are nan.

    Returns
    -------
    dict
        ``z``, ``p``, ``observed`` and ``expected`` (the sum of ``f^2/2`` over persons, seen and
        under Mt).

    Examples
    --------
    >>> import tipstat
    >>> t = heterogeneity_test(tipstat.datasets.load("Kosovo_4"))
    >>> t["z"] > 5, t["p"] < 1e-6
    (True, True)
    """
    nan = {"z": math.nan, "p": math.nan, "observed": math.nan, "expected": math.nan}
    hp = h.pooled() if h.n_strata > 1 else h
    if not 3 <= hp.k <= HETEROGENEITY_MAX_LISTS:
        return nan
    mu = _independence_fit(hp)
    if mu is None:
        return nan
    y = np.asarray(hp.counts, dtype=float)
    pat = hp.patterns.astype(float)
    X = np.column_stack([np.ones(len(y)), pat])
    z = pat.sum(axis=1) ** 2 / 2.0
    xw = X * mu[:, None]
    info = xw.T @ X
    b = xw.T @ z
    try:
        var = float(z @ (mu * z) - b @ np.linalg.solve(info, b))
    except np.linalg.LinAlgError:
        return nan
    if not var > 1e-12 * float(z @ (mu * z)):
        return nan
    u = float(z @ (y - mu))
    zs = u / math.sqrt(var)
    return {"z": zs, "p": float(stats.norm.sf(zs)), "observed": float(z @ y),
            "expected": float(z @ mu)}


def _loglinear_columns(hp: CaptureHistories, names: Sequence[str]) -> np.ndarray | None:
    """Design of a log-linear model over the observable cells from its coefficient names
    (``(Intercept)``, list names, ``A:B`` interactions), or None when a name is not of that
    form (heterogeneity, behavioural or stratum columns)."""
    if not _is_loglinear(hp.lists, names):
        return None
    pat = hp.patterns.astype(float)
    index = {name: j for j, name in enumerate(hp.lists)}
    return np.column_stack([
        np.ones(len(pat)) if name == "(Intercept)" else
        np.prod(pat[:, [index[part] for part in str(name).split(":")]], axis=1)
        for name in names])


def _is_loglinear(lists: Sequence[str], names: Sequence[str]) -> bool:
    """Whether coefficient names are those of a log-linear model of ``lists`` (``(Intercept)``,
    list names, ``A:B`` interactions): when :func:`_loglinear_columns` builds a design (the
    one rule, asked without building it)."""
    known = set(lists)
    return len(names) > 0 and all(
        name == "(Intercept)" or all(part in known for part in str(name).split(":"))
        for name in names)


def heterogeneity_beyond_model(h: CaptureHistories, estimate: Estimate) -> dict[str, float]:
    """Score test of Rasch-type capture heterogeneity that the estimate's log-linear model
    (main effects and list interactions) does not contain.

    If person ``i`` is on list ``j`` with ``logit p_ij = a_j + theta_i`` (Rasch), whatever the
    distribution of ``theta``, the observable cells follow the quasi-symmetric log-linear model
    ``log mu_c = b_0 + sum_j x_cj b_j + gamma(f_c)``, ``f_c`` the number of lists of cell ``c``
    and ``gamma`` an arbitrary function (Darroch, Fienberg, Glonek & Junker 1993; Agresti 1994;
    Fienberg, Johnson & Junker 1999). Two-way interactions contain the quadratic part of
    ``gamma`` (``f^2 = f + 2 sum_{i<j} x_i x_j``), which is why a model with positive two-way
    terms can fit a heterogeneous table and still underestimate N; the rest of ``gamma``
    (``K - 3`` directions when every two-way term is in) is a pattern of equal higher-order
    interactions that no such model has. The test adds the columns ``Z = [1{f_c = s}]``,
    ``s = 2..K``, to the model's design ``X`` at its fitted cells ``mu`` (its MLE, from
    ``diagnostics["fitted"]`` and ``diagnostics["coefficients"]``; for a model average, the
    best model's):

    .. math::

        U = Z^\\top (y - \\hat\\mu), \\qquad
        V = Z^\\top W Z - Z^\\top W X (X^\\top W X)^{-} X^\\top W Z, \\quad
        W = \\mathrm{diag}(\\hat\\mu), \\qquad S = U^\\top V^{-} U \\sim \\chi^2_{\\mathrm{rank}\\,V}.

    It answers only for log-linear models whose design is read from their coefficient names and
    that leave some direction of ``gamma`` free (``df >= 1``); with three lists and every two-way
    term in, or a heterogeneity model, ``S``, ``df`` and ``p`` are nan. Cost: one weighted least
    squares fit on the ``2^K - 1`` cells.

    References: Darroch, J. N., Fienberg, S. E., Glonek, G. F. V. & Junker, B. W. (1993). A
    three-sample multiple-recapture approach to census population estimation with heterogeneous
    catchability. *JASA* 88, 1137-1148. Agresti, A. (1994). Simple capture-recapture models
    permitting unequal catchability and variable sampling effort. *Biometrics* 50, 494-500.
    Fienberg, S. E., Johnson, M. S. & Junker, B. W. (1999). Classical multilevel and Bayesian
    approaches to population size estimation using multiple lists. *JRSS A* 162, 383-405.

    Returns
    -------
    dict
        ``statistic`` (S), ``df``, ``p``.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.simulate_populations import populations, scenario
    >>> h = populations(n=2000, seed=41, **scenario("heterogeneity", k=4)).histories
    >>> est = tipstat.fit_loglinear(h, ["L1:L3", "L1:L4"], check=False)
    >>> t = heterogeneity_beyond_model(h, est)
    >>> t["df"], t["p"] < 0.001
    (2.0, True)
    """
    nan = {"statistic": math.nan, "df": math.nan, "p": math.nan}
    hp = h.pooled() if h.n_strata > 1 else h
    d = estimate.diagnostics or {}
    coef, fitted = d.get("coefficients"), d.get("fitted")
    if not 3 <= hp.k <= HETEROGENEITY_MAX_LISTS or coef is None or fitted is None:
        return nan
    y = np.asarray(hp.counts, dtype=float)
    mu = np.asarray(fitted, dtype=float)
    if mu.shape != y.shape or not np.all(np.isfinite(mu)) or np.any(mu < 0):
        return nan
    X = _loglinear_columns(hp, list(coef[0]))
    if X is None:
        return nan
    f = hp.patterns.sum(axis=1)
    Z = np.column_stack([(f == s).astype(float) for s in range(2, hp.k + 1)])
    w = np.sqrt(mu)
    A, B = X * w[:, None], Z * w[:, None]
    resid = B - A @ np.linalg.lstsq(A, B, rcond=None)[0]
    V = resid.T @ resid
    vals, vecs = np.linalg.eigh(V)
    keep = vals > 1e-9 * max(float(np.trace(Z.T @ (Z * mu[:, None]))), 1e-300)
    df = int(keep.sum())
    if df == 0:
        return nan
    u = vecs[:, keep].T @ (Z.T @ (y - mu))
    stat = float(np.sum(u**2 / vals[keep]))
    return {"statistic": stat, "df": float(df), "p": float(stats.chi2.sf(stat, df))}


def _heterogeneity_beyond(hp: CaptureHistories, estimate: Estimate, alpha: float,
                          memo: dict[Any, Any]) -> Caveat | None:
    """The ``heterogeneity`` caveat of a model that does not say it assumes independent lists
    (a model average: of its best model), at level ``alpha``: :func:`heterogeneity_test` (one
    sided, 1 df: the more powerful test against Darroch's Mth) when that log-linear model has
    no interaction, else :func:`heterogeneity_beyond_model`; none when the model is not a
    log-linear model of the lists (heterogeneity or behavioural columns: both tests are nan).
    ``memo``: the table's :func:`_table_memo` (the first test depends on the table only)."""
    d = estimate.diagnostics or {}
    coef = d.get("coefficients")
    if coef is None or d.get("fitted") is None or not _is_loglinear(hp.lists, coef[0]):
        return None
    if len(coef[0]) == hp.k + 1:
        # the independence model (Mt): the test against Mth
        het = _once(memo, "heterogeneity_test", lambda: heterogeneity_test(hp))
        return _heterogeneity_caveat(het, alpha, ", the best model",
                                     "N is likely underestimated and the interval may miss it")
    t = heterogeneity_beyond_model(hp, estimate)
    if not (math.isfinite(t["p"]) and t["p"] < alpha):
        return None
    which = "its best model" if (estimate.diagnostics or {}).get("model_averaged") else "the model"
    return Caveat(
        "heterogeneity", "capture heterogeneity beyond the model: persons are on one list and "
        "on many lists in a pattern that list interactions do not capture (score test of "
        f"Rasch-type quasi-symmetry terms added to {which}: chi2 = {t['statistic']:.1f} on "
        f"{t['df']:g} df, {_p_text(t['p'])}); N is likely underestimated and the interval may "
        "miss it",
        {"statistic": t["statistic"], "df": t["df"], "p": t["p"]})


def _assumes_independence(estimate: Estimate | None) -> bool:
    if estimate is None:
        return True
    d = estimate.diagnostics or {}
    return bool(d.get("assumes_independence", False)) and not d.get("model_averaged", False)


def _p_text(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


#: The model-free checks of recent tables (see :func:`_table_memo`), at most 64 tables.
_TABLES: dict[tuple, dict[Any, Any]] = {}


def _table_memo(hp: CaptureHistories) -> dict[Any, Any]:
    """The results of the checks of a table that do not depend on the model (the dependence and
    heterogeneity tests, the sparse-table caveat), kept once per table (lists and counts): the
    twelve rows of a ``closedp`` table, the methods of a comparison and the models of a search
    check the same table. Only read here; the caveats kept are immutable."""
    counts = np.asarray(hp.counts, dtype=float).tobytes()
    if len(counts) > 65536:   # beyond 8,192 cells the key is the counts' SHA-256, not a copy
        counts = (len(counts), hashlib.sha256(counts).digest())
    key = (hp.lists, counts)
    memo = _TABLES.get(key)
    if memo is None:
        if len(_TABLES) >= 64:
            _TABLES.clear()
        memo = _TABLES[key] = {}
    return memo


def _once(memo: dict[Any, Any], name: Any, compute: Callable[[], Any]) -> Any:
    """``memo[name]``, computed by ``compute()`` the first time."""
    if name not in memo:
        memo[name] = compute()
    return memo[name]


def _dependence_caveat(t: Mapping[str, Any], alpha: float) -> Caveat | None:
    """The ``dependence`` caveat from the columns of :func:`dependence_tests` ``t`` (as
    :func:`_dependence_columns` gives them) at level ``alpha``."""
    p_holm, log_or = t["p_holm"], t["log_or"]
    bad = np.flatnonzero(p_holm < alpha)
    if not len(bad):
        return None
    # the three smallest p (pandas' sort_values: numpy's quicksort argsort of those p)
    first = bad[np.argsort(t["p"][bad], kind="quicksort")][:3]
    shown = ", ".join(f"{t['pair'][r]} (odds ratio {math.exp(log_or[r]):.2f})" for r in first)
    return Caveat(
        "dependence", f"list dependence or capture heterogeneity: {len(bad)} of "
        f"{len(p_holm)} list pairs are associated among persons seen on other lists "
        f"({shown}); the independence model is likely biased (positive association: "
        "too low)",
        {"pairs_associated": len(bad), "pairs": len(p_holm),
         "min_p_holm": float(np.min(p_holm)),
         "max_odds_ratio": float(np.exp(np.max(log_or))),
         "min_odds_ratio": float(np.exp(np.min(log_or)))})


def _heterogeneity_caveat(het: dict[str, float], alpha: float, of: str = "",
                          then: str = "models without heterogeneity or dependence terms "
                                      "tend to underestimate N") -> Caveat | None:
    """The ``heterogeneity`` caveat of a model assuming independent lists, from
    :func:`heterogeneity_test` ``het`` at level ``alpha`` (``of``: which model Mt is, e.g.
    ", the best model"; ``then``: what follows for N)."""
    if not (math.isfinite(het["p"]) and het["p"] < alpha):
        return None
    return Caveat(
        "heterogeneity", "capture heterogeneity: persons are on one list and on many "
        "lists more often than independent, homogeneous lists give (score test of "
        f"Darroch's Mth against Mt{of}: z = {het['z']:.2f}, {_p_text(het['p'])}); {then}",
        {"z": het["z"], "p": het["p"]})


def _sparse(hp: CaptureHistories) -> Caveat | None:
    cells = 2**hp.k - 1
    y = np.asarray(hp.counts, dtype=float)
    empty = int(np.sum(y == 0))
    per_cell = float(y.sum()) / cells
    pat = hp.patterns.astype(bool)
    multi = pat.sum(axis=1) >= 2
    overlap = np.array([y[pat[:, j] & multi].sum() for j in range(hp.k)])
    small = int(np.sum(overlap < SMALL_OVERLAP))
    if not (per_cell < SPARSE_MEAN or empty >= SPARSE_EMPTY_SHARE * cells or small):
        return None
    parts = [f"{empty} of {cells} observable cells empty",
             f"{per_cell:.1f} persons per cell on average"]
    if small:
        parts.append(f"{small} list(s) with fewer than {SMALL_OVERLAP} members seen on another "
                     f"list (fewest: {overlap.min():g})")
    return Caveat("sparse_table", "sparse table: " + ", ".join(parts) + "; intervals and fit "
                  "tests are approximate and models with interactions may sit on the boundary",
                  {"empty_cells": empty, "cells": cells, "mean_per_cell": per_cell,
                   "small_lists": small, "min_overlap": float(overlap.min())})


def _unstable(hp: CaptureHistories, estimate: Estimate,
              refit: Callable[[CaptureHistories], Estimate]) -> Caveat | None:
    lo, hi = estimate.ci
    if not (estimate.ok and math.isfinite(lo) and not math.isnan(hi)) or hp.k < 3:
        return None
    moved, failed, n_hats = [], 0, []
    for name in hp.lists:
        sub = without_list(hp, name)
        if sub.n_observed <= 0:
            failed += 1
            continue
        try:
            other = _as_estimate(refit(sub))
        except (EstimationError, InputError):
            failed += 1
            continue
        if not other.ok:
            failed += 1
            continue
        n_hats.append(other.n_hat)
        olo, ohi = other.ci
        if (math.isfinite(olo) and olo > hi) or (not math.isnan(ohi) and ohi < lo):
            moved.append((name, other))
    if not moved:
        return None
    shown = ", ".join(f"without {name}: {o.n_hat:,.0f} [{o.ci[0]:,.0f}, {o.ci[1]:,.0f}]"
                      for name, o in moved[:3])
    return Caveat("unstable", f"unstable: leaving one list out gives an interval that does not "
                  f"overlap this one for {len(moved)} of {hp.k} lists ({shown}; this estimate "
                  f"{estimate.n_hat:,.0f} [{lo:,.0f}, {hi:,.0f}]): the estimate rests on one "
                  "list's overlap with the others",
                  {"lists_moved": len(moved), "lists": hp.k, "refits_failed": failed,
                   "min_n_hat": min(n_hats), "max_n_hat": max(n_hats)})


def assumption_warnings(h: CaptureHistories, estimate: Estimate | None = None, *,
                        alpha: float = 0.05,
                        consistency: InternalConsistency | None = None,
                        refit: Callable[[CaptureHistories], Estimate] | None = None
                        ) -> list[Caveat]:
    """The checks of an estimate's assumptions on this table, as structured warnings.

    Each warning is a :class:`~tipstat.estimate.Caveat` (a ``str``: its message) with a code
    and the numbers behind it. Tests are at level ``alpha``:

    * ``lack_of_fit`` (estimates with a deviance and ``df > 0``): the deviance ``G^2`` against
      ``chi2(df)``; values ``deviance``, ``df``, ``p``. A model that does not fit the observed
      cells has no claim on the unobserved one.
    * ``dependence`` (models that assume independent lists, i.e. independence or a submodel of
      it, as ``diagnostics["assumes_independence"]`` says; or no estimate):
      :func:`dependence_tests` with Holm's correction over pairs.
    * ``heterogeneity`` (the same models, 3 lists or more): :func:`heterogeneity_test`, one
      sided; values ``z``, ``p``. For the other log-linear models and model averages (of
      their best model): the same test when that model has no interaction, else
      :func:`heterogeneity_beyond_model`, the Rasch-type (quasi-symmetry) heterogeneity its
      terms do not contain; values ``statistic``, ``df``, ``p``.
    * ``sparse_table`` (every estimate): fewer than :data:`SPARSE_MEAN` persons per observable
      cell on average, at least :data:`SPARSE_EMPTY_SHARE` of the cells empty, or a list with
      fewer than :data:`SMALL_OVERLAP` members seen on another list; values ``empty_cells``,
      ``cells``, ``mean_per_cell``, ``small_lists``, ``min_overlap``.
    * ``two_lists`` (every estimate of a 2-list table): independence of the two lists is
      assumed and cannot be tested.
    * ``unstable`` (when ``refit`` is given, 3 lists or more): ``refit(table without list j)``
      for each list; the warning fires when some leave-one-list-out interval does not overlap
      the estimate's own interval. The estimators pass a cheap ``refit`` only where one exists
      (:func:`tipstat.fit_loglinear`); give one to check any estimator, e.g.
      ``refit=lambda t: tipstat.select_loglinear(t, "bic")``.
    * ``internal_inconsistency`` (when ``consistency``, the result of
      :func:`internal_consistency` for the same method, is given): its rating is
      ``"questionable"`` or ``"inconsistent"``.

    The absence of warnings does not prove the assumptions: heterogeneity that affects every
    list alike is partly invisible in the observed cells.

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("Kosovo_4")
    >>> est = tipstat.fit_loglinear(h, "independence", check=False)
    >>> [w.code for w in assumption_warnings(h, est)]
    ['lack_of_fit', 'dependence', 'heterogeneity']
    >>> w = assumption_warnings(h, est)[0]
    >>> print(w.split(";")[0]); w.values["df"]
    lack of fit: deviance 245.9 on 10 df (p < 0.0001)
    10.0
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"expected tipstat.CaptureHistories, got {type(h).__name__}")
    if not 0 < alpha < 1:
        raise InputError(f"alpha={alpha!r} must be between 0 and 1")
    if consistency is not None and not isinstance(consistency, InternalConsistency):
        raise InputError("consistency must be the result of tipstat.validate.internal_consistency, "
                         f"got {type(consistency).__name__}")
    if refit is not None and not callable(refit):
        raise InputError(f"refit must be a callable table -> Estimate, got {type(refit).__name__}")
    hp = h.pooled() if h.n_strata > 1 else h
    out: list[Caveat] = []
    if estimate is not None and math.isfinite(estimate.deviance) and math.isfinite(estimate.df) \
            and estimate.df > 0:
        p = float(special.chdtrc(estimate.df, estimate.deviance))  # = chi2.sf, less overhead
        if p < alpha:
            out.append(Caveat(
                "lack_of_fit", f"lack of fit: deviance {estimate.deviance:.1f} on "
                f"{estimate.df:g} df ({_p_text(p)}); the model's assumptions are rejected and "
                "N-hat may be biased",
                {"deviance": float(estimate.deviance), "df": float(estimate.df), "p": p}))
    independence = _assumes_independence(estimate)
    memo = _table_memo(hp)
    if hp.k >= 3 and independence:
        dependence = _once(memo, ("dependence", alpha), lambda: _dependence_caveat(
            _once(memo, "dependence_tests", lambda: _dependence_columns(hp)), alpha))
        if dependence is not None:
            out.append(dependence)
        het = _once(memo, ("heterogeneity", alpha), lambda: _heterogeneity_caveat(
            _once(memo, "heterogeneity_test", lambda: heterogeneity_test(hp)), alpha))
        if het is not None:
            out.append(het)
    elif hp.k >= 3 and estimate is not None:
        beyond = _heterogeneity_beyond(hp, estimate, alpha, memo)
        if beyond is not None:
            out.append(beyond)
    if hp.k == 2:
        out.append(Caveat("two_lists", "two lists: independence between them is assumed and "
                          "cannot be checked; positive dependence or heterogeneity biases the "
                          "estimate low", {"lists": 2}))
    sparse = _once(memo, "sparse", lambda: _sparse(hp))
    if sparse is not None:
        out.append(sparse)
    if refit is not None and estimate is not None:
        unstable = _unstable(hp, estimate, refit)
        if unstable is not None:
            out.append(unstable)
    if consistency is not None:
        ind = consistency.indicator
        if ind["rating"] in ("questionable", "inconsistent"):
            out.append(Caveat(
                "internal_inconsistency", f"{ind['rating']} on the internal-consistency check: "
                f"{ind['note']}",
                {"mean_log_rel_bias": float(ind["mean_log_rel_bias"]),
                 "coverage": float(ind["coverage"]), "evaluated": int(ind["evaluated"])}))
    return out


def check_assumptions(estimate: Estimate, h: CaptureHistories, *, alpha: float = 0.05,
                      consistency: InternalConsistency | None = None,
                      refit: Callable[[CaptureHistories], Estimate] | None = None) -> Estimate:
    """A copy of ``estimate`` with the caveats of :func:`assumption_warnings` added to its
    ``warnings`` and listed under ``diagnostics["assumption_warnings"]``.

    A caveat is not added twice: one whose code the estimate already carries (an estimator that
    found the same problem itself says it better) or whose text is already there is skipped.
    Every estimator calls this on its result (its ``check=True``); call it yourself to add the
    internal-consistency or leave-one-list-out checks (``consistency=``, ``refit=``).

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("Kosovo_4")
    >>> est = check_assumptions(tipstat.fit_loglinear(h, "independence", check=False), h)
    >>> [w.code for w in est.warnings]
    ['lack_of_fit', 'dependence', 'heterogeneity']
    """
    if not isinstance(estimate, Estimate):
        raise InputError(f"expected a tipstat.Estimate, got {type(estimate).__name__}")
    found = assumption_warnings(h, estimate, alpha=alpha, consistency=consistency, refit=refit)
    return _with_caveats(estimate, found)


def _with_caveats(estimate: Estimate, found: Sequence[Caveat],
                  changes: Mapping[str, Any] | None = None) -> Estimate:
    """``estimate`` with the caveats ``found`` merged into its warnings and listed under
    ``diagnostics["assumption_warnings"]`` and the fields ``changes`` replaced, as one copy:
    the same result as ``check_assumptions(dataclasses.replace(estimate, **changes), h)`` when
    the checks found ``found`` (the caller makes sure the changes touch nothing they read)."""
    changes = dict(changes or {})
    diagnostics = dict(changes.pop("diagnostics", estimate.diagnostics) or {})
    diagnostics["assumption_warnings"] = list(found)
    warns = changes.pop("warnings", estimate.warnings)
    return dataclasses.replace(estimate, warnings=merge_caveats(warns, found),
                               diagnostics=diagnostics, **changes)
