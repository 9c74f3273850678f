"""The result type: immutable, typed per-stratum cells, documented diagnostics."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest

import tipstat
from tipstat.estimate import Diagnostics, Estimate


def _est() -> Estimate:
    return Estimate(n_hat=120.0, ci=(100.0, 150.0), level=0.95, n_observed=90.0,
                    method="m", model="x", diagnostics={"converged": True,
                                                        "fitted": np.arange(3.0)},
                    draws=np.arange(5.0))


def test_estimate_fields_cannot_be_assigned():
    est = _est()
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.n_hat = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        est.diagnostics["converged"] = False  # type: ignore[index]
    with pytest.raises(ValueError):
        est.draws[0] = 7.0  # type: ignore[index]
    with pytest.raises(ValueError):
        est.diagnostics["fitted"][0] = 7.0


def test_estimate_does_not_freeze_the_callers_arrays():
    draws = np.arange(5.0)
    est = dataclasses.replace(_est(), draws=draws)
    draws[0] = 9.0  # the caller's own array stays writeable
    assert est.draws[0] == 9.0 and not est.draws.flags.writeable


def test_replace_builds_a_new_result_and_keeps_the_old():
    est = _est()
    new = dataclasses.replace(est, diagnostics={**est.diagnostics, "reason": "why"}, n_hat=130.0)
    assert new.diagnostics["reason"] == "why" and new.n_hat == 130.0
    assert "reason" not in est.diagnostics and est.n_hat == 120.0
    assert isinstance(new.diagnostics, Diagnostics)


def test_estimate_pickles_and_outputs_unchanged():
    est = _est()
    back = pickle.loads(pickle.dumps(est))
    assert back.to_frame().equals(est.to_frame())
    assert dict(back.diagnostics).keys() == {"converged", "fitted"}
    assert est.to_dict()["undetected"] == 30.0 and est.summary().startswith("m: x")
    assert est.to_frame().shape == (1, 17) and "<table>" in est._repr_html_()


def test_estimators_return_immutable_results():
    h = tipstat.datasets.load("UK_5")
    for est in (tipstat.fit_loglinear(h, "independence"), tipstat.select_loglinear(h, "aic"),
                tipstat.fit_closedp_model(h, "Mb")):
        with pytest.raises(TypeError):
            est.diagnostics["reason"] = ""  # type: ignore[index]
        assert math.isfinite(est.n_observed)


def _stratified(n_boot: int = 30) -> Estimate:
    import pandas as pd

    from tipstat import CaptureHistories

    df = pd.DataFrame({"sex": ["F"] * 3 + ["M"] * 3, "A": [1, 0, 1] * 2,
                       "B": [0, 1, 1] * 2, "count": [60, 50, 20, 40, 30, 10]})
    return tipstat.fit_stratified(CaptureHistories.from_frame(df, strata="sex"),
                                  terms=["A:sex", "B:sex"], n_boot=n_boot, seed=3)


def test_stratified_cells_are_typed_and_labelled():
    """Two lists, list effects free per sex (independence within each stratum): N_s =
    n_A n_B / n_AB exactly (Lincoln-Petersen), F: 80 * 70 / 20 = 280, M: 50 * 40 / 10 = 200;
    the cells add up to the total."""
    from tipstat.models.stratified import margins

    est = _stratified()
    cells = est.cells
    assert cells.strata == ("sex",) and cells.lists == ("A", "B") and cells.missing == "stratum"
    tab = cells.table.set_index("sex")
    assert tab.loc["F", "n_hat"] == pytest.approx(280.0, rel=1e-9)
    assert tab.loc["M", "n_hat"] == pytest.approx(200.0, rel=1e-9)
    assert tab["n_hat"].sum() == pytest.approx(est.n_hat, rel=1e-12)
    assert cells.labels == ("sex=F", "sex=M")
    da = cells.draws
    assert da.dims == ("draw", "stratum") and da.shape == cells.replicates.shape
    assert da.shape[0] <= 30 and list(da["sex"].values) == ["F", "M"]
    # margins from the labelled replicates are the bootstrap totals
    np.testing.assert_allclose(da.sum("stratum").values, est.draws, rtol=1e-12)
    by_sex = da.groupby("sex").sum("stratum")
    np.testing.assert_allclose(by_sex.sel(sex="F").values, cells.replicates[:, 0], rtol=1e-12)
    m = margins(est, ["sex"])
    assert m.n_hat.tolist() == pytest.approx(tab["n_hat"].tolist(), rel=1e-12)
    # no duplicate hand-off through the untyped diagnostics
    assert not {"cells", "cell_draws", "strata", "lists", "missing"} & set(est.diagnostics)
    # the result cannot be changed through its cells
    tab_copy = cells.table
    tab_copy.loc[0, "n_hat"] = -1.0
    assert cells.table.loc[0, "n_hat"] > 0
    with pytest.raises(ValueError):
        cells.replicates[0, 0] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cells.strata = ()  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(est))
    assert back.cells.table.equals(cells.table) and back.cells.strata == ("sex",)


def test_unstratified_estimators_have_no_cells():
    est = tipstat.fit_loglinear(tipstat.datasets.load("UK_5"), "independence")
    assert est.cells is None
    assert _stratified(0).cells.draws is None


# ----------------------------------------------------------------- documented diagnostics
def _cheap_estimates() -> dict[str, Estimate]:
    import warnings

    from tipstat import simulate
    from tipstat.ictip import capture_histories
    from tipstat.linkage import persons

    h = tipstat.datasets.load("UK_5")
    h4 = tipstat.datasets.load("UK_4")
    four = {k: v for k, v in simulate.DEFAULT_LISTS.items() if k in "PKIO"}
    c = simulate.country(2000, seed=7, lists=four)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hs = capture_histories(persons(c.read(period=c.year)), by=["sex"])
        return {
            "fit_loglinear": tipstat.fit_loglinear(h, "independence"),
            "fit_loglinear boundary": tipstat.fit_loglinear(tipstat.datasets.load("Korea_3"),
                                                            "all2"),
            "select_loglinear aic": tipstat.select_loglinear(h, "aic"),
            "select_loglinear stepwise": tipstat.select_loglinear(
                tipstat.datasets.load("Korea_3"), "stepwise"),
            "select_loglinear bhs": tipstat.select_loglinear(h, "bhs"),
            "select_loglinear greedy": tipstat.select_loglinear(h, "bic", search="greedy"),
            "estimate_population": tipstat.estimate_population(h),
            "fit_closedp_model": tipstat.fit_closedp_model(h, "Mb"),
            "fit_closedp_model Chao": tipstat.fit_closedp_model(h),
            "bootstrap": tipstat.bootstrap(h4, "stepwise", n_boot=20, seed=1),
            "fit_loglinear_bma": tipstat.fit_loglinear_bma(h4, draws=300, seed=1),
            "fit_graphical": tipstat.fit_graphical(h4, seed=1),
            "fit_stratified": tipstat.fit_stratified(hs, n_boot=5, seed=1),
            "fit_stratified separate": tipstat.fit_stratified(hs, pooling="separate",
                                                              n_boot=5, seed=1),
        }


@pytest.fixture(scope="module")
def cheap_estimates() -> dict[str, Estimate]:
    return _cheap_estimates()


def test_every_diagnostics_key_is_documented_with_its_type(cheap_estimates):
    from tipstat.estimate import DIAGNOSTICS, diagnostic_type_ok

    seen: set[str] = set()
    for name, est in cheap_estimates.items():
        for key, value in est.diagnostics.items():
            assert key in DIAGNOSTICS, f"{name}: diagnostics[{key!r}] is not documented"
            assert diagnostic_type_ok(key, value), (
                f"{name}: diagnostics[{key!r}] is {type(value).__name__}, documented as "
                f"{DIAGNOSTICS[key].type}")
            seen.add(key)
    # one name per concept: the old spellings are gone
    assert not seen & {"rhat_N", "ess_bulk_N", "candidates", "existence_code",
                       "mean", "edge_probs", "replicate_models", "bootstrap", "method"}
    assert {"path", "models", "existence", "converged", "iterations"} <= seen


def test_path_is_always_a_table(cheap_estimates):
    import pandas as pd

    for name in ("select_loglinear aic", "select_loglinear stepwise", "fit_stratified"):
        path = cheap_estimates[name].diagnostics["path"]
        assert isinstance(path, pd.DataFrame) and "step" in path and "model" in path, name
        assert path["step"].iloc[0] == 0


def test_excluded_models_come_from_typed_statuses(cheap_estimates):
    """Korea_3 stepwise (SparseMSE): the [b:c] step's MLE does not exist, as test_selection
    asserts against R; the count comes from the path's status column, not its text."""
    est = cheap_estimates["select_loglinear stepwise"]
    path = est.diagnostics["path"]
    skipped = path[path["action"] == "skip"]
    assert est.diagnostics["n_excluded"] == len(skipped)
    assert est.diagnostics["excluded"] == skipped["status"].value_counts().to_dict()
    assert set(path["status"]) <= set(tipstat.estimate.STATUSES)


def test_docs_list_every_documented_key():
    from pathlib import Path

    from tipstat.estimate import DIAGNOSTICS

    api = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    for key, doc in DIAGNOSTICS.items():
        assert f"| `{key}` | {doc.type} |" in api, key


def test_best_skips_model_averages_by_their_typed_flag():
    """compare().best() leaves model averages out by diagnostics['model_averaged'], also on a
    filtered table (the row index points into table.estimates)."""
    h = tipstat.datasets.load("UK_5")
    t = tipstat.compare(h, ["bic_average", "independence"])
    assert [bool(e.diagnostics.get("model_averaged")) for e in t.estimates] == [True, False]
    assert t.best("aic").model == "independence"
    only_avg = t[t.index == 0]
    with pytest.raises(tipstat.InputError, match="no row"):
        only_avg.best("aic")


def test_caveats_are_structured_strings_that_survive_pickle_and_json():
    import json
    import pickle

    from tipstat.estimate import CAVEATS, Caveat

    c = Caveat("lack_of_fit", "lack of fit: deviance 24.0 on 3 df", {"deviance": 24.0, "df": 3})
    est = Estimate(n_hat=10.0, ci=(9.0, 12.0), level=0.95, n_observed=8, method="m", model="x",
                   warnings=(c, "a free-text warning"))
    assert [w.code for w in est.warnings] == ["lack_of_fit", "note"]
    assert est.warnings[0] == "lack of fit: deviance 24.0 on 3 df"   # it is its message
    back = pickle.loads(pickle.dumps(est))
    assert back.warnings[0].code == "lack_of_fit" and back.warnings[0].values["df"] == 3
    out = json.loads(json.dumps(est.to_dict()))
    assert out["warnings"][0] == {"code": "lack_of_fit", "message": str(c),
                                  "values": {"deviance": 24.0, "df": 3.0}}
    assert est.to_frame()["warnings"].iloc[0] == "lack_of_fit; note"
    assert set(CAVEATS) >= {"note", "lack_of_fit"}
    with pytest.raises(ValueError, match="unknown caveat code"):
        Caveat("made_up", "text")
