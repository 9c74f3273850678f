"""The network scale-up method (NSUM): the size of a hidden population from what survey
respondents say about the people they know.

A household survey cannot reach people in forced labour who live outside households (worksites,
camps, vessels, domestic work behind closed doors) or who would not say so. The scale-up method
asks the respondents instead about the people they *know*: how many they know in each of several
populations of known size (persons called Maria, nurses, people who died last year, ...) and
how many in the hidden population. Killworth et al. (1998):

.. math::

    \\hat d_i = N \\, \\frac{\\sum_k y_{ik}}{\\sum_k N_k}, \\qquad
    \\hat N_H = N \\, \\frac{\\sum_i w_i \\, y_{iH}}{\\sum_i w_i \\, \\hat d_i}
             = \\Big(\\sum_k N_k\\Big) \\frac{\\sum_i w_i y_{iH}}{\\sum_i w_i \\sum_k y_{ik}},

with :math:`y_{ik}` the number of members of known population :math:`k` (size :math:`N_k`)
respondent :math:`i` knows, :math:`y_{iH}` the number of members of the hidden population,
:math:`\\hat d_i` the respondent's personal network size (known-population method), :math:`w_i`
the survey weight and :math:`N` the size of the population the respondents are drawn from. The
weighted (Horvitz-Thompson) form is the generalised scale-up estimator of Feehan and Salganik
(2016) with the degree ratio and the true-positive rate set to 1.

Uncertainty: the Rao-Wu (1988) rescaling bootstrap of the primary sampling units within strata
(design-based: clusters are resampled whole, so the intraclass correlation of the reports is in
the interval), the percentile interval of the replicates; without declared PSUs, the same
bootstrap of respondents. The first stage is read from the
:class:`~tipstat.survey.SurveyDesign` (strata, PSUs, fpc and the lonely-PSU rule as
``declare_design`` checked them): a stratum with one PSU adds no variance under
``single_psu="certainty"``; under ``"centre"`` the strata with one PSU are pooled into one
pseudo-stratum and resampled together (the bootstrap's counterpart of centring their PSUs at the
mean of all PSUs). Later stages of a multi-stage design add nothing (the first-stage
with-replacement approximation). A design with replicate weights uses its own replicates.

What the method assumes and the data cannot test (stated on every result, code ``nsum_bias``):
*transmission* (respondents know that their contacts are in the hidden population: people in
forced labour often hide it, so the estimate is biased downward), *barrier effects* (the
respondents' networks contain the hidden population in the same proportion as the population
does; people in forced labour are segregated from the general population, again a downward
bias) and *recall* (respondents count their contacts accurately; large known populations are
under-counted). The one check the data allow: each known population is estimated from the others
(leave one out) and compared with its known size; known populations that the method misses by
more than a stated factor are reported (code ``internal_inconsistency``).

References
----------
Killworth, P. D., McCarty, C., Bernard, H. R., Shelley, G. A. and Johnsen, E. C. (1998).
Estimation of seroprevalence, rape, and homelessness in the United States using a social
network approach. Evaluation Review 22(2), 289-308.
Feehan, D. M. and Salganik, M. J. (2016). Generalizing the network scale-up method: a new
estimator for the size of hidden populations. Sociological Methodology 46(1), 153-186.
Rao, J. N. K. and Wu, C. F. J. (1988). Resampling inference with complex survey data. Journal
of the American Statistical Association 83(401), 231-241.
Salganik, M. J., Mello, M. B., Abdo, A. H., Bertoni, N., Fazito, D. and Bastos, F. I. (2011).
The game of contacts: estimating the social visibility of groups. Social Networks 33(1), 70-78.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._checks import DEFAULT_SEED, check_ci, check_level, check_seed
from ..errors import InputError, Problem
from ..estimate import Caveat, Estimate

__all__ = ["CONSISTENCY_FACTOR", "LARGE_KNOWN_SHARE", "fit_nsum", "nsum_withheld"]

#: Interval methods of :func:`fit_nsum` (first: the default).
CI_METHODS = ("bootstrap", "none")
#: A known population estimated from the others (leave one out) is reported when the estimate
#: is off its known size by more than this factor (above ``f`` times or below ``1/f`` times).
#: 1.5 is a generous margin for sampling error at usual survey sizes; larger misses point to
#: recall error or barrier effects.
CONSISTENCY_FACTOR = 1.5
#: Known populations above this share of the population are reported as prone to recall error
#: (people under-count large groups they know; McCormick, Salganik and Zheng 2010 recommend
#: known populations of about 0.1% to 0.2% of the population).
LARGE_KNOWN_SHARE = 0.01
#: Rows of the bootstrap computed at once (bounds memory: rows x sampling units).
_CHUNK = 200


@dataclass(frozen=True)
class _FirstStage:
    """What the scale-up reads of a :class:`~tipstat.survey.SurveyDesign`: the weights and the
    first-stage units (all of it computed and checked by ``declare_design``)."""

    weights: np.ndarray
    unit: np.ndarray            # first-stage unit index of each respondent (0 .. n_units-1)
    unit_stratum: np.ndarray    # per unit: the stratum it is resampled in
    unit_fraction: np.ndarray   # per unit: its stratum's first-stage sampling fraction
    clustered: bool             # PSUs were declared (else every respondent is its own unit)
    replicates: np.ndarray | None = None   # replicate weights (n x R) of a replicate design


def _as_design(design: Any, weights: str | None) -> Any:
    """A :class:`~tipstat.survey.SurveyDesign` as given, or a DataFrame declared as a simple
    random sample of respondents (weights from the column ``weights``, else equal) through
    :func:`~tipstat.survey.declare_design`, which checks it."""
    from .design import SurveyDesign, declare_design

    if isinstance(design, SurveyDesign):
        if weights is not None:
            raise InputError("fit_nsum: weights= is for a DataFrame; a survey design has its own "
                             "weights column")
        return design
    if not isinstance(design, pd.DataFrame):
        raise InputError(f"fit_nsum: expected a survey design (tipstat.survey.declare_design) or "
                         f"a pandas DataFrame of a simple random sample, got "
                         f"{type(design).__name__}")
    if len(design) < 2:
        raise InputError(f"fit_nsum: {len(design)} respondent(s); expected at least 2")
    if weights is not None:
        return declare_design(design, weights=weights)
    column = "_weight"
    while column in design.columns:
        column = "_" + column
    return declare_design(design.assign(**{column: 1.0}), weights=column)


def _first_stage(design: Any) -> _FirstStage:
    """The first stage of a declared design; under ``single_psu="centre"`` the strata with a
    single PSU (not sampled with certainty) are pooled into one pseudo-stratum, the bootstrap's
    counterpart of centring them at the mean of all PSUs."""
    n = len(design.data)
    if n < 2:
        raise InputError(f"fit_nsum: {n} respondent(s); expected at least 2")
    w = np.asarray(design._w, dtype=float)
    if design.replicate_weights:
        return _FirstStage(w, np.arange(n), np.zeros(n, dtype=int), np.zeros(n), False,
                           replicates=np.asarray(design._rep, dtype=float))
    st = design._stages[0]
    unit_stratum = np.asarray(st.unit_group, dtype=int).copy()
    unit_fraction = np.asarray(st.fraction, dtype=float)[unit_stratum]
    if design.single_psu == "centre":
        lonely = (st.n_units == 1) & (st.fraction < 1 - 1e-12)
        unit_stratum[lonely[unit_stratum]] = len(st.n_units)
    return _FirstStage(w, np.asarray(st.unit, dtype=int), unit_stratum, unit_fraction,
                       bool(design.psu))


def _reports(data: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The count columns as a float matrix and the rows with a missing answer; bad values are
    an InputError naming column and row (never the value)."""
    missing_cols = [c for c in columns if c not in data.columns]
    if missing_cols:
        raise InputError(f"fit_nsum: column(s) {missing_cols} not in the data; expected one "
                         "column per population, with the number of its members each "
                         "respondent knows")
    from .design import _problem

    out = np.empty((len(data), len(columns)))
    problems: list[Problem] = []
    missing = np.zeros(len(data), dtype=bool)
    for j, c in enumerate(columns):
        raw = data[c]
        v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        absent = raw.isna().to_numpy()
        bad = (~absent & ~np.isfinite(v)) | (np.isfinite(v) & (v < 0))
        if bad.any():
            problems.append(_problem(c, bad, "a number of people known, >= 0"))
        missing |= absent
        out[:, j] = v
    if problems:
        raise InputError("fit_nsum: the scale-up questions must hold counts of people known",
                         problems)
    return out, missing


def _rao_wu(d: _FirstStage, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Replicate weight factors of the first-stage units (``n_boot x n_units``), Rao and Wu
    (1988) with ``m_h = n_h - 1`` units drawn with replacement in each stratum:
    ``a = 1 - l + l * n_h / m_h * r``, ``l = sqrt(m_h (1 - f_h) / (n_h - 1))``; a stratum with
    one unit keeps factor 1 (it contributes no variance)."""
    n_units = len(d.unit_stratum)
    factors = np.ones((n_boot, n_units))
    for h in range(int(d.unit_stratum.max()) + 1):
        units = np.flatnonzero(d.unit_stratum == h)
        nh = len(units)
        if nh < 2:
            continue
        m = nh - 1
        r = rng.multinomial(m, np.full(nh, 1.0 / nh), size=n_boot)
        lam = np.sqrt(m * (1.0 - d.unit_fraction[units]) / (nh - 1))
        factors[:, units] = 1.0 - lam + lam * (nh / m) * r
    return factors


def _ratio(num: np.ndarray, den: np.ndarray, total_known: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, total_known * num / den, np.nan)


def fit_nsum(
    design: Any,
    hidden: str,
    *,
    known: Mapping[str, float],
    population: float,
    level: float = 0.95,
    ci: str = "bootstrap",
    n_boot: int = 1000,
    seed: int = DEFAULT_SEED,
    weights: str | None = None,
    consistency_factor: float = CONSISTENCY_FACTOR,
) -> Estimate:
    """Size of a hidden population by the network scale-up method (Killworth et al. 1998).

    .. math::

        \\hat N_H = N \\frac{\\sum_i w_i y_{iH}}{\\sum_i w_i \\hat d_i}, \\qquad
        \\hat d_i = N \\frac{\\sum_k y_{ik}}{\\sum_k N_k}

    (see the module notes for the symbols and what the method assumes).

    Parameters
    ----------
    design : SurveyDesign or DataFrame
        The respondents: a declared design (:func:`tipstat.survey.declare_design`: its weights,
        strata, first-stage PSUs, first-stage fpc, lonely-PSU rule and replicate weights are
        used as declared and checked there), or a DataFrame, which is a simple random sample
        of respondents and is declared so by ``declare_design`` (weights from the column
        ``weights``, else equal). A stratified or clustered sample is declared with
        ``declare_design`` first: the design is stated and checked in one place.
    hidden : str
        Column: how many people in the hidden population each respondent knows.
    known : mapping of str to float
        Column -> size :math:`N_k` of that known population (at least one; two or more allow
        the internal-consistency check).
    population : float
        Size :math:`N` of the population the respondents are drawn from (and whose members
        they report on), e.g. the adult population of the country.
    level : float
        Interval coverage.
    ci : ``"bootstrap"`` or ``"none"``
        ``"bootstrap"``: percentile interval of ``n_boot`` Rao-Wu rescaling bootstrap
        replicates (PSUs within strata; respondents without declared PSUs); for a design with
        replicate weights, the design's replicates instead: their variance (the design's
        replicate method) and a log-normal interval ``N_H exp(-/+ z SE / N_H)``.
    n_boot : int
        Bootstrap replicates.
    seed : int
        Seed of the bootstrap.
    weights : str, optional
        Weights column when ``design`` is a DataFrame (an error with a SurveyDesign, which
        has its own).
    consistency_factor : float
        A known population estimated from the others is reported (caveat
        ``internal_inconsistency``) when off its size by more than this factor (default 1.5).

    Returns
    -------
    Estimate
        ``n_hat`` the hidden population's size, ``ci`` its interval, ``method`` ``"nsum"``,
        ``n_observed`` nan (nobody in the hidden population is observed), ``draws`` the
        bootstrap replicates, ``warnings`` the caveats (always ``nsum_bias``: transmission,
        barrier and recall assumptions; ``internal_inconsistency`` when the known populations
        disagree). ``diagnostics``: ``known_populations`` (the leave-one-out check, one row per
        known population), ``mean_degree``, ``population`` (N), ``respondents``,
        ``respondents_reporting`` (those
        with a weight who know at least one member of the hidden population: the figure rests
        on their reports, see :func:`nsum_withheld`), ``excluded_respondents``,
        ``resampled``, ``n_boot``, ``n_failed``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> degree = rng.gamma(4.0, 75.0, size=3000)              # personal network sizes
    >>> N, sizes, N_H = 1e6, {"nurses": 4000, "teachers": 9000, "named_ana": 2500}, 5000
    >>> df = pd.DataFrame({c: rng.poisson(degree * s / N) for c, s in sizes.items()})
    >>> df["forced_labour"] = rng.poisson(degree * N_H / N)
    >>> est = fit_nsum(df, "forced_labour", known=sizes, population=N, n_boot=200, seed=1)
    >>> est.ci[0] < N_H < est.ci[1], est.status, [w.code for w in est.warnings]
    (True, 'ok', ['nsum_bias'])
    """
    check_level(level, "fit_nsum")
    check_ci(ci, CI_METHODS, "fit_nsum")
    seed = check_seed(seed, "fit_nsum")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 20:
        raise InputError(f"fit_nsum: n_boot={n_boot!r}; expected a whole number >= 20")
    if not isinstance(hidden, str):
        raise InputError(f"fit_nsum: hidden={hidden!r}; expected the name of a column")
    if not isinstance(known, Mapping) or not known:
        raise InputError("fit_nsum: known= expects a mapping column -> size of that known "
                         "population, e.g. {'nurses': 41000, 'named_maria': 12000}")
    try:
        N = float(population)
    except (TypeError, ValueError):
        raise InputError(f"fit_nsum: population={population!r}; expected a positive number") \
            from None
    if not math.isfinite(N) or N <= 0:
        raise InputError(f"fit_nsum: population={population!r}; expected a positive number")
    sizes = {}
    for c, v in known.items():
        try:
            s = float(v)
        except (TypeError, ValueError):
            s = math.nan
        if not math.isfinite(s) or s <= 0 or s >= N:
            raise InputError(f"fit_nsum: known[{c!r}] = {v!r}; expected a size > 0 and below "
                             f"the population ({N:,.0f})")
        sizes[str(c)] = s
    if hidden in sizes:
        raise InputError(f"fit_nsum: column {hidden!r} is both the hidden and a known population")
    if not math.isfinite(consistency_factor) or consistency_factor <= 1:
        raise InputError(f"fit_nsum: consistency_factor={consistency_factor!r}; expected a "
                         "number > 1")

    survey_design = _as_design(design, weights)
    d = _first_stage(survey_design)
    columns = [hidden, *sizes]
    y, missing = _reports(survey_design.data, columns)
    n_missing = int(missing.sum())
    keep = ~missing
    if keep.sum() < 2:
        raise InputError("fit_nsum: fewer than 2 respondents answered every scale-up question "
                         f"({n_missing} with a missing answer)")
    w = np.where(keep, d.weights, 0.0)   # a respondent with a missing answer counts for nothing
    y = np.where(keep[:, None], y, 0.0)
    y_h, y_k = y[:, 0], y[:, 1:]
    total_known = float(sum(sizes.values()))
    s = y_k.sum(axis=1)
    num, den = float(w @ y_h), float(w @ s)
    n_hat = float(_ratio(np.array([num]), np.array([den]), total_known)[0])
    mean_degree = N * den / float(w.sum()) / total_known

    # the leave-one-out check of the known populations
    rows = []
    for j, (c, size) in enumerate(sizes.items()):
        others = total_known - size
        den_j = float(w @ (s - y_k[:, j]))
        est_j = others * float(w @ y_k[:, j]) / den_j if den_j > 0 and len(sizes) > 1 \
            else math.nan
        rows.append({"population": c, "size": size, "share": size / N,
                     "estimate": est_j, "ratio": est_j / size})
    check = pd.DataFrame(rows, columns=["population", "size", "share", "estimate", "ratio"])

    warnings: list[Caveat] = [Caveat(
        "nsum_bias",
        "the scale-up assumes what these data cannot test: transmission (respondents know "
        "that their contacts are in the hidden population; people in forced labour often "
        "hide it), no barrier effects (respondents' networks hold the hidden population in "
        "the same proportion as the population does; it is segregated, e.g. at worksites "
        "or outside households) and accurate recall; each failure biases the estimate, "
        "transmission and barriers downward",
        {"transmission_rate_assumed": 1.0})]
    ratios = check["ratio"].to_numpy(dtype=float)
    off = np.isfinite(ratios) & ((ratios > consistency_factor) | (ratios < 1 / consistency_factor))
    if off.any():
        worst = float(ratios[off][np.argmax(np.abs(np.log(ratios[off])))])
        warnings.append(Caveat(
            "internal_inconsistency",
            f"known populations disagree: estimated from the others, {int(off.sum())} of "
            f"{len(sizes)} known sizes are off by more than a factor {consistency_factor:g} "
            f"(worst: {worst:.2f} times the known size); recall error or barrier effects, "
            "which the hidden-population estimate shares (see diagnostics['known_populations'])",
            {"n_off": int(off.sum()), "n_known": len(sizes), "worst_ratio": worst,
             "factor": float(consistency_factor)}))
    large = check["share"].to_numpy() > LARGE_KNOWN_SHARE
    if large.any():
        warnings.append(Caveat(
            "nsum_bias",
            f"{int(large.sum())} known population(s) above {100 * LARGE_KNOWN_SHARE:g}% of the "
            "population: people under-count large groups they know (recall error), which "
            "biases the network sizes downward and the hidden-population estimate upward",
            {"n_large": int(large.sum()), "largest_share": float(check["share"].max())}))
    if len(sizes) == 1:
        warnings.append(Caveat("note", "one known population: the network sizes rest on it "
                                       "alone and cannot be checked against another"))
    if n_missing:
        warnings.append(Caveat("note", f"{n_missing} respondent(s) with a missing answer to a "
                                       "scale-up question left out (weight 0)",
                               {"excluded": n_missing}))

    diagnostics: dict[str, Any] = {
        "known_populations": check, "mean_degree": float(mean_degree), "population": N,
        "respondents": int(keep.sum()),
        "respondents_reporting": int(((w > 0) & (y_h > 0)).sum()),
        "excluded_respondents": {"missing answer": n_missing} if n_missing else {},
    }
    status, reason = "ok", None
    if den <= 0:
        status, reason = "not_identifiable", ("no respondent reports knowing anyone in the known "
                                              "populations: network sizes are zero")
        n_hat = math.nan
    elif num <= 0:
        warnings.append(Caveat("note", "no respondent reports knowing anyone in the hidden "
                                       "population: the estimate is 0"))
    if reason:
        diagnostics["reason"] = reason

    draws = None
    lo, hi, se = math.nan, math.nan, math.nan
    ci_method = "none"
    if ci == "bootstrap" and status == "ok" and d.replicates is not None:
        # the design's own replicates: theta_r with each replicate's weights, the design's
        # replicate variance, a log-normal interval (the ratio is positive and skewed)
        from scipy.stats import norm

        from .design import replicate_variance

        rw = np.where(keep[:, None], d.replicates, 0.0)
        draws = _ratio(rw.T @ y_h, rw.T @ s, total_known)
        ok = np.isfinite(draws)
        se = float(math.sqrt(replicate_variance(survey_design, np.array([n_hat]),
                                                draws[ok][:, None])[0]))
        z = float(norm.ppf(0.5 + level / 2))
        spread = math.exp(z * se / n_hat) if n_hat > 0 else math.nan
        lo, hi = (n_hat / spread, n_hat * spread) if n_hat > 0 else (0.0, 0.0)
        ci_method = "lognormal"
        diagnostics.update({"n_boot": len(draws), "n_failed": int((~ok).sum()),
                            "resampled": f"the design's replicate weights "
                                         f"({survey_design.replicate_method})"})
    elif ci == "bootstrap" and status == "ok":
        rng = np.random.default_rng(seed)
        n_units = len(d.unit_stratum)
        num_u = np.bincount(d.unit, weights=w * y_h, minlength=n_units)
        den_u = np.bincount(d.unit, weights=w * s, minlength=n_units)
        draws = np.empty(n_boot)
        for start in range(0, n_boot, _CHUNK):
            stop = min(n_boot, start + _CHUNK)
            a = _rao_wu(d, stop - start, rng)
            draws[start:stop] = _ratio(a @ num_u, a @ den_u, total_known)
        ok = np.isfinite(draws)
        alpha = (1 - level) / 2
        lo, hi = (float(v) for v in np.quantile(draws[ok], [alpha, 1 - alpha]))
        se = float(np.std(draws[ok], ddof=1))
        ci_method = "percentile"
        diagnostics.update({"n_boot": int(n_boot), "n_failed": int((~ok).sum()),
                            "kind": "nonparametric",
                            "resampled": ("rao_wu: first-stage PSUs within strata" if d.clustered
                                          else "rao_wu: respondents within strata")})
    model = (f"Killworth scale-up, {len(sizes)} known population"
             f"{'s' if len(sizes) != 1 else ''}")
    return Estimate(n_hat=n_hat, ci=(lo, hi), level=float(level), n_observed=math.nan,
                    method="nsum", model=model, status=status, ci_method=ci_method, se=se,
                    diagnostics=diagnostics, draws=draws, seed=seed if ci == "bootstrap" else None,
                    warnings=tuple(warnings))


def nsum_withheld(estimate: Estimate, *, threshold: int = 5) -> bool:
    """Whether a scale-up total is withheld from publication: it rests on the reports of fewer
    than ``threshold`` respondents (``diagnostics["respondents_reporting"]``: respondents who
    know at least one member of the hidden population).

    The total is not a cell of persons: it counts nobody by name, and the members of the hidden
    population are neither respondents nor identifiable from it, so the small-cell rule and its
    secondary suppression (which protect persons counted in a table of additive cells) have
    nothing to act on. It is one national figure, not a table: no other published figure gives
    it back by subtraction. What remains is the respondents who make it: when 1 to
    ``threshold - 1`` of them report anyone, the figure is their reports scaled up, and is
    withheld with the same threshold as the survey's tables (and unreliable anyway). Zero
    reports are published (an estimate of 0, with its caveat), as the disclosure layer
    publishes zeros.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"h": [1, 0, 0, 2], "a": [2, 1, 3, 1], "b": [1, 3, 2, 2]})
    >>> est = fit_nsum(df, "h", known={"a": 100, "b": 300}, population=10_000, ci="none")
    >>> est.diagnostics["respondents_reporting"], nsum_withheld(est), nsum_withheld(est, threshold=2)
    (2, True, False)
    """
    if not isinstance(estimate, Estimate) or "respondents_reporting" not in estimate.diagnostics:
        raise InputError("nsum_withheld: expected the Estimate of tipstat.survey.fit_nsum")
    if isinstance(threshold, bool) or not isinstance(threshold, int | np.integer) or threshold < 1:
        raise InputError(f"nsum_withheld: threshold={threshold!r}; expected a whole number >= 1")
    n = int(estimate.diagnostics["respondents_reporting"])
    return 0 < n < threshold
