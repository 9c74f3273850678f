"""tipstat's default estimator of the population size from one table of capture histories.

One function, :func:`estimate_population`, so that "the default method" means one thing
everywhere: ``tipstat estimate FILE`` without ``--model``, the reliability check
(:func:`tipstat.validate.internal_consistency` with this function as its ``method``, and so the
reliability shown in reports), and the ``default`` row of the validation study
(``docs/validation.md``).

**The centre** is the BIC model average over hierarchical two-way log-linear models
(Buckland, Burnham & Augustin 1997). It carries the uncertainty of the choice of model, which a
selected model's interval does not, and nothing in it is fitted to any benchmark.

**The interval** (issue 16) answers one question: which models can the data not rule out, and
what do they say? Three rules, each argued from the literature and none tuned to a table:

1. *Occam's window* (Madigan & Raftery 1994): a model whose BIC weight is at least 1/20 of the
   best model's (posterior odds under 20:1, short of Raftery's 1995 "strong" evidence) is
   defensible. Buckland's log-normal interval is widened to contain every such model's own
   log-normal interval, so the answer spans the defensible models (the sensitivity analysis
   Silverman 2020 and Cruyff et al. 2021 ask for) instead of one weighted summary of them;
   where one model dominates nothing changes.
2. *No finite upper end*: ``select_loglinear`` drops the models whose MLE of N does not exist
   or whose N is not identified (Chan, Silverman & Vincent 2021) and averages the rest. Their
   BIC is finite, so they compete: when one of them is inside Occam's window, a model the data
   cannot rule out puts no finite bound on N, and the status is ``"lower_bound"``.
3. *Most of the weight bounds nothing*: a model with no residual df (the saturated model with
   three lists) reproduces the observed cells exactly; it wins the BIC comparison when every
   testable model fails, and its N then rests on the untestable absence of the highest-order
   interaction. When more than half of the weight is on such models and on the left-out ones
   together, the status is ``"lower_bound"`` too.

Rules 2 and 3 are the one lower-bound rule of model selection
(:func:`tipstat.models.selection.lower_bound_reasons`, with the weight shares of
:func:`tipstat.models.selection.weight_shares`), which the default applies through
``select_loglinear(..., bound_share=0.5, bound_odds=20)``; it adds only the Occam interval
and the lower end below.

A lower bound is the smaller lower end of the BIC average and of Chao's lower-bound model
(Rcapture's Mth Chao (LB); Chao 1987), which is a lower bound under capture heterogeneity, the
failure Binette & Steorts (2022) found on every real trafficking table; the upper end is
infinite and ``n_hat`` is nan (no number where there is none: the bound is ``ci[0]``, and the
smaller of the two point estimates is in the caveat's ``values["n_hat"]``). Where the data can bound N
none of the rules changes the point estimate, and the interval always contains Buckland's,
so coverage cannot fall where the assumptions hold. Evidence: ``docs/validation_notes.md``,
"Issue 16: the default on real tables".
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import special

from .._checks import check_ci, check_level
from ..errors import InputError, TipstatError
from ..estimate import Caveat, Estimate, merge_caveats
from ..histories import CaptureHistories
from ..validate import check_assumptions

__all__ = ["BOUND_SHARE", "DEFAULT_RULE", "OCCAM_ODDS", "estimate_population"]

NAME = "default (BIC model average)"
#: Occam's window (Madigan & Raftery 1994): models whose BIC weight is at least 1/20 of the
#: best model's (posterior odds below 20:1, "strong" evidence in Raftery 1995) stay defensible
OCCAM_ODDS = 20.0
#: Above this share of the BIC weight on models that cannot bound N from above (untestable,
#: df = 0, and left-out models together; the majority), the estimate rests on an assumption
#: the data cannot check: only a lower bound is reported
BOUND_SHARE = 0.5
#: Chao's lower-bound model is fitted on its 2^K design up to this many lists
CHAO_MAX_LISTS = 12

#: One-line description of the default rule, as it appears in results.
DEFAULT_RULE = ("BIC model average over hierarchical log-linear models with two-way list "
                "interactions (Buckland et al. 1997 log-normal interval)")


def estimate_population(h: CaptureHistories, *, level: float = 0.95, ci: str = "auto",
                        check: bool = True) -> Estimate:
    """Estimate the population size with tipstat's default method.

    With three or more lists, every hierarchical log-linear model with two-way list
    interactions is fitted (exhaustively up to 40,000 models, by greedy up/down steps beyond:
    :func:`tipstat.select_loglinear`); models whose estimate does not exist or whose N is not
    identifiable are left out and counted. The fitted models are averaged with BIC weights,

    .. math::

        \\hat N = \\sum_m w_m \\hat N_m, \\qquad
        w_m = \\frac{\\exp(-\\Delta_m / 2)}{\\sum_l \\exp(-\\Delta_l / 2)}, \\qquad
        \\Delta_m = \\mathrm{BIC}_m - \\min_l \\mathrm{BIC}_l,

    and the interval is log-normal on the undetected count with Buckland et al.'s (1997)
    unconditional standard error, :math:`\\widehat{se} = \\sum_m w_m
    \\sqrt{se_m^2 + (\\hat N_m - \\hat N)^2}`, which adds the spread between models to each
    model's own standard error. That interval is then joined with the log-normal interval
    of every usable model in Occam's window (from its own :math:`\\hat N_m` and ``se_m``),
    :math:`w_m \\ge \\max_l w_l / 20`. The status is ``"lower_bound"``, with interval
    :math:`[L, \\infty)` and a ``lower_bound_only`` caveat, by the lower-bound rule of
    :func:`tipstat.select_loglinear` with ``bound_odds=20`` and ``bound_share=0.5``: when a
    model with no finite or identified N is in that window (BIC weights counted over every
    candidate, :func:`tipstat.models.selection.weight_shares`), when more than half of the
    weight is on models that cannot bound N (left out, or untestable: df = 0), or when no
    model has a finite estimate; :math:`L` is the smaller 95% lower end of the average and of
    Chao's lower-bound model (module docstring). Caveats ``dropped_models``,
    ``untestable_weight`` and
    ``boundary_weight`` report those weights (``diagnostics["default_weights"]``). The deviance,
    df, AIC and BIC reported are those of the best model, so the lack-of-fit warnings of
    :func:`tipstat.validate.assumption_warnings` apply.
    From seven lists on (2^21 two-way models and more) the average is over the models the
    greedy search fits on its way (about 40-100), not over every model: it still carries the
    spread between the neighbours of the best model, but less of the model uncertainty than
    the exhaustive average does (in the validation study it covers 0.94-0.945 at eight lists).
    Every number of lists up to 20 (:data:`tipstat.histories.MAX_LISTS`) works: from 13 lists
    each candidate is fitted from its moments without the ``2**K`` design, and from 17 lists
    the best model too (20 lists with 190 two-way terms: about 4 s).

    With two lists only the independence model is identifiable; it is fitted
    (Lincoln-Petersen) with a profile-likelihood interval, and the result says that
    independence of the two lists is assumed, not checked.

    Parameters
    ----------
    h : CaptureHistories
        Unstratified capture histories with at least two lists (pool strata first with
        ``h.pooled()``, or estimate each stratum of ``h.by_stratum()``; for the SDG table use
        :func:`tipstat.fit_stratified`, which models the strata jointly).
    level : float
        Interval coverage.
    ci : {"auto"}
        The rule fixes its interval (log-normal with Buckland's SE; the profile-likelihood
        interval with two lists); ``ci`` is there so that every estimator takes the same
        keywords, and anything else is refused.
    check : bool
        Add the warnings of :func:`tipstat.validate.assumption_warnings` (lack of fit of the
        best model, a sparse table; with two lists, pairwise dependence cannot be tested) to
        the result, as :func:`tipstat.validate.check_assumptions` does. In the validation study
        they fire in 28-70% of the samples where the assumptions fail and 0-7% where they
        hold.

    Returns
    -------
    Estimate
        ``method`` is ``"default (BIC model average)"`` (``"default (two lists:
        independence)"``); ``diagnostics["default_rule"]`` names the rule,
        ``diagnostics["models"]`` holds every model with its weight and
        ``diagnostics["default_weights"]`` the weight shares behind the interval.

    Examples
    --------
    >>> import tipstat
    >>> est = tipstat.estimate_population(tipstat.datasets.load("Kosovo_4"))
    >>> round(est.n_hat), [round(x) for x in est.ci]
    (14343, [12538, 16548])
    >>> est.method
    'default (BIC model average)'
    >>> sub = tipstat.validate.sub_histories(tipstat.datasets.load("Australia_4"), "C")[0]
    >>> low = tipstat.estimate_population(sub)  # list C (260 persons) from the other lists
    >>> low.status, round(low.ci[0]), low.ci[1]
    ('lower_bound', 62, inf)
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"estimate_population: expected tipstat.CaptureHistories, got "
                         f"{type(h).__name__}")
    if h.n_strata > 1:
        raise InputError(f"estimate_population: these capture histories have {h.n_strata} strata "
                         f"({', '.join(h.strata)}); estimate the pooled table (h.pooled()), one "
                         "stratum at a time (h.by_stratum()), or model the strata jointly with "
                         "tipstat.fit_stratified")
    check_level(level, "estimate_population")
    check_ci(ci, ("auto",), "estimate_population")
    if h.k == 2:
        from .loglinear import fit_loglinear

        est = fit_loglinear(h, "independence", level=level, check=False)
        name = "default (two lists: independence)"
        rule = ("independence of the two lists (the only identifiable model with two lists; "
                "assumed, not checked)")
        warnings = (*est.warnings, Caveat(
            "two_lists", "two lists: independence between them is assumed and cannot be "
            "checked; positive dependence biases the estimate low", {"lists": 2}))
        if not est.ok:  # no overlap: the data bound N from below only (rule 3)
            lo = float(h.n_observed)
            warnings = (*warnings, Caveat(
                "lower_bound_only", "only a lower bound is supported: no one is on both lists, "
                f"so the estimate does not exist; N is at least the {lo:,.0f} persons seen",
                {"lower": lo}))
            est = replace(est, n_hat=math.nan, ci=(lo, math.inf), status="lower_bound",
                          se=math.nan)
        est = replace(est, method=name, warnings=merge_caveats(est.warnings, warnings),
                      diagnostics={**est.diagnostics, "default_rule": rule})
    else:
        from .selection import select_loglinear

        est = select_loglinear(h, "bic", average=True, level=level, check=False,
                               bound_share=BOUND_SHARE, bound_odds=OCCAM_ODDS)
        if est.status in ("not_converged", "failed"):
            # a search stopped at its work budget (or a failure) says so itself
            est = replace(est, method=NAME)
        elif est.status == "lower_bound":
            est = _lower_bound(h, est, level)
        else:
            est = _occam_interval(h, est, level)
    if check:
        est = check_assumptions(est, h)
    return est


def _lognormal(n_obs: float, n_hat: float, se: float, z: float) -> tuple[float, float]:
    """Log-normal interval on the undetected count ``n_hat - n_obs`` (Chao 1987)."""
    dark = n_hat - n_obs
    if not (math.isfinite(se) and dark > 0):
        return (n_hat, n_hat)
    c = math.exp(z * math.sqrt(math.log1p((se / dark) ** 2)))
    return (n_obs + dark / c, n_obs + dark * c)


def _chao_lower(h: CaptureHistories, level: float) -> tuple[float, float]:
    """Point and lower interval end of Chao's lower bound (Rcapture's Mth Chao (LB)), or nans."""
    if h.k > CHAO_MAX_LISTS:
        return (math.nan, math.nan)
    from .heterogeneity import fit_closedp_model

    try:
        chao = fit_closedp_model(h, "Mth Chao (LB)", level=level)
    except TipstatError:
        return (math.nan, math.nan)
    if not chao.ok:
        return (math.nan, math.nan)
    return (float(chao.n_hat), float(chao.ci[0]))


def _lower_bound(h: CaptureHistories, est: Estimate, level: float) -> Estimate:
    """The selection's lower bound, with the default's lower end: the smaller lower end of the
    BIC average and of Chao's lower-bound model (module docstring)."""
    n_obs = float(h.n_observed)
    u = est.diagnostics.get("unsupported") or {}
    avg_n = float(u.get("n_hat", math.nan))
    avg_lo = float(u.get("ci", (math.nan, math.nan))[0])
    if u.get("status") not in ("ok", "extended") or not math.isfinite(avg_n):
        avg_n = avg_lo = math.nan  # nothing was averaged: the persons seen, or Chao's bound
    chao_n, chao_lo = _chao_lower(h, level)
    points = [x for x in (avg_n, chao_n) if math.isfinite(x)]
    lows = [x for x in (avg_lo, chao_lo) if math.isfinite(x)]
    n_lb = max(n_obs, min(points)) if points else n_obs
    lo = max(n_obs, min(lows)) if lows else n_obs
    shares = {k: est.diagnostics.get(k, math.nan) for k in (
        "excluded_weight", "untestable_weight", "extended_weight", "unbounded_weight")}
    info = {**shares, "occam_window": OCCAM_ODDS, "bound_share": BOUND_SHARE,
            "lower_bound": lo}
    kept = [w for w in est.warnings if w.code != "lower_bound_only"]
    why = next((w for w in est.warnings if w.code == "lower_bound_only"), None)
    text = str(why).rstrip(".") if why is not None else "only a lower bound is supported"
    bound = Caveat("lower_bound_only", text + f". N is at least about {lo:,.0f} ({level:.0%} "
                   "lower end of the smaller of the BIC average and Chao's lower-bound model); "
                   "no upper end is given",
                   {**(dict(why.values) if why is not None else {}), "lower": lo, "n_hat": n_lb})
    return replace(est, ci=(lo, math.inf), method=NAME, ci_method="lower bound (see warnings)",
                   warnings=(*kept, bound),
                   diagnostics={**est.diagnostics, "default_rule": DEFAULT_RULE,
                                "default_weights": info, "reason": str(bound)})


def _occam_interval(h: CaptureHistories, est: Estimate, level: float) -> Estimate:
    """Buckland's interval joined with that of every usable model in Occam's window: usable
    models whose BIC weight is at least 1/:data:`OCCAM_ODDS` of the best usable one."""
    z = float(special.ndtri(1 - (1.0 - level) / 2))  # (stats.norm.ppf, without its ~0.1 ms)
    n_obs = float(h.n_observed)
    models = est.diagnostics.get("models")
    info: dict[str, float] = {k: est.diagnostics.get(k, math.nan) for k in (
        "excluded_weight", "untestable_weight", "extended_weight", "unbounded_weight")}
    info.update(occam_window=OCCAM_ODDS, bound_share=BOUND_SHARE, lower_bound=math.nan)
    lo, hi = est.ci
    if isinstance(models, pd.DataFrame) and {"n_hat", "se", "weight"} <= set(models.columns):
        weight = models["weight"]
        w = (weight.to_numpy() if weight.dtype == np.float64 else
             pd.to_numeric(weight, errors="coerce").to_numpy(dtype=float))
        status = models["status"].to_numpy(dtype=object)
        ok = ((status == "ok") | (status == "extended")) & (w > 0)
        if ok.any():
            win = ok & (w >= w[ok].max() / OCCAM_ODDS)
            for n_m, se_m in zip(models["n_hat"].to_numpy(dtype=float)[win],
                                 models["se"].to_numpy(dtype=float)[win], strict=True):
                a, b = _lognormal(n_obs, n_m, se_m, z)
                lo, hi = min(lo, a), max(hi, b)
            info["window_models"] = float(win.sum())
    ci_method = est.ci_method
    if (lo, hi) != tuple(est.ci):
        ci_method = "lognormal (Buckland SE), joined with the models in Occam's window"
    return replace(est, ci=(lo, hi), ci_method=ci_method, method=NAME,
                   diagnostics={**est.diagnostics, "default_rule": DEFAULT_RULE,
                                "default_weights": info})
