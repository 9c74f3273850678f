"""Interval methods for the population size N, in one place.

Every estimator of :mod:`tipstat.models` takes its interval from here:

* from a maximum-likelihood fit of a log-linear model (:class:`~tipstat.models.loglinear.Fit`):
  :func:`wald_interval`, :func:`lognormal_interval`, :func:`profile_interval`;
* from bootstrap replicates: :func:`percentile_interval`, :func:`bca_interval` (both through
  :func:`quantiles_keep_inf`, which keeps infinite replicates in the ordering);
* from weighted posterior draws (importance sampling, model averaging):
  :func:`weighted_quantiles`, :func:`hpd_interval`;
* from a posterior on a grid of N: :func:`grid_quantile`;
* from unweighted draws (MCMC, parametric bootstraps of strata): :func:`equal_tailed`, whose
  limits can be floored at the observed count (N is never below the people already seen).

Examples
--------
>>> import numpy as np
>>> from tipstat.models.intervals import equal_tailed, weighted_quantiles
>>> equal_tailed(np.arange(101.0), 0.5)
(25.0, 75.0)
>>> weighted_quantiles(np.array([1.0, 2.0, 3.0]), np.array([0.2, 0.5, 0.3]), [0.5]).tolist()
[2.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize, stats
from scipy.special import gammaln, ndtri

from .poisson import poisson_newton

if TYPE_CHECKING:  # the fit type lives with the fitting code, which imports this module
    from .loglinear import Fit

__all__ = ["bca_interval", "equal_tailed", "grid_quantile", "hpd_interval", "lognormal_interval",
           "percentile_interval", "profile_interval", "quantiles_keep_inf", "wald_interval",
           "weighted_quantiles"]


# ------------------------------------------------------------------ from a log-linear fit
def wald_interval(fit: Fit, level: float = 0.95) -> tuple[float, float]:
    r"""Log-normal (Wald on the log of the undetected count) interval, as ``glm`` users and
    Rcapture's ``closedp`` compute it:

    .. math::

        [\,n + e^{\hat\beta_0 - z\, se(\hat\beta_0)},\; n + e^{\hat\beta_0 + z\, se(\hat\beta_0)}\,],
        \qquad z = \Phi^{-1}\big((1 + level) / 2\big).

    It holds the observed count ``n`` fixed, so it is too narrow when most of the population is
    observed (use :func:`lognormal_interval` or :func:`profile_interval` there).

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.models.loglinear import _fit
    >>> from tipstat.models.design import loglinear_design
    >>> h = tipstat.datasets.load("UK_5")
    >>> fit = _fit(loglinear_design(h.lists, "independence"), h.counts.astype(float))
    >>> [round(x) for x in wald_interval(fit)]
    [11985, 15133]
    """
    if not fit.existence.finite or not math.isfinite(fit.var_b0):
        return (math.nan, math.nan)
    z = float(ndtri(0.5 + level / 2))
    sd = math.sqrt(fit.var_b0)
    b0 = math.log(fit.mu0)
    return (fit.n_obs + math.exp(b0 - z * sd), fit.n_obs + math.exp(b0 + z * sd))


def lognormal_interval(fit: Fit, level: float = 0.95) -> tuple[float, float]:
    r"""Chao's (1987) log-normal interval, with the full standard error of N-hat:

    .. math::

        C = \exp\Big(z \sqrt{\log\big(1 + SE(\hat N)^2 / \hat\mu_0^2\big)}\Big),
        \qquad [\,n + \hat\mu_0 / C,\; n + \hat\mu_0 C\,],
        \qquad SE(\hat N)^2 = \hat\mu_0 + \hat\mu_0^2\, \widehat{Var}(\hat\beta_0).

    Unlike :func:`wald_interval` (which holds the observed count fixed and uses only
    ``Var(b0)``), the variance includes the Poisson term ``mu0`` of ``Var(N-hat)``, so it does not
    shrink towards zero width when most of the population is observed.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.models.loglinear import _fit
    >>> from tipstat.models.design import loglinear_design
    >>> h = tipstat.datasets.load("UK_5")
    >>> fit = _fit(loglinear_design(h.lists, "independence"), h.counts.astype(float))
    >>> [round(x) for x in lognormal_interval(fit)]
    [11976, 15146]
    """
    if not fit.existence.finite or not math.isfinite(fit.var_b0) or fit.mu0 <= 0:
        return (math.nan, math.nan)
    z = float(ndtri(0.5 + level / 2))
    c = math.exp(z * math.sqrt(math.log1p(fit.se**2 / fit.mu0**2)))
    return (fit.n_obs + fit.mu0 / c, fit.n_obs + fit.mu0 * c)


#: Above this argument :func:`_stirling_rest` uses the asymptotic series (its first omitted
#: term, ``1 / (1680 x^7)``, is below 1e-24 there); below it the direct difference loses at most
#: ``lgamma(1001) * eps ~ 1e-12``.
_SERIES_FROM = 1000.0


def _stirling_rest(x: float) -> float:
    r"""``r(x) = log Gamma(x + 1) - x log x + x`` without cancellation, for ``x >= 0``.

    For large ``x``, :math:`r(x) = \tfrac12 \log(2\pi x) + \frac{1}{12x} - \frac{1}{360x^3}
    + \frac{1}{1260x^5} - \dots`; ``r(0) = 0``.
    """
    if x <= 0.0:
        return 0.0
    if x < _SERIES_FROM:
        return float(gammaln(x + 1.0) - x * math.log(x) + x)
    inv = 1.0 / x
    inv2 = inv * inv
    return 0.5 * math.log(2.0 * math.pi * x) + inv * (1 / 12 - inv2 * (1 / 360 - inv2 / 1260))


def _rcapture_rest(N: float, y0: float) -> float:
    """``r(N) - r(N - n)`` with Rcapture's Stirling terms (``closedpCI.t``, Cormack 1992): for
    ``N > 100``, ``r(x) = log(2 pi x) / 2`` without the ``1/(12 x)`` terms, and ``r(y0) = y0``
    when ``y0 <= 1`` (where Rcapture drops the ``log(n0 / N) / 2`` term)."""
    if N <= 100:
        return _stirling_rest(N) - _stirling_rest(y0)
    r_y0 = 0.5 * math.log(2.0 * math.pi * y0) if y0 > 1 else y0
    return 0.5 * math.log(2.0 * math.pi * N) - r_y0


def _poisson_gap(y: float, m: float) -> float:
    """``y log(y / m) - y + m`` (half a Poisson deviance term; ``>= 0``) accurately when
    ``y`` is close to ``m``: ``m ((1 + u) log1p(u) - u)`` with ``u = (y - m) / m``."""
    if y <= 0.0:
        return m
    u = (y - m) / m
    return m * ((1.0 + u) * math.log1p(u) - u)


def profile_interval(fit: Fit, level: float = 0.95, *,
                     stirling: bool = False) -> tuple[tuple[float, float], float]:
    r"""Multinomial profile-likelihood interval for N, as Rcapture's ``closedpCI.t``.

    For each candidate ``N`` the unobserved cell is given the count ``y_0 = N - n`` and the model
    is fitted to all ``2**K`` cells; the profile log-likelihood is

    .. math::

        \ell(N) = \log\Gamma(N+1) - \log\Gamma(N-n+1)
                  + \sum_{c} y_c \log(\hat\mu_c(N) / N),

    and the interval is ``{N : 2 (max ell - ell(N)) <= chi2_1(level)}``. The upper limit is
    searched without bound (Rcapture stops at ``3 N-hat`` and reports ``> 3 N-hat``).

    **How it keeps its digits at any count.** Written as above, every term is of the order of
    ``N log N`` (``~5e17`` for a table of ``1e12``-sized counts), and the drop of ~2 that decides
    the limits is lost in rounding. Because the fitted cells sum to ``N`` (the intercept's score
    equation), :math:`\sum_c y_c \log(\hat\mu_c/N) = \sum_c y_c \log(y_c/N) - D(N)/2` with the
    Poisson deviance ``D(N)`` of the fit, and the log-factorials collapse with it:

    .. math::

        \ell(N) = r(N) - r(N - n) - D(N)/2 + \text{const}, \qquad
        r(x) = \log\Gamma(x+1) - x\log x + x = \tfrac12\log(2\pi x) + \tfrac{1}{12x} - \dots

    ``r`` is evaluated by its series (no cancellation). The deviance is taken relative to the
    fit at ``N-hat`` (``beta-hat``, ``mu-hat``): with ``beta = beta-hat + delta``,

    .. math::

        \tfrac12 D(N) = \big[y_0 \log(y_0/\hat\mu_0) - y_0 + \hat\mu_0\big]
            + \min_\delta \sum_c \big[\hat\mu_c\, \mathrm{expm1}(x_c'\delta)
            - y_c\, x_c'\delta\big] + \text{const},

    both parts small and computed without subtracting large numbers. (Rescaling the table does
    not give this: the deviance part scales exactly with a factor ``c`` of the counts, but
    ``r(N) - r(N - n)`` does not, so the multinomial statistic is not ``c`` times that of the
    scaled-down table.) For a table times ``c`` the limits then move as the theory says: the
    estimate by exactly ``c``, the relative half-width as ``1/sqrt(c)``.

    Parameters
    ----------
    fit : Fit
        The maximum-likelihood fit of the model (:func:`tipstat.models.loglinear._fit`).
    level : float
        Coverage of the interval.
    stirling : bool
        Use Rcapture's correction term (Cormack 1992): for ``N > 100`` the log-factorials are
        replaced by Stirling's approximation without its ``1/(12 N)`` terms. This reproduces
        Rcapture's limits to ~1e-6; the default exact ``lgamma`` differs from them by up to
        ~3e-4 relative on small tables (e.g. Korea_3, N ~ 150), where the exact one is right.

    Returns
    -------
    (lower, upper), n_hat_multinomial

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.models.loglinear import _fit
    >>> from tipstat.models.design import loglinear_design
    >>> h = tipstat.datasets.load("UK_5")
    >>> fit = _fit(loglinear_design(h.lists, "independence"), h.counts.astype(float))
    >>> (lo, hi), n_mult = profile_interval(fit)
    >>> round(lo), round(hi), round(n_mult)
    (11985, 15166, 13438)
    """
    if not fit.existence.finite:
        return (math.nan, math.nan), math.nan
    n = fit.n_obs
    ex = fit.existence
    rows = np.concatenate([[True], ex.facial])
    X = fit.design.matrix[np.ix_(rows, ex.columns)]
    y_obs = fit.y[ex.facial]
    beta_hat = fit.beta[ex.columns]
    eta_hat = X @ beta_hat                      # log mu-hat on the unobserved and facial cells
    mu_hat = np.exp(eta_hat)
    mu0 = float(mu_hat[0])
    state = {"delta": np.zeros(X.shape[1])}

    def loglik(N: float) -> float:
        y0 = N - n
        y = np.concatenate([[y0], y_obs])
        res = poisson_newton(X, y, state["delta"], offset=eta_hat)
        delta = res.beta
        state["delta"] = delta
        xd = X @ delta
        half_dev = _poisson_gap(y0, mu0) + float(mu_hat @ np.expm1(xd) - y @ xd)
        rest = _rcapture_rest(N, y0) if stirling else _stirling_rest(N) - _stirling_rest(y0)
        return rest - half_dev

    # maximise over t = log(N - n)
    t_hat = math.log(max(fit.mu0, 1e-8))
    opt = optimize.minimize_scalar(lambda t: -loglik(n + math.exp(t)),
                                   bracket=(t_hat - 0.5, t_hat), tol=1e-10)
    n_mult = n + math.exp(opt.x)
    l_max = -opt.fun
    crit = stats.chi2.ppf(level, 1) / 2.0

    def g(N: float) -> float:
        return l_max - loglik(N) - crit

    lower = n
    if g(n) > 0:
        lower = optimize.brentq(g, n, n_mult, xtol=1e-10, rtol=1e-12)
    upper = math.inf
    state["delta"] = np.zeros(X.shape[1])
    hi = n + 2.0 * (n_mult - n) + 1.0
    for _ in range(60):
        if g(hi) > 0:
            upper = optimize.brentq(g, n_mult, hi, xtol=1e-10, rtol=1e-12)
            break
        hi = n + 2.0 * (hi - n)
    return (lower, upper), n_mult


# ------------------------------------------------------------------ from bootstrap replicates
def quantiles_keep_inf(draws: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles (numpy's default, type 7) that keep ``inf`` draws (as
    ``inf``) in the ordering: a replicate whose estimate is infinite counts as larger than every
    finite one, and a quantile that falls among them is ``inf``.

    Examples
    --------
    >>> quantiles_keep_inf(np.array([1.0, 2.0, np.inf, np.inf]), np.array([0.0, 1.0])).tolist()
    [1.0, inf]
    """
    x = np.sort(draws)
    finite = np.isfinite(x)
    big = np.where(finite, x, np.nan)
    top = np.nanmax(big) if finite.any() else 0.0
    filled = np.where(finite, x, top * 10 + 1e300)
    q = np.quantile(filled, np.clip(probs, 0, 1))
    return np.where(q > top * 10, np.inf, q)


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval: the ``alpha/2`` and ``1 - alpha/2`` quantiles
    (``alpha = 1 - level``) of the replicates, ``nan`` ones dropped, ``inf`` ones kept
    (:func:`quantiles_keep_inf`).

    Examples
    --------
    >>> percentile_interval(np.arange(1.0, 102.0), 0.5)
    (26.0, 76.0)
    """
    d = np.asarray(draws, dtype=np.float64)
    d = d[~np.isnan(d)]
    if len(d) == 0:
        return (math.nan, math.nan)
    a = (1 - level) / 2
    lo, hi = quantiles_keep_inf(d, np.array([a, 1 - a]))
    return float(lo), float(hi)


def bca_interval(draws: np.ndarray, theta: float, jack: np.ndarray, weights: np.ndarray,
                 level: float = 0.95) -> tuple[tuple[float, float], float, float]:
    r"""Bias-corrected and accelerated bootstrap interval (Efron 1987).

    The limits are the quantiles of the replicates ``N*`` at

    .. math::

        \Phi\Big(z_0 + \frac{z_0 + z_q}{1 - a (z_0 + z_q)}\Big),
        \quad z_q = \Phi^{-1}(\alpha/2),\ \Phi^{-1}(1 - \alpha/2),
        \quad z_0 = \Phi^{-1}\big(\#\{N^* < \hat N\} / B\big)\ (\text{ties count half}),

    with the acceleration from grouped jackknife values ``N_(-c)`` of weights ``w_c``:
    :math:`a = \sum w_c d_c^3 / (6 (\sum w_c d_c^2)^{3/2})`, ``d_c = mean - N_(-c)``.

    Returns ``((lower, upper), z0, a)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> (lo, hi), z0, a = bca_interval(rng.normal(10, 1, 4000), 10.0, np.array([9.9, 10.1]),
    ...                                np.array([1.0, 1.0]))
    >>> round(lo, 1), round(hi, 1), abs(a) < 1e-12
    (8.1, 12.0, True)
    """
    d = np.asarray(draws, dtype=np.float64)
    d = d[~np.isnan(d)]
    if len(d) == 0 or not math.isfinite(theta):
        return (math.nan, math.nan), math.nan, math.nan
    prop = (np.sum(d < theta) + 0.5 * np.sum(d == theta)) / len(d)
    prop = min(max(prop, 0.5 / len(d)), 1 - 0.5 / len(d))
    z0 = float(stats.norm.ppf(prop))
    jack = np.asarray(jack, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(jack)
    a = 0.0
    if ok.sum() >= 2:
        w, jack = w[ok], jack[ok]
        mean = np.sum(w * jack) / w.sum()
        dd = mean - jack
        den = np.sum(w * dd**2) ** 1.5
        a = float(np.sum(w * dd**3) / (6 * den)) if den > 0 else 0.0
    alpha = 1 - level
    zq = stats.norm.ppf([alpha / 2, 1 - alpha / 2])
    adj = stats.norm.cdf(z0 + (z0 + zq) / (1 - a * (z0 + zq)))
    lo, hi = quantiles_keep_inf(d, adj)
    return (float(lo), float(hi)), z0, a


# ------------------------------------------------------------------ from weighted draws
def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float],
                       order: np.ndarray | None = None) -> np.ndarray:
    r"""Weighted quantiles: for each ``q`` the first sorted value whose cumulative normalised
    weight reaches it, :math:`Q(q) = v_{(j)},\ j = \min\{j : \sum_{i \le j} w_{(i)} \ge q\}`.

    ``order`` is the stable sorting permutation of ``values`` when already known.

    Examples
    --------
    >>> weighted_quantiles(np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 2.0]),
    ...                    [0.25, 0.5, 0.9]).tolist()
    [1.0, 2.0, 3.0]
    """
    if order is None:
        order = np.argsort(values, kind="stable")
    c = weights[order]
    np.cumsum(c, out=c)
    c /= c[-1]
    return np.array([values[order[min(np.searchsorted(c, q), len(c) - 1)]] for q in qs])


def hpd_interval(values: np.ndarray, weights: np.ndarray, level: float,
                 order: np.ndarray | None = None) -> tuple[float, float]:
    """Highest-posterior-density interval of a weighted sample: the shortest interval
    ``[v_(i), v_(j)]`` of sorted values holding at least ``level`` of the weight (as coda's
    ``HPDinterval`` for unweighted draws).

    ``order`` is the stable sorting permutation of ``values`` when already known.

    Examples
    --------
    >>> v = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    >>> hpd_interval(v, np.array([0.1, 0.3, 0.3, 0.2, 0.1]), 0.8)
    (1.0, 3.0)
    """
    if order is None:
        order = np.argsort(values, kind="stable")
    c = weights[order]
    np.cumsum(c, out=c)
    c /= c[-1]
    need = np.concatenate([[0.0], c[:-1]])          # mass strictly below v[i] ...
    need += level
    need -= 1e-12                                   # ... + level (- rounding slack)
    # the i whose interval can hold the level are a prefix (need is non-decreasing)
    i = np.arange(int(np.searchsorted(need, c[-1], side="right")))
    j = np.searchsorted(c, need[i])                 # first j with mass in [v_i, v_j] >= level
    width = values[order[j]] - values[order[i]]
    best = int(np.argmin(width))
    return float(values[order[i[best]]]), float(values[order[j[best]]])


def grid_quantile(n: np.ndarray, cdf: np.ndarray, q: float) -> float:
    """Quantile of a posterior on a grid: the smallest grid value ``n_i`` whose CDF exceeds
    ``q`` (``cdf[i] > q``; the last grid value if none does), as dga's ``posteriorQuantiles``.

    Examples
    --------
    >>> grid_quantile(np.array([10.0, 11.0, 12.0]), np.array([0.2, 0.7, 1.0]), 0.5)
    11.0
    """
    return float(n[min(int(np.searchsorted(cdf, q, side="right")), n.size - 1)])


# ------------------------------------------------------------------ from unweighted draws
def equal_tailed(draws: np.ndarray, level: float = 0.95, *, floor: float | np.ndarray | None = None,
                 axis: int | None = None) -> tuple:
    r"""Equal-tailed interval of draws: the ``alpha/2`` and ``1 - alpha/2`` quantiles
    (``alpha = 1 - level``; numpy's linear interpolation), each raised to ``floor`` when given:

    .. math::

        [\max(Q(\alpha/2), n_{obs}),\ \max(Q(1 - \alpha/2), n_{obs})].

    The floor is the observed count: N is never below the people already seen, whatever the
    draws of a parametric bootstrap say. With ``axis``, the quantiles are taken along it (one
    interval per column) and arrays are returned; otherwise floats.

    Examples
    --------
    >>> equal_tailed(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 0.5)
    (2.0, 4.0)
    >>> equal_tailed(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 0.5, floor=3.0)
    (3.0, 4.0)
    >>> lo, hi = equal_tailed(np.array([[1.0, 10.0], [3.0, 30.0]]), 0.5, axis=0)
    >>> lo.tolist(), hi.tolist()
    ([1.5, 15.0], [2.5, 25.0])
    """
    a = (1 - level) / 2
    d = np.asarray(draws)
    if axis is None:
        lo, hi = float(np.quantile(d, a)), float(np.quantile(d, 1 - a))
        if floor is not None:
            lo, hi = max(lo, float(floor)), max(hi, float(floor))
        return lo, hi
    lo, hi = np.quantile(d, a, axis=axis), np.quantile(d, 1 - a, axis=axis)
    if floor is not None:
        lo, hi = np.maximum(lo, floor), np.maximum(hi, floor)
    return lo, hi
