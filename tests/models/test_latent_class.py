"""Latent-class MSE (tipstat.fit_latent_class) against LCMCR and against simulations with known N.

The default suite compiles one model shape (5 lists; the compiled sampler is cached per process)
and runs three short fits; the 3- and 4-list reference tables and the PyMC-sampler run are
marked slow.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tipstat
from tipstat.errors import InputError, TipstatWarning
from tipstat.histories import pattern_matrix
from tipstat.models import latent_class as lc

# Short runs for the default suite: 4 chains x 500 draws give a bulk ESS of N of roughly 500,
# i.e. a Monte Carlo error of the median of about 1.25 * sd / sqrt(500) ~ 6% of the posterior SD
# (NewOrleans_5: SD/median ~ 0.24, so ~1.4% of N; MY_5 ~0.3%).
# Margins measured over seeds 20240611, 1, 2 and with NUMBA_CPU_NAME=generic (another
# floating-point path, as on another processor): medians within 1.5% of LCMCR (tolerance 5%),
# lower limits within 1.6% (8%), upper within 6% (15%); the simulated population's median 1.8-2.3%
# below N (7.5%); R-hat of N 1.002-1.022 and bulk / tail ESS of N 362-724 / 410-996.
FAST = {"draws": 500, "tune": 1000, "chains": 4, "seed": 20240611}


def _lcmcr(r_reference: pd.DataFrame, dataset: str) -> pd.DataFrame:
    rows = r_reference[(r_reference.dataset == dataset)
                       & r_reference.package.str.startswith("LCMCR")]
    assert len(rows) >= 3, dataset
    return rows.set_index("method")


def _tolerance(rows: pd.DataFrame) -> float:
    """5% (the issue's target), and never below LCMCR's own run-to-run spread: the three LCMCR
    runs (default, MC replicate, long run) differ by up to 3% on NewOrleans_5."""
    spread = (rows.estimate.max() - rows.estimate.min()) / rows.loc["lcmCR (long run)", "estimate"]
    return max(0.05, spread)


@pytest.fixture(scope="session")
def fits(load_table):
    """Fits shared by several tests (the compiled sampler is cached per shape by tipstat)."""
    cache: dict[str, tipstat.Estimate] = {}

    def fit(name: str, **kwargs) -> tipstat.Estimate:
        if name not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TipstatWarning)
                cache[name] = tipstat.fit_latent_class(load_table(name), **{**FAST, **kwargs})
        return cache[name]

    return fit


def _simulate(n_total: int, pi: np.ndarray, lam: np.ndarray, seed: int) -> tipstat.CaptureHistories:
    """A latent-class population of known size: class, then independent captures."""
    rng = np.random.default_rng(seed)
    z = rng.choice(len(pi), size=n_total, p=pi)
    x = rng.random((n_total, lam.shape[0])) < lam[:, z].T
    codes = x.astype(np.int64) @ (1 << np.arange(lam.shape[0]))
    counts = np.bincount(codes, minlength=2 ** lam.shape[0])[1:]
    lists = [f"S{j + 1}" for j in range(lam.shape[0])]
    frame = pd.DataFrame(pattern_matrix(len(lists)), columns=lists).assign(count=counts)
    return tipstat.CaptureHistories.from_frame(frame, lists=lists)


# ---------------------------------------------------------------------------- fast, no sampling
def test_bad_input_is_named(load_table):
    h = load_table("MY_5")
    with pytest.raises(InputError, match="CaptureHistories"):
        tipstat.fit_latent_class(h.to_frame())
    with pytest.raises(InputError, match="max_classes"):
        tipstat.fit_latent_class(h, max_classes=1)
    with pytest.raises(InputError, match="draws"):
        tipstat.fit_latent_class(h, draws=0)
    with pytest.raises(InputError, match="level"):
        tipstat.fit_latent_class(h, level=95)
    with pytest.raises(InputError, match="a_alpha"):
        tipstat.fit_latent_class(h, a_alpha=-1)
    with pytest.raises(InputError, match="sampler"):
        tipstat.fit_latent_class(h, sampler="gibbs")
    with pytest.warns(TipstatWarning, match="no longer observed"):
        two = h.drop_lists(["L3", "L4", "L5"])
    with pytest.raises(InputError, match="at least 3 lists"):
        tipstat.fit_latent_class(two)
    frac = tipstat.CaptureHistories(h.counts + 0.5, h.lists, h.strata_index)
    with pytest.raises(InputError, match="whole non-negative counts"):
        tipstat.fit_latent_class(frac)


def test_class_probabilities_sum_to_one_and_give_p0():
    """The numpy post-processing: pattern probabilities of the mixture sum to 1 over all 2^J
    patterns, and p0 is sum_k pi_k prod_j (1 - lambda_jk)."""
    rng = np.random.default_rng(3)
    j, k, d = 4, 6, 5
    lam = rng.uniform(0.01, 0.99, (d, j, k))
    alpha = rng.gamma(2.0, 1.0, d)
    e = rng.exponential(1.0, (d, k - 1))
    log_pi, joint = lc._class_log_probs(lam, alpha, e, pattern_matrix(j, True).astype(float))
    np.testing.assert_allclose(np.exp(log_pi).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(joint).sum(axis=(1, 2)), 1.0, rtol=1e-12)
    p0 = (np.exp(log_pi) * np.prod(1 - lam, axis=1)).sum(axis=1)
    np.testing.assert_allclose(np.exp(joint[:, 0, :]).sum(axis=1), p0, rtol=1e-12)


def test_negative_binomial_is_the_conditional_of_n_under_the_one_over_n_prior():
    """p(N | p0, n) ∝ (1/N) C(N, n) p0^(N-n) (1-p0)^n is NegBin(n, 1-p0) on N - n."""
    n, p0 = 37, 0.6
    big_n = np.arange(n, n + 2000)
    log_post = (-np.log(big_n) + stats.binom.logpmf(n, big_n, 1 - p0))
    post = np.exp(log_post - log_post.max())
    post /= post.sum()
    np.testing.assert_allclose(post, stats.nbinom.pmf(big_n - n, n, 1 - p0), atol=1e-12)


def _fake_idata(chain_shift: float, n_classes: int = 2, seed: int = 0):
    import arviz as az

    rng = np.random.default_rng(seed)
    n = rng.normal(1000, 20, (4, 400)) + np.array([0, 0, 0, chain_shift])[:, None]
    pi = np.broadcast_to([0.6, 0.4, 0.0], (4, 400, 3))
    return az.from_dict(
        posterior={"N": np.round(n), "n_classes": np.full((4, 400), n_classes),
                   "pi": pi, "alpha": rng.gamma(1, 1, (4, 400)), "p0": rng.uniform(size=(4, 400))},
        dims={"pi": ["class"]},
        sample_stats={"diverging": np.zeros((4, 400), dtype=bool)},
    )


def test_disagreeing_chains_give_a_clear_warning():
    diag, warns, status = lc._diagnostics(_fake_idata(0.0), 0.95)
    assert status == "ok" and warns == [] and diag["rhat"] < 1.01
    diag, warns, status = lc._diagnostics(_fake_idata(200.0), 0.95)
    assert status == "not_converged" and diag["rhat"] > 1.05
    assert any("chains disagree" in w and "chain medians" in w for w in warns)
    _, warns, _ = lc._diagnostics(_fake_idata(0.0, n_classes=3), 0.95)
    assert any("increase max_classes" in w for w in warns)


def test_rerun_chain_replaces_that_chain_in_every_group():
    idata, rerun = _fake_idata(0.0), _fake_idata(500.0, seed=1)
    before = idata.posterior["N"].values.copy()
    lc._replace_chain(idata, 2, rerun)
    np.testing.assert_array_equal(idata.posterior["N"].values[2], rerun.posterior["N"].values[0])
    np.testing.assert_array_equal(idata.posterior["N"].values[[0, 1, 3]], before[[0, 1, 3]])
    assert list(idata.posterior["chain"].values) == [0, 1, 2, 3]
    assert idata.sample_stats["diverging"].shape == (4, 400)


# ---------------------------------------------------------------------------- LCMCR, 5 lists
@pytest.mark.parametrize("dataset", ["MY_5", "NewOrleans_5"])
def test_reproduces_lcmcr_median(fits, r_reference, dataset):
    rows = _lcmcr(r_reference, dataset)
    ref = rows.loc["lcmCR (long run)", "estimate"]
    est = fits(dataset)
    assert est.method == "latent_class" and est.ok, est.diagnostics
    assert abs(est.n_hat / ref - 1) <= _tolerance(rows), (est.n_hat, ref)
    # the interval is LCMCR's too, within a wider margin: tail quantiles of 2,000 draws
    lo, hi = rows.loc["lcmCR (long run)", ["lower", "upper"]]
    assert abs(est.ci[0] / lo - 1) < 0.08 and abs(est.ci[1] / hi - 1) < 0.15, (est.ci, lo, hi)


def test_estimate_fields_idata_and_diagnostics(fits):
    import arviz as az

    est = fits("MY_5")
    n = est.idata.posterior["N"]
    assert n.dims == ("chain", "draw") and n.shape == (4, 500)
    np.testing.assert_array_equal(np.sort(est.draws), np.sort(n.values.ravel()))
    assert est.n_hat == np.median(est.draws)
    assert est.ci == tuple(np.quantile(est.draws, [0.025, 0.975]))
    assert (est.draws >= est.n_observed).all() and est.seed == FAST["seed"]
    summary = az.summary(est.idata, var_names=["N"])
    assert math.isclose(summary.loc["N", "r_hat"], est.diagnostics["rhat"], abs_tol=0.01)
    d = est.diagnostics
    # R-hat: for well-mixed chains split R-hat ~ 1 + (chi2_{m-1} / (m - 1) - 1) / (2 ESS / m)
    # with m = 8 split chains; at the smallest ESS seen (362) R-hat > 1.05 has probability
    # ~1e-6, and 1.05 is also tipstat's own not_converged threshold (so est.ok above holds).
    # ESS: 362-724 bulk, 410-996 tail seen; 200 leaves room for the ~25% sampling error of the
    # ESS estimate itself at 2,000 draws.
    assert d["rhat"] <= 1.05 and d["ess_bulk"] > 200 and d["ess_tail"] > 200
    assert isinstance(d["divergences"], int) and len(d["chain_medians"]) == 4
    assert 1 <= d["n_classes_median"] <= 10
    assert list(est.idata.posterior["lam"].coords["list"].values) == ["L1", "L2", "L3", "L4", "L5"]


def test_simulated_latent_class_population_is_recovered():
    """Two classes of very different catchability, N = 2000 known (about 1,660 observed).
    Independence (one class) underestimates; the latent-class posterior must cover the truth
    and its median be within 7.5% (the posterior SD is about 3% of N here, and the two-class
    maximum-likelihood estimate of this sample is 2,017)."""
    lam = np.array([[0.60, 0.50, 0.55, 0.45, 0.50],
                    [0.15, 0.20, 0.10, 0.25, 0.15]]).T
    h = _simulate(2000, np.array([0.6, 0.4]), lam, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        est = tipstat.fit_latent_class(h, **FAST)
    independence = tipstat.fit_loglinear(h, "independence", ci="wald")
    assert independence.ci[1] < 2000  # the test can tell heterogeneity from none
    assert est.ci[0] <= 2000 <= est.ci[1], (est.ci, est.diagnostics)
    assert abs(est.n_hat / 2000 - 1) < 0.075, (est.n_hat, est.diagnostics)


def test_same_seed_same_draws(load_table):
    short = {"draws": 50, "tune": 100, "chains": 2, "seed": 5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        a = tipstat.fit_latent_class(load_table("MY_5"), **short)
        b = tipstat.fit_latent_class(load_table("MY_5"), **short)
    np.testing.assert_array_equal(a.draws, b.draws)
    assert a.diagnostics["n_classes_mean"] == b.diagnostics["n_classes_mean"]


# ---------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["HIV_Rome_4", "Spina_3", "MY_5", "NewOrleans_5"])
def test_reproduces_lcmcr_median_long(r_reference, load_table, dataset):
    """Default settings (4 chains x 1000 draws): median within 5% of LCMCR's long run."""
    rows = _lcmcr(r_reference, dataset)
    ref = rows.loc["lcmCR (long run)", "estimate"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        # LCMCR was run on the pooled table (n_obs = 621 for Spina_3, which has ethnic strata)
        est = tipstat.fit_latent_class(load_table(dataset).pooled(), seed=1)
    print(dataset, est.n_hat, ref, est.diagnostics)
    assert abs(est.n_hat / ref - 1) <= _tolerance(rows), (est.n_hat, ref, est.diagnostics)


@pytest.mark.slow
def test_pymc_sampler_agrees(r_reference, load_table):
    rows = _lcmcr(r_reference, "Spina_3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        est = tipstat.fit_latent_class(load_table("Spina_3").pooled(), sampler="pymc", seed=2)
    assert est.diagnostics["sampler"] == "pymc"
    assert abs(est.n_hat / rows.loc["lcmCR (long run)", "estimate"] - 1) <= 0.05
