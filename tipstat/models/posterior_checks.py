"""Checks of what a Bayesian posterior of N rests on, shared by the four Bayesian estimators.

:func:`tipstat.fit_bayes_loglinear`, :func:`tipstat.fit_latent_class`,
:func:`tipstat.fit_graphical` and :func:`tipstat.fit_loglinear_bma` each hand their own
posterior draws here (no new MCMC) and attach the same three kinds of
:class:`~tipstat.estimate.Caveat`:

* **goodness of fit** (:func:`predictive_check`): a posterior predictive p-value on the observed
  cells, ``diagnostics["ppp"]``; a ``lack_of_fit`` caveat outside ``[PPP_LOW, PPP_HIGH]``;
* **prior sensitivity** (:func:`reweighted_upper`, :func:`prior_shift_caveat`): the upper end of
  the interval of N under a second prior one power of N (or of the expected unseen count) flatter,
  by exact importance reweighting of the posterior draws, ``diagnostics["prior_shift"]``; a
  ``prior_driven`` caveat when it moves by more than :data:`PRIOR_SHIFT_WARN`;
* **mass where N is not identified** (:func:`not_identified_caveats`): ``not_identified_mass``
  above :data:`NOT_IDENTIFIED_WARN`, and ``lower_bound_only`` (status ``lower_bound``) above
  :data:`LOWER_BOUND_MASS`.

**The posterior predictive p-value.** Under every one of these models the number of persons
observed, ``n = sum_c y_c``, carries information about N only; how the ``n`` persons split over
the ``2**K - 1`` observed capture patterns is what a model can get wrong. Given a posterior draw
``theta_s``, the model implies that split: ``y | n, theta_s ~ Multinomial(n, pi_s)`` with
``pi_sc = mu_sc / sum_c' mu_sc'`` for the Poisson log-linear models and ``pi_sc = p_sc / (1 -
p_s0)`` for the multinomial ones (graphical, latent class). For each draw one replicate table
``y_rep_s`` is drawn from it and the Freeman-Tukey discrepancy

.. math::

    T(y, \\theta_s) = \\sum_c \\big(\\sqrt{y_c} - \\sqrt{n \\pi_{sc}}\\big)^2

(robust to empty cells, unlike the deviance or Pearson's X^2) is compared:

.. math::

    \\text{ppp} = \\Pr\\{T(y^{rep}, \\theta) \\ge T(y, \\theta) \\mid y\\}
    \\approx \\frac1S \\sum_s \\big[1\\{T(y^{rep}_s, \\theta_s) > T(y, \\theta_s)\\}
    + \\tfrac12 1\\{=\\}\\big].

Its Monte Carlo standard error is ``sqrt(ppp (1 - ppp) / S)`` (draws taken as independent).
A posterior predictive p-value is conservative: under a model that holds it concentrates around
0.5 rather than being uniform, and ``P(ppp <= a) <= 2a`` (Meng 1994). A value below
:data:`PPP_LOW` = 0.05 is therefore strong evidence that the observed cells are not like the
model's tables (the 5% level of the deviance test of the maximum-likelihood fits). A value above
:data:`PPP_HIGH` = 0.95 says the observed cells sit closer to the fitted cells than the model's
own replicates do: the posterior reproduces the observed cells by construction (as many free
parameters as cells, the saturated case of the untestable models) or the counts vary less
than counts of persons do (e.g. rounded expected counts), so the cells do not test it.
Both are reported as ``lack_of_fit``: the fit to the observed cells does not support the model.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> pi = rng.dirichlet(np.ones(7) * 50, size=1000)     # posterior draws of the cell shares
>>> y = rng.multinomial(500, pi.mean(axis=0))
>>> check = predictive_check(y, pi, seed=1)
>>> 0.05 < check.ppp < 0.95
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import DEFAULT_SEED
from ..errors import InputError, Problem
from ..estimate import Caveat

__all__ = ["LOWER_BOUND_MASS", "NOT_IDENTIFIED_WARN", "PPP_DRAWS", "PPP_HIGH", "PPP_LOW",
           "PRIOR_SHIFT_WARN", "PredictiveCheck", "not_identified_caveats", "ppp_caveat",
           "predictive_check", "prior_shift_caveat", "reweighted_upper", "softmax_rows"]

#: Posterior predictive p-value below which a Bayesian fit carries a ``lack_of_fit`` caveat.
PPP_LOW = 0.05
#: ... and above which (the observed cells fit better than the model's own replicates).
PPP_HIGH = 0.95
#: Posterior draws (at most) used for the predictive check: Monte Carlo SE <= 0.011.
PPP_DRAWS = 2000
#: Posterior mass where N is not identified above which a fit carries ``not_identified_mass``:
#: 5% of the mass with a prior-shaped, heavy tail is enough to move the upper end of a 95%
#: interval.
NOT_IDENTIFIED_WARN = 0.05
#: ... and above which the status is ``"lower_bound"`` (the majority of the posterior).
LOWER_BOUND_MASS = 0.5
#: Relative move of the interval's upper end under a second prior (one power of N, or of the
#: expected unseen count, flatter) above which the result carries a ``prior_driven`` caveat.
#: Where the data identify N, the move is about ``exp(sd(log N)^2) - 1``: below 25% while
#: ``sd(log N) < 0.47`` (an interval spanning a factor of about 6); beyond it the prior, not the
#: data, sets the upper end (graphical: Spina_3 1%; UK_5 4%; Netherlands_5 30%; Australia_4
#: 400%).
PRIOR_SHIFT_WARN = 0.25


@dataclass(frozen=True)
class PredictiveCheck:
    """Result of :func:`predictive_check`.

    Attributes
    ----------
    ppp : float
        Posterior predictive p-value ``P(T(y_rep) >= T(y))`` (mid-p for ties).
    mc_se : float
        Its Monte Carlo standard error ``sqrt(ppp (1 - ppp) / n_draws)``.
    n_draws : int
        Posterior draws (one replicate table each).
    observed : float
        Posterior mean of the discrepancy of the observed table, ``E[T(y, theta)]``.
    replicated : float
        Posterior mean of the discrepancy of the replicates, ``E[T(y_rep, theta)]``.
    """

    ppp: float
    mc_se: float
    n_draws: int
    observed: float
    replicated: float


def softmax_rows(log_mu: np.ndarray) -> np.ndarray:
    """Rows of ``exp(log_mu)`` normalised to sum to one (cell shares from log expected counts).

    Examples
    --------
    >>> softmax_rows(np.log(np.array([[1.0, 3.0]]))).tolist()
    [[0.25, 0.75]]
    """
    a = np.asarray(log_mu, dtype=float)
    a = np.exp(a - a.max(axis=-1, keepdims=True))
    return a / a.sum(axis=-1, keepdims=True)


def _freeman_tukey(y: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return np.sum((np.sqrt(y) - np.sqrt(expected)) ** 2, axis=-1)


def predictive_check(y: Any, probs: Any, *, seed: int | np.random.SeedSequence = DEFAULT_SEED,
                     max_draws: int = PPP_DRAWS) -> PredictiveCheck:
    """Posterior predictive p-value of the observed cells (Freeman-Tukey discrepancy).

    For each posterior draw ``s`` of the observed-cell shares ``pi_s`` (rows of ``probs``), one
    table ``y_rep_s ~ Multinomial(n, pi_s)`` with ``n = sum(y)``; then

    .. math::

        \\text{ppp} = \\frac1S \\sum_s 1\\{T(y^{rep}_s, \\pi_s) > T(y, \\pi_s)\\},\\qquad
        T(y, \\pi) = \\sum_c (\\sqrt{y_c} - \\sqrt{n \\pi_c})^2

    (ties count one half). See the module docstring for why the replicates are conditional on
    ``n`` and how to read the value.

    Parameters
    ----------
    y : array (C,)
        Observed counts of the cells (whole, non-negative, total > 0).
    probs : array (S, C)
        Posterior draws of the cell shares given that a person is observed (rows normalised
        here; non-negative, finite, each row with a positive sum).
    seed : int or SeedSequence
        Seed of the subsample of draws and of the replicate tables.
    max_draws : int
        At most this many draws are used (a random subsample without replacement beyond it).

    Returns
    -------
    PredictiveCheck

    Examples
    --------
    >>> import numpy as np
    >>> pi = np.tile([0.5, 0.5], (400, 1))
    >>> predictive_check([500, 0], pi, seed=1).ppp   # half the persons should be in cell 2
    0.0
    """
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] != y.size or p.shape[0] < 1:
        raise InputError("probs must be posterior draws x cells", [Problem(
            "probs", None, str(p.shape), f"an array of shape (draws, {y.size})")])
    if np.any(~np.isfinite(y)) or np.any(y < 0) or np.any(y != np.round(y)) or y.sum() <= 0:
        raise InputError("y must be whole non-negative counts", [Problem(
            "y", None, None, "whole non-negative counts with a positive total")])
    sums = p.sum(axis=1)
    if np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(sums <= 0):
        raise InputError("probs must be finite non-negative shares", [Problem(
            "probs", None, None, "finite non-negative values, every row with a positive sum")])
    rng = np.random.default_rng(seed)
    if p.shape[0] > max_draws:
        keep = np.sort(rng.choice(p.shape[0], size=max_draws, replace=False))
        p, sums = p[keep], sums[keep]
    p = p / sums[:, None]
    n = int(y.sum())
    # multinomial draws need shares summing to at most one in floating point
    y_rep = rng.multinomial(n, np.clip(p, 0.0, None) / p.sum(axis=1, keepdims=True) * (1 - 1e-12))
    expected = n * p
    t_obs = _freeman_tukey(y[None, :], expected)
    t_rep = _freeman_tukey(y_rep.astype(float), expected)
    ppp = float(np.mean(t_rep > t_obs) + 0.5 * np.mean(t_rep == t_obs))
    s = p.shape[0]
    return PredictiveCheck(ppp=ppp, mc_se=math.sqrt(ppp * (1 - ppp) / s), n_draws=s,
                           observed=float(t_obs.mean()), replicated=float(t_rep.mean()))


def ppp_caveat(check: PredictiveCheck, what: str = "the model") -> Caveat | None:
    """The ``lack_of_fit`` caveat of a posterior predictive p-value outside
    ``[PPP_LOW, PPP_HIGH]`` (None inside).

    Examples
    --------
    >>> c = ppp_caveat(PredictiveCheck(0.001, 0.001, 1000, 30.0, 6.0))
    >>> c.code, c.values["ppp"]
    ('lack_of_fit', 0.001)
    >>> ppp_caveat(PredictiveCheck(0.4, 0.015, 1000, 6.0, 6.2)) is None
    True
    """
    values = {"ppp": check.ppp, "mc_se": check.mc_se, "n_draws": float(check.n_draws),
              "low": PPP_LOW, "high": PPP_HIGH}
    if check.ppp < PPP_LOW:
        return Caveat("lack_of_fit", (
            f"posterior predictive check: the observed cells are further from {what} than "
            f"{100 * (1 - check.ppp):.1f}% of the tables replicated from its posterior "
            f"(ppp = {check.ppp:.3f} < {PPP_LOW}, Freeman-Tukey discrepancy): {what} does not "
            "fit the observed cells"), values)
    if check.ppp > PPP_HIGH:
        return Caveat("lack_of_fit", (
            f"posterior predictive check: the observed cells are closer to {what} than "
            f"{100 * check.ppp:.1f}% of its own replicated tables (ppp = {check.ppp:.3f} > "
            f"{PPP_HIGH}): the posterior reproduces them by construction (about as many "
            "parameters as cells) or the counts vary less than counts of persons do, so the fit "
            "cannot be tested"), values)
    return None


def reweighted_upper(values: Any, weights: Any, factor: Any, level: float,
                     order: np.ndarray | None = None) -> float:
    """Upper end of the equal-tailed ``level`` interval of ``values`` after reweighting the
    posterior draws by ``factor`` (the ratio of a second prior to the first, exact importance
    reweighting: ``p2(theta | y) ∝ p1(theta | y) p2(theta) / p1(theta)``). ``order``: the
    stable sorting permutation of ``values`` when already known.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.arange(1.0, 101.0)
    >>> reweighted_upper(v, np.ones(100), np.ones(100), 0.9) <= reweighted_upper(v, np.ones(100), v, 0.9)
    True
    """
    v = np.asarray(values, dtype=float).ravel()
    w = np.asarray(weights, dtype=float).ravel() * np.asarray(factor, dtype=float).ravel()
    # (reductions, not masks: no temporary as long as the draws)
    if not (w.min(initial=0.0) >= 0 and w.max(initial=0.0) < math.inf
            and v.min(initial=0.0) > -math.inf and v.max(initial=0.0) < math.inf):
        ok = np.isfinite(v) & np.isfinite(w) & (w >= 0)
        w = np.where(ok, w, 0.0)
        v = np.where(ok, v, 0.0)
    total = w.sum()
    if not total > 0:
        return math.nan
    if order is None:
        order = np.argsort(v, kind="stable")
    # weighted_quantiles(v, w / total, [q], order) with one array as long as the draws: the
    # sorted weights are normalised, summed and searched in place, and only the value found is
    # read from v
    c = w[order]
    c /= total
    np.cumsum(c, out=c)
    c /= c[-1]
    q = 1 - (1 - level) / 2
    return float(v[order[min(int(np.searchsorted(c, q)), len(c) - 1)]])


def prior_shift_caveat(upper: float, upper2: float, what: str, second: str,
                       diagnostics: dict | None = None) -> Caveat | None:
    """The ``prior_driven`` caveat when the upper end ``upper`` of the interval moves to
    ``upper2`` under a second prior by more than :data:`PRIOR_SHIFT_WARN` (relative).

    ``what`` names the prior that changed ("on N"), ``second`` the second prior ("flat").
    Writes ``diagnostics["prior_shift"]`` when given.

    Examples
    --------
    >>> prior_shift_caveat(500.0, 900.0, "on N", "flat").values["shift"]
    0.8
    >>> prior_shift_caveat(500.0, 510.0, "on N", "flat") is None
    True
    """
    shift = (upper2 - upper) / upper if upper > 0 and math.isfinite(upper) else math.nan
    if diagnostics is not None:
        diagnostics["prior_shift"] = float(shift)
    if not (math.isfinite(shift) and abs(shift) > PRIOR_SHIFT_WARN):
        return None
    return Caveat("prior_driven", (
        f"the prior {what} sets the upper end: under a {second} prior instead it moves from "
        f"{upper:,.0f} to {upper2:,.0f} ("
        + (f"{100 * shift:+.0f}%" if abs(shift) < 1 else f"x{1 + shift:.3g}") + ")"),
        {"shift": float(shift), "upper": float(upper), "upper_second_prior": float(upper2),
         "threshold": PRIOR_SHIFT_WARN})


def not_identified_caveats(mass: float, where: str, extra: dict | None = None
                           ) -> tuple[list[Caveat], bool]:
    """Caveats of a posterior mass ``mass`` sitting where N is not identified (``where``
    completes "...% of the posterior is ..."): ``not_identified_mass`` above
    :data:`NOT_IDENTIFIED_WARN`, and ``lower_bound_only`` above :data:`LOWER_BOUND_MASS`;
    returns them and whether the answer is only a lower bound.

    Examples
    --------
    >>> found, lower = not_identified_caveats(0.7, "on a class no list can see")
    >>> [c.code for c in found], lower
    (['not_identified_mass', 'lower_bound_only'], True)
    """
    out: list[Caveat] = []
    if not mass > NOT_IDENTIFIED_WARN:
        return out, False
    out.append(Caveat("not_identified_mass", (
        f"{100 * mass:.0f}% of the posterior is {where}, where N is not identified (the prior, "
        "not the data, sets it there)"),
        {"share": float(mass), **(extra or {}), "threshold": NOT_IDENTIFIED_WARN}))
    lower = mass > LOWER_BOUND_MASS
    if lower:
        out.append(Caveat("lower_bound_only", (
            f"the data support only a lower bound on N: {100 * mass:.0f}% of the posterior is "
            f"{where}, where N is not identified"),
            {"share": float(mass), "threshold": LOWER_BOUND_MASS}))
    return out, lower
