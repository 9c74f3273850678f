"""Property tests over the public estimators: any count table a user can build gives either an
``Estimate`` with a documented status whose numbers are honest for that status, or an
``InputError`` - never a crash, an overflow or a number where there is none.

Bounded for CI (``max_examples`` small, no deadline): each example fits a handful of log-linear
models on 3 or 4 lists. Counts range from sparse (many zeros: MLE on the boundary or absent) to a
billion times the published tables (the Newton convergence test must mean the same at any scale),
so every status is reached.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tipstat
from tipstat import CaptureHistories, InputError
from tipstat.estimate import STATUSES

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tables(draw, scales=(1, 1, 1, 1000, 10**9)):
    k = draw(st.sampled_from([3, 4]))
    scale = draw(st.sampled_from(scales))
    cells = draw(st.lists(st.one_of(st.just(0), st.integers(0, 60)), min_size=2**k - 1,
                          max_size=2**k - 1))
    counts = np.asarray(cells, dtype=np.int64) * scale
    return counts, [chr(65 + j) for j in range(k)]


def _histories(counts: np.ndarray, lists: list[str]):
    """The table through the public constructor (a pattern table, as a user writes it)."""
    k = len(lists)
    rows = {name: [(c >> j) & 1 for c in range(1, 2**k)] for j, name in enumerate(lists)}
    frame = pd.DataFrame({**rows, "count": counts})
    return _call(CaptureHistories.from_frame, frame)


def _honest(est) -> None:
    assert isinstance(est, tipstat.Estimate)
    assert est.status in STATUSES
    if est.status in ("ok", "extended"):
        assert math.isfinite(est.n_hat) and est.n_hat >= est.n_observed - 1e-6 * est.n_observed
        lo, hi = est.ci
        if not (math.isnan(lo) or math.isnan(hi)):
            # an interval that exists contains its estimate (relative slack for rounding)
            assert lo <= est.n_hat * (1 + 1e-9) and hi >= est.n_hat * (1 - 1e-9), (est.ci, est.n_hat)
    else:  # no number where there is none
        assert not math.isfinite(est.n_hat) or est.status == "not_converged"


def _call(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except InputError:
            return None


@SETTINGS
@given(tables(), st.sampled_from(["independence", "all2", "A:B", "A:B + B:C"]))
def test_fit_loglinear_is_honest_on_any_table(table, terms):
    h = _histories(*table)
    if h is None:
        return
    est = _call(tipstat.fit_loglinear, h, terms)
    if est is not None:
        _honest(est)


@SETTINGS
@given(tables())
def test_default_and_closedp_are_honest_on_any_table(table):
    h = _histories(*table)
    if h is None:
        return
    est = _call(tipstat.estimate_population, h)
    if est is not None:
        _honest(est)
    rows = _call(tipstat.closedp, h)
    if rows is not None:
        for est in rows.values():  # an EstimateTable: model -> Estimate
            _honest(est)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.one_of(st.text(max_size=6), st.floats(allow_nan=True), st.integers(-5, 5),
                 st.none(), st.lists(st.integers(), max_size=2)))
def test_bad_options_are_input_errors(value):
    h = tipstat.datasets.load("Korea_3")
    for kwargs in ({"level": value}, {"ci": value}):
        if kwargs.get("level") is not None and isinstance(value, float) and 0 < value < 1:
            continue
        if kwargs.get("ci") in ("profile", "profile_rcapture", "wald", "none"):
            continue
        with pytest.raises(InputError):
            tipstat.fit_loglinear(h, "independence", **kwargs)
    # a model is a string or a list of terms (None or []: independence, as documented)
    if value is not None and value != [] and not (isinstance(value, str) and value.strip().lower() in (
            "", "independence", "main", "mt", "all2", "all3")):
        with pytest.raises(InputError):
            tipstat.fit_loglinear(h, value)


@pytest.mark.parametrize("scale", [1e9, 1e12])
def test_counts_times_a_billion_keep_their_status_and_estimate(scale):
    """The cases of the audit: Korea_3 x 1e9 with all two-way terms crashed in brentq or gave
    N = 3.3e24 'ok'; [0, 2.23e9, 0] gave an estimate outside its own interval. The MLE of
    c * y is c times the MLE of y (the intercept absorbs log c), so the estimate scales exactly
    (to 1e-9, rounding) and the status does not change; the interval narrows as 1 / sqrt(c)
    and still contains the estimate. At 1e12 the profile likelihood's differences of ~2 on a
    log-likelihood of ~1e14 lose digits (float64), so only containment is asserted there: the
    profile width at 1e12 is 12% short of the 1 / sqrt(c) law (issue 15 keeps it open)."""
    korea = tipstat.datasets.load("Korea_3")
    big = CaptureHistories(np.asarray(korea.counts, dtype=float) * scale, list(korea.lists))
    assert tipstat.fit_loglinear(big, "all2").status == "does_not_exist"
    small = tipstat.fit_loglinear(korea, "independence")
    est = tipstat.fit_loglinear(big, "independence")
    assert est.status == "ok"
    assert est.n_hat / scale == pytest.approx(small.n_hat, rel=1e-9)
    assert est.ci[0] <= est.n_hat <= est.ci[1]
    if scale <= 1e9:  # skewness of the small table's interval: 0.4% at 1e9
        width = (est.ci[1] - est.ci[0]) / scale
        assert width == pytest.approx((small.ci[1] - small.ci[0]) / math.sqrt(scale), rel=0.01)
    one_list = CaptureHistories(np.array([0.0, 2.23 * scale, 0.0]), ["A", "B"])
    assert tipstat.fit_loglinear(one_list, "independence").status == "not_identifiable"


@settings(max_examples=12, deadline=None)
@given(tables(scales=(1, 1, 1000, 10**9)))
def test_selection_bootstrap_and_stratified_fits_are_honest_on_any_table(table):
    """The other count-table entry points: model selection (BIC search, stepwise), the
    bootstrap and the stratified fit (two strata with the same table). Each returns an honest
    Estimate, or raises an InputError or the EstimationError its docstring documents."""
    counts, lists = table
    k = len(lists)
    rows = {name: [(c >> j) & 1 for c in range(1, 2**k)] for j, name in enumerate(lists)}
    frame = pd.concat([pd.DataFrame({**rows, "count": counts, "sex": s}) for s in ("F", "M")])
    h = _call(CaptureHistories.from_frame, frame, strata=["sex"])
    if h is None:
        return
    calls = [lambda: tipstat.select_loglinear(h.pooled(), "bic"),
             lambda: tipstat.select_loglinear(h.pooled(), "stepwise"),
             lambda: tipstat.bootstrap(h.pooled(), "independence", n_boot=20, seed=1)]
    for call in calls:
        est = _call(call)
        if est is not None:
            _honest(est)
    try:
        est = _call(lambda: tipstat.fit_stratified(h, n_boot=10, seed=1))
    except tipstat.EstimationError as exc:
        assert "main-effects model has no admissible fit" in str(exc)
        return
    if est is not None:
        assert est.status in STATUSES
