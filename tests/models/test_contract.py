"""Every registered estimator keeps the one contract (issue 15):

    fit_x(h, <model spec>, *, level=0.95, ci=<interval method>, seed=DEFAULT_SEED, ...)

One parametrised test runs each entry of ``tipstat.models.registry.ESTIMATORS`` through it:
positional arguments, validation of ``level``/``ci``/``seed``, reproducibility from the seed, the
core fields of the Estimate, warning types and bad input. MCMC estimators run with tiny draws
(their numbers are checked in their own test files; here only the contract is), and are marked
slow where one run costs more than ~20 s on the 2-core machine.
"""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tipstat
from tipstat.estimate import CAVEATS, STATUSES, Caveat
from tipstat.models import DEFAULT_SEED
from tipstat.models.registry import ESTIMATORS, Entry

PACKAGE = Path(tipstat.__file__).parent


def _design(h: tipstat.CaptureHistories) -> Any:
    return tipstat.loglinear_design(h.lists, "independence")


#: name -> (stratified table?, model spec (callable of h) or None, small options)
CASES: dict[str, tuple[bool, Any, dict[str, Any]]] = {
    "estimate_population": (False, None, {}),
    "fit_loglinear": (False, lambda h: "independence", {}),
    "fit_design": (False, _design, {}),
    "select_loglinear": (False, lambda h: "bic", {}),
    "fit_closedp_model": (False, lambda h: "Mt", {}),
    "bootstrap": (False, lambda h: "bic", {"n_boot": 20, "n_jobs": 1}),
    "fit_graphical": (False, None, {"draws": 200}),
    "fit_stratified": (True, None, {"n_boot": 10}),
    "fit_loglinear_bma": (False, lambda h: "all2", {"draws": 200}),
    "fit_latent_class": (False, lambda h: 3, {"draws": 50, "tune": 50, "chains": 1, "cores": 1,
                                              "restarts": 0}),
    "fit_bayes_loglinear": (False, lambda h: "independence",
                            {"draws": 50, "tune": 50, "chains": 1, "cores": 1}),
}

#: the MCMC estimators: compiling and sampling took 60-140 s here even with tiny draws
SLOW = {"fit_latent_class", "fit_bayes_loglinear"}

#: every estimator, for the checks that stop before fitting (fast for all)
NAMES = list(ESTIMATORS)
#: the same, the MCMC ones marked slow, for the checks that fit
FITS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ESTIMATORS]


def test_every_registered_estimator_has_a_case():
    assert set(CASES) == set(ESTIMATORS)


def _histories(stratified: bool) -> tipstat.CaptureHistories:
    # Spina_3: three lists by ethnicity (621 persons); Korea_3: three lists, 123 persons
    return tipstat.datasets.load("Spina_3" if stratified else "Korea_3")


def _run(entry: Entry, **extra: Any) -> tuple[Any, list[warnings.WarningMessage]]:
    stratified, spec, options = CASES[entry.name]
    h = _histories(stratified)
    args = () if spec is None else (spec(h),)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = entry.function(h, *args, **{**options, **extra})
    return est, caught


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    """One run per estimator (level 0.9, every option explicit), shared by the tests."""
    return {}


def _first(runs: dict[str, Any], entry: Entry) -> tuple[Any, list[warnings.WarningMessage]]:
    if entry.name not in runs:
        extra: dict[str, Any] = {"level": 0.9, "ci": entry.ci_methods[0]}
        if entry.random:
            extra["seed"] = 5
        runs[entry.name] = _run(entry, **extra)
    return runs[entry.name]


@pytest.mark.parametrize("name", NAMES)
def test_signature_is_the_contract(name):
    # the registry tells the truth about each signature (the registry is what callers read)
    entry = ESTIMATORS[name]
    params = list(inspect.signature(entry.function).parameters.values())
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == ["h"] + ([entry.spec] if entry.spec else [])
    keyword = {p.name: p for p in params if p.kind is p.KEYWORD_ONLY}
    assert keyword["level"].default == 0.95
    assert keyword["ci"].default == entry.ci_methods[0]
    assert ("seed" in keyword) == entry.random
    assert keyword["check"].default is True     # the checks of issue 16, on by default
    if entry.random:
        assert keyword["seed"].default == DEFAULT_SEED
    # renamed in issue 15 (ci, n_boot, estimator/pooling/search/label); no old name survives
    assert not {"interval", "bootstrap", "method"} & set(keyword)


@pytest.mark.parametrize("name", NAMES)
def test_only_h_and_the_model_spec_are_positional(name):
    entry = ESTIMATORS[name]
    stratified, spec, _ = CASES[name]
    h = _histories(stratified)
    args = (h,) if spec is None else (h, spec(h))
    with pytest.raises(TypeError):
        entry.function(*args, 0.95)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("level", [95, None, "0.95", 1.0, math.nan])
def test_level_is_validated(name, level):
    stratified, spec, options = CASES[name]
    h = _histories(stratified)
    args = () if spec is None else (spec(h),)
    with pytest.raises(tipstat.InputError, match="level"):
        ESTIMATORS[name].function(h, *args, level=level, **options)


@pytest.mark.parametrize("name", NAMES)
def test_ci_is_validated(name):
    stratified, spec, options = CASES[name]
    h = _histories(stratified)
    args = () if spec is None else (spec(h),)
    with pytest.raises(tipstat.InputError, match="ci"):
        ESTIMATORS[name].function(h, *args, ci="no_such_interval", **options)


@pytest.mark.parametrize("name", NAMES)
def test_seed_is_validated_or_absent(name):
    entry = ESTIMATORS[name]
    stratified, spec, options = CASES[name]
    h = _histories(stratified)
    args = () if spec is None else (spec(h),)
    if entry.random:
        for bad in (None, -1, 1.5, "1"):   # None would mean fresh entropy: never repeatable
            with pytest.raises(tipstat.InputError, match="seed"):
                entry.function(h, *args, seed=bad, **options)
    else:
        with pytest.raises(TypeError):      # a deterministic estimator has no seed to ignore
            entry.function(h, *args, seed=1, **options)


@pytest.mark.parametrize("name", FITS)
def test_returns_an_estimate_with_the_core_fields(name, runs):
    entry = ESTIMATORS[name]
    est, _ = _first(runs, entry)
    stratified, _, _ = CASES[name]
    h = _histories(stratified)
    assert isinstance(est, tipstat.Estimate)
    assert est.level == 0.9
    assert est.n_observed == pytest.approx(float(h.n_observed), rel=1e-12)
    assert est.status in STATUSES
    assert isinstance(est.method, str) and est.method
    assert isinstance(est.model, str) and est.model
    assert isinstance(est.ci_method, str)
    lo, hi = est.ci
    assert isinstance(est.n_hat, float)
    if est.status in ("ok", "extended"):
        # a usable estimate is at least the observed count; a likelihood or posterior interval
        # holds it (a bootstrap interval of few replicates need not: only its order is checked)
        assert est.n_hat >= est.n_observed and lo <= hi
        if not set(entry.ci_methods) & {"bca", "percentile"}:
            assert lo <= est.n_hat <= hi
    assert all(isinstance(w, str) for w in est.warnings)
    assert est.seed == (5 if entry.random else None)


@pytest.mark.parametrize("name", FITS)
def test_same_seed_same_result(name, runs):
    entry = ESTIMATORS[name]
    first, _ = _first(runs, entry)
    extra: dict[str, Any] = {"level": 0.9, "ci": entry.ci_methods[0]}
    if entry.random:
        extra["seed"] = 5
    again, _ = _run(entry, **extra)
    assert (again.n_hat, again.ci, again.status) == (first.n_hat, first.ci, first.status)
    if first.draws is not None:
        np.testing.assert_array_equal(again.draws, first.draws)


def test_the_default_seed_is_the_package_seed():
    # without a seed the random estimators use DEFAULT_SEED: the same call, the same numbers
    h = tipstat.datasets.load("Korea_3")
    a = tipstat.fit_graphical(h, draws=200)
    b = tipstat.fit_graphical(h, draws=200, seed=DEFAULT_SEED)
    assert a.seed == DEFAULT_SEED and np.array_equal(a.draws, b.draws)


@pytest.mark.parametrize("name", FITS)
def test_warnings_are_tipstat_warnings(name, runs):
    est, caught = _first(runs, ESTIMATORS[name])
    ours = [w for w in caught
            if Path(w.filename).resolve().is_relative_to(PACKAGE) or w.filename == __file__]
    assert all(issubclass(w.category, tipstat.TipstatWarning) for w in ours), \
        [(w.category.__name__, str(w.message)) for w in ours]
    assert all(isinstance(w, str) for w in est.warnings)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_an_input_error(name):
    entry = ESTIMATORS[name]
    stratified, spec, options = CASES[name]
    h = _histories(stratified)
    args = () if spec is None else (spec(h),)
    with pytest.raises(tipstat.InputError):
        entry.function(h.to_frame(), *args, **options)      # a DataFrame, not histories
    if not entry.strata:
        strat = _histories(True)
        args = () if spec is None else (spec(strat),)
        with pytest.raises(tipstat.InputError, match="strat"):
            entry.function(strat, *args, **options)


@pytest.mark.parametrize("name", [p for p in FITS
                                  if ESTIMATORS[getattr(p, "values", [p])[0]].strata])
def test_estimators_registered_for_strata_take_them(name):
    # the registry's `strata` flag is true: these accept stratified histories (pooling them or
    # modelling the strata), the others refuse them (test_bad_input_is_an_input_error)
    entry = ESTIMATORS[name]
    _, spec, options = CASES[name]
    h = _histories(True)
    args = () if spec is None else (spec(h),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tipstat.TipstatWarning)
        est = entry.function(h, *args, **options)
    assert isinstance(est, tipstat.Estimate)
    assert est.n_observed == pytest.approx(float(h.n_observed), rel=1e-12)


@pytest.mark.parametrize("name", FITS)
def test_every_estimate_carries_the_checks(name, runs):
    # issue 16: the checks of tipstat.validate.assumption_warnings are attached to every
    # registered estimator's result, as Caveats with a code (Korea_3 / Spina_3: 3 lists)
    est, _ = _first(runs, ESTIMATORS[name])
    found = est.diagnostics.get("assumption_warnings")
    assert isinstance(found, list)
    assert all(isinstance(w, Caveat) and w.code in CAVEATS for w in est.warnings)
    # what the checks found is on the estimate (skipped only where the estimator had already
    # said the same thing under the same code)
    assert {w.code for w in found} <= {w.code for w in est.warnings}
    assert all(w.code != "two_lists" for w in est.warnings)      # three lists here


@pytest.mark.parametrize("name", [n for n in ESTIMATORS if n not in SLOW])
def test_check_false_changes_no_number(name, runs):
    # check=False (inner fits) returns the same estimate without the checks
    entry = ESTIMATORS[name]
    first, _ = _first(runs, entry)
    extra: dict[str, Any] = {"level": 0.9, "ci": entry.ci_methods[0], "check": False}
    if entry.random:
        extra["seed"] = 5
    quiet, _ = _run(entry, **extra)
    assert (quiet.n_hat, quiet.ci, quiet.status) == (first.n_hat, first.ci, first.status)
    assert "assumption_warnings" not in quiet.diagnostics
    # and the registry passes check through
    _, spec, options = CASES[name]
    h = _histories(CASES[name][0])
    args = () if spec is None else (spec(h),)
    via = entry.call(h, *args, level=0.9, ci=entry.ci_methods[0], seed=5, check=False,
                     **options)
    assert "assumption_warnings" not in via.diagnostics
    assert via.n_hat == pytest.approx(quiet.n_hat, rel=0, abs=0, nan_ok=True)  # nan: a bound
