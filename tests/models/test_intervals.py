"""The interval methods of tipstat.models.intervals against known truth.

Every check is exact (a quantile of a finite sample is one of its values or a fixed interpolation
between two), except the large-sample ones, whose tolerances are stated where they are made.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tipstat.models.intervals import (
    equal_tailed,
    grid_quantile,
    hpd_interval,
    percentile_interval,
    quantiles_keep_inf,
    weighted_quantiles,
)


def test_weighted_quantiles_equal_weights_are_the_inverse_empirical_cdf():
    """With equal weights on 1..10, the q-quantile is the smallest value with cdf >= q."""
    v = np.arange(10.0, 0.0, -1.0)
    w = np.ones(10)
    assert weighted_quantiles(v, w, [0.1, 0.15, 0.5, 1.0]).tolist() == [1.0, 2.0, 5.0, 10.0]


def test_weighted_quantiles_of_importance_draws_approach_the_target():
    """Draws from N(0, 2) weighted by N(0, 1) / N(0, 2) target N(0, 1): with 200,000 draws the
    sampling SD of a weighted quantile is below 0.01 (ESS ~ 150,000, density at the 2.5%
    quantile 0.058), so 0.03 is 3 SDs."""
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 2.0, 200_000)
    w = stats.norm.pdf(x) / stats.norm.pdf(x, scale=2.0)
    q = weighted_quantiles(x, w, [0.025, 0.5, 0.975])
    assert q == pytest.approx(stats.norm.ppf([0.025, 0.5, 0.975]), abs=0.03)


def test_hpd_is_the_shortest_interval_holding_the_level():
    v = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 20.0])
    w = np.array([0.05, 0.2, 0.3, 0.2, 0.2, 0.05])
    assert hpd_interval(v, w, 0.7) == (1.0, 3.0)
    assert hpd_interval(v, w, 0.9) == (1.0, 4.0)
    # a skewed sample: the HPD interval is shorter than the equal-tailed one
    rng = np.random.default_rng(2)
    x = rng.exponential(1.0, 50_000)
    lo, hi = hpd_interval(x, np.ones_like(x), 0.9)
    et = weighted_quantiles(x, np.ones_like(x), [0.05, 0.95])
    assert hi - lo < et[1] - et[0]
    # exponential: HPD is [0, -log(0.1)] (sampling SD of the upper limit ~0.02; 0.1 is 5 SDs)
    assert lo == pytest.approx(0.0, abs=0.01) and hi == pytest.approx(-math.log(0.1), abs=0.1)


def test_grid_quantile_is_the_first_grid_point_whose_cdf_exceeds_q():
    n = np.array([100.0, 101.0, 102.0, 103.0])
    cdf = np.array([0.25, 0.5, 0.75, 1.0])
    assert grid_quantile(n, cdf, 0.1) == 100.0
    assert grid_quantile(n, cdf, 0.5) == 102.0       # strictly exceeds (dga)
    assert grid_quantile(n, cdf, 0.99) == 103.0
    assert grid_quantile(n, np.array([0.1, 0.2, 0.3, 0.4]), 0.9) == 103.0  # mass beyond the grid


def test_equal_tailed_floors_at_the_observed_count():
    d = np.array([90.0, 95.0, 100.0, 105.0, 110.0])
    assert equal_tailed(d, 0.5) == (95.0, 105.0)
    assert equal_tailed(d, 0.5, floor=100.0) == (100.0, 105.0)
    assert equal_tailed(d, 0.5, floor=200.0) == (200.0, 200.0)
    cells = np.column_stack([d, 2 * d])
    lo, hi = equal_tailed(cells, 0.5, floor=np.array([0.0, 200.0]), axis=0)
    assert lo.tolist() == [95.0, 200.0] and hi.tolist() == [105.0, 210.0]
    # the same as numpy's default (linear) quantiles without a floor
    rng = np.random.default_rng(3)
    x = rng.normal(size=101)
    assert equal_tailed(x, 0.9) == (np.quantile(x, 0.05), np.quantile(x, 0.95))


def test_bootstrap_quantiles_keep_infinite_replicates_in_the_ordering():
    d = np.array([1.0, 2.0, 3.0, np.inf])
    q = quantiles_keep_inf(d, np.array([0.0, 0.5, 1.0]))
    assert q.tolist() == [1.0, 2.5, math.inf]
    assert percentile_interval(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5) == (1.5, 2.5)
