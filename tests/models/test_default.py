"""tipstat's default estimator (`tipstat.estimate_population`): its definition, its formula,
where it is used, and its behaviour on populations of known size."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tipstat
from tipstat.simulate_populations import populations
from tipstat.validate import internal_consistency


def test_is_the_bic_model_average_with_buckland_interval(load_table):
    h = load_table("UK_5")
    est = tipstat.estimate_population(h)
    ref = tipstat.select_loglinear(h, "bic", average=True)
    assert est.n_hat == ref.n_hat and est.ci == ref.ci
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
    assert est.ci == pytest.approx((h.n_observed + dark / c, h.n_observed + dark * c), rel=1e-12)
    # UK_5 has two groups of well-fitting models (N near 11,000 and near 23,000): the average
    # lies between them and its interval spans both, where the single BIC model's does not
    best = tipstat.select_loglinear(h, "bic")
    assert est.ci[0] < 11_000 and est.ci[1] > best.n_hat > est.n_hat
    assert est.ci[1] - est.ci[0] > 2 * (best.ci[1] - best.ci[0])


@pytest.mark.parametrize(("name", "status"), [("Netherlands_5", "extended"), ("UK_5", "ok")])
def test_status_is_the_best_models_and_extended_weight_is_reported(load_table, name, status):
    # Netherlands_5's best BIC model has an extended MLE (zero fitted cells): the average says
    # so instead of "ok"; the share of weight on extended fits comes from the candidate table
    h = load_table(name)
    est = tipstat.estimate_population(h)
    cand = est.diagnostics["models"]
    assert est.status == status == cand.status.iloc[0]
    share = float(cand.weight[cand.status == "extended"].sum())
    assert est.diagnostics["extended_weight"] == pytest.approx(share, abs=1e-12)
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
