"""Bayesian Poisson log-linear Multiple Systems Estimation on PyMC.

The ``2**K - 1`` observable cell counts are independent Poisson with ``log mu = X beta`` (a design
of :mod:`tipstat.models.design`, corner coding: the unobserved pattern has only the intercept):

.. math::

    y_c \\sim \\text{Poisson}(\\mu_c), \\quad
    \\log \\mu_c = \\beta_0 + \\sum_j \\beta_j x_{cj} + \\sum_{t} \\gamma_t x_{ct},
    \\qquad
    n_0 \\mid \\beta \\sim \\text{Poisson}(e^{\\beta_0}), \\quad N = n_{obs} + n_0 .

Priors: the intercept of the covariates centred over the observable cells is ``Normal(log
(n_obs / (2**K - 1)), 10)`` (nearly flat, so ``log mu_0 = beta_0`` is nearly flat too: close to a
``1/mu_0`` prior), main effects ``beta_j ~ Normal(0, 5)`` (weakly informative on the log-odds scale), and on
the interactions either the regularised horseshoe of Piironen & Vehtari (2017),

.. math::

    \\gamma_t = z_t\\, \\tau\\, \\tilde\\lambda_t, \\quad
    \\tilde\\lambda_t^2 = \\frac{c^2 \\lambda_t^2}{c^2 + \\tau^2 \\lambda_t^2}, \\quad
    z_t \\sim N(0, 1),\\ \\lambda_t \\sim C^+(0, 1),\\ \\tau \\sim C^+(0, \\tau_0),\\
    c^2 \\sim \\text{Inv-Gamma}(\\nu/2, \\nu s^2/2),

with ``tau_0 = p_0 / (D - p_0) / sqrt(n_obs)`` (``D`` interactions, ``p_0`` of them expected to
matter; ``1/sqrt(n_obs)`` is the Poisson pseudo-standard-deviation over the cells), or independent
``Normal(0, interaction_sd)`` priors. Shrinking interactions towards zero averages over models
continuously instead of picking one. The posterior of N is drawn by composition: for every
posterior draw of ``beta_0``, ``n_0 ~ Poisson(exp(beta_0))``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import DEFAULT_SEED, is_level
from ..errors import InputError, Problem
from ..estimate import Caveat, Estimate
from ..histories import CaptureHistories
from . import sampling
from .checks import attach_checks
from .design import Design, loglinear_design
from .intervals import equal_tailed
from .posterior_checks import (
    ppp_caveat,
    predictive_check,
    prior_shift_caveat,
    reweighted_upper,
    softmax_rows,
)
from .sampling import clear_compiled_cache

__all__ = ["bayes_loglinear_model", "clear_compiled_cache", "fit_bayes_loglinear"]

PRIORS = ("horseshoe", "normal")


def _design(h: CaptureHistories, terms: Any) -> Design:
    design = terms if isinstance(terms, Design) else loglinear_design(h.lists, terms)
    full = (1 << h.k) - 1
    if any(t == full for t in design.terms) and h.k > 1:
        raise InputError(
            "the K-way interaction is confounded with the unobserved cell: N is not identifiable",
            [Problem("terms", None, "allN" if isinstance(terms, str) else str(terms),
                     "interactions of at most K - 1 lists, e.g. 'all2'")])
    if design.matrix.shape[0] != 2**h.k or tuple(design.columns[1:1 + h.k]) != tuple(h.lists):
        raise InputError("the design does not match the lists",
                         [Problem("terms", None, design.name,
                                  f"a design over {h.k} lists with columns (Intercept), "
                                  f"{', '.join(h.lists)}, then the interactions")])
    return design


def bayes_loglinear_model(
    h: CaptureHistories,
    terms: str | Sequence[str] | Design = "all2",
    prior: str = "horseshoe",
    expected_terms: float | None = None,
    slab_scale: float = 2.0,
    slab_df: float = 4.0,
    main_sd: float = 5.0,
    intercept_sd: float = 10.0,
    interaction_sd: float = 2.0,
) -> Any:
    """The PyMC model of :func:`fit_bayes_loglinear` (unsampled), to inspect or extend.

    Variables: ``a`` (intercept of the centred covariates), ``main`` (dims ``list``),
    ``interaction`` (dims ``term``; with the horseshoe also ``z``, ``lambda``, ``tau``, ``c2``
    and their auxiliaries), ``intercept`` (``beta_0 = log mu_0``), ``mu0`` and the observed ``y``
    (dims ``cell``). Parameters as in :func:`fit_bayes_loglinear`.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.models.bayes_loglinear import bayes_loglinear_model
    >>> m = bayes_loglinear_model(tipstat.datasets.load("Spina_3"), "all2")
    >>> [v.name for v in m.free_RVs]
    ['a', 'main', 'tau_a', 'tau_b', 'lambda_a', 'lambda_b', 'c2', 'z']
    """
    import pymc as pm
    import pytensor.tensor as pt

    if not isinstance(h, CaptureHistories):
        raise InputError("fit_bayes_loglinear takes CaptureHistories",
                         [Problem("h", None, type(h).__name__, "tipstat.CaptureHistories")])
    if prior not in PRIORS:
        raise InputError("unknown prior on the interactions",
                         [Problem("prior", None, prior, f"one of {PRIORS}")])
    problems = [Problem(name, None, v, "a positive number")
                for name, v in (("slab_scale", slab_scale), ("slab_df", slab_df), ("main_sd", main_sd),
                                ("intercept_sd", intercept_sd), ("interaction_sd", interaction_sd))
                if not (isinstance(v, int | float) and math.isfinite(v) and v > 0)]
    if problems:
        raise InputError("invalid prior settings", problems)
    design = _design(h, terms)
    y = np.asarray(h.counts, dtype=float)
    if np.any(y != np.round(y)) or y.sum() <= 0:
        raise InputError("the counts must be whole numbers with at least one person observed",
                         [Problem("count", None, None, "non-negative integers, total > 0")])
    k = h.k
    X = design.observable
    X_main, X_int = X[:, 1:1 + k], X[:, 1 + k:]
    inter = list(design.columns[1 + k:])
    n_obs = float(y.sum())
    coords = {"list": list(h.lists), "term": inter, "cell": h.pattern_labels()}
    # centre the covariates over the observable cells: the intercept of the observed cells is then
    # nearly uncorrelated with the effects (NUTS takes short trajectories); log mu_0 follows as
    # a - xbar . beta because the unobserved pattern has all covariates 0
    xbar_main, xbar_int = X_main.mean(axis=0), X_int.mean(axis=0)
    # the data and the data-dependent prior constants are pm.Data, so two tables with the same
    # lists and terms give the same graph and reuse its compiled (cached) code
    with pm.Model(coords=coords) as model:
        y_data = pm.Data("y_obs", y, dims="cell")
        a_mean = pm.Data("a_mean", math.log(n_obs / X.shape[0]))
        a = pm.Normal("a", mu=a_mean, sigma=intercept_sd)
        b_main = pm.Normal("main", mu=0.0, sigma=main_sd, dims="list")
        eta = a + pt.dot(X_main - xbar_main, b_main)
        b0 = a - pt.dot(xbar_main, b_main)
        if inter:
            d = len(inter)
            if prior == "horseshoe":
                p0 = expected_terms if expected_terms is not None else max(1.0, d / 4)
                if not 0 < p0 < d:
                    raise InputError("expected_terms must lie strictly between 0 and the number of "
                                     "interactions", [Problem("expected_terms", None, p0, f"in (0, {d})")])
                tau0 = pm.Data("tau0", p0 / (d - p0) / math.sqrt(n_obs))
                # half-Cauchy scales as HalfNormal * sqrt(InvGamma(1/2, 1/2)): same prior, easier
                # geometry for NUTS
                tau_a = pm.HalfNormal("tau_a", sigma=1.0)
                tau_b = pm.InverseGamma("tau_b", alpha=0.5, beta=0.5)
                tau = pm.Deterministic("tau", tau0 * tau_a * pt.sqrt(tau_b))
                lam_a = pm.HalfNormal("lambda_a", sigma=1.0, dims="term")
                lam_b = pm.InverseGamma("lambda_b", alpha=0.5, beta=0.5, dims="term")
                lam = pm.Deterministic("lambda", lam_a * pt.sqrt(lam_b), dims="term")
                c2 = pm.InverseGamma("c2", alpha=slab_df / 2, beta=slab_df * slab_scale**2 / 2)
                lam_t = pt.sqrt(c2 * lam**2 / (c2 + tau**2 * lam**2))
                z = pm.Normal("z", 0.0, 1.0, dims="term")
                gamma = pm.Deterministic("interaction", z * tau * lam_t, dims="term")
            else:
                gamma = pm.Normal("interaction", mu=0.0, sigma=interaction_sd, dims="term")
            eta = eta + pt.dot(X_int - xbar_int, gamma)
            b0 = b0 - pt.dot(xbar_int, gamma)
        pm.Deterministic("intercept", b0)
        pm.Deterministic("mu0", pt.exp(b0))
        pm.Poisson("y", mu=pt.exp(eta), observed=y_data, dims="cell")
    return model


def _rests_on(model: Any, design: Design, h: CaptureHistories,
              sampler_stream: np.random.SeedSequence, idata: Any
              ) -> tuple[list[Caveat], np.ndarray]:
    """The ``not_identified_mass`` caveat when the maximum-likelihood estimate of N under the
    same terms does not exist or N is not identified on this table (then the prior on the
    interactions, not the data, bounds N: the whole posterior rests on it), and prior draws of
    ``log mu0`` (2,000, from a stream of their own: the posterior draws are unchanged)."""
    import pymc as pm

    from .poisson import check_existence

    y = np.asarray(h.counts, dtype=float)
    ex = check_existence(design.observable, y, list(h.pattern_labels()))
    found: list[Caveat] = []
    if ex.status in ("does_not_exist", "not_identifiable"):
        what = "does not exist (N-hat infinite)" if ex.status == "does_not_exist" else \
            "does not identify N"
        found.append(Caveat("not_identified_mass", (
            f"the maximum-likelihood fit of {design.name} {what} on this table: the prior on "
            "the interactions, not the data, decides how large N can be"),
            {"share": 1.0, "existence": 1.0 if ex.status == "does_not_exist" else 2.0}))
    seed = sampling.run_seed(sampler_stream.spawn(1)[0])
    log = logging.getLogger("pymc")
    level = log.level
    log.setLevel(logging.WARNING)  # (prior draws are no news to the user)
    try:
        with model:
            prior = pm.sample_prior_predictive(draws=2000, var_names=["intercept"],
                                               random_seed=seed)
    finally:
        log.setLevel(level)
    return found, np.asarray(prior.prior["intercept"].values, dtype=float).ravel()


def _cell_shares(idata: Any, design: Design, k: int) -> np.ndarray:
    """Posterior draws of the observed-cell shares ``mu_c / sum mu`` (draws x ``2**K - 1``):
    ``log mu_c`` is the linear predictor up to a constant the shares do not depend on."""
    post = idata.posterior
    n = post.sizes["chain"] * post.sizes["draw"]
    coef = [post["main"].values.reshape(n, k)]
    if "interaction" in post:
        coef.append(post["interaction"].values.reshape(n, -1))
    return softmax_rows(np.concatenate(coef, axis=1) @ design.observable[:, 1:].T)


def fit_bayes_loglinear(
    h: CaptureHistories,
    terms: str | Sequence[str] | Design = "all2",
    *,
    level: float = 0.95,
    ci: str = "equal_tailed",
    seed: int = DEFAULT_SEED,
    prior: str = "horseshoe",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    target_accept: float = 0.99,
    sampler: str = "auto",
    expected_terms: float | None = None,
    slab_scale: float = 2.0,
    slab_df: float = 4.0,
    main_sd: float = 5.0,
    intercept_sd: float = 10.0,
    interaction_sd: float = 2.0,
    progress: bool = False,
    check: bool = True,
    **sample_kwargs: Any,
) -> Estimate:
    """Population size from a Bayesian Poisson log-linear model with shrinkage on interactions.

    See the module docstring for the model. The posterior of N is drawn as
    ``N = n_obs + n_0`` with ``n_0 ~ Poisson(exp(beta_0))`` for every posterior draw.

    Parameters
    ----------
    h : CaptureHistories
        Capture histories (pooled over strata).
    terms : str, list of str or Design
        Largest model, as for :func:`tipstat.fit_loglinear` (default ``"all2"``: every two-list
        interaction). The K-way interaction is not allowed (N would not be identifiable).
    level : float
        Level of the posterior interval.
    ci : {"equal_tailed"}
        Interval method: the equal-tailed posterior interval.
    seed : int
        Seeds the sampler and the draws of ``n_0`` (default
        :data:`tipstat.models.DEFAULT_SEED`).
    prior : {"horseshoe", "normal"}
        Prior on the interactions: regularised horseshoe, or ``Normal(0, interaction_sd)``.
    draws, tune, chains, cores, target_accept
        As in :func:`pymc.sample`. ``target_accept`` defaults to 0.99 because the horseshoe's
        funnel gives divergences at 0.95.
    progress : bool
        Show the sampler's progress bar.
    sampler : {"auto", "nutpie", "pymc"}
        ``"auto"`` uses nutpie when it imports (its Rust NUTS on a numba-compiled density is
        4-5x faster here than PyMC's own sampler, whose deep horseshoe trajectories are slow in
        Python) and PyMC's sampler otherwise (see :mod:`tipstat.models.sampling`). The sampler
        used is recorded in ``diagnostics["sampler"]``. With nutpie the mass matrix is adapted
        with a low-rank correction (``nuts_sampler_kwargs={"low_rank_modified_mass_matrix":
        True}`` unless given; its ``backend`` / ``gradient_backend`` are compile options): N and
        the main effects are strongly correlated (a larger N means smaller capture
        probabilities), which a diagonal mass matrix samples 3-5x less efficiently. The
        nutpie-compiled model is kept per lists, terms, prior constants and compile options and
        re-used for the next table with the same ones (compiling costs 5-11 s, sampling 1-3 s);
        the draws are those of a fresh compilation. :func:`clear_compiled_cache` frees it.
    **sample_kwargs
        Further options of ``nutpie.sample`` (``nuts_sampler_kwargs`` merged in) or
        :func:`pymc.sample`, for the sampler used.
    expected_terms : float, optional
        Horseshoe ``p_0``, the prior guess of the number of non-zero interactions
        (default ``max(1, D/4)``).
    slab_scale, slab_df : float
        Regularised-horseshoe slab: large interactions are shrunk as under ``N(0, slab_scale)``
        with ``slab_df`` degrees of freedom on the slab width.
    main_sd, intercept_sd, interaction_sd : float
        Prior standard deviations of the main effects, of the intercept (of the centred
        covariates) and of the interactions under ``prior="normal"``.
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` to the result
        (sparse table, two lists; dependence and heterogeneity for the independence model;
        on the pooled table when stratified). False for inner fits.

    Returns
    -------
    Estimate
        ``n_hat`` = posterior median of N, ``ci`` = equal-tailed interval, ``se`` = posterior SD,
        ``draws`` = posterior draws of N, ``idata`` with ``N`` in its posterior;
        ``diagnostics``: ``rhat`` / ``ess_bulk`` / ``ess_tail`` of N, ``max_rhat`` and
        ``min_ess_bulk`` over all parameters, ``divergences``, ``summary`` (``az.summary``),
        ``not_identified_mass`` (1 when the MLE of N under the same terms does not exist or
        does not identify N on this table: the prior then bounds N; caveat
        ``not_identified_mass``) and ``prior_contraction`` (``1 - var / prior var`` of
        ``log mu0``, the prior's variance from 2,000 prior draws; caveat ``prior_driven`` below
        :data:`tipstat.models.sampling.CONTRACTION_WARN`). R-hat, divergences and a small ESS
        are ``convergence`` caveats. ``ppp``: posterior predictive p-value of the observed
        cells (:func:`tipstat.models.posterior_checks.predictive_check`; caveat
        ``lack_of_fit`` outside [0.05, 0.95]); ``prior_shift``: the upper end under a flat
        prior on the unseen count (the draws reweighted by ``mu0``; caveat ``prior_driven``
        above 25%).

    Examples
    --------
    >>> import tipstat
    >>> est = tipstat.fit_bayes_loglinear(tipstat.datasets.load("Spina_3"), draws=300, tune=300,
    ...                                   chains=2, cores=1, seed=1)
    >>> 650 < est.n_hat < 800 and est.diagnostics["rhat"] < 1.05
    True
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"fit_bayes_loglinear: expected tipstat.CaptureHistories, got "
                         f"{type(h).__name__}")
    problems = []
    if not is_level(level):
        problems.append(Problem("level", None, level, "a number between 0 and 1"))
    if ci != "equal_tailed":
        problems.append(Problem("ci", None, ci, "'equal_tailed'"))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        problems.append(Problem("seed", None, seed, "a non-negative integer"))
    for name, v in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(v, int | np.integer) or v < (0 if name == "tune" else 1):
            problems.append(Problem(name, None, v, "a positive integer"))
    if not 0 < target_accept < 1:
        problems.append(Problem("target_accept", None, target_accept, "a number between 0 and 1"))
    if problems:
        raise InputError("invalid input to fit_bayes_loglinear", problems)
    sampler = sampling.resolve_sampler(sampler)
    model = bayes_loglinear_model(h, terms, prior, expected_terms, slab_scale, slab_df, main_sd,
                                  intercept_sd, interaction_sd)
    design = _design(h, terms)
    sampler_stream, draw_stream = sampling.seeds(seed)
    rng = np.random.default_rng(draw_stream)
    compile_options: dict[str, Any] = {}
    nutpie_kwargs: dict[str, Any] = {}
    if sampler == "nutpie":
        given = sample_kwargs.pop("nuts_sampler_kwargs", None)
        nutpie_kwargs = dict({"low_rank_modified_mass_matrix": True} if given is None else given)
        compile_options = {k: nutpie_kwargs.pop(k) for k in ("backend", "gradient_backend")
                           if k in nutpie_kwargs}
        nutpie_kwargs.update(sample_kwargs)
    key = ("bayes_loglinear", tuple(h.lists), tuple(design.columns), design.matrix.tobytes(),
           prior, slab_scale, slab_df, main_sd, intercept_sd, interaction_sd,
           tuple(sorted(compile_options.items())))
    idata = sampling.sample(model, sampler=sampler, run=sampler_stream.spawn(1)[0], draws=draws,
                            tune=tune, chains=chains, cores=cores, target_accept=target_accept,
                            progress=progress, cache_key=key, compile_options=compile_options,
                            nutpie_kwargs=nutpie_kwargs, pymc_kwargs=sample_kwargs)
    n_obs = float(np.sum(h.counts))
    mu0 = idata.posterior["mu0"].values
    warns: list[str] = []  # of Caveat (a str)
    if np.any(mu0 > 1e15):
        warns.append(Caveat("prior_driven", "some posterior draws of the unobserved cell exceed "
                            "1e15: N is barely identified by the data; the interval reflects "
                            "the prior", {"max_mu0": float(np.max(mu0))}))
    n0 = rng.poisson(np.minimum(mu0, 1e15))
    N = n_obs + n0
    idata.posterior["N"] = (("chain", "draw"), N.astype(float))
    flat = N.ravel().astype(float)
    lo, hi = equal_tailed(flat, level, floor=n_obs)
    med = np.median(flat)
    var_names = ["N", "intercept", "main"] + (["interaction"] if "interaction" in idata.posterior else [])
    diagnostics: dict[str, Any] = {
        **sampling.convergence(idata, "N", var_names),
        "prior": prior,
        "design": design.name,
        "sampler": sampler,
    }
    diverg = diagnostics["divergences"]
    status = "ok"
    if chains > 1 and diagnostics["max_rhat"] > 1.01:
        warns.append(Caveat("convergence", f"R-hat up to {diagnostics['max_rhat']:.3f} > 1.01: "
                            "chains disagree; run longer or check for multimodality",
                            {"max_rhat": diagnostics["max_rhat"], "threshold": 1.01}))
        if diagnostics["max_rhat"] > 1.1:
            status = "not_converged"
    if diverg:
        warns.append(Caveat("convergence", f"{diverg} divergent transitions: raise "
                            "target_accept", {"divergences": diverg}))
    if diagnostics["ess_bulk"] < 400:
        warns.append(Caveat("convergence", f"bulk ESS of N is {diagnostics['ess_bulk']:.0f} < "
                            "400: draw more", {"ess_bulk": diagnostics["ess_bulk"],
                                               "threshold": 400.0}))
    # what the posterior rests on: the MLE of the same terms, and the contraction of log mu0
    found, prior_draws = _rests_on(model, design, h, sampler_stream, idata)
    diagnostics["prior_contraction"] = sampling.contraction(
        prior_draws, np.log(np.maximum(mu0.ravel(), 1e-300)))
    diagnostics["not_identified_mass"] = 1.0 if found else 0.0
    warns += found
    pc = diagnostics["prior_contraction"]
    if pc < sampling.CONTRACTION_WARN:
        warns.append(Caveat("prior_driven", (
            f"the data narrowed the prior of log mu0 (the log of the unseen count) by only "
            f"{100 * max(pc, 0.0):.0f}% of its variance: the prior sets the interval"),
            {"contraction": pc, "threshold": sampling.CONTRACTION_WARN}))
    # goodness of fit and a second prior, from the same draws (own stream: N is unchanged)
    checks_seed = draw_stream.spawn(1)[0]
    fit_check = predictive_check(np.asarray(h.counts, dtype=float),
                                 _cell_shares(idata, design, h.k), seed=checks_seed)
    diagnostics["ppp"] = fit_check.ppp
    lack = ppp_caveat(fit_check, f"the model {design.name}")
    if lack is not None:
        warns.append(lack)
    ones = np.ones(flat.size)
    shifted = prior_shift_caveat(
        reweighted_upper(flat, ones, ones, level),
        reweighted_upper(flat, ones, np.minimum(mu0.ravel(), 1e15), level),
        "on the unseen count", "flat (instead of about 1/mu0)", diagnostics)
    if shifted is not None:
        warns.append(shifted)
    prior_label = "regularised horseshoe" if prior == "horseshoe" else f"Normal(0, {interaction_sd:g})"
    est = Estimate(
        n_hat=float(med), ci=(float(lo), float(hi)), level=level, n_observed=n_obs,
        method="bayes_loglinear", model=f"{design.name}, interactions ~ {prior_label}",
        status=status, ci_method="posterior equal-tailed", se=float(flat.std(ddof=1)),
        n_params=design.n_params, diagnostics=diagnostics, draws=flat, idata=idata, seed=seed,
        warnings=tuple(warns),
    )
    return attach_checks(est, h, check=check, independence=not design.terms)
