"""tipstat's default estimator (`tipstat.estimate_population`): its definition, its formula,
where it is used, and its behaviour on populations of known size."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tipstat
from tipstat.models.default import BOUND_SHARE, OCCAM_ODDS
from tipstat.models.selection import weight_shares
from tipstat.simulate_populations import populations
from tipstat.validate import internal_consistency


def _lognormal(n_obs, n_hat, se, z):
    dark = n_hat - n_obs
    c = math.exp(z * math.sqrt(math.log1p((se / dark) ** 2)))
    return n_obs + dark / c, n_obs + dark * c


def test_is_the_bic_model_average_with_buckland_interval_joined_over_occams_window(load_table):
    h = load_table("UK_5")
    est = tipstat.estimate_population(h)
    ref = tipstat.select_loglinear(h, "bic", average=True)
    assert est.n_hat == ref.n_hat and est.status == ref.status == "ok"
    assert est.method.startswith("default (") and "BIC model average" in est.diagnostics[
        "default_rule"]
    # the formula of the docstring, from the candidate table (exact: same arithmetic)
    cand = est.diagnostics["models"]
    used = cand[cand.weight > 0]
    assert len(used) == 1024 - est.diagnostics["n_excluded"]
    d = used.bic - used.bic.min()
    w = np.exp(-d / 2) / np.exp(-d / 2).sum()
    assert np.allclose(used.weight, w, rtol=1e-12)
    n_avg = float((w * used.n_hat).sum())
    se = float((w * np.sqrt(used.se**2 + (used.n_hat - n_avg) ** 2)).sum())
    assert est.n_hat == pytest.approx(n_avg, rel=1e-12)
    assert est.se == pytest.approx(se, rel=1e-12)
    dark, z = n_avg - h.n_observed, stats.norm.ppf(0.975)
    c = math.exp(z * math.sqrt(math.log1p((se / dark) ** 2)))
    buckland = (h.n_observed + dark / c, h.n_observed + dark * c)
    assert ref.ci == pytest.approx(buckland, rel=1e-12)
    # Occam's window: models with weight >= 1/20 of the best; the interval is the union of
    # Buckland's and each window model's own log-normal interval
    window = used[used.weight >= used.weight.max() / 20]
    ends = [_lognormal(h.n_observed, r.n_hat, r.se, z) for r in window.itertuples()]
    lo = min(buckland[0], *(a for a, _ in ends))
    hi = max(buckland[1], *(b for _, b in ends))
    assert est.ci == pytest.approx((lo, hi), rel=1e-12)
    assert est.diagnostics["default_weights"]["window_models"] == len(window) > 1
    assert est.ci[0] < buckland[0]  # UK_5: a window model reaches lower than Buckland's
    # UK_5 has two groups of well-fitting models (N near 11,000 and near 23,000): the average
    # lies between them and its interval spans both, where the single BIC model's does not
    best = tipstat.select_loglinear(h, "bic")
    assert est.ci[0] < 11_000 and est.ci[1] > best.n_hat > est.n_hat
    assert est.ci[1] - est.ci[0] > 2 * (best.ci[1] - best.ci[0])


def test_a_model_with_no_finite_estimate_in_occams_window_gives_a_lower_bound():
    # Binette & Steorts' check, list C of Australia_4: its 260 members, 62 of them on lists
    # A, B, D. The BIC average said 89 [70, 157], missing 260 with status "extended" and no
    # warning. The model [A:B] has no finite MLE (N -> infinity) and a BIC 2.5 above the best
    # (odds 3.46:1, inside the 20:1 window): the data put no upper end on N.
    h = tipstat.datasets.load("Australia_4")
    sub, n_true, _ = tipstat.validate.sub_histories(h, "C")
    est = tipstat.estimate_population(sub)
    assert n_true == 260
    assert est.status == "lower_bound" and not est.ok
    assert est.ci[1] == math.inf and sub.n_observed <= est.ci[0] <= n_true
    codes = {w.code for w in est.warnings}
    assert {"dropped_models", "lower_bound_only"} <= codes
    bound = next(w for w in est.warnings if w.code == "lower_bound_only")
    assert [w.code for w in est.warnings].count("lower_bound_only") == 1
    cand = est.diagnostics["models"]
    # the window, recomputed from the candidate table: BIC weights over every candidate with
    # a finite BIC, the left-out ones included
    fin = np.isfinite(cand.bic)
    v = np.exp(-(cand.bic[fin] - cand.bic[fin].min()) / 2)
    usable = cand.status[fin].isin(["ok", "extended"])
    odds = v[usable].max() / v[~usable].max()
    assert odds == pytest.approx(3.46, abs=0.01) and odds <= OCCAM_ODDS
    assert weight_shares(cand)["best_excluded_odds"] == pytest.approx(odds, rel=1e-12)
    assert bound.values["best_odds"] == pytest.approx(odds, rel=1e-12)
    # the bound is the smaller lower end of the average and of Chao's lower-bound model
    chao = tipstat.fit_closedp_model(sub, "Mth Chao (LB)")
    avg = tipstat.select_loglinear(sub, "bic", average=True)
    assert est.ci[0] == pytest.approx(min(chao.ci[0], avg.ci[0]), rel=1e-12)
    assert bound.values["lower"] == est.ci[0]
    # no number where there is none: the bound is ci[0], the smaller point in the caveat
    assert math.isnan(est.n_hat)
    assert bound.values["n_hat"] == pytest.approx(min(chao.n_hat, avg.n_hat), rel=1e-12)


def test_weight_on_the_untestable_saturated_model_gives_a_lower_bound():
    # three lists with a large three-way excess (60 on all three against 30 on each pair):
    # every model with residual df fails, the saturated model (df = 0) fits exactly and takes
    # all the BIC weight; its 61,050 rests on "no three-way interaction", which the data cannot
    # test. The plain BIC average reported 61,050 [31,541, 119,117] with status ok.
    df = pd.DataFrame({"A": [1, 0, 1, 0, 1, 0, 1], "B": [0, 1, 1, 0, 0, 1, 1],
                       "C": [0, 0, 0, 1, 1, 1, 1], "count": [300, 300, 30, 300, 30, 30, 60]})
    h = tipstat.CaptureHistories.from_frame(df)
    avg = tipstat.select_loglinear(h, "bic", average=True)
    # (the average itself now says it is only a bound; its point is kept for inspection)
    assert avg.status == "lower_bound" and math.isnan(avg.n_hat)
    assert avg.diagnostics["unsupported"]["n_hat"] == pytest.approx(61_050, rel=1e-6)
    est = tipstat.estimate_population(h)
    assert est.status == "lower_bound" and est.ci[1] == math.inf
    assert est.diagnostics["default_weights"]["untestable_weight"] > BOUND_SHARE
    assert {"untestable_weight", "lower_bound_only"} <= {w.code for w in est.warnings}
    assert est.ci[0] < avg.ci[0] and math.isnan(est.n_hat)


def test_lower_bound_holds_where_heterogeneity_defeats_the_models():
    # capture heterogeneity (logit-normal, sigma = 1), 3 lists, N = 2000: every log-linear
    # model is biased low, and the default answers with a lower bound where the weight goes to
    # the untestable saturated model. Every such bound must be below the truth. (Where the
    # independence model still fits, the heterogeneity leaves no trace in a 3-list table and
    # the interval misses without a model-based warning: the limit of any 3-list analysis.)
    from tipstat.simulate_populations import scenario

    pops = populations(n=2000, seed=11, replicates=30, **scenario("heterogeneity", k=3))
    bounds = 0
    for pop in pops:
        est = tipstat.estimate_population(pop.histories)
        if est.status == "lower_bound":
            bounds += 1
            assert est.ci[0] <= pop.n and est.ci[1] == math.inf
            assert est.diagnostics["default_weights"]["unbounded_weight"] > BOUND_SHARE
    assert bounds >= 3


@pytest.mark.parametrize(("name", "status"), [("Netherlands_5", "extended"), ("UK_5", "ok")])
def test_status_is_the_best_models_and_extended_weight_is_reported(load_table, name, status):
    # Netherlands_5's best BIC model has an extended MLE (zero fitted cells): the average says
    # so instead of "ok"; the share of weight on extended fits comes from the candidate table:
    # BIC weights over every candidate with a finite BIC (the left-out models included), the
    # one definition of selection.weight_shares
    h = load_table(name)
    est = tipstat.estimate_population(h)
    cand = est.diagnostics["models"]
    assert est.status == status == cand.status.iloc[0]
    fin = np.isfinite(cand.bic)
    v = np.exp(-(cand.bic[fin] - cand.bic[fin].min()) / 2)
    v /= v.sum()
    share = float(v[cand.status[fin] == "extended"].sum())
    assert est.diagnostics["extended_weight"] == pytest.approx(share, abs=1e-12)
    assert est.diagnostics["default_weights"]["extended_weight"] == est.diagnostics[
        "extended_weight"]
    assert 0 < share < 1
    assert est.ok


def test_assumption_warnings_are_attached():
    # Kosovo 1999: the best two-way model does not fit (G2 = 39.9 on 5 df); the default says so
    h = tipstat.datasets.load("Kosovo_4")
    est = tipstat.estimate_population(h)
    assert est.diagnostics["assumption_warnings"]
    assert any(w.startswith("lack of fit") for w in est.warnings)
    assert not tipstat.estimate_population(h, check=False).diagnostics.get("assumption_warnings")
    # UK 2013: the best model fits; 13 of its 31 observable cells are empty (issue 16: empty
    # cells are counted), and that is the only caveat
    uk = tipstat.estimate_population(tipstat.datasets.load("UK_5"))
    assert [(w.code, w.values["empty_cells"]) for w in uk.warnings] == [("sparse_table", 13)]


def test_two_lists_is_lincoln_petersen():
    df = pd.DataFrame({"A": [1, 0, 1], "B": [0, 1, 1], "count": [60, 90, 30]})
    h = tipstat.CaptureHistories.from_frame(df)
    est = tipstat.estimate_population(h)
    n1, n2, m = 90, 120, 30
    assert est.n_hat == pytest.approx(n1 * n2 / m, rel=1e-9)
    assert any("two lists" in w for w in est.warnings)
    assert est.method.startswith("default (")


def test_two_lists_without_overlap_is_a_lower_bound_at_the_persons_seen():
    # Lincoln-Petersen with m = 0 does not exist: the only thing the data say is N >= 150
    df = pd.DataFrame({"A": [1, 0], "B": [0, 1], "count": [60, 90]})
    est = tipstat.estimate_population(tipstat.CaptureHistories.from_frame(df))
    assert est.status == "lower_bound" and est.ci == (150.0, math.inf) and math.isnan(est.n_hat)
    assert {"two_lists", "lower_bound_only"} <= {w.code for w in est.warnings}


def test_bad_input_is_named():
    with pytest.raises(tipstat.InputError, match="CaptureHistories"):
        tipstat.estimate_population(np.zeros(7))
    h = tipstat.datasets.load("Kosovo_4")
    with pytest.raises(tipstat.InputError, match=r"level=1\.5"):
        tipstat.estimate_population(h, level=1.5)
    pop = populations(n=500, k=3, p=0.3, strata={"f": {}, "m": {}}, seed=1)
    with pytest.raises(tipstat.InputError, match="strata"):
        tipstat.estimate_population(pop.histories)


def test_is_what_the_reliability_check_and_compare_use():
    h = tipstat.datasets.load("Kosovo_4")
    est = tipstat.estimate_population(h)
    ic = internal_consistency(h, tipstat.estimate_population, min_seen=1)
    row = ic.table.iloc[0]
    sub = tipstat.validate.sub_histories(h, row["list"])[0]
    assert row["n_hat"] == pytest.approx(tipstat.estimate_population(sub).n_hat, rel=1e-12)
    table = tipstat.compare(h, "default")
    first = table.iloc[0]
    assert first["n_hat"] == est.n_hat and first["method"].startswith("default (")
    # a model average is not a model: best() picks the single model with the lowest BIC
    assert not table.best("bic")["model"].startswith("BIC average")


@pytest.mark.parametrize("scenario", ["independence", "positive"])
def test_known_truth_coverage_and_bias(scenario):
    # 40 simulated 4-list populations (N = 2000) whose model is in the averaged set: two-way
    # dependence (log odds ratio +1 between lists 1-2 and 3-4) or none. With exact 95%
    # coverage, 34 or more of 40 intervals cover with probability 0.99; the mean relative
    # error of N-hat has Monte Carlo SE about 0.004 (RMSE 0.025 / sqrt(40)), so 0.02 is 5 SE.
    dep = {} if scenario == "independence" else {("L1", "L2"): 1.0, ("L3", "L4"): 1.0}
    pops = populations(n=2000, k=4, p=0.25, dependence=dep, lists=["L1", "L2", "L3", "L4"],
                       replicates=40, seed=20261122)
    covered, rel = 0, []
    for pop in pops:
        est = tipstat.estimate_population(pop.histories)
        covered += est.ci[0] <= 2000 <= est.ci[1]
        rel.append(est.n_hat / 2000 - 1)
    assert covered >= 34
    assert abs(np.mean(rel)) < 0.02
