"""tipstat.compare: one row per method/model, numbers equal to the estimators' and to R's."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import tipstat
from tipstat.comparison import COLUMNS, METHODS, ComparisonTable, Method, available_methods
from tipstat.models.registry import ESTIMATORS, Entry
from tipstat.report.tables import comparison_html, comparison_records


def _rc(r_reference, dataset, model):
    rows = r_reference[(r_reference.dataset == dataset) & (r_reference.method == "closedpCI")
                       & (r_reference.model == model)]
    assert len(rows) == 1, (dataset, model)
    return rows.iloc[0]


@pytest.fixture(scope="module")
def uk5_table():
    return tipstat.compare(tipstat.datasets.load("UK_5"), ["independence", "all2"])


def test_rows_match_rcapture(uk5_table, r_reference):
    # Rcapture closedpCI Mt and "Mt + all two-way" on UK_5; deterministic ML fits: relative 1e-6
    # (the engine matches R to that precision; compare() must pass the numbers through untouched)
    assert list(uk5_table.columns) == list(COLUMNS)
    assert isinstance(uk5_table, ComparisonTable)
    for i, model in enumerate(["Mt", "Mt + all two-way interactions"]):
        ref = _rc(r_reference, "UK_5", model)
        row = uk5_table.iloc[i]
        assert row.n_hat == pytest.approx(ref.estimate, rel=1e-6)
        assert row.aic == pytest.approx(ref.aic, rel=1e-6)
        assert row.bic == pytest.approx(ref.bic, rel=1e-6)
        assert row.deviance == pytest.approx(ref.deviance, rel=1e-5, abs=1e-6)
        assert row.lower == pytest.approx(ref.lower, rel=1e-4)
        assert row.upper == pytest.approx(ref.upper, rel=1e-4)
        assert row.ci_method == "profile"
        assert row.family == "log-linear"
    assert uk5_table.status.tolist() == ["ok", "extended"]
    assert uk5_table.attrs["n_observed"] == 2744
    assert uk5_table.attrs["lists"] == ["LA", "NG", "PFNCA", "GO", "GP"]


def test_estimates_kept_and_equal_rows(uk5_table):
    assert len(uk5_table.estimates) == len(uk5_table)
    for (_, row), est in zip(uk5_table.iterrows(), uk5_table.estimates, strict=True):
        assert row.n_hat == est.n_hat
        assert (row.lower, row.upper) == est.ci


def test_best_by_aic(uk5_table):
    # all two-way has AIC 129.78 against 217.78 for independence (Rcapture)
    assert uk5_table.best("aic").model != "independence"
    with pytest.raises(tipstat.InputError, match="criterion"):
        uk5_table.best("dic")


def test_nonexistent_estimate_is_a_row_with_status_and_json_null():
    table = tipstat.compare(tipstat.datasets.load("Korea_3"), ["independence", "all2"])
    row = table.iloc[1]
    assert row.status == "does_not_exist"
    assert math.isinf(row.n_hat)
    assert "does not exist" in row.diagnostics
    rec = comparison_records(table)[1]
    assert rec["n_hat"] is None and rec["status"] == "does_not_exist"
    assert set(rec) == set(COLUMNS)
    assert isinstance(rec["warnings"], list) and rec["warnings"]


def test_html_repr_shows_numbers_and_escapes(uk5_table):
    page = comparison_html(uk5_table)
    assert "13,444" in page and "[11,985, 15,166]" in page
    assert "2,744 persons observed" in page
    weird = uk5_table.copy()
    weird.loc[0, "model"] = "<b>x</b>"
    assert "&lt;b&gt;x&lt;/b&gt;" in comparison_html(weird)


def test_subset_keeps_type_and_estimates(uk5_table):
    sub = uk5_table[uk5_table.status == "ok"]
    assert isinstance(sub, ComparisonTable)
    assert len(sub) == 1 and sub.estimates is uk5_table.estimates


def test_default_set_skips_missing_methods():
    table = tipstat.compare(tipstat.datasets.load("Korea_3"))
    shown = set(available_methods())
    for name in table.attrs["skipped"]:
        assert name not in shown and METHODS[name].default
    assert {"independence", "all2"} <= shown
    assert len(table) >= 2


def test_bad_input_names_the_problem():
    h = tipstat.datasets.load("UK_5")
    with pytest.raises(tipstat.InputError, match=r"unknown method 'nope'.*independence"):
        tipstat.compare(h, ["nope"])
    with pytest.raises(tipstat.InputError, match="level"):
        tipstat.compare(h, ["independence"], level=95)
    with pytest.raises(tipstat.InputError, match="CaptureHistories"):
        tipstat.compare(pd.DataFrame({"A": [1]}))
    strat = tipstat.datasets.load("Spina_3")
    with pytest.raises(tipstat.InputError, match="strata"):
        tipstat.compare(strat, ["independence"])


def test_unavailable_and_failing_methods(monkeypatch):
    h = tipstat.datasets.load("UK_5")
    monkeypatch.setitem(METHODS, "ghost", Method("ghost", "g", "log-linear",
                                                 "no_such_function_xyz", lambda h, o: []))
    with pytest.raises(tipstat.InputError, match="no_such_function_xyz"):
        tipstat.compare(h, ["ghost"])

    def boom(h, options):
        raise RuntimeError("numerical trouble")

    monkeypatch.setitem(METHODS, "boom", Method("boom", "b", "log-linear", "fit_loglinear", boom))
    table = tipstat.compare(h, ["independence", "boom"])
    assert table.status.tolist() == ["ok", "failed"]
    assert "numerical trouble" in table.iloc[1].diagnostics
    assert math.isnan(table.iloc[1].n_hat)


def test_options_reach_methods(monkeypatch):
    seen = {}

    def spy(h, options):
        seen.update(options)
        return [tipstat.fit_loglinear(h, "independence", level=options["level"])]

    monkeypatch.setitem(METHODS, "spy", Method("spy", "s", "log-linear", "fit_loglinear", spy))
    table = tipstat.compare(tipstat.datasets.load("UK_5"), ["spy"], level=0.9, seed=7)
    assert seen == {"level": 0.9, "seed": 7, "progress": False}
    assert table.iloc[0].level == 0.9 and table.attrs["seed"] == 7


def test_graphical_row_has_posterior():
    h = tipstat.datasets.load("Korea_3")
    table = tipstat.compare(h, ["graphical"], seed=3)
    assert len(table) == 1 and table.iloc[0].status in ("ok", "extended")
    est = table.estimates[0]
    assert est.n_hat == table.iloc[0].n_hat
    # the seed reaches the estimator: the row is the direct call's result, draw for draw
    direct = tipstat.fit_graphical(h, seed=3)
    assert est.seed == 3 and (est.n_hat, est.ci) == (direct.n_hat, direct.ci)
    assert table.iloc[0].lower <= est.n_hat <= table.iloc[0].upper
    assert table.iloc[0].family == "Bayesian"


def test_reliability_column_is_the_internal_consistency_rating():
    h = tipstat.datasets.load("Kosovo_4")
    table = tipstat.compare(h, ["independence"], reliability=True)
    direct = tipstat.internal_consistency(
        h, lambda sub: tipstat.fit_loglinear(sub, "independence")).indicator
    expected = (f"{direct['rating']} (mean log relative bias {direct['mean_log_rel_bias']:+.2f}, "
                f"coverage {direct['coverage']:.0%})")
    assert table.iloc[0].reliability == expected
    assert tipstat.compare(h, ["independence"]).iloc[0].reliability is None


def _fake(h, spec="default", *, level=0.95, ci="a", **options):
    return {"spec": spec, "level": level, "ci": ci, **options}


def test_registry_passes_each_keyword_only_where_it_applies():
    # no signature is inspected: the registry entry says what the estimator takes
    plain = Entry("_fake", __name__, "spec", ("a",), random=False, progress=False, strata=False,
                  slow=False, bayesian=False, description="")
    assert plain.call(None, "x", level=0.9, seed=3, progress=True) == {
        "spec": "x", "level": 0.9, "ci": "a"}
    random = Entry("_fake", __name__, "spec", ("a",), random=True, progress=True, strata=False,
                   slow=False, bayesian=False, description="")
    assert random.call(None, seed=3, progress=True, ci="b") == {
        "spec": "default", "level": 0.95, "ci": "b", "seed": 3, "progress": True}
    assert "progress" not in random.call(None, progress=False)      # only asked-for bars
    assert random.call(None)["seed"] == tipstat.models.DEFAULT_SEED
    with pytest.raises(tipstat.InputError, match="one model specification"):
        random.call(None, "x", "y")


def test_every_method_names_a_registered_estimator():
    for m in METHODS.values():
        assert m.estimator in ESTIMATORS, m.name
        if m.specs:
            assert ESTIMATORS[m.estimator].spec is not None, m.name


def test_seed_defaults_to_the_package_seed_and_none_is_refused():
    h = tipstat.datasets.load("UK_5")
    assert tipstat.compare(h, ["independence"]).attrs["seed"] == tipstat.models.DEFAULT_SEED
    with pytest.raises(tipstat.InputError, match="seed"):
        tipstat.compare(h, ["independence"], seed=None)


def test_comparison_draws_nothing():
    # a library layer does not draw: compare() runs without importing the report or matplotlib
    import subprocess
    import sys

    code = ("import sys, tipstat; tipstat.compare(tipstat.datasets.load('Korea_3'), "
            "['independence']); print(sorted(m for m in sys.modules "
            "if m.startswith(('tipstat.report', 'matplotlib'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert ComparisonTable.plot is pd.DataFrame.plot      # no forest plot method of its own


def test_default_set_leaves_slow_searches_to_small_tables():
    from tipstat.comparison import _resolve

    five = [m.name for m in _resolve("default", 5)[0]]
    six = [m.name for m in _resolve("default", 6)[0]]
    assert {"aic", "bic", "graphical"} <= set(five)
    assert not {"aic", "bic", "graphical"} & set(six)
    assert {"independence", "stepwise", "bhs", "closedp"} <= set(six)
    assert "aic" in [m.name for m in _resolve(["aic"], 6)[0]]      # by name: always
    assert {"aic", "bic", "graphical", "bootstrap"} <= {m.name for m in _resolve("all", 6)[0]}


def test_leave_one_list_out_equals_refits_without_each_list():
    from tipstat.comparison import leave_one_list_out

    h = tipstat.datasets.load("UK_5")
    t = leave_one_list_out(h, ["independence"])
    assert t.left_out.tolist() == list(h.lists)
    for _, row in t.iterrows():
        with pytest.warns(tipstat.TipstatWarning):
            sub = h.drop_lists([row.left_out])
        assert row.observed == sub.n_observed and row.observed + row.lost == h.n_observed
        assert row.n_hat == pytest.approx(tipstat.fit_loglinear(sub).n_hat, rel=1e-12)
    # leaving out GP gives UK_4, a published table of its own (Rcapture Mt: 12,076.1)
    uk4 = tipstat.fit_loglinear(tipstat.datasets.load("UK_4"))
    assert t.loc[t.left_out == "GP", "n_hat"].iloc[0] == pytest.approx(uk4.n_hat, rel=1e-9)
    with pytest.raises(tipstat.InputError, match="three lists"):
        leave_one_list_out(tipstat.datasets.load("UK_5").drop_lists(["GP", "GO", "LA"]))


def test_rows_carry_every_caveat_with_its_code():
    """A row keeps its estimate's Caveats (each is its message, with code and values) and their
    codes in warning_codes; HTML and JSON show code and message. The estimates are made here
    (the checks that attach caveats are the estimators' business)."""
    from tipstat.comparison import register_method
    from tipstat.estimate import Caveat, Estimate

    caveats = (Caveat("lack_of_fit", "deviance 24.0 on 3 df", {"deviance": 24.0, "df": 3}),
               Caveat("two_lists", "only two lists"))

    def runner(h, options):
        return [Estimate(n_hat=150.0, ci=(120.0, 200.0), level=options["level"],
                         n_observed=float(h.n_observed), method="x", model="[x]",
                         warnings=(*caveats, "free text"))]

    register_method(Method("caveats", "with caveats", "log-linear", "fit_loglinear",
                           runner=runner, default=False))
    try:
        table = tipstat.compare(tipstat.datasets.load("Korea_3"), ["caveats", "independence"])
    finally:
        del METHODS["caveats"]
    row = table.iloc[0]
    assert row.warning_codes == "lack_of_fit; two_lists; note"
    assert [w.code for w in row.warnings] == ["lack_of_fit", "two_lists", "note"]
    assert row.warnings[0] == "deviance 24.0 on 3 df" and row.warnings[0].values["df"] == 3
    # the independence row carries the table checks its estimator attached (Korea_3)
    indep = table.iloc[1]
    assert indep.warning_codes == "; ".join(w.code for w in indep.warnings)
    assert {"lack_of_fit", "dependence"} <= {w.code for w in indep.warnings}
    rec = comparison_records(table)[0]
    assert rec["warning_codes"] == ["lack_of_fit", "two_lists", "note"]
    assert rec["warnings"][0] == {"code": "lack_of_fit", "message": "deviance 24.0 on 3 df",
                                  "values": {"deviance": 24.0, "df": 3.0}}
    html = comparison_html(table)
    assert "<code>lack_of_fit</code> deviance 24.0 on 3 df" in html
    assert "<code>note</code> free text" in html
