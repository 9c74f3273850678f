"""Bootstrap intervals for N that carry the model-selection step.

Each replicate draws a new table and re-runs the *whole* estimator on it, selection included
(Chan, Silverman & Vincent 2021 show that intervals conditional on the selected model cover far
too rarely). Replicate tables:

* ``"nonparametric"``: resample the ``n`` observed individuals with replacement, i.e. the cell
  counts are ``Multinomial(n, y / n)``;
* ``"parametric"``: independent ``Poisson(mu_c)`` counts from the fitted cells of the model
  chosen on the data (the Poisson model the log-linear fit assumes).

Intervals from the replicates ``N*_1..N*_B``:

* ``"percentile"``: the ``alpha/2`` and ``1 - alpha/2`` quantiles;
* ``"bca"`` (Efron 1987): quantiles at ``Phi(z0 + (z0 + z_q) / (1 - a (z0 + z_q)))`` for
  ``z_q = Phi^-1(alpha/2), Phi^-1(1 - alpha/2)``, with bias correction
  ``z0 = Phi^-1(#{N* < N-hat} / B)`` (ties count half) and acceleration from the jackknife that
  deletes one individual at a time (grouped by cell, each weighted by its count ``y_c``):
  ``a = sum y_c d_c^3 / (6 (sum y_c d_c^2)^1.5)``, ``d_c = mean - N_(-c)``.

Replicate ``i`` uses the ``i``-th child of ``SeedSequence(seed)``, so a seed gives the same
interval on one core, on all local cores, or on a Dask cluster (:mod:`tipstat.parallel`).
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from .._checks import DEFAULT_SEED, check_ci, check_level, check_seed
from ..errors import InputError
from ..estimate import Caveat, Estimate
from ..histories import CaptureHistories
from .checks import attach_checks
from .intervals import bca_interval, percentile_interval
from .loglinear import _check_histories
from .selection import CRITERIA, _space, run_selection, select_loglinear

__all__ = ["bca_interval", "bootstrap", "percentile_interval"]

KINDS = ("nonparametric", "parametric")
CI_KINDS = ("bca", "percentile")


class SelectionStatistic:
    """``y -> (N-hat, model label)`` of a selection rule (picklable, for worker processes)."""

    def __init__(self, lists: tuple[str, ...], criterion: str, options: dict):
        self.lists = lists
        self.criterion = criterion
        self.options = dict(options)
        self.order = 2 if criterion in ("stepwise", "bhs") else int(options.get("max_order", 2))

    def __call__(self, y: np.ndarray) -> tuple[float, str]:
        if y.sum() <= 0:
            return math.nan, ""
        space = _space(self.lists, self.order)
        opts = {k: v for k, v in self.options.items() if k != "max_order"}
        sel = run_selection(space, np.asarray(y, dtype=np.float64), self.criterion,
                            detail=False, **opts)
        return sel.n_hat, space.label(sel.model)


def _takes_check(func: Callable[..., Any]) -> bool:
    """Whether ``func`` has a ``check`` keyword (tipstat's estimators: replicates skip it)."""
    try:
        return "check" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


class EstimatorStatistic:
    """``y -> (N-hat, model)`` of any estimator ``f(CaptureHistories) -> Estimate`` (without
    its checks, where it takes ``check``: replicates do not pay for them)."""

    def __init__(self, lists: tuple[str, ...], func: Callable[..., Estimate], options: dict):
        self.lists = lists
        self.func = func
        self.options = dict(options)
        if _takes_check(func):
            self.options["check"] = False

    def __call__(self, y: np.ndarray) -> tuple[float, str]:
        if y.sum() <= 0:
            return math.nan, ""
        est = self.func(CaptureHistories(np.asarray(y), self.lists), **self.options)
        return (est.n_hat if est.status in ("ok", "extended") else
                (math.inf if est.status == "does_not_exist" else math.nan)), est.model


class _Replicate:
    """Draw replicate table ``i`` from its own seed and evaluate the statistic."""

    def __init__(self, statistic: Callable, kind: str, y: np.ndarray, mu: np.ndarray | None):
        self.statistic = statistic
        self.kind = kind
        self.y = y
        self.n = round(float(y.sum()))
        self.prob = y / y.sum()
        self.mu = mu

    def __call__(self, i: int, ss: np.random.SeedSequence) -> tuple[float, str]:
        rng = np.random.default_rng(ss)
        if self.kind == "nonparametric":
            ystar = rng.multinomial(self.n, self.prob).astype(np.float64)
        else:
            ystar = rng.poisson(self.mu).astype(np.float64)
        return self.statistic(ystar)


class _Jackknife:
    def __init__(self, statistic: Callable, y: np.ndarray):
        self.statistic = statistic
        self.y = y

    def __call__(self, c: int) -> float:
        yj = self.y.copy()
        yj[c] -= 1
        return self.statistic(yj)[0]


def bootstrap(
    h: CaptureHistories,
    estimator: str | Callable[..., Estimate] = "stepwise",
    *,
    level: float = 0.95,
    ci: str = "bca",
    seed: int = DEFAULT_SEED,
    n_boot: int = 1000,
    kind: str = "nonparametric",
    n_jobs: int | None = None,
    backend: str = "auto",
    client: Any = None,
    progress: bool = False,
    check: bool = True,
    **options: Any,
) -> Estimate:
    """Bootstrap interval for N that re-runs the whole estimator (model selection included) on
    every replicate.

    Parameters
    ----------
    h : CaptureHistories
        Unstratified capture histories.
    estimator : str or callable
        The estimator re-run on every replicate (the model specification): a rule of
        :func:`tipstat.select_loglinear` (``"stepwise"``, ``"bhs"``, ``"aic"``, ``"bic"``; its
        keyword options such as ``pthresh``, ``max_order``, ``average`` go in ``**options``),
        or any estimator ``f(h, **options) -> Estimate`` (module-level, so that worker
        processes can import it).
    level : float
        Interval coverage.
    ci : {"bca", "percentile"}
        Interval method: bias-corrected and accelerated, or percentile.
    seed : int
        Root seed (default :data:`tipstat.models.DEFAULT_SEED`); the same seed gives the same
        interval whatever ``n_jobs``/``backend``. Stored in ``Estimate.seed``.
    n_boot : int
        Replicates (1,000 or more for 95% BCa limits).
    kind : {"nonparametric", "parametric"}
        Resample individuals, or draw Poisson counts from the selected model's fitted cells.
    n_jobs, backend, client, progress
        Passed to :func:`tipstat.parallel.map` (default: every local core; a Dask ``client``
        sends the replicates to a cluster).
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` (of the model chosen
        on the data) to the result. The replicates and the point estimate are computed without
        them (``check=False`` where the estimator takes it).

    Returns
    -------
    Estimate
        ``n_hat`` from the data, ``ci`` from the replicates, ``draws`` the replicate N-hats,
        ``seed``; ``status`` ``"lower_bound"`` when the interval's upper limit is infinite
        (enough replicates have an infinite N-hat); ``diagnostics``: ``z0``,
        ``acceleration``, ``n_failed`` (replicates whose estimate was not identifiable,
        dropped and counted), ``n_infinite``, ``model_frequencies`` (how often each model was
        selected), ``point`` (the estimate on the data).

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("Korea_3")
    >>> est = tipstat.bootstrap(h, "bic", n_boot=200, seed=1, n_jobs=1)
    >>> est.n_hat == tipstat.select_loglinear(h, "bic").n_hat, est.ci_method
    (True, 'bca')
    """
    from .. import parallel

    _check_histories(h)
    if kind not in KINDS:
        raise InputError(f"kind={kind!r} is not one of {KINDS}")
    check_ci(ci, CI_KINDS, "bootstrap")
    seed = check_seed(seed, "bootstrap")
    if not isinstance(n_boot, int | np.integer) or n_boot < 2:
        raise InputError(f"n_boot={n_boot!r} must be an integer of at least 2 (1,000 or more "
                         "for 95% limits)")
    check_level(level, "bootstrap")
    y = np.asarray(h.counts, dtype=np.float64)
    if y.sum() <= 0:
        raise InputError("the capture histories have no observed person")
    if kind == "nonparametric" and np.any(y != np.round(y)):
        raise InputError("nonparametric resampling needs whole-number counts; use "
                         "kind='parametric' for expected counts")
    lists = tuple(h.lists)
    if isinstance(estimator, str):
        if estimator not in CRITERIA:
            raise InputError(f"bootstrap: estimator={estimator!r} is not one of {CRITERIA} or a "
                             "callable")
        point_est = select_loglinear(h, estimator, ci="none", check=False, **options)
        statistic: Callable = SelectionStatistic(lists, estimator, options)
        label = f"bootstrap ({kind}, {ci}) of select_loglinear ({estimator})"
    elif callable(estimator):
        statistic = EstimatorStatistic(lists, estimator, options)
        point_est = estimator(h, **statistic.options)
        label = f"bootstrap ({kind}, {ci}) of {getattr(estimator, '__name__', 'estimator')}"
    else:
        raise InputError(f"bootstrap: estimator must be a selection rule name or a callable, got "
                         f"{type(estimator).__name__}")
    theta = float(point_est.n_hat)
    mu = None
    if kind == "parametric":
        fitted = point_est.diagnostics.get("fitted")
        if fitted is None or not np.all(np.isfinite(fitted)):
            raise InputError("parametric bootstrap needs an estimator whose Estimate has "
                             "diagnostics['fitted'] (the fitted cell counts)")
        mu = np.asarray(fitted, dtype=np.float64)
    rep = _Replicate(statistic, kind, y, mu)
    common = {"backend": backend, "n_jobs": n_jobs, "client": client}
    with parallel.one_blas_thread():  # (loky workers already run one BLAS thread each)
        out = parallel.map(rep, range(n_boot), seed=seed, progress=progress,
                           description="bootstrap", **common)
    draws = np.array([o[0] for o in out], dtype=np.float64)
    models = Counter(o[1] for o in out)
    n_failed = int(np.isnan(draws).sum())
    n_inf = int(np.isinf(draws).sum())
    diag: dict[str, Any] = {"kind": kind, "n_boot": n_boot, "n_failed": n_failed,
                            "n_infinite": n_inf, "point": point_est,
                            "model_frequencies": dict(models.most_common())}
    if ci == "bca":
        cells = np.flatnonzero(y > 0)
        # grouped jackknife (one individual deleted from each non-empty cell), for both kinds
        with parallel.one_blas_thread():
            jack = np.array(parallel.map(_Jackknife(statistic, y), list(cells), **common))
        interval, z0, a = bca_interval(draws, theta, jack, y[cells], level)
        diag.update({"z0": z0, "acceleration": a, "jackknife": jack})
    else:
        interval = percentile_interval(draws, level)
    warns = list(point_est.warnings)
    if n_failed:
        warns.append(Caveat("note", f"{n_failed} of {n_boot} replicates gave no identifiable "
                            "estimate; they are left out of the interval",
                            {"n_failed": n_failed, "n_boot": n_boot}))
    if n_inf:
        warns.append(Caveat("note", f"{n_inf} of {n_boot} replicates selected a model whose "
                            "estimate is infinite; they are kept (at +inf) in the ordering",
                            {"n_infinite": n_inf, "n_boot": n_boot}))
    status = point_est.status
    if status in ("ok", "extended") and interval[1] == math.inf:
        # the replicates' upper limit is infinite: the data support only a lower bound
        status = "lower_bound"
        warns.append(Caveat("lower_bound_only", f"the bootstrap interval has no upper limit "
                            f"({n_inf} of {n_boot} replicates infinite): the data support only "
                            f"a lower bound on N, about {interval[0]:,.0f}",
                            {"lower": float(interval[0]), "n_infinite": n_inf,
                             "n_boot": n_boot}))
    est = Estimate(
        n_hat=theta, ci=interval, level=level, n_observed=float(y.sum()), method=label,
        model=point_est.model, status="ok" if status == "lower_bound" else status, ci_method=ci,
        se=float(np.nanstd(
            draws[np.isfinite(draws)], ddof=1)) if np.isfinite(draws).sum() > 1 else math.nan,
        deviance=point_est.deviance, df=point_est.df, aic=point_est.aic, bic=point_est.bic,
        loglik=point_est.loglik, n_params=point_est.n_params, diagnostics=diag, draws=draws,
        seed=seed, warnings=tuple(warns),
    )
    if status == "lower_bound":
        est = est.as_lower_bound(float(interval[0]))
    independence = point_est.diagnostics.get("assumes_independence")
    if independence is not None:       # (a model average is not its best model)
        independence = bool(independence) and not point_est.diagnostics.get("model_averaged")
    return attach_checks(est, h, check=check, independence=independence)
