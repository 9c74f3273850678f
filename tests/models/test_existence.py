"""Existence of the MLE and identifiability of N, against SparseMSE / MultipleSystemsEstimation.

SparseMSE's ``checkident`` and MultipleSystemsEstimation's ``check_extended_MLE`` codes are
0 ok, 1 the (extended) MLE does not exist, 2 not identifiable; ``checkallmodels`` counts the
two-way models whose extended MLE does not exist. These are exact (no tolerance).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

import tipstat
from tipstat.models.design import loglinear_design
from tipstat.models.loglinear import _fit
from tipstat.models.poisson import check_existence, facial_set, independent_columns


def _code_rows(ref):
    sel = ref[ref.method.isin(["checkident", "check_extended_MLE"])]
    return [r for _, r in sel.iterrows()]


def test_reference_codes_cover_every_dataset(r_reference):
    rows = _code_rows(r_reference)
    assert len(rows) == 48
    assert {r.estimate for r in rows} == {0.0, 1.0, 2.0}


def test_checkident_and_check_extended_mle_codes(r_reference, load_table):
    for r in _code_rows(r_reference):
        h = load_table(r.dataset).pooled()
        terms = "all2" if r.model.startswith("all two-way") else "independence"
        est = tipstat.fit_loglinear(h, terms, ci="none")
        assert est.diagnostics["existence"] == int(r.estimate), (r.dataset, r.model)
        if r.estimate == 0:
            assert math.isfinite(est.n_hat)
        elif r.estimate == 1:
            assert est.status == "does_not_exist" and est.n_hat == math.inf
        else:
            assert est.status == "not_identifiable" and math.isnan(est.n_hat)


def _two_way_models(k):
    pairs = [(1 << i) | (1 << j) for i, j in itertools.combinations(range(k), 2)]
    for r in range(len(pairs) + 1):
        yield from itertools.combinations(pairs, r)


def _count_nonexistent(h):
    y = np.asarray(h.counts, float)
    return sum(
        _fit(loglinear_design(h.lists, sub), y).existence.status == "does_not_exist"
        for sub in _two_way_models(h.k)
    )


def _checkallmodels(ref):
    sel = ref[ref.method == "checkallmodels"]
    return {r.dataset: int(r.estimate) for _, r in sel.iterrows()}


@pytest.mark.parametrize("dataset", ["Artificial_3", "Korea_3", "Spina_3", "UK_4", "HIV_Rome_4",
                                     "MY_5"])
def test_checkallmodels_counts(dataset, r_reference, load_table):
    assert _count_nonexistent(load_table(dataset).pooled()) == _checkallmodels(r_reference)[dataset]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["UK_5", "Netherlands_5", "NewOrleans_5", "UK_6",
                                     "Netherlands_6"])
def test_checkallmodels_counts_large(dataset, r_reference, load_table):
    assert _count_nonexistent(load_table(dataset).pooled()) == _checkallmodels(r_reference)[dataset]


def test_artificial_3_catalogue_of_outcomes(load_table):
    """Chan, Silverman & Vincent (2021) Table 2: AB alone -> MLE does not exist; AC or BC ->
    fine (boundary, finite); all three -> not identifiable."""
    h = load_table("Artificial_3")
    status = {t: tipstat.fit_loglinear(h, t, ci="none").status
              for t in ["independence", "A:B", "A:C", "B:C", "all2"]}
    assert status == {"independence": "ok", "A:B": "does_not_exist", "A:C": "extended",
                      "B:C": "extended", "all2": "not_identifiable"}
    est = tipstat.fit_loglinear(h, "A:C", ci="none")
    assert "A+C" in est.diagnostics["reason"]
    assert est.warnings  # the boundary is reported, not hidden


def test_korea_all_two_way_says_does_not_exist(load_table):
    est = tipstat.fit_loglinear(load_table("Korea_3"), "all2")
    assert est.status == "does_not_exist"
    assert est.n_hat == math.inf
    assert "c+d" in est.diagnostics["reason"]
    assert "does not exist" in est.summary()
    frame = est.to_frame()
    assert frame.loc[0, "status"] == "does_not_exist"


def test_extended_mle_equals_limit_of_fits_with_vanishing_cells():
    """Extended MLE = limit of the MLEs on tables where the empty cells get eps -> 0."""
    df = pd.DataFrame({"A": [1, 0, 1, 0, 1, 0, 1], "B": [0, 1, 1, 0, 0, 1, 1],
                       "C": [0, 0, 0, 1, 1, 1, 1], "count": [40, 30, 6, 20, 0, 5, 0]})
    h = tipstat.CaptureHistories.from_frame(df)
    est = tipstat.fit_loglinear(h, "A:C + B:C", ci="none")  # A and C never overlap
    assert est.status == "extended"
    eps_fits = []
    for eps in (1e-4, 1e-6, 1e-8):
        df2 = df.assign(count=df["count"].astype(float).where(df["count"] > 0, eps))
        design = loglinear_design(["A", "B", "C"], "A:C + B:C")
        eps_fits.append(_fit(design, df2["count"].to_numpy()).n_hat)
    assert abs(eps_fits[-1] - est.n_hat) < abs(eps_fits[0] - est.n_hat)
    assert eps_fits[-1] == pytest.approx(est.n_hat, rel=1e-5)


def test_facial_set_contains_positive_cells_and_is_feasible():
    rng = np.random.default_rng(3)
    design = loglinear_design(list("ABCD"), "all2")
    X = design.observable
    for _ in range(20):
        y = rng.poisson(2.0, size=15).astype(float)
        y[rng.random(15) < 0.4] = 0
        if y.sum() == 0:
            continue
        F = facial_set(X, y)
        assert F[y > 0].all()
        ex = check_existence(X, y)
        assert ex.facial.sum() == F.sum()


def test_saturated_on_observables_plus_one_is_not_identifiable():
    """The K-way interaction has 2^K parameters for 2^K - 1 observable cells."""
    df = pd.DataFrame({"A": [1, 0, 1, 0, 1, 0, 1], "B": [0, 1, 1, 0, 0, 1, 1],
                       "C": [0, 0, 0, 1, 1, 1, 1], "count": [40, 30, 6, 20, 7, 5, 2]})
    est = tipstat.fit_loglinear(tipstat.CaptureHistories.from_frame(df), "A:B:C", ci="none")
    assert est.status == "not_identifiable"
    assert math.isnan(est.n_hat)


# ------------------------------------------------------------- stratified designs
_ORDER = ("does_not_exist", "not_identifiable", "extended", "ok")


def _small_tables():
    return [n for n in tipstat.datasets.names() if tipstat.datasets.load(n).k <= 5]


@pytest.mark.parametrize("terms", ["independence", "all2"])
def test_stratified_check_with_one_stratum_is_check_existence(terms):
    """One stratum: the stratum effect is the intercept, so the stratified check is the
    ordinary one (status, facial set and estimable columns), on every bundled table of <= 5
    lists."""
    from tipstat.models.poisson import check_existence_strata

    seen = set()
    for name in _small_tables():
        h = tipstat.datasets.load(name)
        X = loglinear_design(h.lists, terms).matrix[1:]
        y = np.asarray(h.counts, dtype=float)
        a = check_existence(X, y)
        b = check_existence_strata(X[:, 1:], y, np.zeros(len(y), dtype=int))
        assert b.status == a.status, name
        assert np.array_equal(a.facial, b.facial), name
        assert np.array_equal(a.columns[1:] - 1, b.columns), name
        seen.add(a.status)
    if terms == "all2":  # the tables reach every status
        assert seen == set(_ORDER)


def test_stratified_check_of_separate_strata_is_the_worst_stratum():
    """Strata with their own parameters (a block-diagonal design) separate: the stratified
    status is the worst of the strata's own statuses (does_not_exist > not_identifiable >
    extended > ok), for every pair of bundled 3-list tables under all two-way terms."""
    from tipstat.models.poisson import check_existence_strata

    names = [n for n in tipstat.datasets.names() if tipstat.datasets.load(n).k == 3]
    assert len(names) >= 3
    for a, b in itertools.combinations(names, 2):
        blocks, ys, want = [], [], []
        for n in (a, b):
            h = tipstat.datasets.load(n)
            blocks.append(loglinear_design(h.lists, "all2").matrix[1:, 1:])
            ys.append(np.asarray(h.counts, dtype=float))
            want.append(check_existence(loglinear_design(h.lists, "all2").matrix[1:],
                                        ys[-1]).status)
        X = np.zeros((14, 12))
        X[:7, :6], X[7:, 6:] = blocks
        got = check_existence_strata(X, np.concatenate(ys), np.repeat([0, 1], 7)).status
        assert got == min(want, key=_ORDER.index), (a, b, want)


def test_forced_zero_cells_are_outside_the_facial_set():
    """Cells forced empty by a zero margin of a non-negative column are never in the facial
    set (the proof the stratified fit uses before any linear program), and on the bundled
    tables under all two-way terms they are often all of its complement (exact sets)."""
    from tipstat.models.poisson import forced_zero

    equal = 0
    for name in _small_tables():
        h = tipstat.datasets.load(name)
        X = loglinear_design(h.lists, "all2").matrix[1:]
        y = np.asarray(h.counts, dtype=float)
        forced = forced_zero(X, y)
        facial = check_existence(X, y).facial
        assert not np.any(forced & facial), name
        assert np.all(forced[y > 0] == 0), name
        equal += bool(np.array_equal(~forced, facial))
    assert equal >= 1


def test_check_existence_needs_the_intercept_first():
    X = np.array([[1, 0], [0, 1], [1, 1]], dtype=float)
    with pytest.raises(ValueError, match="intercept"):
        check_existence(X, np.array([3.0, 2, 1]))


def test_one_existence_check_in_the_package():
    """No engine piece twice: among the estimators, linear programs (the exact existence
    check) are solved in one module only (the disclosure bounds of published tables are
    another question)."""
    from pathlib import Path

    root = Path(tipstat.__file__).parent / "models"
    users = sorted(p.name for p in root.rglob("*.py") if "linprog" in p.read_text(encoding="utf-8"))
    assert users == ["poisson.py"]


def _greedy_gram_schmidt(X: np.ndarray, tol: float = 1e-9) -> list[int]:
    """The definition of the choice: left to right, a column is kept when its distance to the
    span of the kept columns exceeds ``tol * max(1, ||x_j||)`` (classical Gram-Schmidt with
    reorthogonalisation)."""
    keep: list[int] = []
    Q = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        r = X[:, j].copy()
        for _ in range(2):
            r -= Q @ (Q.T @ r)
        d = np.linalg.norm(r)
        if d > tol * max(1.0, np.linalg.norm(X[:, j])):
            keep.append(j)
            Q = np.column_stack([Q, r / d])
    return keep


def test_independent_columns_is_the_greedy_left_to_right_choice():
    # designs as the estimators build them (0/1 effects, products, sums, centred within
    # strata): dependent columns anywhere, tall and wide; the QR-based choice must be the
    # greedy one exactly (a different maximal set would change the facial-set refits and the
    # reported estimable columns). Distances of dependent columns are ~1e-15, of independent
    # ones >= ~1e-2 here, so the tolerance 1e-9 separates them without ambiguity.
    rng = np.random.default_rng(15)
    for _ in range(400):
        n, p = int(rng.integers(1, 70)), int(rng.integers(1, 40))
        r = int(rng.integers(1, p + 1))
        X = (rng.random((n, r)) < 0.4).astype(float) @ rng.integers(-1, 2, (r, p)).astype(float)
        if rng.random() < 0.5:
            g = rng.integers(0, 3, n)
            for s in range(3):
                X[g == s] -= X[g == s].mean(axis=0)
        assert independent_columns(X).tolist() == _greedy_gram_schmidt(X)
    assert independent_columns(np.zeros((0, 3))).tolist() == []
    assert independent_columns(np.zeros((4, 3))).tolist() == []
    # the intercept and main effects are kept before a redundant interaction
    X = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [1, 1, 1, 2.0], [1, 0, 0, 0]])
    assert independent_columns(X[:, [3, 0, 1, 2]]).tolist() == [0, 1, 2]
    assert independent_columns(X).tolist() == [0, 1, 2]


def test_many_designs_in_one_program_give_each_design_s_own_answer():
    """check_existence_many / facial_sets (one linear program for many designs, used by the
    model average) equal check_existence / facial_set one design at a time: statuses, facial
    sets and estimable columns, on random sparse tables of 4 and 5 lists and every kind of
    model (independence to all two-way with three-way terms), half of them met again from
    the cache. The answers are exact (sets), so equality is the test. The one-at-a-time
    answers are asked with cell labels, which are part of the cache's key: they are computed
    afresh, not read back from what check_existence_many kept."""
    from tipstat.models.poisson import check_existence_many, facial_sets

    rng = np.random.default_rng(20261206)
    seen = {"ok": 0, "extended": 0, "other": 0}
    for k in (4, 5):
        names = [f"L{i}" for i in range(k)]
        pairs = [f"{a}:{b}" for a, b in itertools.combinations(names, 2)]
        triples = [f"{a}:{b}:{c}" for a, b, c in itertools.combinations(names, 3)]
        for _ in range(6):
            y = rng.poisson(rng.gamma(0.6, 6.0, 2**k - 1)).astype(float)
            y[rng.random(len(y)) < 0.3] = 0.0
            designs = []
            for _ in range(8):
                terms = [t for t in pairs if rng.random() < 0.5]
                terms += [t for t in triples if rng.random() < 0.15
                          and all(f"{a}:{b}" in terms for a, b in
                                  itertools.combinations(t.split(":"), 2))]
                designs.append(loglinear_design(names, tuple(terms)).observable)
            if rng.random() < 0.5:  # a part of them already in the cache
                check_existence(designs[0], y)
            many = check_existence_many(designs, y)
            sets = facial_sets(designs, y)
            for X, got, f in zip(designs, many, sets, strict=True):
                one = check_existence(X, y, [f"c{i}" for i in range(len(y))])
                assert got.status == one.status
                np.testing.assert_array_equal(got.facial, one.facial)
                np.testing.assert_array_equal(got.columns, one.columns)
                np.testing.assert_array_equal(f, facial_set(X, y))
                seen[one.status if one.status in seen else "other"] += 1
    assert seen["ok"] and seen["extended"]  # both kinds of answer were compared


def test_facial_set_of_a_sparse_design_is_that_of_the_dense_one():
    """The sparse path of facial_set (many strata) leaves out the cells a zero margin forces
    empty as the dense one does, including designs with a column of negative entries (which
    forces nothing): the same sets, none of them meeting a forced cell."""
    from scipy import sparse

    from tipstat.models.poisson import forced_zero

    rng = np.random.default_rng(7)
    for i in range(30):
        X = (rng.random((40, 8)) < 0.4).astype(float)
        X[:, 0] = 1.0
        if i % 3 == 0:
            X[:, 3] -= 0.5
        y = rng.poisson(2.0, 40).astype(float)
        y[rng.random(40) < 0.4] = 0.0
        y[X[:, 1] > 0] = 0.0  # column 1's margin is 0: its cells are forced empty
        dense = facial_set(X, y)
        np.testing.assert_array_equal(facial_set(sparse.csr_matrix(X), y), dense)
        assert forced_zero(X, y).any() and not (dense & forced_zero(X, y)).any()
