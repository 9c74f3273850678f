"""Outputs of the estimators pinned before the one-engine refactor (issue 15).

``python -m tests.reference.pinned`` (from the repository root) rewrites
``pinned_outputs.json`` from the code as it stands; ``tests/test_pinned.py`` recomputes every case
and compares. Where the mathematics of a refactor does not change, these numbers must not change
either (relative tolerance 1e-9: far below any published rounding, above the last-bit noise that
a different BLAS or summation order gives on another machine).

Each case is a function of the data bundled with the package only (nothing outside the
repository), with fixed seeds.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("pinned_outputs.json")

#: unstratified bundled tables that every cheap estimator is pinned on
TABLES = ("Artificial_3", "Korea_3", "Spina_3", "UK_4", "Kosovo_4", "Australia_4", "UK_5",
          "Western_5", "Netherlands_5", "NewOrleans_5", "UK_6", "Hare_6")


def _num(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _est(e: Any) -> dict[str, Any]:
    lo, hi = e.ci
    return {"n_hat": _num(e.n_hat), "ci": [_num(lo), _num(hi)], "status": str(e.status),
            "model": str(e.model)}


def _cases() -> dict[str, Callable[[], dict[str, Any]]]:
    import numpy as np

    import tipstat
    from tipstat import CaptureHistories
    from tipstat.datasets import load as _load

    def load(name: str) -> Any:
        return _load(name).pooled()

    cases: dict[str, Callable[[], dict[str, Any]]] = {}
    for name in TABLES:
        cases[f"{name}/independence"] = lambda n=name: _est(
            tipstat.fit_loglinear(load(n), "independence"))
        for crit in ("aic", "bic", "stepwise"):
            cases[f"{name}/select_{crit}"] = lambda n=name, c=crit: _est(
                tipstat.select_loglinear(load(n), c))
        cases[f"{name}/estimate_population"] = lambda n=name: _est(
            tipstat.estimate_population(load(n), check=False))
        cases[f"{name}/closedp"] = lambda n=name: {
            str(m): [_num(v) for v in row] for m, row in
            tipstat.closedp(load(n)).to_frame()[["abundance", "stderr"]].iterrows()}

    def scaled(name: str, factor: float, terms: str) -> dict[str, Any]:
        h = load(name)
        df = h.to_frame()
        df["count"] = df["count"] * factor
        return _est(tipstat.fit_loglinear(CaptureHistories.from_frame(df), terms))

    cases["Korea_3x1e9/all2"] = lambda: scaled("Korea_3", 1e9, "all2")
    cases["UK_5x1e6/independence"] = lambda: scaled("UK_5", 1e6, "independence")
    cases["UK_5/bma"] = lambda: _est(tipstat.fit_loglinear_bma(load("UK_5"), draws=2000, seed=1))
    cases["UK_5/graphical"] = lambda: _est(tipstat.fit_graphical(load("UK_5"), seed=1))
    cases["UK_4/bootstrap_stepwise"] = lambda: _est(
        tipstat.bootstrap(load("UK_4"), "stepwise", n_boot=40, seed=1))

    def stratified(pooling: str) -> dict[str, Any]:
        from tipstat import simulate
        from tipstat.ictip import capture_histories
        from tipstat.linkage import persons
        four = {k: v for k, v in simulate.DEFAULT_LISTS.items() if k in "PKIO"}
        c = simulate.country(3000, seed=7, lists=four)
        h = capture_histories(persons(c.read(period=c.year)), by=["sex", "age_group", "exploitation"])
        e = tipstat.fit_stratified(h, pooling=pooling, n_boot=20, seed=1)
        out = _est(e)
        cells = e.cells.table
        out["cells_n_hat"] = [_num(v) for v in np.asarray(cells["n_hat"], dtype=float)]
        return out

    cases["sim7/stratified_joint"] = lambda: stratified("joint")
    cases["sim7/stratified_separate"] = lambda: stratified("separate")
    return cases


def compute(names: list[str] | None = None) -> dict[str, Any]:
    """Run the pinned cases (all, or those named) and return their outputs."""
    cases = _cases()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names or list(cases):
            out[name] = cases[name]()
    return out


def case_names() -> list[str]:
    return list(_cases())


if __name__ == "__main__":
    PATH.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {PATH.name}")
