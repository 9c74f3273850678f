"""Checks of an MSE estimate that users can run on their own data.

* :func:`internal_consistency` - the reliability check of Binette & Steorts (2022): each list in
  turn is a population of *known* size, estimated from the other lists' captures of its members.
  How far those estimates fall from the truth (log relative bias) and how often their intervals
  cover it tell how much to trust the same method on the full table. The method is handed in
  (e.g. :func:`tipstat.estimate_population`): checks read results, they import no estimator.
* :func:`dependence_tests` - a model-free test of list independence / homogeneity for every pair
  of lists, on the persons seen on some third list (for whom the 2 x 2 table is complete).
* :func:`assumption_warnings` / :func:`check_assumptions` - the warnings that an estimate's
  assumptions fail: lack of fit of the log-linear model, pairwise dependence that an independence
  model ignores, sparse tables. ``check_assumptions`` adds them to ``Estimate.warnings``.

Reference: Binette, O. & Steorts, R. C. (2022). On the reliability of multiple systems
estimation for the quantification of modern slavery. *Journal of the Royal Statistical Society
Series A*, 185(2), 640-676.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ._checks import is_level
from .errors import EstimationError, InputError
from .estimate import Estimate
from .histories import CaptureHistories

__all__ = [
    "InternalConsistency",
    "assumption_warnings",
    "check_assumptions",
    "dependence_tests",
    "internal_consistency",
    "sub_histories",
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
        estimated), ``failed`` (other lists whose estimate does not exist or could not be
        computed).
        """
        t = self.table
        ok = np.isfinite(t["log_rel_bias"].to_numpy(dtype=float))
        excluded = (t["status"] == "too_few_seen").to_numpy()
        lrb = t.loc[ok, "log_rel_bias"].to_numpy(dtype=float)
        cov = t.loc[ok, "covered"].dropna().astype(float)
        return pd.Series({
            "method": self.method,
            "lists": len(t),
            "evaluated": int(ok.sum()),
            "excluded": int(excluded.sum()),
            "failed": int((~ok & ~excluded).sum()),
            "mean_log_rel_bias": float(lrb.mean()) if len(lrb) else math.nan,
            "median_log_rel_bias": float(np.median(lrb)) if len(lrb) else math.nan,
            "rmse_log": float(np.sqrt(np.mean(lrb**2))) if len(lrb) else math.nan,
            "coverage": float(cov.mean()) if len(cov) else math.nan,
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
        :func:`tipstat.estimate_population`) or a lambda around one. The check is named by
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
            est = _as_estimate(method(sub))
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
    pat = h.patterns.astype(bool)
    y = np.asarray(h.counts, dtype=float)
    rows = []
    for i, j in combinations(range(h.k), 2):
        others = np.delete(pat, [i, j], axis=1).any(axis=1)
        a, b = pat[others, i], pat[others, j]
        yy = y[others]
        n11, n10 = yy[a & b].sum(), yy[a & ~b].sum()
        n01, n00 = yy[~a & b].sum(), yy[~a & ~b].sum()
        c = correction
        lor = math.log((n11 + c) * (n00 + c) / ((n10 + c) * (n01 + c)))
        se = math.sqrt(sum(1.0 / (v + c) for v in (n11, n10, n01, n00)))
        z = lor / se
        rows.append({"pair": f"{h.lists[i]}:{h.lists[j]}", "n": n11 + n10 + n01 + n00,
                     "n11": n11, "n10": n10, "n01": n01, "n00": n00, "log_or": lor, "se": se,
                     "z": z, "p": float(2 * stats.norm.sf(abs(z)))})
    out = pd.DataFrame(rows)
    # Holm step-down adjustment
    order = np.argsort(out["p"].to_numpy())
    m = len(out)
    adj = np.minimum(1.0, np.maximum.accumulate(out["p"].to_numpy()[order] * (m - np.arange(m))))
    p_holm = np.empty(m)
    p_holm[order] = adj
    out["p_holm"] = p_holm
    return out


def assumption_warnings(h: CaptureHistories, estimate: Estimate | None = None, *,
                        alpha: float = 0.05,
                        consistency: InternalConsistency | None = None) -> list[str]:
    """Warnings that the assumptions of an estimate fail on this table.

    Three checks, each at level ``alpha``, and optionally a fourth:

    1. **Lack of fit** (log-linear estimates with ``df > 0``): the deviance ``G^2`` against
       ``chi2(df)``. A model that does not fit the observed cells has no claim on the
       unobserved one.
    2. **Unmodelled dependence or heterogeneity** (independence-model estimates, or no
       estimate): :func:`dependence_tests` with Holm's correction over pairs; a pair with an
       odds ratio far from 1 among persons seen elsewhere breaks independence.
    3. **Sparse table**: fewer than 5 persons on average per observable cell, where the
       chi-square approximations and the MLE itself are unreliable.
    4. **Internal inconsistency** (when ``consistency``, the result of
       :func:`internal_consistency` for the same method, is given): its rating is
       ``"questionable"`` or ``"inconsistent"`` (``|mean log relative bias| > 0.10`` or fewer than
       half of the intervals cover the known list sizes).

    The absence of warnings does not prove the assumptions: heterogeneity that affects every
    list alike is partly invisible in the observed cells.

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("Kosovo_4")
    >>> for w in assumption_warnings(h, tipstat.fit_loglinear(h, "independence")):
    ...     print(w.split(";")[0][:72])
    lack of fit: deviance 245.9 on 10 df (p < 0.0001)
    list dependence or capture heterogeneity: 5 of 6 list pairs are associat
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"expected tipstat.CaptureHistories, got {type(h).__name__}")
    if not 0 < alpha < 1:
        raise InputError(f"alpha={alpha!r} must be between 0 and 1")
    hp = h.pooled() if h.n_strata > 1 else h
    out: list[str] = []
    if estimate is not None and math.isfinite(estimate.deviance) and math.isfinite(estimate.df) \
            and estimate.df > 0:
        p = float(stats.chi2.sf(estimate.deviance, estimate.df))
        if p < alpha:
            ptxt = "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"
            out.append(f"lack of fit: deviance {estimate.deviance:.1f} on {estimate.df:g} df "
                       f"({ptxt}); the model's assumptions are rejected and N-hat may be biased")
    independence = estimate is None or (
        not (estimate.diagnostics or {}).get("terms", ())
        and estimate.model in ("independence", "Mt", "M0"))
    if hp.k >= 3 and independence:
        t = dependence_tests(hp)
        bad = t[t["p_holm"] < alpha]
        if len(bad):
            shown = ", ".join(f"{r.pair} (odds ratio {math.exp(r.log_or):.2f})"
                              for r in bad.sort_values("p").head(3).itertuples())
            out.append(f"list dependence or capture heterogeneity: {len(bad)} of {len(t)} list "
                       f"pairs are associated among persons seen on other lists ({shown}); the "
                       "independence model is likely biased (positive association: too low)")
    if consistency is not None:
        if not isinstance(consistency, InternalConsistency):
            raise InputError("consistency must be the result of tipstat.validate.internal_consistency, "
                             f"got {type(consistency).__name__}")
        ind = consistency.indicator
        if ind["rating"] in ("questionable", "inconsistent"):
            out.append(f"{ind['rating']} on the internal-consistency check: {ind['note']}")
    cells = 2**hp.k - 1
    per_cell = float(hp.n_observed) / cells
    zeros = int(hp.n_zero_cells)
    if per_cell < 5:
        out.append(f"sparse table: {per_cell:.1f} persons per observable cell on average, "
                   f"{zeros} of {cells} cells empty; intervals and fit tests are approximate")
    return out


def check_assumptions(estimate: Estimate, h: CaptureHistories, *, alpha: float = 0.05,
                      consistency: InternalConsistency | None = None) -> Estimate:
    """A copy of ``estimate`` with :func:`assumption_warnings` added to its ``warnings`` and the
    list under ``diagnostics["assumption_warnings"]``.

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("Kosovo_4")
    >>> est = check_assumptions(tipstat.fit_loglinear(h, "independence"), h)
    >>> len(est.warnings)
    2
    """
    if not isinstance(estimate, Estimate):
        raise InputError(f"expected a tipstat.Estimate, got {type(estimate).__name__}")
    found = assumption_warnings(h, estimate, alpha=alpha, consistency=consistency)
    diagnostics = dict(estimate.diagnostics or {})
    diagnostics["assumption_warnings"] = list(found)
    warns = tuple(estimate.warnings) + tuple(w for w in found if w not in estimate.warnings)
    return dataclasses.replace(estimate, warnings=warns, diagnostics=diagnostics)
