"""Bootstrap intervals with model re-selection.

The jackknife acceleration is deterministic and is compared with SparseMSE's printed ``ahat``
(6 significant digits). Bootstrap limits are random: they are compared with the published /
R values within their Monte Carlo error, computed from our own replicates (see ``_mc_band``):
a BCa limit is the order statistic of rank ``B * alpha'`` with ``alpha' = Phi(z0 + (z0 + z) /
(1 - a (z0 + z)))``; its Monte Carlo spread comes from the rank (binomial s.d.
``sqrt(B alpha' (1 - alpha'))``) and from ``z0`` (estimated from the same replicates, s.d.
``sqrt(p (1 - p) / B) / phi(z0)``). The band spans 3 s.d. of both, added in quadrature on the
probability scale; the R packages' own limits (B = 1,000 too) carry the same error, so the band
is widened by sqrt(2). Extreme limits (rank below ~10) get 6.5 more ranks, the 99.85% range of
the smallest of B draws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import tipstat
from tipstat.models.bootstrap import bca_interval, percentile_interval


def _h(load_table, name):
    h = load_table(name)
    return h.pooled() if h.n_strata > 1 else h


def _mc_band(est, side):
    d = np.sort(est.draws[~np.isnan(est.draws)])
    B = len(d)
    z0, a = est.diagnostics["z0"], est.diagnostics["acceleration"]
    z = stats.norm.ppf(0.025 if side == 0 else 0.975)
    w = z0 + (z0 + z) / (1 - a * (z0 + z))
    alpha = stats.norm.cdf(w)
    p = stats.norm.cdf(z0)
    sd_z0 = math.sqrt(p * (1 - p) / B) / stats.norm.pdf(z0)
    dw = 1 + 1 / (1 - a * (z0 + z)) ** 2  # d w / d z0
    # in ranks: binomial spread of the order statistic and the spread from z0
    sd_rank = math.hypot(math.sqrt(B * alpha * (1 - alpha)), B * stats.norm.pdf(w) * dw * sd_z0)
    # + 6.5 ranks: an extreme limit (NewOrleans_8's BCa lower limit sits at alpha' ~ 1e-5, i.e.
    # at the smallest replicate) is an extreme order statistic, whose rank spread the normal
    # approximation misses: the minimum of B draws lies below the 6.5/B quantile with
    # probability 1 - exp(-6.5) = 99.85%
    half = 3 * math.sqrt(2) * sd_rank + 6.5
    k = alpha * B
    lo, hi = np.quantile(d, [max(k - half, 0) / B, min(k + half, B) / B])
    return lo, hi


@pytest.fixture(scope="module")
def neworleans_bca(load_table):
    return tipstat.bootstrap(_h(load_table, "NewOrleans_8"), "stepwise", n_boot=1000, seed=2021,
                             n_jobs=2)


def test_neworleans_bca_reproduces_chan_silverman_vincent(neworleans_bca, published):
    est = neworleans_bca
    pub = published[(published.dataset == "NewOrleans_8")
                    & published.method.str.startswith("stepwise")].iloc[0]
    assert round(est.n_hat) == pub.estimate and est.model == "[D:E]"
    assert est.ci_method == "bca" and len(est.draws) == 1000 and est.seed == 2021
    for side, target in ((0, pub.lower), (1, pub.upper)):
        lo, hi = _mc_band(est, side)
        assert lo <= target <= hi, (side, target, (lo, hi), est.ci)
    # the selection step matters: replicates choose many different models
    assert len(est.diagnostics["model_frequencies"]) > 10


def test_jackknife_acceleration_equals_sparsemse(r_reference, load_table, neworleans_bca):
    rows = r_reference[r_reference.method == "estimatepopulation (BCa)"]
    n = 0
    for _, r in rows.iterrows():
        ahat = float(r.notes.split("ahat=")[1].split(";")[0])
        if r.dataset == "NewOrleans_8":
            a = neworleans_bca.diagnostics["acceleration"]
        else:
            a = tipstat.bootstrap(_h(load_table, r.dataset), "stepwise", n_boot=2, seed=1,
                                  n_jobs=1).diagnostics["acceleration"]
        # ahat is printed to 5-6 significant digits
        assert abs(a - ahat) <= 5e-6 + 1e-4 * abs(ahat), (r.dataset, a, ahat)
        n += 1
    assert n >= 6


def test_korea_bic_reselection_matches_multiple_systems_estimation(r_reference, published,
                                                                  load_table):
    ref = r_reference[(r_reference.dataset == "Korea_3")
                      & (r_reference.method == "estimate_population_bic (BCa, ntop=6)")].iloc[0]
    est = tipstat.bootstrap(_h(load_table, "Korea_3"), "bic", n_boot=1000, seed=3, n_jobs=2)
    assert math.isclose(est.n_hat, ref.estimate, rel_tol=1e-6)
    for side, target in ((0, ref.lower), (1, ref.upper)):
        lo, hi = _mc_band(est, side)
        assert lo <= target <= hi, (side, target, (lo, hi), est.ci)
    pub = published[published.dataset == "Korea_3"].iloc[0]
    assert round(est.n_hat) == pub.estimate


def test_same_seed_same_interval_on_any_backend(load_table):
    h = _h(load_table, "Spina_3")
    a = tipstat.bootstrap(h, "bic", n_boot=40, seed=99, n_jobs=1)
    b = tipstat.bootstrap(h, "bic", n_boot=40, seed=99, n_jobs=2, backend="loky")
    assert np.array_equal(a.draws, b.draws) and a.ci == b.ci
    c = tipstat.bootstrap(h, "bic", n_boot=40, seed=100, n_jobs=1)
    assert not np.array_equal(a.draws, c.draws)
    # an unseeded run records the seed it drew, which reproduces it
    d = tipstat.bootstrap(h, "bic", n_boot=10, n_jobs=1, ci="percentile")
    e = tipstat.bootstrap(h, "bic", n_boot=10, n_jobs=1, ci="percentile", seed=d.seed)
    assert np.array_equal(d.draws, e.draws)


def _independence(h):
    return tipstat.fit_loglinear(h, "independence", ci="none")


def test_parametric_and_any_estimator(load_table):
    h = _h(load_table, "HIV_Rome_4")
    par = tipstat.bootstrap(h, "stepwise", n_boot=200, kind="parametric", seed=5, n_jobs=1,
                            ci="percentile")
    assert par.ci[0] < par.n_hat < par.ci[1] and par.diagnostics["kind"] == "parametric"
    # a fixed model: the percentile interval of the nonparametric bootstrap and the log-normal
    # Wald interval estimate the same sampling spread (agree to ~15% with 300 replicates)
    fixed = tipstat.bootstrap(h, _independence, n_boot=300, seed=6, n_jobs=1, ci="percentile")
    wald = tipstat.fit_loglinear(h, "independence", ci="wald")
    width_boot = fixed.ci[1] - fixed.ci[0]
    width_wald = wald.ci[1] - wald.ci[0]
    assert abs(width_boot / width_wald - 1) < 0.15
    assert fixed.diagnostics["model_frequencies"] == {"independence": 300}


def test_interval_helpers():
    rng = np.random.default_rng(0)
    x = rng.normal(100, 10, 20_000)
    lo, hi = percentile_interval(x, 0.9)
    assert abs(lo - (100 - 16.45)) < 0.6 and abs(hi - (100 + 16.45)) < 0.6
    # with no bias and no acceleration BCa is the percentile interval
    (blo, bhi), z0, a = bca_interval(x, float(np.median(x)), np.array([1.0, -1.0]),
                                     np.array([1.0, 1.0]), 0.9)
    assert abs(z0) < 0.02 and a == 0.0
    assert abs(blo - lo) < 0.5 and abs(bhi - hi) < 0.5
    # infinite replicates (models whose MLE does not exist) stay at the top of the ordering
    y = np.concatenate([np.arange(100.0), [np.inf] * 10])
    assert percentile_interval(y, 0.9)[1] == np.inf
    assert all(math.isnan(v) for v in percentile_interval(np.array([np.nan, np.nan]), 0.9))


def test_bad_arguments(load_table):
    h = _h(load_table, "Korea_3")
    with pytest.raises(tipstat.InputError, match="kind"):
        tipstat.bootstrap(h, "bic", kind="jackknife")
    with pytest.raises(tipstat.InputError, match="n_boot"):
        tipstat.bootstrap(h, "bic", n_boot=1)
    with pytest.raises(tipstat.InputError, match="estimator"):
        tipstat.bootstrap(h, "lasso")
    with pytest.raises(tipstat.InputError, match="ci"):
        tipstat.bootstrap(h, "bic", ci="studentized")
