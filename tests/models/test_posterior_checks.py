"""The checks shared by the Bayesian estimators (issue 16): posterior predictive p-value, a
second prior by reweighting, mass where N is not identified.

Most tests run the pure functions on synthetic posterior draws; the estimator-level ones use the
closed-form / importance-sampled fits (fit_graphical, fit_loglinear_bma: about a second each).
The NUTS fits are marked slow.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tipstat
from tipstat import CaptureHistories
from tipstat.histories import pattern_matrix
from tipstat.models import posterior_checks as pc
from tipstat.models.graphical import hyper_dirichlet_shares
from tipstat.models.graphs import adjacency, decompose
from tipstat.models.latent_class import not_identified_draws


def _codes(est) -> list[str]:
    return [w.code for w in est.warnings]


def _graph(k: int, pairs: list[tuple[int, int]]):
    from tipstat.models.graphs import edge_pairs

    index = {p: i for i, p in enumerate(edge_pairs(k))}
    edges = sum(1 << index[p] for p in pairs)
    return decompose(adjacency(edges, k), edges)


def _simulate(rng, n: int, k: int, pairs: dict) -> tuple[np.ndarray, int]:
    """A complete 2**K table of ``n`` persons, cell probabilities ∝ exp(sum of pair effects
    - 0.5 * lists seen); returns the observed cells and the unseen count."""
    X = pattern_matrix(k, include_unobserved=True).astype(float)
    eta = -0.5 * X.sum(axis=1)
    for (i, j), g in pairs.items():
        eta += g * X[:, i] * X[:, j]
    p = np.exp(eta) / np.exp(eta).sum()
    full = rng.multinomial(n, p)
    return full[1:].astype(float), int(full[0])


def _graph_ppp(y: np.ndarray, n0: int, k: int, pairs: list, seed: int) -> pc.PredictiveCheck:
    """Predictive check of one decomposable graph, N at its true value (the check is about the
    split of the observed persons over the cells)."""
    rng = np.random.default_rng(seed)
    shares = hyper_dirichlet_shares(y, k, 2.0**-k, _graph(k, pairs), np.full(2000, float(n0)), rng)
    return pc.predictive_check(y, shares[:, 1:], seed=seed)


# ---------------------------------------------------------------- posterior predictive p-value
def test_misspecified_model_fails_and_true_model_passes():
    """4 lists, A and B strongly associated (log odds ratio 2), N = 3000. The independence graph
    is badly misspecified: ppp < 0.01 (measured 0.0; with 2,000 draws the Monte Carlo SE at
    ppp = 0 is 0, so 3 SE is added for any draw that does exceed). The true graph (edge A-B)
    is not below 0.05 on any of 20 simulated tables: under a true model the ppp concentrates
    around 0.5 and P(ppp < 0.05) < 0.1 (Meng 1994), so 20 tables with none below is the
    measured behaviour (P(0 of 20 | rate 0.02) = 0.67 would still leave room). The mean over the
    20 is within 0.2 of 0.5 (ppp's spread across tables is at most that of a uniform, SD 0.29,
    so the mean of 20 has SD <= 0.065: 0.2 is 3 SDs)."""
    rng = np.random.default_rng(16)
    values = []
    for rep in range(20):
        y, n0 = _simulate(rng, 3000, 4, {(0, 1): 2.0})
        wrong = _graph_ppp(y, n0, 4, [], seed=rep)
        assert wrong.ppp + 3 * wrong.mc_se < 0.01, rep
        right = _graph_ppp(y, n0, 4, [(0, 1)], seed=rep)
        assert right.ppp > pc.PPP_LOW, rep
        values.append(right.ppp)
    assert abs(np.mean(values) - 0.5) < 0.2


def test_ppp_is_the_share_of_replicates_further_than_the_data():
    """With one fixed draw of the shares the ppp is P(T(y_rep) >= T(y)) for y_rep multinomial:
    checked against a direct simulation of the same discrepancy (Freeman-Tukey); 4,000 draws
    each, Monte Carlo SD of each estimate <= 0.008, tolerance 0.04 = 3.5 SD of the difference."""
    pi = np.array([0.4, 0.3, 0.2, 0.1])
    y = np.array([50.0, 20.0, 20.0, 10.0])
    check = pc.predictive_check(y, np.tile(pi, (4000, 1)), seed=3, max_draws=4000)
    rng = np.random.default_rng(4)
    rep = rng.multinomial(100, pi, size=4000)
    t = lambda z: np.sum((np.sqrt(z) - np.sqrt(100 * pi)) ** 2, axis=-1)  # noqa: E731
    assert check.ppp == pytest.approx(np.mean(t(rep) >= t(y)), abs=0.04)
    assert check.n_draws == 4000
    assert check.mc_se == pytest.approx(math.sqrt(check.ppp * (1 - check.ppp) / 4000))
    assert check.observed == pytest.approx(float(t(y)))


def test_ppp_is_seeded_and_subsamples_draws():
    rng = np.random.default_rng(0)
    y = rng.multinomial(300, np.full(7, 1 / 7)).astype(float)
    pi = rng.dirichlet(y + 1, size=5000)
    a, b = pc.predictive_check(y, pi, seed=9), pc.predictive_check(y, pi, seed=9)
    assert a == b and a.n_draws == pc.PPP_DRAWS
    assert pc.predictive_check(y, pi, seed=10).ppp == pytest.approx(a.ppp, abs=0.06)  # 4 SE


def test_ppp_bad_input_is_named():
    with pytest.raises(tipstat.errors.InputError, match="probs"):
        pc.predictive_check([1, 2, 3], np.ones((10, 2)))
    with pytest.raises(tipstat.errors.InputError, match="y must"):
        pc.predictive_check([1, -2], np.ones((10, 2)))


def test_ppp_caveat_thresholds():
    def at(p):
        return pc.ppp_caveat(pc.PredictiveCheck(p, 0.01, 1000, 1.0, 1.0))

    assert at(0.049).code == "lack_of_fit" and at(0.951).code == "lack_of_fit"
    assert at(0.05) is None and at(0.5) is None and at(0.95) is None
    assert at(0.01).values["ppp"] == 0.01 and at(0.01).values["low"] == pc.PPP_LOW


def test_hyper_dirichlet_shares_have_the_closed_form_mean():
    """Graph A-B, B-C on 3 lists: E[p(x)] = E[p(x_AB)] E[p(x_C | x_B)] with the clique
    Dirichlets (n_AB + a_AB)/(N + T) and (n_BC + a_BC)/(n_B + a_B) (independent under the
    hyper-Dirichlet). 20,000 draws; the largest Monte Carlo SD of a cell mean is below 0.0008,
    tolerance 0.004 (5 SD)."""
    y = np.array([30.0, 20.0, 10.0, 25.0, 5.0, 8.0, 12.0])  # patterns 1..7 (A = bit 0)
    n0, k, delta = 40.0, 3, 0.125
    draws = hyper_dirichlet_shares(y, k, delta, _graph(3, [(0, 1), (1, 2)]),
                                   np.full(20000, n0), np.random.default_rng(2))
    full = np.r_[n0, y]
    cells = np.arange(8)
    n_tot, total = full.sum(), delta * 8

    def marg(mask):
        return np.bincount(cells & mask, weights=full, minlength=8)

    ab, bc, b = marg(0b011), marg(0b110), marg(0b010)
    want = ((ab[cells & 0b011] + delta * 2) / (n_tot + total)
            * (bc[cells & 0b110] + delta * 2) / (b[cells & 0b010] + delta * 4))
    assert want.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(draws.mean(axis=0), want, atol=0.004)
    np.testing.assert_allclose(draws.sum(axis=1), 1.0, rtol=1e-12)


# ---------------------------------------------------------------- a second prior
def test_reweighting_by_n_is_the_flatter_prior():
    """log N ~ Normal(m, s) under the first prior; times N (one power flatter) it is Normal(m +
    s^2, s): the upper end moves to exp(m + s^2 + z s). 200,000 draws: the 97.5% quantile's
    relative Monte Carlo SD is about 0.3% of exp(...)*s: tolerance 2%."""
    rng = np.random.default_rng(5)
    m, s = math.log(1000), 0.4
    n = np.exp(rng.normal(m, s, 200_000))
    ones = np.ones(n.size)
    up = pc.reweighted_upper(n, ones, n, 0.95)
    assert up == pytest.approx(math.exp(m + s * s + 1.959964 * s), rel=0.02)
    assert pc.reweighted_upper(n, ones, ones, 0.95) == pytest.approx(
        math.exp(m + 1.959964 * s), rel=0.02)


def test_prior_shift_caveat_fires_only_beyond_its_threshold():
    diag: dict = {}
    c = pc.prior_shift_caveat(1000.0, 1300.0, "on N", "flat", diag)
    assert c.code == "prior_driven" and diag["prior_shift"] == pytest.approx(0.3)
    assert c.values["upper_second_prior"] == 1300.0
    assert pc.prior_shift_caveat(1000.0, 1200.0, "on N", "flat") is None
    assert pc.prior_shift_caveat(1000.0, math.nan, "on N", "flat") is None


def test_not_identified_caveats_thresholds():
    assert pc.not_identified_caveats(0.05, "x") == ([], False)
    found, lower = pc.not_identified_caveats(0.2, "x", {"k": 1.0})
    assert [c.code for c in found] == ["not_identified_mass"] and not lower
    assert found[0].values["share"] == 0.2 and found[0].values["k"] == 1.0
    found, lower = pc.not_identified_caveats(0.6, "x")
    assert [c.code for c in found] == ["not_identified_mass", "lower_bound_only"] and lower


# ---------------------------------------------------------------- latent classes
def test_latent_class_draws_with_an_unseen_class_are_not_identified():
    """Draw 1: a class of weight 0.3 whose members are on each list with probability 1e-4 (one
    expected observed member in 1e4 * 3 ...): it holds almost all of p0 -> not identified.
    Draw 2: the same class with capture probability 0.3 per list is seen (its expected observed
    members 500 * 0.3 * 0.657 / (1 - p0) >> 1) -> identified. Draw 3: tiny weight 1e-6 on the
    unseen class: it holds a negligible part of p0 -> identified."""
    lam = np.array([
        [[0.6, 1e-4], [0.5, 1e-4], [0.7, 1e-4]],
        [[0.6, 0.3], [0.5, 0.3], [0.7, 0.3]],
        [[0.6, 1e-4], [0.5, 1e-4], [0.7, 1e-4]],
    ])
    pi = np.array([[0.7, 0.3], [0.7, 0.3], [1 - 1e-6, 1e-6]])
    assert not_identified_draws(lam, pi, 500.0).tolist() == [True, False, False]


# ---------------------------------------------------------------- the estimators
def test_bma_lack_of_fit_on_kosovo_agrees_with_the_deviance():
    """Kosovo_4 needs more than the two-way terms: the all-two-way MLE has deviance 39.8 on
    4 df (p < 1e-7), and the averaged models (all within all2) fail the predictive check."""
    h = tipstat.datasets.load("Kosovo_4").pooled()
    mle = tipstat.fit_loglinear(h, "all2", ci="none")
    assert mle.deviance > 30 and mle.df == 4
    est = tipstat.fit_loglinear_bma(h, draws=500, seed=1)
    assert est.diagnostics["ppp"] < 0.01  # measured 0.000
    c = [w for w in est.warnings if w.code == "lack_of_fit"]
    assert len(c) == 1 and c[0].values["ppp"] == est.diagnostics["ppp"]


def test_fitting_tables_pass_the_predictive_check():
    """Spina_3 and UK_4: the models fit (graphical ppp measured 0.38 / 0.15, BMA 0.45 / 0.16):
    no lack_of_fit, no prior_driven, status ok."""
    for name in ("Spina_3", "UK_4"):
        h = tipstat.datasets.load(name).pooled()
        for est in (tipstat.fit_graphical(h, seed=1), tipstat.fit_loglinear_bma(h, draws=500, seed=1)):
            assert pc.PPP_LOW < est.diagnostics["ppp"] < pc.PPP_HIGH, (name, est.method)
            assert not set(_codes(est)) & {"lack_of_fit", "prior_driven"}, (name, est.method)
            assert est.status == "ok"


def test_bma_second_prior_flags_korea_and_is_exact_reweighting():
    """Korea_3: a quarter of the posterior is on models without an MLE; under a flat prior on
    the unseen count the upper end runs off (measured x1e6). The shift is the reweighted
    quantile of the posterior draws, so it does not depend on the fit being run twice."""
    h = tipstat.datasets.load("Korea_3").pooled()
    est = tipstat.fit_loglinear_bma(h, draws=500, seed=1)
    shift = est.diagnostics["prior_shift"]
    assert shift > 10 * pc.PRIOR_SHIFT_WARN
    c = [w for w in est.warnings if w.code == "prior_driven" and "shift" in w.values]
    assert len(c) == 1 and c[0].values["shift"] == shift
    again = tipstat.fit_loglinear_bma(h, draws=500, seed=1)
    assert again.diagnostics["prior_shift"] == shift
    assert again.diagnostics["ppp"] == est.diagnostics["ppp"]


@pytest.mark.parametrize("name", ["Artificial_3", "Korea_3"])
def test_issue16_tables_never_ok_without_a_caveat(name):
    """The tables of issue 16 where the posterior rests on the prior: every closed-form
    Bayesian estimator says so (not_identified_mass or prior_driven), whatever its status."""
    h = tipstat.datasets.load(name).pooled()
    for est in (tipstat.fit_graphical(h, seed=1), tipstat.fit_loglinear_bma(h, draws=500, seed=1)):
        assert {"not_identified_mass", "prior_driven"} <= set(_codes(est)), (name, est.method)


def test_graphical_on_a_table_favouring_the_complete_graph():
    """Every pair associated, no three-way term: the complete graph takes the posterior, the
    status is lower_bound, and the predictive check has nothing to say against the fit (the
    complete graph reproduces any table: ppp is not below its low threshold)."""
    X = pattern_matrix(3, include_unobserved=True).astype(float)
    eta = math.log(2000) - 1.5 * X.sum(axis=1) + 1.2 * (X[:, 0] * X[:, 1] + X[:, 0] * X[:, 2]
                                                        + X[:, 1] * X[:, 2])
    h = CaptureHistories(np.round(np.exp(eta)[1:]), ["A", "B", "C"])
    est = tipstat.fit_graphical(h, draws=200, chains=1)
    assert est.status == "lower_bound"
    assert est.diagnostics["ppp"] > pc.PPP_LOW


# ---------------------------------------------------------------- NUTS fits (compile: slow)
@pytest.mark.slow
def test_bayes_loglinear_independence_on_kosovo_fails_the_predictive_check():
    h = tipstat.datasets.load("Kosovo_4").pooled()
    est = tipstat.fit_bayes_loglinear(h, "independence", draws=200, tune=200, chains=1, cores=1)
    assert est.diagnostics["ppp"] < 0.01
    assert "lack_of_fit" in _codes(est)
    # the second prior is the draws reweighted by mu0 (flat on the unseen count)
    mu0, ones = est.idata.posterior["mu0"].values.ravel(), np.ones(est.draws.size)
    up = pc.reweighted_upper(est.draws, ones, ones, 0.95)
    up2 = pc.reweighted_upper(est.draws, ones, mu0, 0.95)
    assert est.diagnostics["prior_shift"] == pytest.approx((up2 - up) / up, rel=1e-12)


@pytest.mark.slow
def test_latent_class_reports_ppp_and_unseen_class_mass():
    """Korea_3 (3 lists): every draw has two or more seen classes (measured 100%), a model with
    more parameters than the table has free cells, so the result says the prior decides; no
    draw has its unseen persons in a class no list sees (measured 0)."""
    h = tipstat.datasets.load("Korea_3").pooled()
    est = tipstat.fit_latent_class(h, draws=300, tune=300, chains=2, cores=1, seed=1)
    assert 0 <= est.diagnostics["ppp"] <= 1
    assert est.diagnostics["not_identified_mass"] < 0.05
    c = [w for w in est.warnings if w.code == "not_identified_mass"]
    assert len(c) == 1 and c[0].values["share"] > 0.5
    assert est.status == "ok"  # the three-list rule is a caveat, not a bound
    # the second prior (flat instead of 1/N) is the draws reweighted by N
    ones = np.ones(est.draws.size)
    up = pc.reweighted_upper(est.draws, ones, ones, 0.95)
    up2 = pc.reweighted_upper(est.draws, ones, est.draws, 0.95)
    assert est.diagnostics["prior_shift"] == pytest.approx((up2 - up) / up, rel=1e-12)
