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
    assert est.to_frame().shape == (1, 16) and "<table>" in est._repr_html_()


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
                                  terms=["A:sex", "B:sex"], bootstrap=n_boot, seed=3)


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
