"""One Newton engine: every fit runs one driver, and its convergence does not depend on the
scale of the counts.

``newton_batch`` fits a stack of models (a stack of one takes a reduced-design path, larger
stacks a vectorised one) and ``poisson_newton`` fits one model (with or without an offset) as a
stack of one; the stratified joint fit, the moment-based fit of many lists and the Bayesian
posterior modes supply their own derivatives to the same driver
(``tipstat.models.newton.newton``), which stops after the step taken where the Newton
decrement was below 1e-12 count scales. On these tables the fits agree to ~1e-13 in log N-hat
(measured), so 1e-10 (relative) can fail only if a path changes, and N-hat ``exp(beta_0)``
scales exactly with the counts: at ``c = 1e9`` and ``c = 1e12`` it is ``c`` times the fit at
scale 1 to 1e-10, after the same number of iterations, for every caller.
"""

from __future__ import annotations

import numpy as np
import pytest

from tipstat.models.design import loglinear_design
from tipstat.models.poisson import newton_batch, poisson_newton

REL = 1e-10  # quadratic convergence leaves ~1e-16; 1e-10 leaves room for rounding in exp()

# tables where the MLE exists under independence and with a two-way term (so every path is
# certified and N-hat is finite)
CASES = [("Korea_3", ((0, 1),)), ("UK_5", ((0, 1),)), ("Kosovo_4", ((0, 1),)),
         ("NewOrleans_5", ((0, 1),)), ("Netherlands_5", ((1, 2),))]


def _problem(name, pair):
    import tipstat

    h = tipstat.datasets.load(name)
    lists = list(h.lists)
    terms = [f"{lists[a]}:{lists[b]}" for a, b in pair]
    X = loglinear_design(lists, terms).observable
    return X, np.asarray(h.counts, dtype=np.float64)


def _fits(X, y):
    """N-hat and iterations by the single fit, a stack of one and a stack of three."""
    p = X.shape[1]
    single = poisson_newton(X, y)
    assert single.converged
    one = newton_batch(X, y, np.ones((1, p), dtype=bool))
    masks = np.ones((3, p), dtype=bool)
    masks[1, -1] = False  # other models in the stack must not disturb model 0
    stack = newton_batch(X, y, masks)
    assert one.exact[0] and stack.exact[0]
    return single, one, stack


@pytest.mark.parametrize(("name", "pair"), CASES)
def test_single_and_stacked_fits_agree_at_every_scale(name, pair):
    X, y = _problem(name, pair)
    base = _fits(X, y)
    n0 = np.exp(base[0].beta[0])
    for fit in base[1:]:
        np.testing.assert_allclose(fit.beta[0], base[0].beta, rtol=REL, atol=REL)
    np.testing.assert_allclose(base[2].beta[0], base[1].beta[0], rtol=REL, atol=REL)
    iters = {}
    for c in (1e9, 1e12):
        single, one, stack = _fits(X, y * c)
        # N-hat scales exactly; the non-intercept parameters do not move
        for b in (single.beta, one.beta[0], stack.beta[0]):
            assert np.exp(b[0]) == pytest.approx(c * n0, rel=REL)
            np.testing.assert_allclose(b[1:], base[0].beta[1:], rtol=REL, atol=REL)
        assert one.iterations[0] == stack.iterations[0]
        iters[c] = (single.iterations, int(one.iterations[0]))
    # above the published range the stopping rule is invariant to the scale of the counts
    assert iters[1e9] == iters[1e12]


def test_rescaled_stack_reports_the_fit_at_the_original_scale():
    # one table per model (bootstrap-like), one of them far above the published range: the
    # kernel sum(y eta - mu), fitted values and covariance are those of the original counts
    X, y = _problem("UK_5", ((0, 1),))
    c = 1e11
    Y = np.vstack([y, y * c])
    fit = newton_batch(X, Y, np.ones((2, X.shape[1]), dtype=bool))
    assert fit.exact.all()
    for b, scale in enumerate((1.0, c)):
        yb = y * scale
        eta = X @ fit.beta[b]
        np.testing.assert_allclose(fit.mu[b], np.exp(eta), rtol=REL)
        assert fit.kernel[b] == pytest.approx(float(yb @ eta - np.exp(eta).sum()), rel=REL)
        # the inverse Fisher information scales as 1 / c (rounding amplified by its condition)
        np.testing.assert_allclose(fit.cov[b] * scale, fit.cov[0], rtol=1e-8, atol=1e-14)


def test_single_and_batched_fits_agree_on_every_published_table():
    # Both stop after the step from a Newton decrement below 1e-12, which leaves an error in
    # beta of order 1e-12 SE; over every published table (up to 6 lists) under independence,
    # each single pair and all pairs they agree to 3.6e-15 in log N-hat (measured; with the
    # earlier batched threshold 1e-8 the gap was 4.8e-10, Hare_6 all two-way).
    import itertools

    import tipstat

    n_fits = 0
    for name in tipstat.datasets.names():
        h = tipstat.datasets.load(name)
        lists = list(h.lists)
        if len(lists) > 6:
            continue
        y = np.asarray(h.counts, dtype=np.float64)
        pairs = [f"{a}:{b}" for a, b in itertools.combinations(lists, 2)]
        for terms in [[], *([t] for t in pairs), pairs]:
            X = loglinear_design(lists, terms).observable
            if np.linalg.matrix_rank(X) < X.shape[1]:
                continue
            single = poisson_newton(X, y)
            one = newton_batch(X, y, np.ones((1, X.shape[1]), dtype=bool))
            assert single.converged == bool(one.exact[0]), (name, terms)
            if single.converged:
                n_fits += 1
                assert abs(single.beta[0] - one.beta[0, 0]) < 1e-12, (name, terms)
    assert n_fits >= 150


# --------------------------------------------------------------------------- every caller
# Every Newton fit (dense stack, offset, stratified profile, moment-based, penalised) runs the
# one driver tipstat.models.newton.newton, whose stop is the decrement in count scales. A
# likelihood's score and information grow with the counts and its Newton step does not, so a
# fit of c y must take the same iterations to the same status; the driver's runs are recorded
# at the module where each caller looks it up.
SCALES = (1.0, 1e9, 1e12)


def _record(monkeypatch, module):
    from tipstat.models import newton as engine

    runs = []

    def recording(*args, **kwargs):
        run = engine.newton(*args, **kwargs)
        runs.append((tuple(run.iterations.tolist()), tuple(run.converged.tolist()),
                     tuple(run.certified.tolist())))
        return run

    monkeypatch.setattr(module, "newton", recording)
    return runs


def test_driver_counts_iterations_and_reports_failure():
    # f(b) = 8 b - 2 exp(b) (the Poisson mean of 3 and 5) converges to log 4; a stack of two
    # with a direction that is not finite for the second problem stops that one, failed,
    # after one iteration, without disturbing the first
    from tipstat.models.newton import newton

    def value(x, rows):
        return 8 * x[:, 0] - 2 * np.exp(x[:, 0]), ()

    def direction(x, aux, rows, certified):
        g, h = 8 - 2 * np.exp(x[:, 0]), 2 * np.exp(x[:, 0])
        dec = np.where(rows == 1, np.nan, g * g / h)
        return (g / h)[:, None], dec, None

    run = newton(value, direction, np.zeros((2, 1)))
    assert run.converged.tolist() == [True, False] and run.failed.tolist() == [False, True]
    assert run.iterations[1] == 1 and run.x[1, 0] == 0.0
    assert np.exp(run.x[0, 0]) == pytest.approx(4.0, rel=1e-14)
    # the same problem at counts x1e9 (f scaled by c): the same iterates with the decrement in
    # count scales, none accepted as converged without (the decrement is then c times larger)
    c = 1e9

    def value_c(x, rows):
        return c * value(x, rows)[0], ()

    def direction_c(x, aux, rows, certified):
        s, d, _ = direction(x, aux, rows, certified)
        return s, c * d, None

    run_c = newton(value_c, direction_c, np.zeros((2, 1)), scale=c)
    assert run_c.iterations[0] == run.iterations[0] and run_c.x[0, 0] == run.x[0, 0]
    unscaled = newton(value_c, direction_c, np.zeros((2, 1)))
    assert unscaled.iterations[0] > run.iterations[0]


def test_offset_fits_are_invariant_to_the_count_scale():
    # the profile-likelihood fit (an offset in every linear predictor) goes through the stack
    # of one: same iterations and status at x1, x1e9, x1e12, N-hat scaling exactly
    X, y = _problem("UK_5", ((0, 1),))
    X = np.vstack([np.r_[1.0, np.zeros(X.shape[1] - 1)], X])  # the unobserved cell
    y = np.r_[2000.0, y]
    off = 0.05 * np.arange(len(y)) / len(y)
    fits = {c: poisson_newton(X, y * c, offset=off) for c in SCALES}
    for c, fit in fits.items():
        assert fit.converged
        assert fit.iterations == fits[1.0].iterations
        assert fit.beta[0] - np.log(c) == pytest.approx(fits[1.0].beta[0], rel=REL, abs=REL)
        np.testing.assert_allclose(fit.beta[1:], fits[1.0].beta[1:], rtol=REL, atol=REL)
    # a starting value is a start (it was once taken for the cell mask)
    again = poisson_newton(X, y, fits[1.0].beta, offset=off)
    assert again.converged and again.iterations <= 2
    np.testing.assert_allclose(again.beta, fits[1.0].beta, rtol=REL, atol=REL)


def test_stratified_joint_fit_is_invariant_to_the_count_scale(monkeypatch):
    # the joint model with closed-form stratum effects (its own sparse score and information)
    import pandas as pd

    from tipstat import CaptureHistories
    from tipstat.models import stratified
    from tipstat.models.stratified import fit_stratified

    counts = np.array([80, 60, 20, 50, 15, 12, 4, 30, 45, 9, 40, 8, 10, 2], dtype=float)
    out = {}
    for c in SCALES:
        runs = _record(monkeypatch, stratified)
        df = pd.DataFrame({"sex": ["F"] * 7 + ["M"] * 7, "A": [1, 0, 1, 0, 1, 0, 1] * 2,
                           "B": [0, 1, 1, 0, 0, 1, 1] * 2, "C": [0, 0, 0, 1, 1, 1, 1] * 2,
                           "count": counts * c})
        est = fit_stratified(CaptureHistories.from_frame(df, strata="sex"),
                             terms=["A:B", "A:sex"], n_boot=0)
        out[c] = est, runs
    n1 = out[1.0][0].n_hat
    for c, (est, runs) in out.items():
        assert est.status == out[1.0][0].status == "ok"
        assert runs and runs == out[1.0][1], c  # same iterations, convergence, certificate
        assert est.n_hat == pytest.approx(c * n1, rel=REL)


def test_moment_fit_of_many_lists_is_invariant_to_the_count_scale(monkeypatch):
    # the moment-based fit used from 13 lists (no 2^K design), on 13 lists drawn from a known
    # log-linear model (main effects -1.5, L0:L1 log odds ratio 1, 3,000 unseen)
    from tipstat.models import selection
    from tipstat.models.terms import TermSpace

    lists = [f"L{j}" for j in range(13)]
    beta = np.concatenate([[np.log(3000)], np.full(13, -1.5), [1.0]])
    mu = np.exp(loglinear_design(lists, "L0:L1").matrix @ beta)
    y = np.random.default_rng(3).poisson(mu[1:]).astype(float)
    space = TermSpace(lists, 2)
    assert selection.factored(space)
    models = [(), (0b11,), (0b11, 0b1100)]  # independence, L0:L1, L0:L1 + L2:L3
    out = {}
    for c in SCALES:
        runs = _record(monkeypatch, selection)
        out[c] = selection._evaluate_factored(space, y * c, models), runs
    ev1, runs1 = out[1.0]
    assert len(runs1) == len(models) and all(r[1] == (True,) for r in runs1)
    for c, (ev, runs) in out.items():
        assert runs == runs1, c
        assert ev.status.tolist() == ev1.status.tolist()
        np.testing.assert_allclose(ev.n_hat, c * ev1.n_hat, rtol=REL)



def test_ill_conditioned_design_fits_as_its_well_conditioned_reparametrisation():
    # The single fit starts from the normal equations only where they are well conditioned
    # (LAPACK's reciprocal condition estimate > 1e-10), else from the SVD least squares. A
    # design with one column scaled by 1e-6 spans the same space as the plain design, so the
    # MLE of the fitted values is the same; its normal equations have a reciprocal condition
    # number below 1e-10 (asserted: the fallback's case). The fitted values agree to REL, both
    # fits are certified converged, and the scaled coefficient is 1e6 x the plain one.
    from scipy.linalg.lapack import dpocon, dpotrf

    import tipstat

    h = tipstat.datasets.load("UK_5")
    X = loglinear_design(list(h.lists), "independence").observable
    y = np.asarray(h.counts, dtype=np.float64)
    scaled = X.copy()
    scaled[:, 1] *= 1e-6
    G = scaled.T @ scaled
    rcond = dpocon(dpotrf(G)[0], float(np.abs(G).sum(axis=0).max()))[0]
    assert rcond < 1e-10
    plain, fit = poisson_newton(X, y), poisson_newton(scaled, y)
    assert plain.converged and fit.converged
    np.testing.assert_allclose(fit.mu, plain.mu, rtol=REL)
    assert fit.beta[1] * 1e-6 == pytest.approx(plain.beta[1], rel=1e-8)
