"""The log-linear engine against the established R tools (tests/reference/r_reference.csv).

Tolerances: maximum-likelihood fits are deterministic, so N-hat, deviance, AIC and BIC must equal
R's ``glm`` / Rcapture to relative 1e-6 (with an absolute floor of 1e-6 for deviances that are 0
up to rounding, e.g. saturated fits). R's own convergence tolerance (glm: 1e-8 on the deviance)
limits the agreement of SEs of boundary fits, so SEs are compared at 1e-4. Wald limits use the
exact normal quantile where the reference used 1.96 (a 2e-5 relative difference on z), so they are
compared at 1e-4 too. Profile limits are compared at 1e-6 with Rcapture's own Stirling correction
(``ci="profile_rcapture"``) and at 1e-3 with the exact likelihood.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from scipy import stats

import tipstat
from tests.conftest import rcapture_terms
from tipstat.models.design import loglinear_design
from tipstat.models.loglinear import _fit, profile_interval

GLM_DATASETS = ["UK_6", "UK_5", "UK_4", "Netherlands_6", "Netherlands_5", "NewOrleans_8",
                "NewOrleans_5", "Korea_3", "Artificial_3", "HIV_Rome_4", "Spina_3", "MY_5"]


def _rows(ref, package_prefix, method):
    sel = ref[ref.package.str.startswith(package_prefix) & (ref.method == method)]
    return [r for _, r in sel.iterrows()]


def _huge(r) -> bool:
    """R printed a meaningless number: the estimate does not exist / is not identifiable."""
    return r.estimate > 1e9


def test_every_glm_row_is_covered(r_reference):
    rows = _rows(r_reference, "stats::glm", "glm poisson")
    assert sorted({r.dataset for r in rows}) == sorted(GLM_DATASETS)
    assert len(rows) == 2 * len(GLM_DATASETS)


@pytest.mark.parametrize("dataset", GLM_DATASETS)
def test_glm_independence_and_all_two_way(dataset, r_reference, load_table):
    h = load_table(dataset).pooled()
    for r in _rows(r_reference, "stats::glm", "glm poisson"):
        if r.dataset != dataset:
            continue
        terms = "all2" if r.model.startswith("all two-way") else "independence"
        est = tipstat.fit_loglinear(h, terms, ci="wald")
        # goodness of fit is defined even where N-hat is not
        assert est.deviance == pytest.approx(r.deviance, rel=1e-6, abs=1e-6)
        assert est.aic == pytest.approx(r.aic, rel=1e-6)
        assert est.bic == pytest.approx(r.bic, rel=1e-6)
        assert est.df == r.df
        if _huge(r):
            # R: 1.8e11 (Korea_3) and 5.3e13 (Artificial_3): tipstat says why instead
            assert est.status in ("does_not_exist", "not_identifiable")
            assert not math.isfinite(est.n_hat)
            assert math.isnan(est.ci[0]) and math.isnan(est.ci[1])
            continue
        assert est.ok
        assert est.n_hat == pytest.approx(r.estimate, rel=1e-6)
        assert est.se == pytest.approx(r.se, rel=1e-4)
        assert est.ci[0] == pytest.approx(r.lower, rel=1e-4)
        assert est.ci[1] == pytest.approx(r.upper, rel=1e-4)


def test_wald_interval_formula_with_r_quantile(load_table):
    """n + exp(b0 -/+ 1.96 se(b0)) with the glm intercept reported in the reference notes
    (UK_5 independence: intercept 9.278011283, se_cond 800.27206 = mu0 * se(b0))."""
    est = tipstat.fit_loglinear(load_table("UK_5"), "independence", ci="wald")
    b0 = math.log(est.diagnostics["mu0"])
    assert b0 == pytest.approx(9.278011283, abs=1e-8)
    se_b0 = math.sqrt((est.se**2 - est.diagnostics["mu0"]) / est.diagnostics["mu0"] ** 2)
    assert est.diagnostics["mu0"] * se_b0 == pytest.approx(800.27206, rel=1e-6)
    z = stats.norm.ppf(0.975)
    assert est.ci[0] == pytest.approx(2744 + math.exp(b0 - z * se_b0), rel=1e-12)


def _closedpci_rows(ref):
    out = []
    for r in _rows(ref, "Rcapture", "closedpCI"):
        dataset = r.dataset.replace(" (example)", "")
        if r.model.startswith(("M0", "Mh", "Mth")):
            continue  # heterogeneity models: tests/models/test_heterogeneity.py
        out.append((dataset, r))
    return out


def test_closedpci_rows_cover_every_dataset(r_reference):
    rows = _closedpci_rows(r_reference)
    assert {d for d, _ in rows} >= set(GLM_DATASETS) - {"NewOrleans_8_MSE186"}
    assert len(rows) >= 30


def test_rcapture_closedpci_profile_intervals(r_reference, load_table):
    checked = 0
    for dataset, r in _closedpci_rows(r_reference):
        h = load_table(dataset).pooled()
        terms = rcapture_terms(r.model, list(h.lists))
        est = tipstat.fit_loglinear(h, terms, ci="profile_rcapture")
        assert est.deviance == pytest.approx(r.deviance, rel=1e-6, abs=1e-6), (dataset, r.model)
        assert est.aic == pytest.approx(r.aic, rel=1e-6), (dataset, r.model)
        assert est.bic == pytest.approx(r.bic, rel=1e-6), (dataset, r.model)
        if _huge(r):
            assert est.status in ("does_not_exist", "not_identifiable"), (dataset, r.model)
            assert est.diagnostics["existence"] in (1, 2)
            continue
        assert est.n_hat == pytest.approx(r.estimate, rel=1e-6), (dataset, r.model)
        assert est.se == pytest.approx(r.se, rel=1e-4), (dataset, r.model)
        # the multinomial N-hat printed in the notes (5 significant digits or more)
        n_mult = float(r.notes.split("multinomial N-hat=")[1].split(",")[0])
        assert est.diagnostics["n_hat_multinomial"] == pytest.approx(n_mult, rel=1e-5)
        assert est.ci[0] == pytest.approx(r.lower, rel=1e-6), (dataset, r.model)
        if "upper bound hit fmaxSupCL" in r.notes:
            # Rcapture stops searching at 3 N-hat and prints that cap; tipstat finds the limit
            assert r.upper == pytest.approx(3 * r.estimate, rel=1e-3)
            assert est.ci[1] > r.upper
        else:
            assert est.ci[1] == pytest.approx(r.upper, rel=1e-6), (dataset, r.model)
        checked += 1
    assert checked >= 25


def test_exact_profile_differs_from_rcapture_only_by_stirling(r_reference, load_table):
    """The default profile uses exact log-factorials; on small tables it moves the limits by up to
    a few 1e-4 relative (Korea_3, N ~ 150), elsewhere far less."""
    for dataset, r in _closedpci_rows(r_reference):
        if _huge(r) or "fmaxSupCL" in r.notes:
            continue
        h = load_table(dataset).pooled()
        est = tipstat.fit_loglinear(h, rcapture_terms(r.model, list(h.lists)))
        tol = 1e-3 if est.n_hat < 1000 else 2e-5
        assert est.ci[0] == pytest.approx(r.lower, rel=tol), (dataset, r.model)
        assert est.ci[1] == pytest.approx(r.upper, rel=tol), (dataset, r.model)


@pytest.mark.parametrize("dataset", ["NewOrleans_8", "NewOrleans_5", "UK_5", "Korea_3"])
def test_profile_limits_are_where_the_likelihood_drops_by_the_chi2_quantile(dataset, load_table):
    """Self-consistency where Rcapture cannot be the reference (its upper search stops at 3 N)."""
    h = load_table(dataset).pooled()
    for terms in ("independence", "all2"):
        design = loglinear_design(h.lists, terms)
        fit = _fit(design, np.asarray(h.counts, float))
        if not fit.existence.finite:
            continue
        level = 0.9
        (lo, hi), n_mult = profile_interval(fit, level)
        assert lo < n_mult < hi
        # widen slightly: the log-likelihood at lo/hi must be at the cut, beyond it lower
        (lo2, hi2), _ = profile_interval(fit, level + 0.04)
        assert lo2 < lo and hi2 > hi


def test_profile_level_controls_width(load_table):
    h = load_table("UK_4")
    e90 = tipstat.fit_loglinear(h, "independence", level=0.90)
    e99 = tipstat.fit_loglinear(h, "independence", level=0.99)
    assert e99.ci[0] < e90.ci[0] < e90.n_hat < e90.ci[1] < e99.ci[1]


def test_newOrleans8_all_two_way_extended_mle_matches_glm_value(r_reference, load_table):
    """R's glm reports 'not converged' on NewOrleans_8 all two-way, yet its value is the extended
    MLE: 18 of 28 list pairs never overlap, those interactions are -infinite, N-hat is finite."""
    est = tipstat.fit_loglinear(load_table("NewOrleans_8"), "all2", ci="none")
    assert est.status == "extended"
    assert est.diagnostics["existence"] == 0
    assert est.n_hat == pytest.approx(2393.20279975476, rel=1e-6)
    coef = est.coefficients
    assert coef["estimate"].isna().sum() > 0  # the infinite interactions are not given numbers


def test_lognormal_interval_is_chaos_formula(load_table):
    """Chao (1987): C = exp(z sqrt(log(1 + se^2 / mu0^2))), [n + mu0 / C, n + mu0 C]."""
    est = tipstat.fit_loglinear(load_table("UK_5"), "independence", ci="lognormal")
    mu0 = est.n_hat - est.n_observed
    c = math.exp(stats.norm.ppf(0.975) * math.sqrt(math.log(1 + est.se**2 / mu0**2)))
    assert est.ci == pytest.approx((2744 + mu0 / c, 2744 + mu0 * c), rel=1e-12)
    assert est.ci_method == "lognormal"


def test_lognormal_interval_covers_where_the_conditional_wald_interval_does_not():
    """Independent lists, N = 2000, 8 lists with p = 0.25 (90% observed): the glm-style Wald
    interval holds n fixed and under-covers; Chao's log-normal and the profile interval do not.
    100 replicates: a 95% interval covers at least 88 with probability > 0.99 (binomial), the
    Wald interval covered 0.82 in a 200-replicate run."""
    from tipstat.simulate_populations import populations

    covered = {"wald": 0, "lognormal": 0, "profile": 0}
    for pop in populations(n=2000, k=8, p=0.25, replicates=100, seed=11):
        for ci in covered:
            lo, hi = tipstat.fit_loglinear(pop.histories, "independence", ci=ci).ci
            covered[ci] += lo <= 2000 <= hi
    assert covered["lognormal"] >= 88 and covered["profile"] >= 88
    assert covered["wald"] < covered["lognormal"]


# ------------------------------------------------------------------ counts up to 1e12
def _scaled(h, factor: float):
    df = h.to_frame()
    df["count"] = df["count"] * factor
    return tipstat.CaptureHistories.from_frame(df)


@pytest.mark.parametrize("dataset", ["UK_5", "Korea_3"])
@pytest.mark.parametrize("terms", ["independence", "all2"])
def test_profile_interval_scales_with_the_counts_up_to_1e12(dataset, terms, load_table):
    """A table times c: the MLE is equivariant, N-hat(c y) = c N-hat(y) exactly, and the profile
    interval tends to N-hat +/- z SE(N-hat), SE growing as sqrt(c) (the Poisson SE formula scales
    exactly), so the relative half-width shrinks as 1/sqrt(c).

    Tolerances: N-hat to 1e-10 relative (the fits agree to ~2e-15). Each half-width times
    sqrt(c) / N-hat equals z SE / N-hat of the unscaled fit up to the skewness of the profile,
    which falls as 1/sqrt(c): its size is the asymmetry A = |upper - lower width| / (sum of
    widths) of the unscaled interval divided by sqrt(c) (allowed twice), plus 1e-5 for the
    rounding of a statistic evaluated on tables of ~1e16 people (measured <= 2e-6; before the
    centred profile likelihood, the 1e12 limits were off by 5-12% or on the wrong side).
    Korea_3 all2 has no MLE at scale 1 and must say so at every scale."""
    h1 = load_table(dataset).pooled()
    e1 = tipstat.fit_loglinear(h1, terms)
    z = stats.norm.ppf(0.975)
    for c in (1e9, 1e12):
        e = tipstat.fit_loglinear(_scaled(h1, c), terms)
        assert e.status == e1.status
        if e1.status == "does_not_exist":
            assert e.n_hat == math.inf
            continue
        assert e.status in ("ok", "extended")
        assert e.n_hat == pytest.approx(c * e1.n_hat, rel=1e-10)
        lo, hi = e.ci
        assert lo < e.n_hat < hi
        asym = abs((e1.ci[1] - e1.n_hat) - (e1.n_hat - e1.ci[0])) / (e1.ci[1] - e1.ci[0])
        tol = 2 * asym / math.sqrt(c) + 1e-5
        target = z * e1.se / e1.n_hat
        for width in (e.n_hat - lo, hi - e.n_hat):
            assert width / e.n_hat * math.sqrt(c) == pytest.approx(target, rel=tol)


def _independence_profile_loglik(sizes: list[int], n: Decimal, N: Decimal) -> Decimal:
    """Multinomial profile log-likelihood of N under independence, in closed form (50 digits):
    on the complete 2^K table the fitted cells are N prod_j p_j^x_j (1 - p_j)^(1 - x_j) with
    p_j = n_j / N, so ell(N) = log N! - log (N - n)! + sum_j [n_j log(n_j / N)
    + (N - n_j) log(1 - n_j / N)]. log x! by Stirling's series (x >= 1e6 here: exact to 1e-40).
    """
    def log_factorial(x: Decimal) -> Decimal:
        pi = Decimal("3.14159265358979323846264338327950288419716939937510")
        return (x * x.ln() - x + (2 * pi * x).ln() / 2 + 1 / (12 * x) - 1 / (360 * x**3)
                + 1 / (1260 * x**5))

    out = log_factorial(N) - log_factorial(N - n)
    for nj in sizes:
        out += Decimal(nj) * (Decimal(nj) / N).ln() + (N - nj) * ((N - nj) / N).ln()
    return out


@pytest.mark.parametrize("dataset", ["UK_5", "Korea_3"])
def test_profile_limits_at_1e12_against_50_digit_arithmetic(dataset, load_table):
    """Independence has a closed-form profile likelihood: evaluated with 50 significant digits,
    2 (ell(N-hat) - ell(limit)) must be the chi2_1 quantile at both limits of the 1e9 and 1e12
    tables. Tolerance 1e-4 on a statistic of 3.84: brentq stops within 1e-12 relative of the
    root, which moves the statistic by ~ 2 z / (half-width / N) * 1e-12 < 1e-4 at 1e12, while the
    float64 evaluation it replaced was off by whole units there."""
    from decimal import localcontext

    h1 = load_table(dataset).pooled()
    crit = stats.chi2.ppf(0.95, 1)
    with localcontext() as ctx:
        ctx.prec = 50
        for c in (1e9, 1e12):
            h = _scaled(h1, c)
            e = tipstat.fit_loglinear(h, "independence")
            sizes = [int(v) for v in h.list_sizes()]
            n = Decimal(int(h.n_observed))
            top = _independence_profile_loglik(sizes, n, Decimal(e.diagnostics["n_hat_multinomial"]))
            for limit in e.ci:
                stat = 2 * (top - _independence_profile_loglik(sizes, n, Decimal(limit)))
                assert float(stat) == pytest.approx(crit, abs=1e-4)
