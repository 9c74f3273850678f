"""What a model choice, an average or a posterior rests on (issue 16): constructed tables with a
known truth, each built so that one check must fire, and one where none may.

Tables are the expected counts of a log-linear model, rounded: the truth is the sum of the
expected counts over all ``2**K`` patterns.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tipstat
from tipstat import CaptureHistories
from tipstat.histories import pattern_matrix
from tipstat.models import graphical, selection


def _table(k: int, n0: float, main: float, pairs: dict | None = None,
           triples: dict | None = None) -> tuple[CaptureHistories, float]:
    """Rounded expected counts of ``log mu = log n0 + main * sum x_j + pairs + triples``, and
    the true N (the sum of the expected counts over every pattern)."""
    X = pattern_matrix(k, include_unobserved=True).astype(float)
    eta = math.log(n0) + main * X.sum(axis=1)
    for (i, j), g in (pairs or {}).items():
        eta += g * X[:, i] * X[:, j]
    for (i, j, m), g in (triples or {}).items():
        eta += g * X[:, i] * X[:, j] * X[:, m]
    mu = np.exp(eta)
    lists = [chr(ord("A") + j) for j in range(k)]
    return CaptureHistories(np.round(mu[1:]), lists), float(mu.sum())


def _codes(est) -> list[str]:
    return [w.code for w in est.warnings]


def _caveat(est, code):
    found = [w for w in est.warnings if w.code == code]
    assert len(found) == 1, (code, _codes(est))
    return found[0]


# ---------------------------------------------------------------- the saturated model dominates
def saturated_table() -> tuple[CaptureHistories, float]:
    """Three lists, every pair strongly associated (log odds ratio 1.2) and no three-way term:
    BIC needs all three two-way terms, the model with no residual df."""
    return _table(3, 2000, -1.5, {(0, 1): 1.2, (0, 2): 1.2, (1, 2): 1.2})


def test_bic_average_on_the_saturated_model_says_so_and_is_a_lower_bound():
    h, truth = saturated_table()
    est = tipstat.select_loglinear(h, "bic", average=True)
    models = est.diagnostics["models"]
    # independent of the new code: the weight of the df = 0 rows of the models table
    share = float(models.loc[models.df == 0, "weight"].sum())
    assert share > 0.99  # the construction: the pairwise terms are far beyond BIC's penalty
    assert est.diagnostics["untestable_weight"] == pytest.approx(share, abs=1e-12)
    c = _caveat(est, "untestable_weight")
    assert c.values["share"] == pytest.approx(share, abs=1e-12)
    assert f"{100 * share:.0f}%" in c
    assert est.status == "lower_bound"
    assert "lower_bound_only" in _codes(est)
    # the saturated model's fit equals the data, so its N is the truth up to rounding: the
    # lower end of the interval is a valid lower bound here
    assert est.ci[0] < truth


def test_untestable_weight_is_quiet_below_its_threshold():
    """Independent lists with large counts: BIC keeps the small models, no caveat of the
    model-weight family fires and the status stays ok."""
    h, truth = _table(3, 5000, -1.0)
    est = tipstat.select_loglinear(h, "bic", average=True)
    assert est.diagnostics["untestable_weight"] < 0.05
    assert not set(_codes(est)) & {"untestable_weight", "boundary_weight", "dropped_models",
                                   "lower_bound_only", "lack_of_fit"}
    assert est.status == "ok"
    assert est.ci[0] < truth < est.ci[1]


def test_stepwise_choosing_the_saturated_model_is_a_lower_bound():
    h, _ = saturated_table()
    est = tipstat.select_loglinear(h, "stepwise")
    assert est.df == 0
    assert _caveat(est, "untestable_weight").values["df"] == 0
    assert est.status == "lower_bound"


# ---------------------------------------------------------------- models without an MLE
def test_models_without_mle_are_counted_with_the_weight_they_would_carry():
    """List C shares no one with A or B: every model without an A:C or B:C term puts N at
    infinity (or leaves it unidentified). Their BIC is finite; the share they would carry is
    recomputed here from fit_loglinear's BIC of each of the 8 models."""
    h = CaptureHistories(np.array([50, 40, 10, 30, 0, 0, 0.]), ["A", "B", "C"])
    est = tipstat.select_loglinear(h, "bic", average=True)
    specs = [[], ["A:B"], ["A:C"], ["B:C"], ["A:B", "A:C"], ["A:B", "B:C"], ["A:C", "B:C"],
             ["A:B", "A:C", "B:C"]]
    fits = [tipstat.fit_loglinear(h, t, ci="none") for t in specs]
    bic = np.array([f.bic for f in fits])
    w = np.exp(-(bic - bic.min()) / 2)
    w /= w.sum()
    left_out = np.array([f.status not in ("ok", "extended") for f in fits])
    assert left_out.sum() == 4
    c = _caveat(est, "dropped_models")
    assert c.values["n_dropped"] == 4
    assert c.values["share"] == pytest.approx(float(w[left_out].sum()), rel=1e-9)
    assert est.diagnostics["excluded_weight"] == pytest.approx(float(w[left_out].sum()),
                                                               rel=1e-9)
    # the best model by BIC has no MLE: rank 1
    assert c.values["best_rank"] == 1
    assert est.status == "lower_bound"


def _all_weights(models):
    """BIC weights over every candidate with a finite BIC, the left-out ones included."""
    fin = np.isfinite(models.bic.to_numpy(dtype=float))
    v = np.zeros(len(models))
    b = models.bic.to_numpy(dtype=float)[fin]
    v[fin] = np.exp(-(b - b.min()) / 2)
    return v / v.sum()


def test_boundary_weight_is_the_weight_of_the_extended_rows():
    # no one on A and C together, nor on all three: most models fit some cells to zero
    h = CaptureHistories(np.array([50, 40, 10, 30, 0, 5, 0.]), ["A", "B", "C"])
    est = tipstat.select_loglinear(h, "bic", average=True)
    models = est.diagnostics["models"]
    v = _all_weights(models)
    share = float(v[models.status == "extended"].sum())
    assert share > 0.9 > selection.BOUNDARY_WARN  # 93%: [A:C] alone carries 81%
    assert _caveat(est, "boundary_weight").values["share"] == pytest.approx(share, abs=1e-12)
    assert est.diagnostics["extended_weight"] == pytest.approx(share, abs=1e-12)


def test_one_denominator_for_every_share():
    """The shares are of one set of weights (every candidate compared, left-out ones
    included), so they add up: on the table above where left-out models carry 92% of the
    weight, the boundary fits that carry 97% of the average's own weight carry 8% of it."""
    h = CaptureHistories(np.array([50, 40, 10, 30, 0, 0, 0.]), ["A", "B", "C"])
    est = tipstat.select_loglinear(h, "bic", average=True)
    models = est.diagnostics["models"]
    v = _all_weights(models)
    left_out = ~models.status.isin(["ok", "extended"]).to_numpy()
    extended = (models.status == "extended").to_numpy()
    assert float(models.weight[extended].sum()) == pytest.approx(0.97, abs=0.01)
    d = est.diagnostics
    assert d["excluded_weight"] == pytest.approx(float(v[left_out].sum()), abs=1e-12)
    assert d["extended_weight"] == pytest.approx(float(v[extended].sum()), abs=1e-12)
    assert d["excluded_weight"] == pytest.approx(0.915, abs=0.001)
    assert d["extended_weight"] == pytest.approx(0.082, abs=0.001)
    assert d["unbounded_weight"] == d["excluded_weight"] + d["untestable_weight"]
    # the caveat reports the extended share it would carry, below its threshold here
    assert "boundary_weight" not in _codes(est)
    assert est.status == "lower_bound"


# ---------------------------------------------------------------- stepwise rules and fit
@pytest.mark.parametrize("criterion", ["stepwise", "bhs"])
def test_stepwise_rules_accepting_a_poor_model_say_so(criterion):
    """Four lists with a strong A:B:C interaction: no two-way model fits, and the rules (two-way
    terms only) stop on one that fails its fit test."""
    h, truth = _table(4, 3000, -1.2, triples={(0, 1, 2): 1.5})
    est = tipstat.select_loglinear(h, criterion)
    c = _caveat(est, "lack_of_fit")
    assert c.values["deviance"] == pytest.approx(est.deviance)
    assert c.values["df"] == est.df
    from scipy import stats

    assert c.values["p_value"] == pytest.approx(float(stats.chi2.sf(est.deviance, est.df)))
    assert c.values["p_value"] < 1e-6  # deviance 126-157 on 4-7 df on this table
    # and it matters: the interval misses the truth
    assert not est.ci[0] <= truth <= est.ci[1]


def test_stepwise_rule_on_a_fitting_model_is_quiet():
    h, _ = _table(4, 3000, -1.2, pairs={(0, 1): 1.0})
    est = tipstat.select_loglinear(h, "stepwise")
    assert "lack_of_fit" not in _codes(est)


def test_caveats_survive_the_default_and_json():
    h, _ = saturated_table()
    est = tipstat.estimate_population(h, check=False)
    assert {"untestable_weight", "lower_bound_only"} <= set(_codes(est))
    codes = [w["code"] for w in est.to_dict()["warnings"]]
    assert "untestable_weight" in codes


# ---------------------------------------------------------------- Bayesian: graphical models
def test_graphical_on_a_table_favouring_the_complete_graph_says_n_is_not_identified():
    """The saturated-model table: every pair associated, so no conditional independence holds
    and the complete graph (N not identified) takes the posterior. Its median is then far from
    the truth (the prior decides), and the result says so."""
    h, truth = saturated_table()
    est = tipstat.fit_graphical(h, draws=50, chains=1)
    models = est.diagnostics["models"]
    mass = float(models.loc[models.graph == "[A,B,C]", "prob"].sum())
    assert mass > 0.9  # measured 1 - 5e-32
    # the posterior median (kept for inspection; a lower bound publishes no point): the prior
    # decided, measured 3,159 against 5,144
    assert math.isnan(est.n_hat) and est.diagnostics["unsupported"]["n_hat"] < 0.8 * truth
    assert est.diagnostics["not_identified_mass"] == pytest.approx(mass, abs=1e-12)
    c = _caveat(est, "not_identified_mass")
    assert c.values["share"] == pytest.approx(mass, abs=1e-12)
    assert est.status == "lower_bound"
    assert "lower_bound_only" in _codes(est)
    # on the default grid the upper end moves by far more than its threshold under a flat prior
    assert _caveat(est, "prior_driven").values["shift"] > 10 * graphical.PRIOR_SHIFT_WARN
    # the posterior mass at N = observed, read from the grid posterior
    post = est.diagnostics["posterior"]
    at_obs = float(post.prob[post.N == h.n_observed].sum())
    assert est.diagnostics["nobody_missed_mass"] == pytest.approx(at_obs, abs=1e-12)


def test_graphical_prior_shift_is_the_reweighted_posterior():
    """The upper end under a flat prior is the quantile of the 1/N posterior times N (the prior
    on N is a factor of N alone in the joint posterior); a refit with prior_n="uniform" gives
    the same interval (grid quantiles: equal exactly up to summation order)."""
    h, _ = saturated_table()
    grid = np.arange(0, 6000)
    est = tipstat.fit_graphical(h, n_missing=grid, draws=50, chains=1)
    flat = tipstat.fit_graphical(h, n_missing=grid, draws=50, chains=1, prior_n="uniform")
    upper, upper_flat = (e.diagnostics["unsupported"]["ci"][1] for e in (est, flat))
    want = (upper_flat - upper) / upper
    assert est.diagnostics["prior_shift"] == pytest.approx(want, rel=1e-9)


def test_graphical_on_well_identified_data_is_quiet():
    h, truth = _table(3, 5000, -1.0)
    est = tipstat.fit_graphical(h, draws=50, chains=1)
    assert est.diagnostics["not_identified_mass"] < 0.01
    assert abs(est.diagnostics["prior_shift"]) < 0.05
    assert not set(_codes(est)) & {"not_identified_mass", "prior_driven", "lower_bound_only"}
    assert est.status == "ok"
    assert est.ci[0] < truth < est.ci[1]


# ---------------------------------------------------------------- Bayesian model averaging
def _terms(label: str) -> list[str]:
    return [] if label == "[independence]" else label.strip("[]").split(", ")


def test_bma_on_the_saturated_table_rests_on_an_untestable_model():
    h, _ = saturated_table()
    est = tipstat.fit_loglinear_bma(h, draws=500)
    models = est.diagnostics["models"]
    share = float(models.loc[models.n_terms == 3, "probability"].sum())  # 7 cells, 7 params
    assert share > 0.9  # measured 1 - 1e-30: the pairwise terms are far beyond any prior
    assert est.diagnostics["untestable_weight"] == pytest.approx(share, abs=1e-12)
    assert _caveat(est, "untestable_weight").values["share"] == pytest.approx(share, abs=1e-12)
    assert est.status == "lower_bound"


def test_bma_mass_on_models_without_mle_is_the_probability_of_those_rows():
    """The table where C meets nobody: the probability of the models whose fit_loglinear status
    is does_not_exist / not_identifiable, read from the models table, is not_identified_mass."""
    h = CaptureHistories(np.array([50, 40, 10, 30, 0, 0, 0.]), ["A", "B", "C"])
    est = tipstat.fit_loglinear_bma(h, draws=500)
    models = est.diagnostics["models"]
    no_mle = [tipstat.fit_loglinear(h, _terms(m), ci="none").status
              in ("does_not_exist", "not_identifiable") for m in models.model]
    mass = float(models.probability[no_mle].sum())
    assert est.diagnostics["not_identified_mass"] == pytest.approx(mass, abs=1e-12)
    assert mass > 0.3  # measured 0.83 (importance-sampled evidences: far from the threshold)
    assert _caveat(est, "not_identified_mass").values["share"] == pytest.approx(mass, abs=1e-12)
    assert est.status == "lower_bound"


def test_bma_on_well_identified_data_is_quiet():
    h, truth = _table(3, 5000, -1.0)
    est = tipstat.fit_loglinear_bma(h, draws=500)
    assert est.diagnostics["not_identified_mass"] == 0
    assert est.diagnostics["untestable_weight"] < 0.05
    assert est.status == "ok"
    assert not set(_codes(est)) & {"untestable_weight", "not_identified_mass",
                                   "lower_bound_only"}
    assert est.ci[0] < truth < est.ci[1]


# ---------------------------------------------------------------- NUTS fits (compile: slow)
@pytest.mark.slow
def test_bayes_loglinear_says_when_the_mle_of_its_terms_does_not_exist():
    """C meets nobody: the all-two-way MLE does not identify N, so the prior decides. The check
    reads the table, not the draws (a short run suffices); the contraction is a number in
    (-inf, 1]."""
    h = CaptureHistories(np.array([50, 40, 10, 30, 0, 0, 0.]), ["A", "B", "C"])
    est = tipstat.fit_bayes_loglinear(h, draws=100, tune=100, chains=1, cores=1)
    c = _caveat(est, "not_identified_mass")
    assert c.values["share"] == 1.0 and c.values["existence"] == 2.0
    assert est.diagnostics["not_identified_mass"] == 1.0
    assert est.diagnostics["prior_contraction"] <= 1.0


@pytest.mark.slow
def test_bayes_loglinear_on_an_identified_table_has_no_prior_caveat():
    h, _ = _table(3, 5000, -1.0)
    est = tipstat.fit_bayes_loglinear(h, draws=200, tune=200, chains=1, cores=1)
    assert est.diagnostics["not_identified_mass"] == 0.0
    # measured 0.99999: the prior sd of log mu0 is over 10, the posterior's about 0.01
    assert est.diagnostics["prior_contraction"] > 0.9
    assert not set(_codes(est)) & {"not_identified_mass", "prior_driven"}


def test_contraction_is_one_minus_the_variance_ratio():
    from tipstat.models.sampling import contraction

    rng = np.random.default_rng(0)
    prior, post = rng.normal(0, 4, 4000), rng.normal(0, 1, 4000)
    want = 1 - np.var(post, ddof=1) / np.var(prior, ddof=1)
    assert contraction(prior, post) == pytest.approx(want, rel=1e-12)
    assert math.isnan(contraction([1.0], post))


@pytest.mark.slow
def test_latent_class_reports_the_contraction_of_the_unseen_share():
    """Independent lists, large counts: the data pin down p0 (measured contraction 0.9996 on
    logit p0, 600 draws); the threshold 0.9 is far from it and from the warning level 0.5."""
    h, truth = _table(3, 5000, -1.0)
    est = tipstat.fit_latent_class(h, draws=200, tune=200, chains=1, cores=1)
    assert 0.9 < est.diagnostics["prior_contraction"] <= 1.0
    assert "prior_driven" not in _codes(est)
    assert est.ci[0] < truth < est.ci[1]


def test_bootstrap_of_a_stepwise_rule_keeps_its_caveats():
    """The bootstrap's result is the rule's point estimate with resampled intervals: the
    point's lack of fit is not lost (issue 16: "bootstrap ... carry none")."""
    h, _ = _table(4, 3000, -1.2, triples={(0, 1, 2): 1.5})
    est = tipstat.bootstrap(h, "stepwise", n_boot=20, seed=1)
    assert _caveat(est, "lack_of_fit").values["df"] == est.df


# ---------------------------------------------------------------- one lower-bound rule
def test_the_lower_bound_rule_is_selections_with_the_defaults_parameters():
    """The default applies select_loglinear's own lower-bound rule with Occam's window
    (bound_odds=20) instead of undoing it and applying another. On this table the best model
    [A:B] (N-hat 2,772, status ok) is favoured over the best left-out one ([A:B, B:C], no
    MLE) by BIC odds exp((60.434 - 57.736) / 2) = 3.85:1 only; the left-out models together
    would carry 41% of the weight, under the majority of the plain rule."""
    h = CaptureHistories(np.array([60, 50, 20, 40, 0, 0, 2.]), ["A", "B", "C"])
    plain = tipstat.select_loglinear(h, "bic", average=True)
    models = plain.diagnostics["models"]
    bic = models.bic.to_numpy(dtype=float)
    left_out = ~models.status.isin(["ok", "extended"]).to_numpy()
    odds = math.exp((bic[left_out].min() - bic[~left_out].min()) / 2)
    assert odds == pytest.approx(3.85, abs=0.01)
    assert plain.diagnostics["excluded_weight"] == pytest.approx(0.406, abs=0.001)
    assert plain.status == "ok" and "dropped_models" in _codes(plain)
    window = tipstat.select_loglinear(h, "bic", average=True, bound_odds=20)
    c = _caveat(window, "lower_bound_only")
    assert window.status == "lower_bound" and "Occam's window" in c
    assert c.values["best_odds"] == pytest.approx(odds, rel=1e-9)
    assert window.diagnostics["unsupported"]["n_hat"] == pytest.approx(plain.n_hat, rel=1e-12)
    # the window's edge: odds of at most bound_odds put the left-out model inside
    assert tipstat.select_loglinear(h, "bic", average=True,
                                    bound_odds=odds * (1 + 1e-9)).status == "lower_bound"
    assert tipstat.select_loglinear(h, "bic", average=True, bound_odds=3.0).status == "ok"
    # the default: the same decision, its own lower end (the smaller of the average's and
    # Chao's), one lower_bound_only caveat that keeps the rule's numbers
    est = tipstat.estimate_population(h, check=False)
    assert est.status == "lower_bound" and est.ci[1] == math.inf
    bound = _caveat(est, "lower_bound_only")
    assert bound.values["best_odds"] == c.values["best_odds"]
    chao = tipstat.fit_closedp_model(h, "Mth Chao (LB)")
    assert est.ci[0] == pytest.approx(min(window.ci[0], chao.ci[0]), rel=1e-12)
    assert bound.values["lower"] == est.ci[0]


def test_lower_bound_reasons_is_the_rule_written_down():
    rule = selection.lower_bound_reasons
    kw = {"criterion": "bic", "average": True, "chosen_df": 3.0}
    # the majority of the weight on models that cannot bound N (left out plus untestable)
    assert rule({"unbounded_weight": 0.6, "best_excluded_odds": 100.0}, **kw) != []
    assert rule({"unbounded_weight": 0.6, "best_excluded_odds": 100.0}, **kw,
                bound_share=0.7) == []
    assert rule({"unbounded_weight": 0.5, "best_excluded_odds": 100.0}, **kw) == []
    # Occam's window only where asked for, and only when something could be averaged
    s = {"unbounded_weight": 0.1, "best_excluded_odds": 20.0}
    assert rule(s, **kw) == [] and len(rule(s, **kw, bound_odds=20.0)) == 1
    assert rule(s, **kw, bound_odds=19.9) == []
    assert rule(s, **kw, bound_odds=20.0, estimable=False) == [
        "no candidate model has a finite, identified estimate"]
    # a single model chosen with no residual df
    assert rule({"unbounded_weight": 0.0}, criterion="bic", average=False, chosen_df=0.0)


def test_an_average_with_nothing_to_average_is_a_bound_at_the_persons_seen():
    # no one on two lists: every model's MLE is infinite or N is not identified
    h = CaptureHistories(np.array([50, 40, 0, 30, 0, 0, 0.]), ["A", "B", "C"])
    est = tipstat.select_loglinear(h, "bic", average=True, check=False)
    assert est.status == "lower_bound" and est.ci == (120.0, math.inf)
    assert est.diagnostics["excluded_weight"] == pytest.approx(1.0, abs=1e-12)
    assert "no candidate model has a finite" in _caveat(est, "lower_bound_only")
    assert "100% of the BIC weight" in _caveat(est, "lower_bound_only")
    dflt = tipstat.estimate_population(h, check=False)
    assert dflt.status == "lower_bound" and dflt.ci == (120.0, math.inf)
