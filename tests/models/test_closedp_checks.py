"""closedp's checks: every row carries the caveats of its own table, computed once per table.

``closedp`` fits twelve models of one table, and the model-free checks (list dependence,
heterogeneity, sparse table, two lists) are computed once per table and reused (issue 15,
deliverable 7). These tests prove that this changes no result:

* each row of ``closedp(h)`` equals ``fit_closedp_model(h, model, ci="none")`` field for field,
  caveats included (code, message, values: exact equality, both are the same computation);
* each row's caveats are exactly those the public tests give for that table, recomputed here
  independently (``dependence_tests``, ``heterogeneity_test``, the chi-square tail of the
  deviance, the sparse-table rule from its documented thresholds): exact equality of the
  numbers (the same formulas on the same counts). Tables are visited in an interleaved order,
  with tables of the same lists but other counts in between, so a result kept for one table and
  read for another would fail;
* the designs are built once per (lists, model) and read-only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

import tipstat
from tipstat import CaptureHistories
from tipstat.models.checks import attach_checks
from tipstat.models.heterogeneity import (
    CLOSEDP_MODELS,
    closedp,
    closedp_design,
    fit_closedp_model,
)
from tipstat.validate import (
    SMALL_OVERLAP,
    SPARSE_EMPTY_SHARE,
    SPARSE_MEAN,
    dependence_tests,
    heterogeneity_test,
)

ALPHA = 0.05   # the level of the checks the estimators attach


def _table(name: str) -> CaptureHistories:
    h = tipstat.datasets.load(name)
    return h.pooled() if h.n_strata > 1 else h


def _variants() -> list[tuple[str, CaptureHistories]]:
    """Every bundled table (at most 6 lists: the 8-list tables take seconds per closedp), each
    followed by a table of the same lists with other counts (x3: no longer sparse on some; the
    cells reversed: other tests), and two two-list tables."""
    out = []
    for name in tipstat.datasets.names():
        h = _table(name)
        if h.k > 6:
            continue
        y = np.asarray(h.counts, dtype=float)
        out += [(name, h), (f"{name} x3", CaptureHistories(3 * y, h.lists)),
                (f"{name} reversed", CaptureHistories(y[::-1].copy(), h.lists))]
    out += [("two lists", CaptureHistories(np.array([60.0, 40.0, 30.0]), ["A", "B"])),
            ("two lists sparse", CaptureHistories(np.array([6.0, 4.0, 3.0]), ["A", "B"]))]
    return out


def _caveats(est) -> list[tuple]:
    return [(w.code, str(w), dict(w.values)) for w in est.warnings]


def _expected_codes(h: CaptureHistories, est) -> dict[str, dict]:
    """The check caveats (code -> values that identify them) of ``est`` on ``h``, from the
    public tests and the documented rules."""
    out: dict[str, dict] = {}
    if math.isfinite(est.deviance) and math.isfinite(est.df) and est.df > 0:
        p = float(stats.chi2.sf(est.deviance, est.df))
        if p < ALPHA:
            out["lack_of_fit"] = {"deviance": est.deviance, "df": est.df}
    if h.k >= 3 and est.diagnostics.get("assumes_independence"):
        t = dependence_tests(h)
        bad = int((t["p_holm"] < ALPHA).sum())
        if bad:
            out["dependence"] = {"pairs_associated": bad, "pairs": len(t),
                                 "min_p_holm": float(t["p_holm"].min())}
        het = heterogeneity_test(h)
        if math.isfinite(het["p"]) and het["p"] < ALPHA:
            out["heterogeneity"] = {"z": het["z"], "p": het["p"]}
    if h.k == 2:
        out["two_lists"] = {"lists": 2}
    y = np.asarray(h.counts, dtype=float)
    pat = h.patterns.astype(bool)
    cells = 2**h.k - 1
    empty = int(np.sum(y == 0))
    multi = pat.sum(axis=1) >= 2
    overlap = np.array([y[pat[:, j] & multi].sum() for j in range(h.k)])
    small = int(np.sum(overlap < SMALL_OVERLAP))
    if y.sum() / cells < SPARSE_MEAN or empty >= SPARSE_EMPTY_SHARE * cells or small:
        out["sparse_table"] = {"empty_cells": empty, "cells": cells, "small_lists": small,
                               "min_overlap": float(overlap.min())}
    return out


def test_closedp_rows_carry_their_own_tables_checks():
    """Each row's check caveats are exactly those of its table, on every bundled table and on
    tables of the same lists with other counts, visited one after the other."""
    seen_codes: set[str] = set()
    for label, h in _variants():
        tab = closedp(h)
        for model in CLOSEDP_MODELS:
            est = tab[model]
            found = {w.code: w for w in est.diagnostics["assumption_warnings"]}
            expected = _expected_codes(h, est)
            assert set(found) == set(expected), (label, model)
            for code, values in expected.items():
                for key, value in values.items():
                    assert found[code].values[key] == value, (label, model, code, key)
                assert found[code] in est.warnings, (label, model, code)
            # the M0 and Mt rows assume independent lists, and the Chao rows whose every eta
            # was set to 0 (they are M0 and Mt then); no other row does
            chao_reduced = "Chao" in model and est.status != "not_identifiable" and len(
                est.diagnostics["eta_set_to_zero"]) == h.k - 2
            assert bool(est.diagnostics.get("assumes_independence")) == (
                model in ("M0", "Mt") or chao_reduced), (label, model)
            seen_codes |= set(found)
    # the run exercised every table-level check
    assert {"lack_of_fit", "dependence", "heterogeneity", "sparse_table",
            "two_lists"} <= seen_codes


@pytest.mark.parametrize("name", ["Korea_3", "UK_4", "Kosovo_4", "UK_5", "Hare_6",
                                  "NewOrleans_8"])
def test_closedp_rows_equal_fit_closedp_model(name):
    """closedp(h)[model] is fit_closedp_model(h, model, ci="none"): the same numbers and the
    same caveats (code, message, values), whether the table's checks were computed before or
    not."""
    h = _table(name)
    tab = closedp(h)
    for model in CLOSEDP_MODELS:
        row, single = tab[model], fit_closedp_model(h, model, ci="none")
        assert row.to_dict() == single.to_dict() or (
            repr(row.to_dict()) == repr(single.to_dict())), (name, model)   # nan == nan
        assert _caveats(row) == _caveats(single), (name, model)
        assert ([(w.code, str(w), dict(w.values))
                 for w in row.diagnostics["assumption_warnings"]]
                == [(w.code, str(w), dict(w.values))
                    for w in single.diagnostics["assumption_warnings"]]), (name, model)
        assert row.diagnostics["reason"] == single.diagnostics["reason"]
        assert row.diagnostics["eta_set_to_zero"] == single.diagnostics["eta_set_to_zero"]
    # and a second closedp of the same table is the same table
    again = closedp(h)
    for model in CLOSEDP_MODELS:
        assert repr(again[model].to_dict()) == repr(tab[model].to_dict())
        assert _caveats(again[model]) == _caveats(tab[model])


def test_checks_off_attach_nothing():
    h = _table("Kosovo_4")
    tab = closedp(h, check=False)
    for model in CLOSEDP_MODELS:
        assert "assumption_warnings" not in tab[model].diagnostics
        assert not {w.code for w in tab[model].warnings} & {"dependence", "heterogeneity",
                                                             "sparse_table", "lack_of_fit"}


def test_attach_checks_with_changes_is_replace_then_check():
    """attach_checks(est, h, changes=c) equals attach_checks(replace(est, **c), h), both when
    the changes leave what the checks read alone and when they change it (assumes_independence
    turns the dependence and heterogeneity tests on)."""
    h = _table("Kosovo_4")
    est = tipstat.fit_loglinear(h, "all2", check=False)
    for diag in ({"reason": "another reason"}, {"assumes_independence": True}):
        changes = {"model": "renamed", "n_hat": est.n_hat + 1.0,
                   "warnings": (*est.warnings, "a note"),
                   "diagnostics": {**est.diagnostics, **diag}}
        one = attach_checks(est, h, changes=changes)
        two = attach_checks(dataclasses.replace(est, **changes), h)
        assert one.model == two.model == "renamed" and one.n_hat == two.n_hat
        assert _caveats(one) == _caveats(two)
        assert dict(one.diagnostics).keys() == dict(two.diagnostics).keys()
        assert one.diagnostics["assumption_warnings"] == two.diagnostics["assumption_warnings"]
    codes = {w.code for w in one.warnings}
    assert {"dependence", "heterogeneity"} <= codes   # Kosovo_4: both tests reject
    off = attach_checks(est, h, check=False, changes={"model": "renamed"})
    assert off.model == "renamed" and "assumption_warnings" not in off.diagnostics


def test_closedp_designs_are_built_once_and_read_only():
    lists = ("A", "B", "C", "D")
    for model in CLOSEDP_MODELS:
        d = closedp_design(lists, model)
        assert d is closedp_design(list(lists), model)
        assert not d.matrix.flags.writeable
        with pytest.raises(ValueError):
            d.matrix[0, 0] = 5.0
    # beyond the cached sizes: a new design each call, the same matrix
    many = tuple(f"L{j}" for j in range(11))
    a, b = closedp_design(many, "Mth Darroch"), closedp_design(many, "Mth Darroch")
    assert a is not b and np.array_equal(a.matrix, b.matrix) and a.columns == b.columns


def test_large_tables_that_differ_in_one_cell_get_their_own_checks():
    """Tables of 14 lists (16,383 cells, past the size where the kept checks are keyed by a
    digest of the counts) that differ in one cell: each gets its own sparse-table numbers."""
    from tipstat.validate import assumption_warnings

    lists = [f"L{j}" for j in range(14)]
    y = np.ones(2**14 - 1)
    y[:100] = 0.0
    y2 = y.copy()
    y2[0] = 1.0
    for counts, empty in ((y, 100), (y2, 99), (y, 100)):
        sparse = [w for w in assumption_warnings(CaptureHistories(counts, lists))
                  if w.code == "sparse_table"]
        assert len(sparse) == 1 and sparse[0].values["empty_cells"] == empty
        assert sparse[0].values["cells"] == 2**14 - 1
