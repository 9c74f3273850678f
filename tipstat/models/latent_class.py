"""Non-parametric latent-class Multiple Systems Estimation (Manrique-Vallier 2016) on PyMC.

The model of the R package LCMCR: every person belongs to one of ``K`` latent classes; given the
class, the ``J`` list captures are independent Bernoulli draws. Class weights follow a truncated
stick-breaking (Dirichlet-process) prior, so the data choose how many classes they need:

.. math::

    x_{ij} \\mid z_i = k &\\sim \\mathrm{Bernoulli}(\\lambda_{jk}), \\qquad
    \\lambda_{jk} \\sim \\mathrm{Beta}(1, 1),

    \\pi_k &= V_k \\prod_{l<k} (1 - V_l), \\quad V_k \\sim \\mathrm{Beta}(1, \\alpha)
    \\;(k < K), \\quad V_K = 1, \\qquad \\alpha \\sim \\mathrm{Gamma}(a_\\alpha, b_\\alpha),

    p(N) &\\propto 1/N .

The class labels are summed out, so every observable pattern ``c`` has probability
:math:`P(c) = \\sum_k \\pi_k \\prod_j \\lambda_{jk}^{x_{cj}} (1-\\lambda_{jk})^{1-x_{cj}}` and
:math:`p_0 = P(0)` is the probability of being on no list. Under the :math:`1/N` prior, summing
over ``N`` leaves the likelihood conditional on being observed,

.. math::

    p(\\theta \\mid n) \\propto p(\\theta) \\prod_{c \\ne 0}
        \\Big(\\frac{P(c)}{1 - p_0}\\Big)^{n_c},

because :math:`\\sum_{N \\ge n} N^{-1} \\binom{N}{n} p_0^{N-n} = (1-p_0)^{-n} / n`. NUTS samples
:math:`\\theta` from it, and ``N`` is then drawn from its exact conditional

.. math::

    N - n \\mid \\theta, n \\sim \\mathrm{NegBin}(n, 1 - p_0)
    \\quad\\text{(failures before the } n\\text{-th success)} .

For NUTS the sticks are written :math:`-\\log(1 - V_k) = e_k / \\alpha` with
:math:`e_k \\sim \\mathrm{Exp}(1)` (the same prior; it removes the funnel between
:math:`\\alpha` and the sticks and keeps :math:`V_k \\to 1` finite in floating point).
Chains start where LCMCR's Gibbs sampler starts (small :math:`\\alpha`, the largest classes
first); a chain that still settles in a minor mode of the truncated posterior (mean log density
more than 4 below the best chain's) is re-run with a fresh seed, and chains that keep
disagreeing are reported (R-hat of N, a warning, ``status="not_converged"``).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special

from .._checks import DEFAULT_SEED, check_ci, check_seed, is_level
from ..errors import InputError, TipstatWarning
from ..estimate import Caveat, Estimate
from ..histories import CaptureHistories, pattern_matrix
from . import sampling
from .checks import attach_checks
from .intervals import equal_tailed
from .loglinear import _check_histories
from .posterior_checks import (
    NOT_IDENTIFIED_WARN,
    not_identified_caveats,
    ppp_caveat,
    predictive_check,
    prior_shift_caveat,
    reweighted_upper,
    softmax_rows,
)

__all__ = ["fit_latent_class", "not_identified_draws", "several_seen_classes"]

SAMPLERS = sampling.SAMPLERS
#: R-hat of N above which the chains are reported as disagreeing (warning) ...
RHAT_WARN = 1.01
#: ... and above which the fit's status is ``not_converged``.
RHAT_FAIL = 1.05
#: Bulk ESS of N below which the result carries a warning.
ESS_WARN = 400


# ---------------------------------------------------------------------------- the model
def _initial_sticks(max_classes: int, alpha0: float) -> np.ndarray:
    """``e_k = alpha0 * -log(1 - V_k)`` for weights like LCMCR's start: four classes of 22.5%
    each and the remaining 10% spread evenly over the other classes."""
    k = max_classes
    big = min(4, k - 1)
    pi0 = np.r_[np.full(big, 0.9 / big), np.full(k - big, 0.1 / (k - big))]
    remaining = 1.0 - np.r_[0.0, np.cumsum(pi0)[:-1]]
    v0 = np.clip(pi0[:-1] / remaining[:-1], 1e-6, 1 - 1e-6)
    return alpha0 * -np.log1p(-v0)


@lru_cache(maxsize=16)
def _model(n_lists: int, max_classes: int) -> Any:
    """The PyMC model for ``n_lists`` lists and ``max_classes`` classes; the counts and the
    hyperparameters are ``pm.Data`` so one model (and its compiled sampler) serves every table
    of that shape."""
    import pymc as pm
    import pytensor.tensor as pt

    x = pattern_matrix(n_lists, include_unobserved=True).astype(np.float64)
    coords = {"list": [f"list{j}" for j in range(n_lists)],
              "class": np.arange(max_classes), "stick": np.arange(max_classes - 1)}
    with pm.Model(coords=coords) as model:
        counts = pm.Data("counts", np.ones(2**n_lists - 1))
        a_alpha = pm.Data("a_alpha", 0.25)
        b_alpha = pm.Data("b_alpha", 0.25)
        lam = pm.Beta("lam", 1.0, 1.0, dims=("list", "class"))
        alpha = pm.Gamma("alpha", a_alpha, b_alpha)
        e = pm.Exponential("e", 1.0, dims="stick")
        s = e / alpha  # s_k = -log(1 - V_k)
        log_pi = (pt.concatenate([pt.log1mexp(-s), pt.zeros(1)])
                  + pt.concatenate([pt.zeros(1), pt.cumsum(-s)]))
        log_p = pt.logsumexp(log_pi[None, :] + pt.dot(x, pt.log(lam))
                             + pt.dot(1.0 - x, pt.log1p(-lam)), axis=1)
        pm.Potential("loglik_observed",
                     pt.dot(counts, log_p[1:]) - pt.sum(counts) * pt.log1mexp(log_p[0]))
    return model


def _initial_point(max_classes: int) -> dict[str, Any]:
    alpha0 = 0.3 / max_classes  # LCMCR starts alpha there too: few classes, largest first
    return {"alpha": alpha0, "e": _initial_sticks(max_classes, alpha0)}


# ---------------------------------------------------------------------------- post-processing
def _class_log_probs(lam: np.ndarray, alpha: np.ndarray, e: np.ndarray, x: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``log pi`` (draws, K) and ``log(pi_k P(c | k))`` (draws, 2**J, K) for draws of the
    parameters (``lam`` is (draws, J, K))."""
    s = e / alpha[:, None]
    with np.errstate(divide="ignore"):
        log_v = np.log(-np.expm1(-s))
    zeros = np.zeros((len(s), 1))
    log_pi = np.concatenate([log_v, zeros], axis=1) + np.concatenate(
        [zeros, np.cumsum(-s, axis=1)], axis=1)
    log_lik = x @ np.log(lam) + (1.0 - x) @ np.log1p(-lam)  # (draws, 2**J, K)
    return log_pi, log_pi[:, None, :] + log_lik


def _occupied_classes(joint: np.ndarray, counts: np.ndarray, n0: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """Classes holding at least one person (observed or imputed), drawn as LCMCR does: class
    memberships from their conditional given the parameters and ``N``."""
    prob = np.exp(joint - joint.max(axis=2, keepdims=True))
    prob /= prob.sum(axis=2, keepdims=True)
    size = rng.multinomial(counts[None, :], prob[:, 1:, :]).sum(axis=1)
    size += rng.multinomial(n0, prob[:, 0, :])
    return (size > 0).sum(axis=1)


def _augment(idata: Any, h: CaptureHistories, counts: np.ndarray, max_classes: int,
             rng: np.random.Generator) -> None:
    """Add N, p0, pi and the occupied classes to ``idata.posterior`` (in place)."""
    post = idata.posterior
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    lam = post["lam"].values.reshape(n_chains * n_draws, h.k, max_classes)
    alpha = post["alpha"].values.reshape(-1)
    e = post["e"].values.reshape(n_chains * n_draws, max_classes - 1)
    x = pattern_matrix(h.k, include_unobserved=True).astype(np.float64)
    log_pi, joint = _class_log_probs(lam, alpha, e, x)
    log_p0 = np.logaddexp.reduce(joint[:, 0, :], axis=1)
    p0 = np.exp(log_p0)
    n = int(counts.sum())
    n0 = rng.negative_binomial(n, -np.expm1(log_p0))
    occupied = _occupied_classes(joint, counts, n0, rng)
    shape = (n_chains, n_draws)
    post["N"] = (("chain", "draw"), (n + n0).reshape(shape))
    post["p0"] = (("chain", "draw"), p0.reshape(shape))
    post["pi"] = (("chain", "draw", "class"), np.exp(log_pi).reshape(*shape, max_classes))
    post["n_classes"] = (("chain", "draw"), occupied.reshape(shape))
    post.coords["list"] = list(h.lists)


def _prior_contraction(idata: Any, n_lists: int, max_classes: int, a_alpha: float,
                       b_alpha: float, rng: np.random.Generator, n_prior: int = 20_000) -> float:
    """Prior-to-posterior contraction (:func:`tipstat.models.sampling.contraction`) of
    ``logit p0 = log(p0 / (1 - p0))``, the log of the unseen count over the observed one
    (``E[n0 | n] = n p0 / (1 - p0)``), ``p0`` the probability of being on no list (the scale
    of ``log mu0`` in :func:`tipstat.fit_bayes_loglinear`). Prior draws of ``p0`` come
    straight from the model's priors (``lambda ~ Beta(1, 1)``, ``alpha ~ Gamma(a, b)``,
    sticks ``e_k ~ Exp(1)``): no sampler run."""
    lam = rng.random((n_prior, n_lists, max_classes))
    alpha = rng.gamma(a_alpha, 1.0 / b_alpha, n_prior)
    e = rng.exponential(1.0, (n_prior, max_classes - 1))
    x0 = np.zeros((1, n_lists))
    _, joint = _class_log_probs(lam, np.maximum(alpha, 1e-300), e, x0)
    p0_prior = np.exp(np.logaddexp.reduce(joint[:, 0, :], axis=1))
    p0_post = idata.posterior["p0"].values.ravel()
    with np.errstate(divide="ignore"):
        return sampling.contraction(special.logit(p0_prior), special.logit(p0_post))


#: A latent class is unseen in a posterior draw when fewer than this many of the observed
#: persons are expected to belong to it (``n pi_k q_k / (1 - p0)``, ``q_k`` its probability of
#: being on some list): the data then say nothing about its size but that it was hardly seen.
UNSEEN_CLASS_MEMBERS = 1.0


def not_identified_draws(lam: np.ndarray, pi: np.ndarray, n_obs: float) -> np.ndarray:
    """Per posterior draw, whether N is not identified there: latent classes with fewer than
    :data:`UNSEEN_CLASS_MEMBERS` expected observed members hold more than half of the draw's
    probability of being unseen.

    With ``q_k = 1 - prod_j (1 - lambda_jk)`` the probability that a member of class ``k`` is on
    some list, class ``k`` holds ``pi_k (1 - q_k)`` of the probability of being unseen
    ``p0 = sum_k pi_k (1 - q_k)`` and is expected to have ``n pi_k q_k / (1 - p0)`` of the
    ``n`` observed persons. A class with essentially zero detection probability on every list
    can hold any number of persons: the likelihood of the observed cells hardly changes with
    it, so the priors on the sticks and on ``lambda`` set how many it holds.

    Parameters
    ----------
    lam : array (draws, lists, classes)
        Capture probabilities.
    pi : array (draws, classes)
        Class weights.
    n_obs : float
        Persons observed.

    Examples
    --------
    >>> import numpy as np
    >>> lam = np.array([[[0.5, 1e-6], [0.5, 1e-6], [0.5, 1e-6]]])   # class 2 never seen
    >>> not_identified_draws(lam, np.array([[0.5, 0.5]]), 500).tolist()
    [True]
    >>> not_identified_draws(lam, np.array([[0.999, 0.001]]), 500).tolist()
    [False]
    """
    unseen_k = pi * np.prod(1.0 - lam, axis=1)              # pi_k (1 - q_k)
    seen_k = pi - unseen_k                                  # pi_k q_k
    p0 = unseen_k.sum(axis=1)
    members = n_obs * seen_k / np.maximum(1.0 - p0, 1e-300)[:, None]
    ghost = np.where(members < UNSEEN_CLASS_MEMBERS, unseen_k, 0.0).sum(axis=1)
    return ghost > 0.5 * p0


def _rests_on(idata: Any, n_lists: int, n_obs: float) -> tuple[np.ndarray, np.ndarray]:
    """Observed-cell shares ``P(c) / (1 - p0)`` of every posterior draw (draws x ``2**J -
    1``) and :func:`not_identified_draws`."""
    post = idata.posterior
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    max_classes = post.sizes["class"]
    lam = post["lam"].values.reshape(n_draws, n_lists, max_classes)
    alpha = post["alpha"].values.reshape(-1)
    e = post["e"].values.reshape(n_draws, max_classes - 1)
    x = pattern_matrix(n_lists, include_unobserved=True).astype(np.float64)
    log_pi, joint = _class_log_probs(lam, alpha, e, x)
    shares = softmax_rows(np.logaddexp.reduce(joint, axis=2)[:, 1:])
    return shares, not_identified_draws(lam, np.exp(log_pi), n_obs)


def several_seen_classes(lam: np.ndarray, pi: np.ndarray, n_obs: float) -> np.ndarray:
    """Per draw, whether two or more classes are seen (each expected to hold at least
    :data:`UNSEEN_CLASS_MEMBERS` observed persons). On three lists such a draw is a model with
    at least ``2 * 3 + 1 = 7`` parameters for the ``2**3 - 2 = 6`` free cells of the observed
    table: the likelihood has a ridge along which N moves, and the stick-breaking prior picks
    the point on it.

    Examples
    --------
    >>> import numpy as np
    >>> lam = np.full((1, 3, 2), 0.5)
    >>> several_seen_classes(lam, np.array([[0.5, 0.5]]), 100).tolist()
    [True]
    """
    seen_k = pi * (1.0 - np.prod(1.0 - lam, axis=1))
    p0 = 1.0 - seen_k.sum(axis=1)
    members = n_obs * seen_k / np.maximum(1.0 - p0, 1e-300)[:, None]
    return (members >= UNSEEN_CLASS_MEMBERS).sum(axis=1) >= 2


# ---------------------------------------------------------------------------- checks
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_inputs(h: Any, max_classes: Any, draws: Any, tune: Any, chains: Any, restarts: Any,
                  level: Any, a_alpha: Any, b_alpha: Any, sampler: Any) -> np.ndarray:
    _check_histories(h)
    if h.k < 3:
        raise InputError(f"the latent-class model needs at least 3 lists; these capture histories "
                         f"have {h.k} ({', '.join(h.lists)})")
    _check_int("max_classes", max_classes, 2)
    _check_int("draws", draws, 1)
    _check_int("tune", tune, 0)
    _check_int("chains", chains, 1)
    _check_int("restarts", restarts, 0)
    if not is_level(level):
        raise InputError(f"level={level!r} must be between 0 and 1 (e.g. 0.95)")
    for name, value in (("a_alpha", a_alpha), ("b_alpha", b_alpha)):
        if not (isinstance(value, float | int) and math.isfinite(value) and value > 0):
            raise InputError(f"{name}={value!r} must be a positive number (LCMCR's default 0.25)")
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise InputError(f"sampler={sampler!r} is not one of {SAMPLERS}")
    counts = np.asarray(h.counts, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(counts) | (counts < 0) | (counts != np.round(counts)))
    if bad.size:
        labels = h.pattern_labels()
        shown = ", ".join(f"{labels[i]}={counts[i]:g}" for i in bad[:5])
        raise InputError(f"the latent-class model needs whole non-negative counts; {bad.size} "
                         f"cell(s) are not ({shown})")
    if counts.sum() <= 0:
        raise InputError("the capture histories have no observed person")
    return counts.astype(np.int64)


# ---------------------------------------------------------------------------- sampling
def _run_sampler(h: CaptureHistories, data: dict[str, Any], max_classes: int, sampler: str,
                 draws: int, tune: int, chains: int, cores: int, run: np.random.SeedSequence,
                 target_accept: float, progress: bool, sample_kwargs: dict[str, Any]) -> Any:
    """One run of the sampling layer (:func:`tipstat.models.sampling.sample`) on the model of
    this shape, its data set to this table; nutpie's compiled model is cached per shape."""
    import pymc as pm

    model = _model(h.k, max_classes)
    pm.set_data(data, model=model)
    return sampling.sample(
        model, sampler=sampler, run=run, draws=draws, tune=tune, chains=chains, cores=cores,
        target_accept=target_accept, progress=progress,
        cache_key=("latent_class", h.k, max_classes),
        initial_points=_initial_point(max_classes), nutpie_kwargs=sample_kwargs,
        pymc_kwargs={"compute_convergence_checks": False, **sample_kwargs})


#: A chain whose mean log posterior density is this far below the best chain's is re-run.
LOGP_GAP = 4.0


def _chain_logp(idata: Any) -> np.ndarray:
    """Per chain, the mean log posterior density of its draws (nutpie ``logp``, PyMC ``lp``)."""
    stats = idata.sample_stats
    name = "logp" if "logp" in stats else "lp"
    return stats[name].mean("draw").values


def _replace_chain(idata: Any, chain: int, new: Any) -> None:
    """Put chain 0 of ``new`` in place of chain ``chain`` of ``idata``, in every group."""
    import xarray as xr

    for group in idata.groups():
        old_ds = getattr(idata, group)
        if "chain" not in old_ds.dims or group not in new.groups():
            continue
        labels = old_ds["chain"].values
        fresh = getattr(new, group).isel(chain=[0]).assign_coords(chain=[labels[chain]])
        kept = old_ds.isel(chain=[i for i in range(len(labels)) if i != chain])
        merged = xr.concat([kept, fresh], dim="chain").sel(chain=labels)
        setattr(idata, group, merged)


def _sample(h: CaptureHistories, counts: np.ndarray, max_classes: int, a_alpha: float,
            b_alpha: float, sampler: str, draws: int, tune: int, chains: int, cores: int,
            seeds: np.random.SeedSequence, target_accept: float, progress: bool,
            restarts: int, sample_kwargs: dict[str, Any]) -> tuple[Any, int, list[int]]:
    """Sample, then re-run (fresh seeds, up to ``restarts`` times each) every chain whose mean
    log posterior density is more than :data:`LOGP_GAP` below the best chain's.

    The truncated stick-breaking posterior has minor modes that NUTS chains can fall into during
    warm-up and not leave: a small "ghost" class placed before the dominant one, or (large
    alpha, every stick short) most of the population piled on the truncation class K, which the
    untruncated Dirichlet process would not allow. Their log density is 6 to 35 units below the
    main mode, so (to a Laplace approximation) they carry under 2% of its mass; LCMCR's Gibbs
    sampler avoids them by warming up with alpha held small and the classes ordered by size.
    Returns the InferenceData, the number of re-runs and the chains still far below the best.
    """
    data = {"counts": counts.astype(np.float64), "a_alpha": float(a_alpha),
            "b_alpha": float(b_alpha)}
    run_seeds = iter(seeds.spawn(1 + chains * restarts))
    run = {"h": h, "data": data, "max_classes": max_classes, "sampler": sampler, "draws": draws,
           "tune": tune, "target_accept": target_accept, "progress": progress,
           "sample_kwargs": sample_kwargs}
    idata = _run_sampler(chains=chains, cores=cores, run=next(run_seeds), **run)
    logp = _chain_logp(idata)
    n_reruns = 0
    if chains > 1:
        for chain in np.flatnonzero(logp < logp.max() - LOGP_GAP):
            for _ in range(restarts):
                new = _run_sampler(chains=1, cores=1, run=next(run_seeds), **run)
                n_reruns += 1
                new_logp = _chain_logp(new)[0]
                if new_logp >= logp.max() - LOGP_GAP:
                    _replace_chain(idata, int(chain), new)
                    logp[chain] = new_logp
                    break
    stuck = np.flatnonzero(logp < logp.max() - LOGP_GAP).tolist()
    return idata, n_reruns, stuck


def _diagnostics(idata: Any, level: float) -> tuple[dict[str, Any], list[str], str]:
    post = idata.posterior
    n = post["N"]
    conv = sampling.convergence(idata, "N")
    rhat, ess_bulk, divergences = conv["rhat"], conv["ess_bulk"], conv["divergences"]
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    chain_medians = np.median(n.values, axis=1)
    occupied = post["n_classes"].values.ravel()
    max_classes = post.sizes["class"]
    truncation_mass = float(post["pi"].isel({"class": -1}).mean())
    diag: dict[str, Any] = {
        **conv,
        "chains": n_chains,
        "draws_per_chain": n_draws,
        "chain_medians": chain_medians.tolist(),
        "n_classes_median": float(np.median(occupied)),
        "n_classes_mean": float(occupied.mean()),
        "n_classes_max": int(occupied.max()),
        "prob_all_classes_occupied": float(np.mean(occupied >= max_classes)),
        "truncation_class_mass": truncation_mass,
        "alpha_median": float(post["alpha"].median()),
        "p0_median": float(post["p0"].median()),
    }
    warns: list[str] = []  # of Caveat (a str)
    status = "ok"
    if n_chains > 1 and not rhat <= RHAT_WARN:
        medians = ", ".join(f"{m:,.0f}" for m in chain_medians)
        warns.append(Caveat("convergence", (
            f"the {n_chains} chains disagree about N (R-hat {rhat:.3f} > {RHAT_WARN}; chain "
            f"medians {medians}): the latent-class posterior is multimodal on some tables (LCMCR "
            "gives seed-dependent answers there). Do not report n_hat before running more "
            "draws/chains or comparing seeds; idata holds every chain."),
            {"rhat": rhat, "threshold": RHAT_WARN}))
        if not rhat <= RHAT_FAIL:
            status = "not_converged"
    if ess_bulk < ESS_WARN:
        warns.append(Caveat("convergence", (
            f"only {ess_bulk:.0f} effective draws of N (bulk ESS): the {100 * level:g}% "
            "interval is imprecise; increase draws"), {"ess_bulk": ess_bulk,
                                                       "threshold": float(ESS_WARN)}))
    if divergences:
        warns.append(Caveat("convergence", (
            f"{divergences} divergent transition(s) of {n_chains * n_draws}: the sampler "
            "may have missed part of the posterior; try target_accept=0.95"),
            {"divergences": divergences}))
    if diag["prob_all_classes_occupied"] > 0.25:
        warns.append(f"all {max_classes} latent classes are occupied in "
                     f"{100 * diag['prob_all_classes_occupied']:.0f}% of the draws: increase "
                     "max_classes")
    return diag, warns, status


def fit_latent_class(
    h: CaptureHistories,
    max_classes: int = 10,
    *,
    level: float = 0.95,
    ci: str = "equal_tailed",
    seed: int = DEFAULT_SEED,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    a_alpha: float = 0.25,
    b_alpha: float = 0.25,
    sampler: str = "auto",
    target_accept: float = 0.9,
    restarts: int = 3,
    progress: bool = False,
    check: bool = True,
    **sample_kwargs: Any,
) -> Estimate:
    """Bayesian non-parametric latent-class MSE (Manrique-Vallier 2016; R package LCMCR).

    A truncated stick-breaking (Dirichlet-process) mixture of ``max_classes`` classes of
    independent list captures, with :math:`p(N) \\propto 1/N`:

    .. math::

        P(x) = \\sum_{k=1}^{K} \\pi_k \\prod_j \\lambda_{jk}^{x_j} (1-\\lambda_{jk})^{1-x_j},
        \\quad \\pi \\sim \\mathrm{SB}_K(\\alpha),\\ \\alpha \\sim
        \\mathrm{Gamma}(a_\\alpha, b_\\alpha),\\ \\lambda_{jk} \\sim \\mathrm{Beta}(1, 1),

    sampled by NUTS on the likelihood conditional on being observed,
    :math:`\\prod_{c \\ne 0} (P(c) / (1 - p_0))^{n_c}`, with class labels summed out; each
    posterior draw then gets :math:`N = n + \\mathrm{NegBin}(n, 1 - p_0)`.

    Parameters
    ----------
    h : CaptureHistories
        One stratum, at least 3 lists, whole counts.
    max_classes : int
        Truncation ``K`` of the stick-breaking prior (LCMCR's ``K``). Raise it when the
        diagnostics say all classes are occupied.
    level : float
        Probability of the posterior interval.
    ci : {"equal_tailed"}
        Interval method: the equal-tailed posterior interval.
    seed : int
        Seed of the sampler and of the draws of ``N`` (default
        :data:`tipstat.models.DEFAULT_SEED`); returned in ``Estimate.seed``.
    draws, tune, chains : int
        Posterior draws per chain, warm-up draws per chain, number of chains.
    cores : int, optional
        Chains run in parallel on this many cores (default ``min(chains, cpu count)``).
    a_alpha, b_alpha : float
        Shape and rate of the Gamma prior of the concentration ``alpha`` (LCMCR's defaults).
    sampler : {"auto", "nutpie", "pymc"}
        nutpie (compiled once per shape and process; 2-4x faster; ``"auto"`` takes it when it
        imports, ``pip install tipstat[bayes]``) or PyMC's own NUTS
        (:func:`tipstat.models.sampling.resolve_sampler`).
    target_accept : float
        NUTS target acceptance.
    restarts : int
        A chain whose mean log posterior density is more than 4 below the best chain's sits in a
        minor mode of the truncated stick-breaking posterior (see the notes of ``_sample``); it
        is re-run with a fresh seed up to this many times (``diagnostics["rerun_chains"]``).
        0 keeps every chain as sampled.
    progress : bool
        Show the sampler's progress bar.
    **sample_kwargs
        Passed through to ``nutpie.sample`` or ``pymc.sample``.
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` to the result
        (the table's: sparse table, two lists). False for inner fits.

    Returns
    -------
    Estimate
        ``n_hat`` = posterior median of N, ``ci`` = equal-tailed interval, ``se`` = posterior
        SD, ``draws`` = the draws of N (chains concatenated), ``idata`` = ArviZ InferenceData
        whose posterior has ``N``, ``p0``, ``alpha``, ``pi``, ``lam`` and ``n_classes``;
        ``diagnostics`` has ``rhat``, ``ess_bulk``, ``ess_tail`` (of N), ``divergences``,
        ``chain_medians`` (of N) and the occupied classes (``n_classes_median`` ...). Disagreeing
        chains, few effective draws, divergences or a too small ``max_classes`` give warnings
        (a :class:`~tipstat.TipstatWarning` and ``Estimate.warnings``); R-hat of N above 1.05
        sets ``status="not_converged"``. ``diagnostics["prior_contraction"]``: ``1 -
        var / prior var`` of ``logit p0`` (``p0`` the probability of being on no list;
        prior draws straight from the priors), with a ``prior_driven`` caveat below
        :data:`tipstat.models.sampling.CONTRACTION_WARN`; sampler problems are
        ``convergence`` caveats. ``not_identified_mass``: share of the draws whose unseen
        persons sit mostly in classes no list sees (:func:`not_identified_draws`; caveat above
        5%, status ``lower_bound`` above 50%); with three lists, a ``not_identified_mass``
        caveat also when two or more classes are seen (:func:`several_seen_classes`).
        ``ppp``: posterior predictive p-value of the observed cells (caveat ``lack_of_fit``
        outside [0.05, 0.95]); ``prior_shift``: the upper end under a flat prior on N (the
        draws reweighted by N; caveat ``prior_driven`` above 25%).

    Examples
    --------
    >>> import tipstat
    >>> h = tipstat.datasets.load("MY_5")
    >>> est = tipstat.fit_latent_class(h, draws=500, chains=2, seed=1)  # compiles once (~30 s)
    >>> 580 < est.n_hat < 700, est.diagnostics["rhat"] < 1.05
    (True, True)
    >>> import arviz as az
    >>> float(az.summary(est.idata, var_names=["N"])["mean"].iloc[0]) > est.n_observed
    True
    """
    counts = _check_inputs(h, max_classes, draws, tune, chains, restarts, level, a_alpha, b_alpha,
                           sampler)
    sampler = sampling.resolve_sampler(sampler)
    check_ci(ci, ("equal_tailed",), "fit_latent_class")
    seed = check_seed(seed, "fit_latent_class")
    sampler_seeds, post_seeds = sampling.seeds(seed)
    if cores is None:
        cores = max(1, min(chains, os.cpu_count() or 1))

    start = time.perf_counter()
    idata, n_reruns, stuck = _sample(h, counts, max_classes, a_alpha, b_alpha, sampler, draws,
                                     tune, chains, cores, sampler_seeds, target_accept, progress,
                                     restarts, sample_kwargs)
    seconds = time.perf_counter() - start
    _augment(idata, h, counts, max_classes, np.random.default_rng(post_seeds))

    diag, warns, status = _diagnostics(idata, level)
    diag.update({"sampler": sampler, "seconds": seconds, "max_classes": max_classes,
                 "a_alpha": float(a_alpha), "b_alpha": float(b_alpha), "tune": tune,
                 "target_accept": target_accept, "rerun_chains": n_reruns,
                 "chains_in_minor_mode": stuck})
    contraction = _prior_contraction(idata, h.k, max_classes, a_alpha, b_alpha,
                                     np.random.default_rng(post_seeds.spawn(1)[0]))
    diag["prior_contraction"] = contraction
    if contraction < sampling.CONTRACTION_WARN:
        warns.append(Caveat("prior_driven", (
            f"the data narrowed the prior of the unseen share (logit p0, the log of unseen over "
            f"observed) by only {100 * max(contraction, 0.0):.0f}% of its variance: the prior sets the "
            "interval"), {"contraction": contraction, "threshold": sampling.CONTRACTION_WARN}))
    # what the posterior rests on, from the same draws (own stream: N is unchanged)
    checks_seed = post_seeds.spawn(1)[0]
    n_draws = idata.posterior["N"].values.reshape(-1).astype(float)
    shares, ghost = _rests_on(idata, h.k, float(counts.sum()))
    diag["not_identified_mass"] = float(ghost.mean())
    found, lower = not_identified_caveats(
        diag["not_identified_mass"],
        f"in draws where latent classes expected to hold fewer than {UNSEEN_CLASS_MEMBERS:g} "
        "observed person hold most of the unseen")
    if h.k == 3:
        post = idata.posterior
        several = float(several_seen_classes(
            post["lam"].values.reshape(-1, 3, max_classes),
            post["pi"].values.reshape(-1, max_classes), float(counts.sum())).mean())
        if several > NOT_IDENTIFIED_WARN and not found:
            found.append(Caveat("not_identified_mass", (
                f"with three lists, {100 * several:.0f}% of the posterior is on two or more "
                "latent classes: at least 7 parameters for the 6 free cells of the table, so "
                "the prior on the classes, not the data, decides how far N extends beyond "
                "independence"), {"share": several, "threshold": NOT_IDENTIFIED_WARN}))
    warns += found
    fit_check = predictive_check(counts, shares, seed=checks_seed)
    diag["ppp"] = fit_check.ppp
    lack = ppp_caveat(fit_check, "the latent-class model")
    if lack is not None:
        warns.append(lack)
    ones = np.ones(n_draws.size)
    shifted = prior_shift_caveat(reweighted_upper(n_draws, ones, ones, level),
                                 reweighted_upper(n_draws, ones, n_draws, level),
                                 "on N", "flat (instead of 1/N)", diag)
    if shifted is not None:
        warns.append(shifted)
    if n_reruns:
        warns.append(f"{n_reruns} chain run(s) that settled in a minor mode (mean log density more "
                     f"than {LOGP_GAP:g} below the best chain's) were replaced by re-runs with fresh "
                     "seeds; pass restarts=0 to keep every chain as sampled")
    if stuck:
        warns.append(f"chain(s) {stuck} stayed in a minor mode (mean log density more than "
                     f"{LOGP_GAP:g} below the best chain's) after {restarts} re-run(s) each")
    for w in warns:
        warnings.warn(w, TipstatWarning, stacklevel=2)

    n_draws = idata.posterior["N"].values.reshape(-1)
    low, upper = equal_tailed(n_draws, level, floor=float(counts.sum()))
    est = Estimate(
        n_hat=float(np.median(n_draws)),
        ci=(float(low), float(upper)),
        level=float(level),
        n_observed=float(counts.sum()),
        method="latent_class",
        model=f"NPLCM (K={max_classes}, alpha ~ Gamma({a_alpha:g}, {b_alpha:g}))",
        status=status,
        ci_method="posterior",
        se=float(np.std(n_draws, ddof=1)) if n_draws.size > 1 else math.nan,
        diagnostics=diag,
        draws=n_draws,
        idata=idata,
        seed=seed,
        warnings=tuple(warns),
    )
    if lower and status == "ok":
        est = est.as_lower_bound()
    return attach_checks(est, h, check=check)
