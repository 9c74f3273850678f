"""Known-truth simulation: the populations must be what the parameters say.

Every statistical check uses a fixed seed, so the tests are deterministic; the tolerances are
sampling-error bounds (4-5 standard errors, or chi-square p-values > 1e-4), so a wrong generator
(wrong calibration, wrong sign of a dependence, ignored heterogeneity) fails them while a correct
one passes for any seed with probability > 0.999.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import tipstat
from tipstat.histories import pattern_matrix
from tipstat.models.poisson import poisson_newton
from tipstat.simulate_populations import (
    SCENARIOS,
    LatentClasses,
    LogitNormal,
    populations,
    scenario,
)


def _full_counts(pop):
    """All 2**K pattern counts including the (known) unobserved cell, pooled over strata."""
    return np.concatenate([[pop.unobserved], pop.histories.counts])


def _chisq_p(counts, expected):
    """Pearson chi-square p-value after pooling cells with expected count < 5 (small-cell rule)."""
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    return stats.chisquare(obs[keep], exp[keep]).pvalue


def test_seed_reproducible_and_replicates_independent_of_batch():
    a = populations(n=500, k=5, p=0.2, dependence={"L1:L2": 0.7}, seed=11)
    b = populations(n=500, k=5, p=0.2, dependence={"L1:L2": 0.7}, seed=11)
    c = populations(n=500, k=5, p=0.2, dependence={"L1:L2": 0.7}, seed=12)
    assert a.histories == b.histories
    assert a.histories != c.histories
    # replicate r is the same whether 3 or 6 replicates are drawn (parallel-safe streams)
    r3 = populations(n=300, k=4, heterogeneity=LogitNormal(1.0), p=0.3, replicates=3, seed=5)
    r6 = populations(n=300, k=4, heterogeneity=LogitNormal(1.0), p=0.3, replicates=6, seed=5)
    assert all(x.histories == y.histories for x, y in zip(r3, r6[:3], strict=True))
    assert len({tuple(x.histories.counts) for x in r6}) == 6


def test_known_n_and_probabilities_sum():
    pop = populations(n=1234, k=3, p=[0.2, 0.3, 0.4], seed=1)
    assert pop.n == 1234
    assert _full_counts(pop).sum() == 1234
    np.testing.assert_allclose(pop.probabilities.sum(axis=1), 1.0, atol=1e-12)
    # calibration: the expected marginals are the requested p to Newton precision
    np.testing.assert_allclose(pop.capture_probabilities.to_numpy()[0], [0.2, 0.3, 0.4], atol=1e-10)


def test_homogeneous_dependence_matches_parameters():
    gamma = {"L1:L2": 1.0, "L3:L4": -0.8}
    n = 40_000
    pop = populations(n=n, k=4, p=[0.3, 0.25, 0.2, 0.35], dependence=gamma, seed=3)
    full = _full_counts(pop)
    # counts follow the stated cell probabilities
    assert _chisq_p(full, n * pop.probabilities[0]) > 1e-4
    # empirical capture probabilities within 4.5 binomial SEs of p
    sizes = pop.histories.list_sizes().to_numpy() / n
    p = np.array([0.3, 0.25, 0.2, 0.35])
    assert np.all(np.abs(sizes - p) < 4.5 * np.sqrt(p * (1 - p) / n))
    # the conditional log odds ratios, estimated from the full table by a Poisson log-linear fit
    # with all two-way terms, match gamma within 4.5 SE (and the zero ones are ~0)
    design = tipstat.loglinear_design(pop.histories.lists, "all2")
    fit = poisson_newton(design.matrix, full.astype(float))
    se = np.sqrt(np.diag(fit.hessian_inv))
    truth = {"L1:L2": 1.0, "L3:L4": -0.8}
    for name, b, s in zip(design.columns, fit.beta, se, strict=True):
        if ":" in name:
            assert abs(b - truth.get(name, 0.0)) < 4.5 * s, (name, b, s)


def test_known_n_recovered_by_the_right_model_and_not_by_independence():
    # 60 replicates of N = 4000 with positive L1:L2 dependence: the model with the L1:L2 term
    # is unbiased (mean relative error within 4 SE of 0), independence is biased low (the
    # classic effect of positive dependence); the Wald interval of the right model covers ~95%.
    pops = populations(n=4000, k=4, p=0.2, dependence={"L1:L2": 1.2}, replicates=60, seed=21)
    right, indep, cover = [], [], []
    for pop in pops:
        e = tipstat.fit_loglinear(pop.histories, "L1:L2", ci="wald")
        right.append(e.n_hat / pop.n - 1)
        cover.append(e.ci[0] <= pop.n <= e.ci[1])
        indep.append(tipstat.fit_loglinear(pop.histories, "independence", ci="none").n_hat / pop.n - 1)
    right, indep = np.array(right), np.array(indep)
    assert abs(right.mean()) < 4 * right.std(ddof=1) / np.sqrt(len(right))
    assert indep.mean() < -0.05
    # 60 Bernoulli(0.95) trials: P(fewer than 51 covered) < 0.002
    assert np.mean(cover) >= 51 / 60


def test_latent_classes_match_parameters():
    n = 30_000
    het = LatentClasses(weights=[0.75, 0.25], p=[[0.1, 0.15, 0.1], [0.5, 0.6, 0.4]])
    pop = populations(n=n, k=3, heterogeneity=het, seed=4)
    sizes = pop.truth["class_sizes"]
    assert sum(sizes) == n
    assert abs(sizes[1] / n - 0.25) < 4.5 * np.sqrt(0.25 * 0.75 / n)
    p = np.array([0.75, 0.25]) @ np.array(het.p)
    np.testing.assert_allclose(pop.capture_probabilities.to_numpy()[0], p, atol=1e-10)
    assert _chisq_p(_full_counts(pop), n * pop.probabilities[0]) > 1e-4
    # heterogeneity induces positive dependence: observed overlap L1&L2 above independence
    both = pop.histories.overlap_matrix().loc["L1", "L2"] / n
    assert both > p[0] * p[1] * 1.3


def test_logit_normal_marginals_and_sign_of_dependence():
    n = 40_000
    pos = populations(n=n, k=3, p=0.3, heterogeneity=LogitNormal(1.2), seed=8)
    neg = populations(n=n, k=3, p=0.3, heterogeneity=LogitNormal(1.2, loadings=[1, -1, 1]), seed=8)
    for pop in (pos, neg):
        sizes = pop.histories.list_sizes().to_numpy() / n
        assert np.all(np.abs(sizes - 0.3) < 4.5 * np.sqrt(0.21 / n))
        assert _chisq_p(_full_counts(pop), n * pop.probabilities[0]) > 1e-4

    def log_or(pop):
        full = _full_counts(pop)
        pat = pattern_matrix(3, include_unobserved=True)
        t = np.array([[full[(pat[:, 0] == a) & (pat[:, 1] == b)].sum() for b in (0, 1)] for a in (0, 1)])
        return np.log(t[0, 0] * t[1, 1] / (t[0, 1] * t[1, 0]))

    assert log_or(pos) > 0.3
    assert log_or(neg) < -0.3


def test_logit_normal_with_dependence_uses_the_joint_model():
    n = 30_000
    pop = populations(n=n, k=4, p=0.25, dependence={"L1:L2": -1.0},
                      heterogeneity=LogitNormal(0.8), seed=9)
    assert _chisq_p(_full_counts(pop), n * pop.probabilities[0]) > 1e-4
    np.testing.assert_allclose(pop.capture_probabilities.to_numpy()[0], 0.25, atol=1e-9)


def test_strata_sizes_and_parameters():
    pop = populations(n=2000, k=3, p=0.3, seed=2,
                      strata={"female": {"n": 3000, "p": 0.5}, "male": {},
                              "boys": {"heterogeneity": LogitNormal(1.0)}})
    h = pop.histories
    assert h.strata == ("stratum",) and h.n_strata == 3
    assert pop.n == 7000
    assert pop.n_by_stratum.to_dict() == {"female": 3000, "male": 2000, "boys": 2000}
    f = h.select(stratum="female").list_sizes().to_numpy() / 3000
    assert np.all(np.abs(f - 0.5) < 4.5 * np.sqrt(0.25 / 3000))
    np.testing.assert_allclose(pop.capture_probabilities.loc["male"].to_numpy(), 0.3, atol=1e-10)


def test_sparse_scenario_has_empty_cells_and_every_scenario_runs():
    pop = populations(n=800, seed=1, **scenario("sparse", k=6))
    assert pop.histories.n_zero_cells > 30
    for name in SCENARIOS:
        for k in (3, 8):
            out = populations(n=300, seed=2, **scenario(name, k=k))
            assert out.histories.k == k and out.n == 300


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 1}, "k must be"),
        ({"p": 1.2}, "strictly between 0 and 1"),
        ({"n": -3}, "non-negative integer"),
        ({"dependence": {"L1:X": 1.0}}, "unknown list 'X'"),
        ({"dependence": {"L1:L1": 1.0}}, "same list twice"),
        ({"p": 0.2, "heterogeneity": LatentClasses([1, 1], [0.1, 0.2])}, "leave p=None"),
        ({"heterogeneity": LatentClasses([1, 1], [[0.1, 0.2]])}, "must have shape"),
        ({"strata": {"a": {"size": 10}}}, "unknown parameter"),
        ({"seed": "abc"}, "seed must be"),
        ({"replicates": 0}, "replicates must be"),
    ],
)
def test_bad_input_names_the_problem(kwargs, match):
    with pytest.raises(tipstat.InputError, match=match):
        populations(**{"k": 3, **kwargs})
