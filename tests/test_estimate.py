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
