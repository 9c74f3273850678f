"""Poisson log-linear Multiple Systems Estimation.

The counts of the ``2**K - 1`` observable capture patterns are modelled as independent Poisson
with ``log mu = X beta`` (see :mod:`tipstat.models.design`). The unobserved pattern has only the
intercept, so

.. math::

    \\hat N = n_{obs} + \\hat\\mu_0 = n_{obs} + e^{\\hat\\beta_0},
    \\qquad
    SE(\\hat N) = \\sqrt{\\hat\\mu_0 + \\hat\\mu_0^2\\, \\widehat{Var}(\\hat\\beta_0)} .

Every fit is checked for existence and identifiability first (:mod:`tipstat.models.poisson`);
where the MLE does not exist or N is not identifiable, the result says so and ``n_hat`` is
``inf`` / ``nan`` instead of the huge numbers of non-converged iterations.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.special import gammaln

from .._checks import check_ci, check_level
from ..errors import InputError
from ..estimate import Caveat, Estimate
from ..histories import CaptureHistories
from .checks import attach_checks, independence_submodel
from .design import Design, loglinear_design
from .intervals import lognormal_interval, profile_interval, wald_interval
from .poisson import Existence, check_existence, poisson_newton, reduced_full_rank

__all__ = ["Fit", "fit_design", "fit_loglinear", "lognormal_interval", "profile_interval",
           "wald_interval"]

CI_METHODS = ("profile", "profile_rcapture", "wald", "lognormal", "none")


class Fit:
    """The maximum-likelihood fit of one design to one table (internal, reused by intervals,
    model search and bootstraps).

    Attributes: ``design``, ``y``, ``existence``, ``beta`` (full length, ``nan`` for columns not
    estimable on the facial set), ``mu`` (fitted observable cells), ``mu0``, ``var_b0``,
    ``loglik``, ``deviance``, ``converged``, ``iterations``.
    """

    __slots__ = ("beta", "converged", "cov", "design", "deviance", "existence", "iterations",
                 "loglik", "mu", "mu0", "n_obs", "var_b0", "y")

    def __init__(self, design: Design, y: np.ndarray, existence: Existence, beta: np.ndarray,
                 mu: np.ndarray, cov: np.ndarray | None, converged: bool, iterations: int):
        self.design = design
        self.y = y
        self.existence = existence
        self.beta = beta
        self.mu = mu
        self.cov = cov
        self.converged = converged
        self.iterations = iterations
        self.n_obs = float(y.sum())
        self.mu0 = math.exp(beta[0]) if existence.finite else math.nan
        self.var_b0 = float(cov[0, 0]) if cov is not None else math.nan
        pos = y > 0
        yp, mp = y[pos], mu[pos]
        add = np.add.reduce  # = ndarray.sum without its Python wrapper (the same reduction)
        self.loglik = float(add(yp * np.log(mp)) - add(mu) - add(gammaln(y + 1)))
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = 2.0 * (add(yp * np.log(yp / mp)) - add(y - mu))
        self.deviance = float(max(dev, 0.0))

    @property
    def n_hat(self) -> float:
        st = self.existence.status
        if st == "does_not_exist":
            return math.inf
        if st == "not_identifiable" or not self.converged:
            return math.nan
        return self.n_obs + self.mu0

    @property
    def se(self) -> float:
        if not self.existence.finite:
            return math.nan
        return math.sqrt(self.mu0 + self.mu0**2 * self.var_b0)

    @property
    def n_params(self) -> int:
        return self.design.n_params

    @property
    def df(self) -> int:
        return len(self.y) - self.design.n_params

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + math.log(self.n_obs) * self.n_params


def _fit(design: Design, y: np.ndarray, lists: Sequence[str] | None = None) -> Fit:
    """Fit ``design`` to observable counts ``y`` with the existence check."""
    X = design.observable
    p = X.shape[1]
    full_rank = design.rank == p
    if full_rank:
        # a zero margin proves the MLE is on the boundary: take the exact shortcut first
        fast = _fit_zero_margins(design, y, lists)
        if fast is not None:
            return fast
        res = poisson_newton(X, y)
        if res.converged and res.hessian_inv is not None:
            exist = Existence("ok", np.ones(len(y), dtype=bool), np.arange(p),
                              "the MLE exists and N is identified")
            return Fit(design, y, exist, res.beta, res.mu, res.hessian_inv, True, res.iterations)
    labels = CaptureHistories(np.zeros(len(y)), lists).pattern_labels() if lists else None
    exist = check_existence(X, y, labels)
    beta = np.full(p, np.nan)
    mu = np.zeros(len(y))
    cov = None
    converged = True
    iterations = 0
    if exist.finite:
        cols = exist.columns
        F = exist.facial
        res = poisson_newton(X[np.ix_(F, cols)], y[F])
        beta[cols] = res.beta
        mu[F] = res.mu
        converged = res.converged
        iterations = res.iterations
        if res.hessian_inv is not None:
            cov = np.full((p, p), np.nan)
            cov[np.ix_(cols, cols)] = res.hessian_inv
    else:
        # still report the fit on the facial set for goodness of fit, where it is defined
        F = exist.facial
        cols = exist.columns
        res = poisson_newton(X[np.ix_(F, cols)], y[F])
        mu[F] = res.mu
        converged = res.converged
        iterations = res.iterations
    return Fit(design, y, exist, beta, mu, cov, converged, iterations)


def _cell_label(code: int, lists: Sequence[str] | None) -> str:
    """``'LA+NG'`` for pattern code ``code`` (or the code itself without list names)."""
    if not lists:
        return str(code)
    return "+".join(name for j, name in enumerate(lists) if code >> j & 1)


@lru_cache(maxsize=4096)
def _boundary_reason(lists: tuple[str, ...] | None, empty: tuple[int, ...]) -> str:
    """The reason of an extended MLE whose empty cells (observable indices; the first 13 are
    enough to say) are forced by zero margins (once per lists and cells: it is text)."""
    outside = ", ".join(_cell_label(i + 1, lists) for i in empty[:12]) + (
        ", ..." if len(empty) > 12 else "")
    return (f"the MLE is on the boundary: empty cells {outside} have fitted value 0 "
            "(their parameters are infinite: no one is on those combinations of "
            "lists); the extended MLE of N is finite and unique")


_MARGIN_COLUMNS: weakref.WeakKeyDictionary[Design, tuple[np.ndarray, np.ndarray]] = \
    weakref.WeakKeyDictionary()


def _margin_columns(design: Design) -> tuple[np.ndarray, np.ndarray]:
    """The columns of one sign and ``|X|`` of a design's observable rows, once per design."""
    known = _MARGIN_COLUMNS.get(design)
    if known is None:
        X = design.observable
        known = _MARGIN_COLUMNS[design] = (np.all(X >= 0, axis=0) | np.all(X <= 0, axis=0),
                                           np.abs(X))
    return known


def _fit_zero_margins(design: Design, y: np.ndarray, lists: Sequence[str] | None) -> Fit | None:
    """Fast exact path for the commonest boundary case, without linear programs.

    A column with entries of one sign whose margin ``x' y`` is 0 forces every cell it touches to
    be empty in any table with the same margins: those cells leave the facial set and the column
    becomes infinite. The model is refitted on the remaining cells without those columns, and
    the convergence certificate of :func:`~tipstat.models.poisson.poisson_newton` proves that
    the MLE of the reduced problem exists. Returns ``None`` (use the exact check) otherwise.
    """
    X = design.observable
    p = X.shape[1]
    signed, abs_x = _margin_columns(design)
    margin = abs_x.T @ y
    if margin.all():  # no zero margin (the common case): nothing to reduce
        return None
    zero_cols = (signed & (margin == 0)).nonzero()[0]
    zero_cols = zero_cols[zero_cols > 0]
    if len(zero_cols) == 0:
        return None
    cells = ~np.any(X[:, zero_cols] != 0, axis=1)
    keep = np.ones(p, dtype=bool)
    keep[zero_cols] = False
    cols = np.flatnonzero(keep)
    if not reduced_full_rank(X, cells, cols):
        return None
    Xr = X[np.ix_(cells, cols)]
    # the same convergence certificate as the main path: a vanishing Newton decrement with
    # vanishing steps proves a finite maximum of the reduced problem
    res = poisson_newton(Xr, y[cells])
    if not res.converged or res.hessian_inv is None:
        return None
    beta = np.full(p, np.nan)
    beta[cols] = res.beta
    mu = np.zeros(len(y))
    mu[cells] = res.mu
    cov = np.full((p, p), np.nan)
    cov[np.ix_(cols, cols)] = res.hessian_inv
    exist = Existence("extended", cells, cols, _boundary_reason(
        tuple(lists) if lists else None, tuple(np.flatnonzero(~cells)[:13].tolist())))
    return Fit(design, y, exist, beta, mu, cov, True, int(res.iterations))


def fit_design(
    h: CaptureHistories,
    design: Design,
    *,
    level: float = 0.95,
    ci: str = "profile",
    label: str = "loglinear",
    check: bool = True,
) -> Estimate:
    """Fit any log-linear :class:`~tipstat.models.design.Design` and return an
    :class:`~tipstat.Estimate`. ``fit_loglinear`` and the heterogeneity models use this.

    Parameters
    ----------
    h : CaptureHistories
        Unstratified capture histories.
    design : Design
        The model (the model specification): one row per pattern, ``2**K`` rows.
    level : float
        Interval coverage.
    ci : {"profile", "profile_rcapture", "wald", "lognormal", "none"}
        Interval method, as in :func:`fit_loglinear`.
    label : str
        Written to ``Estimate.method`` (the name of the method in tables).
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` to the result (lack
        of fit, sparse table, two lists; dependence and heterogeneity when the design is
        independence or a submodel of it). False for inner fits.

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("UK_5")
    >>> d = tipstat.loglinear_design(h.lists, "independence")
    >>> round(tipstat.fit_design(h, d, label="mine").n_hat, 2)
    13444.13
    """
    est = _estimate_design(h, design, level, ci, "fit_design", label)
    return attach_checks(est, h, check=check)


def _estimate_design(h: CaptureHistories, design: Design, level: float, ci: str, caller: str,
                     label: str) -> Estimate:
    _check_histories(h)
    check_ci(ci, CI_METHODS, caller)
    check_level(level, caller)
    if design.matrix.shape[0] != 2**h.k:
        raise InputError(f"the design has {design.matrix.shape[0]} rows; {2**h.k} expected "
                         f"for {h.k} lists")
    y = np.asarray(h.counts, dtype=np.float64)
    if y.sum() <= 0:
        raise InputError("the capture histories have no observed person")
    fit = _fit(design, y, h.lists)
    return estimate_from_fit(fit, ci=ci, level=level, method=label)


class _WithoutList:
    """``refit(table without one list)`` of the leave-one-list-out check: the same log-linear
    model, its terms on the remaining lists (log-normal interval, no checks)."""

    def __init__(self, lists: Sequence[str], terms: Sequence[int]):
        self.terms = [tuple(x for j, x in enumerate(lists) if m >> j & 1) for m in terms
                      if m.bit_count() >= 2]

    def __call__(self, sub: CaptureHistories) -> Estimate:
        keep = [":".join(t) for t in self.terms if set(t) <= set(sub.lists)]
        return fit_loglinear(sub, keep or "independence", ci="lognormal", check=False)


_INDEPENDENCE: weakref.WeakKeyDictionary[Design, bool] = weakref.WeakKeyDictionary()


def _assumes_independence(design: Design) -> bool:
    """:func:`~tipstat.models.checks.independence_submodel` of a design, computed once per
    design (its matrix is read-only; designs are cached, so every fit of a model asks again)."""
    known = _INDEPENDENCE.get(design)
    if known is None:
        known = _INDEPENDENCE[design] = independence_submodel(design.matrix)
    return known


def estimate_from_fit(fit: Fit, *, ci: str = "profile", level: float = 0.95,
                      method: str = "loglinear") -> Estimate:
    """Turn an internal :class:`Fit` into the public :class:`~tipstat.Estimate`."""
    ex = fit.existence
    status = ex.status if fit.converged or not ex.finite else "not_converged"
    n_mult = math.nan
    if ci.startswith("profile"):
        interval, n_mult = profile_interval(fit, level, stirling=ci == "profile_rcapture") \
            if status in ("ok", "extended") else ((math.nan, math.nan), math.nan)
    elif ci in ("wald", "lognormal"):
        func = wald_interval if ci == "wald" else lognormal_interval
        interval = func(fit, level) if status in ("ok", "extended") else (math.nan, math.nan)
    else:
        interval = (math.nan, math.nan)
    se_beta = np.sqrt(fit.cov.diagonal()) if fit.cov is not None else np.full(fit.n_params, np.nan)
    labels = fit.design.columns
    diagnostics = {
        "reason": ex.reason,
        "converged": fit.converged,
        "iterations": fit.iterations,
        "existence": ex.sparsemse_code,
        "zero_fitted_cells": len(ex.facial) - int(np.count_nonzero(ex.facial)),
        "estimable_params": len(ex.columns),
        "coefficients": (list(labels), fit.beta.copy(), se_beta),
        "fitted": fit.mu.copy(),
        "mu0": fit.mu0,
        "terms": fit.design.terms,
        "assumes_independence": _assumes_independence(fit.design),
    }
    if ci.startswith("profile"):
        diagnostics["n_hat_multinomial"] = n_mult
    warns: list[str] = []
    if status == "extended":
        warns.append(ex.reason)
    elif status != "ok":
        warns.append(ex.reason if status != "not_converged" else Caveat(
            "convergence", f"the Newton fit did not converge ({fit.iterations} iterations)",
            {"iterations": fit.iterations}))
    return Estimate(
        n_hat=fit.n_hat if status != "not_converged" else math.nan,
        ci=interval,
        level=level,
        n_observed=fit.n_obs,
        method=method,
        model=fit.design.name,
        status=status,
        ci_method=ci if ci != "none" else "",
        se=fit.se,
        deviance=fit.deviance,
        df=fit.df,
        aic=fit.aic,
        bic=fit.bic,
        loglik=fit.loglik,
        n_params=fit.n_params,
        diagnostics=diagnostics,
        warnings=tuple(warns),
    )


def _check_histories(h: object) -> None:
    if not isinstance(h, CaptureHistories):
        raise InputError(
            f"expected tipstat.CaptureHistories, got {type(h).__name__}; build one with "
            "CaptureHistories.from_frame(df)"
        )
    if h.n_strata > 1:
        raise InputError(
            f"these capture histories have {h.n_strata} strata ({', '.join(h.strata)}); fit each "
            "stratum (`for key, hs in h.by_stratum()`) or the pooled table (`h.pooled()`)"
        )


def fit_loglinear(
    h: CaptureHistories,
    terms: str | Sequence[str] | Sequence[Sequence[str]] = "independence",
    *,
    level: float = 0.95,
    ci: str = "profile",
    check: bool = True,
) -> Estimate:
    """Fit a Poisson log-linear MSE model and estimate the population size.

    .. math::

        \\log \\mu_c = \\beta_0 + \\sum_j \\beta_j x_{cj} + \\sum_{S} \\beta_S \\prod_{j\\in S} x_{cj},
        \\qquad \\hat N = n_{obs} + e^{\\hat\\beta_0}

    Parameters
    ----------
    h : CaptureHistories
        Unstratified capture histories over K >= 2 lists.
    terms : str or list
        ``"independence"``, ``"all2"`` (every two-way interaction), ``"allN"``, a formula
        ``"LA*NG + PF:GO"``, or a list ``["LA:NG", "PF:GO"]``. Any order; the hierarchical
        closure is added.
    ci : {"profile", "profile_rcapture", "wald", "lognormal", "none"}
        ``"profile"``: multinomial profile likelihood (as Rcapture ``closedpCI.t``, with exact
        log-factorials); ``"profile_rcapture"``: the same with Rcapture's Stirling correction,
        to reproduce its numbers digit for digit; ``"wald"``: log-normal
        ``n + exp(b0 -/+ z se(b0))`` (as from ``glm``, SparseMSE; conditional on the observed
        count, so too narrow when most of the population is observed); ``"lognormal"``: Chao's
        (1987) interval with the full SE of N-hat (:func:`lognormal_interval`).
    level : float
        Interval coverage.
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` (lack of fit, sparse
        table, two lists; dependence and heterogeneity for the independence model) and, up to
        :data:`tipstat.models.checks.LOO_MAX_LISTS` lists, the leave-one-list-out check
        (``unstable``: the same terms refitted without each list). False for inner fits.

    Returns
    -------
    Estimate
        ``status`` is ``"ok"``, ``"extended"`` (boundary MLE, N finite), ``"does_not_exist"``
        (``n_hat = inf``) or ``"not_identifiable"`` (``n_hat = nan``); ``diagnostics["reason"]``
        says why. Deviance, df, AIC and BIC follow Rcapture (Poisson log-likelihood over the
        observable cells, BIC penalty ``log(n_obs)`` per parameter).

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("UK_5")
    >>> est = tipstat.fit_loglinear(h, "independence")
    >>> round(est.n_hat, 2), [round(x) for x in est.ci]
    (13444.13, [11985, 15166])
    >>> tipstat.fit_loglinear(tipstat.datasets.load("Korea_3"), "all2").status
    'does_not_exist'
    """
    _check_histories(h)
    design = loglinear_design(h.lists, terms)
    est = _estimate_design(h, design, level, ci, "fit_loglinear", "loglinear")
    return attach_checks(est, h, check=check,
                         refit=_WithoutList(h.lists, design.terms) if check else None)
