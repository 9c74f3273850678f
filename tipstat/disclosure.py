"""Disclosure control of published tables: cell suppression solved as an optimisation problem,
and the attacker's audit.

Every table tipstat publishes (the SDG 16.2.2 table, its GLOTIP and Excel forms, tables
published together with it) passes through this layer. It works on the *detected* counts, the
numbers of distinct persons, because they describe persons; estimates are model output and are
withheld with the counts of their row (see ``docs/disclosure.md``).

The tables as linear equations
------------------------------
A published row is identified by its codes on the dimensions (``sex``, ``age``,
``exploitation`` by default); ``_T`` is the total over a dimension, a missing dimension column
means ``_T``, and ``hierarchies`` say which finer codes a code covers (``Y0T17`` = the bands
``Y0T11`` and ``Y12T17``; ``SEX`` = ``SEX`` and ``MIX`` when mixed cases are counted under both
forms). The *atoms* are the cross-classification of the finest codes of every dimension; each
published row is the sum of the atoms it covers, ``v_r = A_r x``, ``x >= 0``. This one matrix
holds every additive relation of every table published together, across all hierarchies
(interior cells, margins, child/adult beside age bands, several tables), without listing them.

The attacker
------------
Knows every published value and reads the markers. tipstat marks every withheld row the same
way (``obs_status = "suppressed"``, GLOTIP ``x``): a distinct marker for the complements would
tell that they hold ``t`` or more, and such bounds can pin small cells (measured: 9 cells left
with two values in one of six simulated countries when tables published together marked
complements apart). So the attacker knows that a withheld row holds someone (zeros are
published), and reads ``<5`` or ``suppressed (secondary)`` in outputs that use them. For a
withheld cell ``i`` the feasible range is

.. math::

    [\\min A_i x, \\max A_i x] \\quad \\text{s.t.} \\quad A_P x = v_P,\\;
    A_j x \\ge 1 \\;(j\\ \\text{withheld}),\\; x \\ge 0,

by linear programming (:func:`scipy.optimize.linprog`, HiGHS) and, when the published values are
whole numbers, by integer programming (:func:`scipy.optimize.milp`), which is tighter.

The protection rule
-------------------
A small cell (``1 .. t-1`` persons) is protected when its range reaches ``1`` and ``t - 1``
(lower protection ``a - 1``, upper protection ``t - 1 - a`` for a cell of ``a`` persons): an
attacker cannot tell it from any other small value. Every other withheld cell keeps a range
of width at least ``2`` (three or more possible values). Where the tables themselves make a
requirement impossible, it is lowered to what withholding every cell achieves, and the cell is
reported in ``limited``.

The algorithm
-------------
Fischetti and Salazar's (2001) model. The default (``method="cell"``) meets the requirements one
at a time, each at least cost given the cells withheld so far: a mixed integer program chooses
0/1 suppressions of least cost (default: persons withheld, ``sum_j v_j s_j``, as tau-ARGUS)
together with a deviation ``d`` of the atoms (whole numbers for integer tables) such that the
table ``x + d`` is non-negative, keeps every published value and every marker, and moves the
cell by the required amount. That table is a *certificate* (one the attacker cannot exclude);
certificates stay valid when more cells are withheld, so a requirement one of them already
meets needs no solve, and the pass ends with every requirement certified against the integer
(or linear) attack. ``method="benders"`` solves the whole pattern at once by cut generation: a
master integer program chooses the pattern; for each withheld cell the attacker's LPs are
solved under it, and every violated requirement adds a *capacity cut* built from the LP duals
(valid for every pattern, because the dual feasible region does not depend on it); with
whole-number tables the integer attack is run at the end and a pattern it defeats is cut off.

References
----------
Fischetti, M. and Salazar-Gonzalez, J. J. (2001). Solving the cell suppression problem on
tabular data with linear constraints. Management Science 47(7), 1008-1027.
Hundepool, A. et al. (2012). Statistical Disclosure Control, ch. 4-5. Wiley.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"sex": ["F", "M", "_T"], "detected": [3, 40, 43]})
>>> s = suppress([t], dims=["sex"])
>>> s.primary[0].tolist(), s.secondary[0].tolist()
([True, False, False], [False, True, False])
>>> a = audit([apply(t, s, 0)], dims=["sex"], sensitive=s.primary)
>>> a.n_exact, a.n_two_values, a.min_width_primary
(0, 0, 41.0)
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

__all__ = ["DIMS", "PRIMARY", "SECONDARY", "TOTAL", "Audit", "Suppression", "apply", "audit",
           "protect", "suppress"]

#: Default dimension columns (the SDG 16.2.2 table layout).
DIMS = ("sex", "age", "exploitation")
#: The code of a total over a dimension.
TOTAL = "_T"
#: ``obs_status`` of primary (small cell) and secondary (complementary) suppression.
#: Every withheld row is published with the same status and marker (GLOTIP ``x``): a
#: distinct marker for the complements would tell that they hold ``threshold`` or more.
PRIMARY = "suppressed"
#: Read by :func:`audit` in outputs that mark complements apart (tipstat <= 0.1 did).
SECONDARY = "suppressed (secondary)"

Hierarchies = Mapping[str, Mapping[str, Sequence[str]]]
_TOL = 1e-6
MIP_GAP = 0.02


# ------------------------------------------------------------------------- the linked tables
@dataclass
class _Linked:
    A: np.ndarray                 # distinct published cells x atoms, 0/1
    group: list[np.ndarray]       # per table: the distinct cell of each row
    first: list[tuple[int, int]]  # per distinct cell: (table, row position) of its first copy
    n_atoms: int
    n_ties: int = 0               # last rows of A: blocks summing alike (value 0), no table's


def _frames(tables: Sequence[Any]) -> list[pd.DataFrame]:
    if isinstance(tables, (pd.DataFrame,)) or hasattr(tables, "table"):
        tables = [tables]
    out = []
    for i, t in enumerate(tables):
        t = getattr(t, "table", t)
        if not isinstance(t, pd.DataFrame):
            raise InputError(f"tables[{i}]: expected a DataFrame (or an SDGTable), got "
                             f"{type(t).__name__}")
        out.append(t.reset_index(drop=True))
    if not out:
        raise InputError("tables: expected at least one table")
    return out


def _expand(code: str, hier: Mapping[str, Sequence[str]], seen: tuple[str, ...] = ()) -> list[str]:
    if code not in hier:
        return [code]
    out: list[str] = []
    for child in hier[code]:
        child = str(child)
        if child == code:
            out.append(code)
        elif child in seen or child == TOTAL:
            raise InputError(f"hierarchies: code {code!r} is part of a cycle or covers {TOTAL}")
        else:
            out += _expand(child, hier, (*seen, code))
    return out


def _link(frames: list[pd.DataFrame], dims: Sequence[str],
          hierarchies: Hierarchies | Sequence[Hierarchies] | None) -> _Linked:
    if hierarchies is None or isinstance(hierarchies, Mapping):
        hiers = [hierarchies or {}] * len(frames)
    else:
        hiers = list(hierarchies)
        if len(hiers) != len(frames):
            raise InputError(f"hierarchies: {len(hiers)} given for {len(frames)} tables; give one "
                             "mapping for all tables or one per table")
    codes: list[dict[str, np.ndarray]] = []
    leaves: dict[str, list[str]] = {d: [] for d in dims}
    for ti, (t, hier) in enumerate(zip(frames, hiers, strict=True)):
        cd = {}
        for d in dims:
            if d in t.columns:
                col = t[d]
                if col.isna().any():
                    raise InputError(f"tables[{ti}]: column {d!r} is blank at row(s) "
                                     f"{list(np.flatnonzero(col.isna().to_numpy())[:10])}; "
                                     f"expected a code or {TOTAL}")
                cd[d] = col.astype(str).to_numpy()
            else:
                cd[d] = np.full(len(t), TOTAL, dtype=object)
            h = {str(k): v for k, v in hier.get(d, {}).items()}
            for code in dict.fromkeys(cd[d]):
                if code != TOTAL:
                    for leaf in _expand(code, h):
                        if leaf not in leaves[d]:
                            leaves[d].append(leaf)
        codes.append(cd)
    pos = {d: {c: i for i, c in enumerate(leaves[d])} for d in dims}
    rows, owner = [], []
    for ti, (cd, hier) in enumerate(zip(codes, hiers, strict=True)):
        member: dict[str, dict[str, np.ndarray]] = {}
        for d in dims:
            h = {str(k): v for k, v in hier.get(d, {}).items()}
            member[d] = {}
            for code in dict.fromkeys(cd[d]):
                v = np.zeros(max(len(leaves[d]), 1))
                if code == TOTAL:
                    v[:] = 1.0
                else:
                    v[[pos[d][c] for c in _expand(code, h)]] = 1.0
                member[d][code] = v
        n = len(cd[dims[0]]) if dims else 0
        for r in range(n):
            vecs = [member[d][cd[d][r]] for d in dims]
            rows.append(functools.reduce(np.multiply.outer, vecs).ravel())
            owner.append((ti, r))
    A, group, first = _distinct_rows(rows, owner, frames)
    return _Linked(A, group, first, A.shape[1])


def _distinct_rows(rows: list[np.ndarray], owner: list[tuple[int, int]],
                   frames: list[pd.DataFrame]
                   ) -> tuple[np.ndarray, list[np.ndarray], list[tuple[int, int]]]:
    """The distinct rows of the tables' cell indicators in the order of first appearance
    (stable labels), each table's rows as indices into them, and the (table, row) that first
    gave each distinct row."""
    if not rows:
        raise InputError("tables: no rows to protect")
    uniq, first_idx, inverse = np.unique(np.asarray(rows), axis=0, return_index=True,
                                         return_inverse=True)
    order = np.argsort(first_idx)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    inverse = rank[np.asarray(inverse).ravel()]
    group, k = [], 0
    for t in frames:
        group.append(inverse[k:k + len(t)])
        k += len(t)
    return uniq[order], group, [owner[i] for i in np.sort(first_idx)]


def _cliques(patterns: list[frozenset[str]], dims: list[str]
             ) -> tuple[list[frozenset[str]], list[tuple[int, int, frozenset[str]]]]:
    """Blocks of dimensions and the ties between them: the maximal sets of dimensions split
    together in a row, joined in a junction tree by removing ears (a block whose shared
    dimensions all lie in one other block: the GYO reduction). Where the blocks form a cycle
    (sex x age, age x region, region x sex), the blocks of that connected part are merged into
    one. Returns the blocks and ``(block, other block, shared dimensions)`` per tie."""
    blocks = sorted({p for p in patterns if not any(p < q for q in patterns)},
                    key=lambda c: [dims.index(d) for d in sorted(c, key=dims.index)])
    blocks = blocks or [frozenset()]
    while True:
        left, ties = list(range(len(blocks))), []
        while len(left) > 1:
            for k in left:
                others = [j for j in left if j != k]
                shared = blocks[k] & frozenset().union(*(blocks[j] for j in others))
                host = next((j for j in others if shared <= blocks[j]), None)
                if host is not None:
                    ties.append((k, host, shared))
                    left.remove(k)
                    break
            else:
                break
        if len(left) <= 1:
            return blocks, ties
        # a cycle among the blocks left: merge each connected group of them into one block
        merged = [blocks[k] for k in left]
        joined = True
        while joined:
            joined = False
            for i, j in itertools.combinations(range(len(merged)), 2):
                if merged[i] & merged[j]:
                    merged[i] = merged[i] | merged.pop(j)
                    joined = True
                    break
        blocks = [blocks[k] for k in range(len(blocks)) if k not in left] + merged
        blocks = [c for c in blocks if not any(c < q for q in blocks)]


def _link_blocks(frames: list[pd.DataFrame], dims: Sequence[str]) -> _Linked:
    """:func:`_link` on blocks of atoms instead of the cross-classification of every dimension.

    The blocks are the maximal sets of dimensions split together in a row (each dimension
    alone when no row crosses two), joined in a junction tree (:func:`_cliques`); the atoms are
    the cells of each block's cross-classification and a row is a sum of the cells of a block
    holding its dimensions. ``n_ties`` rows (value 0) make two blocks joined in the tree agree
    on their shared dimensions (on their sum when they share none). Exact for the attacker and
    for the certificates of :func:`suppress`: whole-number (or real) block tables that agree so
    are the margins of one table of every dimension (add the blocks in the reverse order of the
    ears removed; each meets the table so far on dimensions of one block it agrees with, and
    each cell of those dimensions is filled as a transport plan between two margins with the
    same sum), so the published rows have the same feasible values on either atoms. No
    hierarchies.
    """
    dims = list(dims)
    codes = [{d: (t[d].astype(str).to_numpy() if d in t.columns
                  else np.full(len(t), TOTAL, dtype=object)) for d in dims} for t in frames]
    patterns = [frozenset(d for d in dims if cd[d][r] != TOTAL)
                for t, cd in zip(frames, codes, strict=True) for r in range(len(t))]
    blocks, ties = _cliques(list(set(patterns)), dims)
    blocks = [sorted(c, key=dims.index) for c in blocks]
    levels = {d: list(dict.fromkeys(c for cd in codes for c in cd[d] if c != TOTAL))
              for b in blocks for d in b}
    sizes = [int(np.prod([len(levels[d]) for d in b])) for b in blocks]
    start = np.concatenate([[0], np.cumsum(sizes)]).astype(int)

    def cells(k: int, fixed: Mapping[str, str]) -> np.ndarray:
        """0/1 over every atom: the cells of block ``k`` with the ``fixed`` codes."""
        vecs = [np.ones(len(levels[d])) if d not in fixed
                else (np.asarray(levels[d]) == fixed[d]).astype(float) for d in blocks[k]]
        v = np.zeros(int(start[-1]))
        v[start[k]:start[k + 1]] = functools.reduce(np.multiply.outer, vecs).ravel() \
            if vecs else 1.0
        return v

    rows, owner = [], []
    for ti, (t, cd) in enumerate(zip(frames, codes, strict=True)):
        for r in range(len(t)):
            fixed = {d: cd[d][r] for d in dims if cd[d][r] != TOTAL}
            k = next(j for j, b in enumerate(blocks) if set(fixed) <= set(b))
            rows.append(cells(k, fixed))
            owner.append((ti, r))
    A, group, first = _distinct_rows(rows, owner, frames)
    tie_rows = []
    for k, j, shared in ties:
        on = sorted(shared, key=dims.index)
        for combo in itertools.product(*(levels[d] for d in on)):
            fixed = dict(zip(on, combo, strict=True))
            tie_rows.append(cells(k, fixed) - cells(j, fixed))
    tie = np.asarray(tie_rows).reshape(len(tie_rows), A.shape[1])
    return _Linked(np.vstack([A, tie]), group, first, A.shape[1], len(tie))


def _numbers(t: pd.DataFrame, value: str, ti: int) -> np.ndarray:
    if value not in t.columns:
        raise InputError(f"tables[{ti}]: no column {value!r}; it has {list(t.columns)}")
    return pd.to_numeric(t[value], errors="coerce").to_numpy(dtype=float)


def _group_values(link: _Linked, per_table: list[np.ndarray], what: str) -> np.ndarray:
    """One value per distinct cell (NaN if no copy is known); copies must agree."""
    m = link.A.shape[0]
    out = np.full(m, np.nan)
    for ti, (g, v) in enumerate(zip(link.group, per_table, strict=True)):
        for r, (j, x) in enumerate(zip(g, v, strict=True)):
            if not np.isfinite(x):
                continue
            if np.isnan(out[j]):
                out[j] = x
            elif abs(out[j] - x) > 1e-4 * max(1.0, abs(x)):
                ti0, r0 = link.first[j]
                raise InputError(f"{what}: tables[{ti}] row {r} and tables[{ti0}] row {r0} are "
                                 "the same cell (same codes) with different values; tables "
                                 "published together must come from the same data")
    return out


# ------------------------------------------------------------------------- the attacker's LPs
class _quiet:
    """Silence the C library's stdout during a HiGHS MIP call (HiGHS 1.x prints a debug line,
    ``transformNewIntegerFeasibleSolution``, on some problems whatever its output options)."""

    def __enter__(self) -> _quiet:
        import os
        import sys

        self._fd = None
        try:
            sys.stdout.flush()
            fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
            self._fd, self._saved = fd, os.dup(fd)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError, AttributeError):  # pragma: no cover - no real stdout
            self._fd = None
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        if self._fd is not None:
            os.dup2(self._saved, self._fd)
            os.close(self._saved)


def _feasible(A: np.ndarray, lo: np.ndarray, hi: np.ndarray, what: str) -> np.ndarray:
    """A point ``x >= 0`` with ``lo <= A x <= hi`` (least absolute violation; error if large)."""
    from scipy.optimize import linprog

    m, n = A.shape
    # variables x (n), slack s (m): A x - s <= hi, -A x - s <= -lo, min sum s
    fin_hi, fin_lo = np.isfinite(hi), np.isfinite(lo)
    A_ub = np.vstack([np.hstack([A[fin_hi], -np.eye(m)[fin_hi]]),
                      np.hstack([-A[fin_lo], -np.eye(m)[fin_lo]])])
    b_ub = np.concatenate([hi[fin_hi], -lo[fin_lo]])
    c = np.concatenate([np.zeros(n), np.ones(m)])
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    if res.status != 0:
        raise InputError(f"{what}: the tables admit no non-negative counts ({res.message})")
    scale = max(1.0, float(np.nanmax(np.abs(np.where(np.isfinite(hi), hi, 0)))))
    if res.fun > 1e-4 * scale + 1e-6 * m * scale:
        bad = int(np.argmax(res.x[n:]))
        raise InputError(f"{what}: the published values do not add up (cell {bad} misses by "
                         f"{res.x[n + bad]:.3g}); tables published together must be additive "
                         "and come from the same data (EM shares of two fits differ: protect "
                         "such tables separately)")
    return res.x[:n]


def _integer_point(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whole-number atoms ``x >= 0`` with ``A x = b`` (the microdata behind integer tables)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    res = milp(np.zeros(A.shape[1]), constraints=LinearConstraint(A, b, b),
               integrality=np.ones(A.shape[1]), bounds=Bounds(0, np.inf))
    if res.x is None:
        raise InputError("suppress: no whole-number table matches the published counts; "
                         "pass integer=False")
    return res.x


def _lp_range(A: np.ndarray, lo: np.ndarray, hi: np.ndarray, i: int, sense: int) -> float:
    """``min sense * A_i x`` s.t. ``lo <= A x <= hi``, ``x >= 0``."""
    return _lp_batch(A, lo, hi, [(i, sense)])[0][0]


def _lp_batch(A: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              items: Sequence[tuple[int, int]]) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Several attacker LPs ``min sense * A_i x`` s.t. ``lo <= A x <= hi``, ``x >= 0`` under one
    pattern, solved as one block-diagonal LP (one HiGHS call instead of many small ones: the
    blocks are independent, so the joint optimum and its duals are those of each block).

    Returns ``(optimum, duals, x)`` per item; ``duals`` are the marginals of the rows
    ``[A x <= hi; -A x <= -lo]`` (<= 0).
    """
    from scipy import sparse
    from scipy.optimize import linprog

    if not items:
        return []
    m, n = A.shape
    k = len(items)
    block = sparse.csr_matrix(np.vstack([A, -A]))
    A_ub = sparse.block_diag([block] * k, format="csr")
    b_ub = np.tile(np.concatenate([hi, -lo]), k)
    c = np.concatenate([sense * A[i] for i, sense in items])
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    if res.status == 2:
        # the true table is always feasible: an "infeasible" verdict is the presolve's (HiGHS
        # as shipped with SciPy 1.11 reports it on some of these programs); solve without it
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs",
                      options={"presolve": False})
    if res.status != 0:  # pragma: no cover - the true table is always feasible
        raise RuntimeError(f"attacker LP failed: {res.message}")
    x = res.x.reshape(k, n)
    y = res.ineqlin.marginals.reshape(k, 2 * m)
    return [(float(sense * A[i] @ x[r]), y[r], x[r]) for r, (i, sense) in enumerate(items)]


def _ranges(A: np.ndarray, lo: np.ndarray, hi: np.ndarray, cells: Sequence[int],
            uncapped: float, *, integer: bool = True
            ) -> list[tuple[float, float, float, float]]:
    """The attacker's range of each cell ``A[j] x`` under ``lo <= A x <= hi``, ``x >= 0``:
    ``(lp_min, lp_max, int_min, int_max)``, the maxima ``inf`` where nothing published caps
    the cell (an LP maximum above ``uncapped``, a value the stand-in for "no upper bound" in
    ``hi`` makes reachable and published rows do not). The LPs run 25 cells to a batch; an LP
    optimum at whole-number atoms is the integer optimum, otherwise the integer program is
    solved (``int_*`` are NaN when ``integer`` is false)."""
    sol: list[tuple[float, np.ndarray, np.ndarray]] = []
    for k in range(0, len(cells), 25):  # one LP per 25 cells (50 blocks)
        sol += _lp_batch(A, lo, hi, [(j, sense) for j in cells[k:k + 25] for sense in (1, -1)])
    out = []
    for r, j in enumerate(cells):
        (f_lo, _, x_lo), (f_hi, _, x_hi) = sol[2 * r], sol[2 * r + 1]
        unbounded = -f_hi > uncapped
        lp_max = math.inf if unbounded else -f_hi
        if not integer:
            out.append((f_lo, lp_max, math.nan, math.nan))
            continue
        if _whole(x_lo) and (_whole(x_hi) or unbounded):
            a, b = float(round(f_lo)), float(round(-f_hi))
        else:
            a, b = _int_range(A, lo, hi, j)
        out.append((f_lo, lp_max, a, math.inf if unbounded else b))
    return out


def _whole(x: np.ndarray) -> bool:
    return bool(np.all(np.abs(x - np.round(x)) < 1e-7))


def _int_range(A: np.ndarray, lo: np.ndarray, hi: np.ndarray, i: int) -> tuple[float, float]:
    """Exact integer feasible range of cell ``i`` (``x`` whole numbers >= 0)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    cons = LinearConstraint(A, np.ceil(lo - 1e-9), np.floor(hi + 1e-9))
    out = []
    for sense in (1.0, -1.0):
        with _quiet():
            res = milp(sense * A[i], constraints=cons, integrality=np.ones(A.shape[1]),
                       bounds=Bounds(0, np.inf))
        if res.status != 0:  # pragma: no cover
            raise RuntimeError(f"attacker integer program failed: {res.message}")
        out.append(sense * res.fun)
    return float(round(out[0])), float(round(out[1]))


# ------------------------------------------------------------------------- suppression
@dataclass
class Suppression:
    """A suppression pattern over tables published together (from :func:`suppress`).

    Attributes
    ----------
    primary, secondary : list of numpy.ndarray of bool
        Per table, in row order: rows with 1 to ``threshold - 1`` persons, and complementary
        rows withheld to protect them.
    threshold : int
    cost : float
        Persons withheld by the secondary suppression (``cost="value"``) or its number of
        distinct cells (``cost="cells"``).
    iterations : int
        Master problems solved.
    cuts : int
        Capacity cuts generated.
    seconds : float
    integer : bool
        Whether the integer attack was also defeated (whole-number tables).
    limited : list of tuple
        ``(table, row)`` of suppressed cells whose protection requirement had to be lowered
        because the tables themselves do not allow it (see the module notes).
    """

    primary: list[np.ndarray]
    secondary: list[np.ndarray]
    threshold: int
    cost: float = 0.0
    iterations: int = 0
    cuts: int = 0
    seconds: float = 0.0
    integer: bool = False
    limited: list[tuple[int, int]] = field(default_factory=list)
    method: str = "cell"

    @property
    def n_primary(self) -> int:
        return int(sum(p.sum() for p in self.primary))

    @property
    def n_secondary(self) -> int:
        return int(sum(s.sum() for s in self.secondary))

    def suppressed(self, table: int = 0) -> np.ndarray:
        """Rows of ``table`` withheld (primary or secondary)."""
        return self.primary[table] | self.secondary[table]


def suppress(
    tables: Sequence[pd.DataFrame] | pd.DataFrame,
    *,
    threshold: int = 5,
    dims: Sequence[str] = DIMS,
    value: str = "detected",
    hierarchies: Hierarchies | Sequence[Hierarchies] | None = None,
    cost: str = "value",
    width: float = 2.0,
    integer: bool | None = None,
    method: str = "cell",
    max_iter: int = 2000,
    forced: Sequence[np.ndarray] | np.ndarray | None = None,
    blocks: bool = False,
) -> Suppression:
    """Primary and optimal secondary suppression over tables published together.

    Parameters
    ----------
    tables : DataFrame or sequence of DataFrames (or SDGTables)
        Unsuppressed tables: dimension columns (codes; ``_T`` = total) and ``value``, the
        number of distinct persons of the row.
    threshold : int
        Rows with ``1 .. threshold - 1`` persons are primary suppressions; rows with 0 are
        published (see ``docs/disclosure.md`` on zeros).
    dims : sequence of str
        Dimension columns; a table without one of them is a total over it.
    value : str
        The count column.
    hierarchies : mapping or one mapping per table
        ``{dimension: {code: [codes it covers]}}``, e.g. ``{"age": {"Y0T17": ["Y0T11",
        "Y12T17"]}}``; a code listing itself covers itself and the others (``{"SEX": ["SEX",
        "MIX"]}`` when mixed cases count under both forms).
    cost : ``"value"`` or ``"cells"``
        Information loss minimised: persons withheld (default) or number of cells.
    width : float
        Least range width of a suppressed cell that is not primary (default 2: not recovered
        exactly nor to two values).
    integer : bool, optional
        Also defeat the integer attack (default: when every value is a whole number).
    max_iter : int
        Cap on master problems (a warning-free fallback suppresses every candidate).
    forced : array of bool, or one per table, optional
        Rows to withhold whatever their value (e.g. a cell that another table publishing the
        same persons withholds); they are protected like secondary cells and reported in
        ``secondary``. Method ``"cell"`` only.
    blocks : bool
        Build the attacker's programs on one block of atoms per group of dimensions split
        together (each dimension alone when no row crosses two), not on the
        cross-classification of every dimension: the same feasible values, far fewer atoms
        when many dimensions are published one at a time (no hierarchies).

    Returns
    -------
    Suppression

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"sex": ["F", "F", "M", "M", "_T", "_T", "F", "M", "_T"],
    ...                   "age": ["A", "B", "A", "B", "A", "B", "_T", "_T", "_T"],
    ...                   "detected": [2, 30, 20, 40, 22, 70, 32, 60, 92]})
    >>> s = suppress(t, dims=["sex", "age"])
    >>> s.n_primary, s.n_secondary
    (1, 3)
    """
    t0 = time.perf_counter()
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)) or threshold < 1:
        raise InputError(f"threshold={threshold!r}; expected a whole number >= 1")
    if cost not in ("value", "cells"):
        raise InputError(f"cost={cost!r}; expected 'value' or 'cells'")
    if method not in ("cell", "benders"):
        raise InputError(f"method={method!r}; expected 'cell' or 'benders'")
    frames = _frames(tables)
    if blocks and hierarchies:
        raise InputError("suppress: blocks=True takes no hierarchies")
    link = _link_blocks(frames, dims) if blocks else _link(frames, list(dims), hierarchies)
    vals = [_numbers(t, value, i) for i, t in enumerate(frames)]
    for ti, v in enumerate(vals):
        bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
        if len(bad):
            raise InputError(f"tables[{ti}]: column {value!r} must be a count >= 0 on every row "
                             f"(unsuppressed table); rows {list(bad[:10])} are not")
    b = _group_values(link, vals, "suppress")
    b[len(b) - link.n_ties:] = 0.0   # blocks sum alike (none without blocks)
    A = link.A
    m = A.shape[0]
    x0 = _feasible(A, b, b, "suppress")
    b = A @ x0
    if integer is None:
        integer = bool(np.all(np.abs(b - np.round(b)) < 1e-6))
    if integer:
        b = np.round(b)
        if np.any(np.abs(x0 - np.round(x0)) > 1e-6):
            x0 = _integer_point(A, b)
        x0 = np.round(x0)
    t = float(threshold)
    primary = (b > _TOL) & (b < t - _TOL)
    candidate = b >= t - _TOL
    G = float(b.max()) if m else 0.0
    big = 10.0 * (G + t) + 10.0
    # what the one marker tells: a withheld row holds someone (zeros are never withheld;
    # for fractional EM shares only v > 0)
    m_lo = 1.0 if integer else 0.0
    LB = np.where(primary | candidate, b - m_lo, 0.0)
    UB = np.where(primary | candidate, big - b, 0.0)
    weight = np.where(candidate, b if cost == "value" else 1.0, 0.0)
    P = _Problem(A, b, x0, t, primary, candidate, LB, UB, weight, bool(integer), float(width))
    if forced is not None:
        if method != "cell":
            raise InputError("suppress: forced= needs method='cell'")
        per = [forced] if isinstance(forced, np.ndarray) and forced.ndim == 1 else list(forced)
        P.forced = np.zeros(m, dtype=bool)
        for g, flags in zip(link.group, per, strict=True):
            P.forced[g[np.asarray(flags, dtype=bool)]] = True
        P.forced &= candidate
    if method == "cell":
        sup, it, n_cuts, limited = _cell_by_cell(P)
    else:
        sup, it, n_cuts, limited = _benders(P, max_iter)
    prim_rows = [primary[g] for g in link.group]
    sec_rows = [sup[g] & ~primary[g] for g in link.group]
    return Suppression(prim_rows, sec_rows, int(threshold),
                       cost=float(weight[sup & ~primary].sum()), iterations=it, cuts=n_cuts,
                       seconds=time.perf_counter() - t0, integer=bool(integer),
                       limited=sorted(link.first[j] for j in limited), method=method)


@dataclass
class _Problem:
    A: np.ndarray        # distinct cells x atoms
    b: np.ndarray        # true value of each distinct cell
    x0: np.ndarray       # true (or a consistent) atom vector
    t: float             # threshold
    primary: np.ndarray
    candidate: np.ndarray
    LB: np.ndarray       # how far the attacker may move a suppressed cell down / up
    UB: np.ndarray
    weight: np.ndarray
    integer: bool
    width: float
    forced: np.ndarray | None = None   # cells withheld whatever their value

    def bounds(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.b - self.LB * s, self.b + self.UB * s


def _augment(P: _Problem, s: np.ndarray, i: int, sense: int,
             req: float, reach: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Least-cost cells to add to pattern ``s`` so that cell ``i`` can move by ``req`` (up for
    ``sense = -1``, down for ``+1``) in a table the attacker cannot exclude.

    The deviation ``d`` of the atoms (whole numbers for integer tables) is the certificate: the
    table ``x0 + d`` is non-negative, equals every published value, keeps every suppressed cell
    within its marker's range, and moves cell ``i`` by ``req``. Returns the cells to add and
    the cells' deviations ``A d``; ``None`` if no pattern can.

    The search first allows a newly suppressed cell to move by at most ``4 req`` (a tight
    big-M: a much faster integer program), then by anything its marker allows.
    """
    if reach is None:
        got = _augment(P, s, i, sense, req, reach=4.0 * max(req, 1.0))
        if got is not None:
            return got
        reach = math.inf
    from scipy import sparse
    from scipy.optimize import Bounds, LinearConstraint, milp

    A, m, n = P.A, P.A.shape[0], P.A.shape[1]
    lo, hi = P.bounds(s)
    free = P.candidate & (s < 0.5)
    # rows: lo_j - b_j - LB_j s_j <= A_j d <= hi_j - b_j + UB_j s_j (s_j free only if free[j])
    S_up = sparse.diags(np.where(free, -np.minimum(P.UB, reach), 0.0))
    S_dn = sparse.diags(np.where(free, np.minimum(P.LB, reach), 0.0))
    Asp = sparse.csr_matrix(A)
    rows = sparse.vstack([sparse.hstack([Asp, S_up]), sparse.hstack([Asp, S_dn]),
                          sparse.hstack([Asp[i], sparse.csr_matrix((1, m))])], format="csr")
    inf = np.inf
    target = (-inf, -req) if sense > 0 else (req, inf)
    lb = np.concatenate([np.full(m, -inf), lo - P.b, [target[0]]])
    ub = np.concatenate([hi - P.b, np.full(m, inf), [target[1]]])
    c = np.concatenate([np.zeros(n), np.where(free, P.weight + 1e-3, 0.0)])
    integrality = np.concatenate([np.full(n, 1 if P.integer else 0), np.where(free, 1, 0)])
    var_lo = np.concatenate([-P.x0, np.zeros(m)])
    var_hi = np.concatenate([np.full(n, inf), np.where(free, 1.0, 0.0)])
    with _quiet():
        res = milp(c, constraints=LinearConstraint(rows, lb, ub), integrality=integrality,
                   bounds=Bounds(var_lo, var_hi),
                   options={"mip_rel_gap": MIP_GAP, "time_limit": 20.0})
    if res.x is None:
        return None
    d = res.x[:n]
    if P.integer:
        d = np.round(d)
    return free & (res.x[n:] > 0.5), A @ d


def _cell_by_cell(P: _Problem) -> tuple[np.ndarray, int, int, set[int]]:
    """Each requirement in turn, met at least cost given the cells suppressed so far.

    Every solution is kept as a certificate: a table (of whole numbers for integer tables) that
    the attacker cannot exclude. A certificate stays valid when more cells are suppressed
    (their ranges only widen), so a requirement that some certificate already meets needs no
    new solve, and one pass over the primary cells, then over the secondary cells until none is
    added, ends with every requirement certified against the integer (or linear) attack.
    """
    t = P.t
    s = P.primary.astype(float)
    if P.forced is not None:
        s[P.forced] = 1.0
    everything = (P.primary | P.candidate).astype(float)
    limited: set[int] = set()
    certs: list[np.ndarray] = []   # deviations of the cells, one per certificate
    n_solved = 0

    def moves(i: int) -> tuple[float, float]:
        """How far down and up the certificates move cell ``i``."""
        if not certs:
            return 0.0, 0.0
        z = np.array([c[i] for c in certs])
        return max(0.0, -float(z.min())), max(0.0, float(z.max()))

    def meet(i: int, sense: int, req: float) -> None:
        nonlocal n_solved
        n_solved += 1
        got = _augment(P, s, i, sense, req)
        if got is None:
            # the tables allow no more: ask for what suppressing every cell gives
            lo_all, hi_all = P.bounds(everything)
            if P.integer:
                a_lo, a_hi = _int_range(P.A, lo_all, hi_all, i)
            else:
                a_lo = _lp_range(P.A, lo_all, hi_all, i, 1)
                a_hi = -_lp_range(P.A, lo_all, hi_all, i, -1)
            best = (P.b[i] - a_lo) if sense > 0 else (a_hi - P.b[i])
            limited.add(i)
            done_dn, done_up = moves(i)
            if best <= (done_dn if sense > 0 else done_up) + _TOL:
                return
            n_solved += 1
            got = _augment(P, s, i, sense, best)
            if got is None:  # pragma: no cover - the full pattern achieves it
                s[:] = np.maximum(s, everything)
                return
        add, z = got
        s[add] = 1.0
        certs.append(z)

    for i in np.flatnonzero(P.primary):
        i = int(i)
        need_dn, need_up = P.b[i] - 1.0, t - 1.0 - P.b[i]
        have_dn, have_up = moves(i)
        if need_dn > have_dn + _TOL:
            meet(i, 1, need_dn)
        have_dn, have_up = moves(i)
        if need_up > have_up + _TOL:
            meet(i, -1, need_up)
    done: set[int] = set()
    while True:
        todo = [int(j) for j in np.flatnonzero((s > 0.5) & ~P.primary) if j not in done]
        if not todo:
            break
        for j in todo:
            done.add(j)
            have_dn, have_up = moves(j)
            if have_dn + have_up >= P.width - _TOL:
                continue
            before = len(limited)
            meet(j, -1, P.width - have_dn)  # widen upwards (a secondary cell has no ceiling)
            have_dn, have_up = moves(j)
            if len(limited) > before and have_dn + have_up < P.width - _TOL:
                limited.discard(j)
                meet(j, 1, P.width - have_up)
    return s > 0.5, n_solved, len(certs), limited


def _benders(P: _Problem, max_iter: int) -> tuple[np.ndarray, int, int, set[int]]:
    """Fischetti-Salazar cut generation: the least-cost pattern meeting every LP requirement
    (slower than the cell-by-cell method; exact for the linear attack)."""
    A, b, t, m = P.A, P.b, P.t, P.A.shape[0]
    primary, candidate, LB, UB, weight = P.primary, P.candidate, P.LB, P.UB, P.weight
    integer, width = P.integer, P.width
    bounds = P.bounds
    fixed_one = primary.copy()
    fixed_zero = ~(primary | candidate)

    everything = (primary | candidate).astype(float)
    lo_all, hi_all = bounds(everything)
    attain: dict[tuple[int, int], float] = {}

    def attainable(i: int, sense: int) -> float:
        key = (i, sense)
        if key not in attain:
            attain[key] = _lp_range(A, lo_all, hi_all, i, sense)
        return attain[key]

    def requirement(i: int, sense: int) -> float:
        """Least admissible ``min sense * A_i x`` (as an upper bound on the LP value)."""
        if sense > 0:   # down: min A_i x <= 1
            return max(1.0, attainable(i, 1))
        return max(-(t - 1.0), attainable(i, -1))  # up: -max <= -(t-1)

    int_attain: dict[int, tuple[float, float]] = {}
    cuts_G: list[np.ndarray] = []
    cuts_h: list[float] = []
    limited: set[int] = set()

    def cut_from(y: np.ndarray) -> tuple[np.ndarray, float]:
        y1, y2 = y[:m], y[m:]  # <= 0 (min problem, <= rows)
        g = y1 * UB + y2 * LB
        const = float(y1 @ b - y2 @ b)
        return -g, const          # fun(s) >= const - (-g) . s for every pattern s

    s = fixed_one.astype(float)
    it = n_cuts = 0
    checked_int = False
    while True:
        it += 1
        lo, hi = bounds(s)
        new = 0
        on = np.flatnonzero(s > 0.5)
        sol = _lp_batch(A, lo, hi, [(int(i), sense) for i in on for sense in (1, -1)])
        for r, i in enumerate(on):
            (f_dn, y_dn, _), (f_up, y_up, _) = sol[2 * r], sol[2 * r + 1]
            if primary[i]:
                for sense, f, y in ((1, f_dn, y_dn), (-1, f_up, y_up)):
                    req = requirement(i, sense)
                    if req > (1.0 if sense > 0 else -(t - 1.0)) + _TOL:
                        limited.add(int(i))
                    if f > req + _TOL:
                        g, const = cut_from(y)
                        cuts_G.append(g)
                        cuts_h.append(const - req)
                        new += 1
            else:
                have = -f_up - f_dn
                need = min(width, -attainable(i, -1) - attainable(i, 1))
                if need < width - _TOL:
                    limited.add(int(i))
                if have < need - _TOL:
                    g1, c1 = cut_from(y_dn)
                    g2, c2 = cut_from(y_up)
                    g = g1 + g2
                    g[i] -= need  # conditional on s_i = 1
                    cuts_G.append(g)
                    cuts_h.append(c1 + c2)
                    new += 1
        n_cuts += new
        if not new and integer and not checked_int:
            # the LP attack is defeated; now the integer attack on this pattern
            checked_int = True
            if not _int_ok(A, lo, hi, s, primary, t, width, int_attain, lo_all, hi_all, limited):
                free = (~fixed_one & ~fixed_zero & (s < 0.5)).astype(float)
                cuts_G.append(free)
                cuts_h.append(1.0)
                new = 1
        if not new:
            break
        if it >= max_iter:
            s = everything  # pragma: no cover - fallback: withhold every candidate
            break
        s = _master(weight, fixed_one, fixed_zero, np.asarray(cuts_G), np.asarray(cuts_h))
        checked_int = False
    return s > 0.5, it, n_cuts, limited


def _int_ok(A, lo, hi, s, primary, t, width, attain, lo_all, hi_all, limited) -> bool:
    for i in np.flatnonzero(s > 0.5):
        ilo, ihi = _int_range(A, lo, hi, i)
        if i not in attain:
            attain[i] = _int_range(A, lo_all, hi_all, i)
        alo, ahi = attain[i]
        if primary[i]:
            need_lo, need_hi = max(1.0, alo), min(t - 1.0, ahi)
            if ilo > need_lo + _TOL or ihi < need_hi - _TOL:
                return False
        else:
            need = min(width, ahi - alo)
            if need < width:
                limited.add(int(i))
            if ihi - ilo < need - _TOL:
                return False
    return True


def _master(weight: np.ndarray, one: np.ndarray, zero: np.ndarray, G: np.ndarray,
            h: np.ndarray) -> np.ndarray:
    """Least-cost pattern satisfying the cuts ``G s >= h`` (HiGHS branch and cut)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    free = ~one & ~zero
    out = one.astype(float)
    if not free.any():
        return out
    h = h - G[:, one].sum(axis=1)
    Gf = G[:, free]
    # coefficient strengthening: with 0/1 variables a capacity above what the cut can ask for
    # counts no more than that (the large capacities of secondary cells give weak relaxations)
    cap = np.maximum(h, 0.0)[:, None] + np.maximum(-Gf, 0.0).sum(axis=1, keepdims=True)
    Gf = np.where(Gf > 0, np.minimum(Gf, cap), Gf)
    keep = h > _TOL  # cuts already met by the fixed cells
    keep |= (Gf < 0).any(axis=1)
    c = weight[free] + 1e-3  # a tiny per-cell cost breaks ties towards fewer cells
    cons = [LinearConstraint(Gf[keep], h[keep], np.inf)] if keep.any() else []
    with _quiet():
        res = milp(c, constraints=cons, integrality=np.ones(len(c)), bounds=Bounds(0, 1),
                   options={"mip_rel_gap": MIP_GAP, "time_limit": 10.0})
    if res.x is None:  # pragma: no cover - suppressing every candidate is always feasible
        out[free] = 1.0
        return out
    out[free] = np.round(res.x)
    return out


def apply(table: pd.DataFrame, suppression: Suppression, index: int = 0, *,
          columns: Sequence[str] | None = None, value: str = "detected",
          status: str = "obs_status") -> pd.DataFrame:
    """The table with the suppressed rows' values blanked (NaN) and marked in ``status``.

    ``columns`` (default: ``value``) are blanked on every suppressed row; ``status`` is set to
    ``"suppressed"`` (primary) or ``"suppressed (secondary)"``.
    """
    out = getattr(table, "table", table).reset_index(drop=True).copy()
    p, q = suppression.primary[index], suppression.secondary[index]
    if len(p) != len(out):
        raise InputError(f"apply: the suppression has {len(p)} rows for table {index}, the table "
                         f"{len(out)}")
    cols = list(columns) if columns is not None else [value]
    for c in cols:
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    out.loc[p | q, [c for c in cols if c in out.columns]] = np.nan
    if status not in out.columns:
        out[status] = ""
    out[status] = out[status].astype(object)
    out.loc[p | q, status] = PRIMARY  # one marker: complements are not told apart
    return out


def protect(tables: Sequence[pd.DataFrame] | pd.DataFrame, *, columns: Sequence[str] | None = None,
            **kwargs: Any) -> list[pd.DataFrame]:
    """:func:`suppress` then :func:`apply` to every table: the tables ready to publish.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"sex": ["F", "M", "_T"], "detected": [3, 40, 43]})
    >>> protect(t, dims=["sex"])[0]["obs_status"].tolist()
    ['suppressed', 'suppressed', '']
    """
    frames = _frames(tables)
    sup = suppress(frames, **kwargs)
    value = kwargs.get("value", "detected")
    return [apply(t, sup, i, columns=columns, value=value) for i, t in enumerate(frames)]


# ------------------------------------------------------------------------- the audit
@dataclass
class Audit:
    """The attacker's audit of published tables (from :func:`audit`).

    Attributes
    ----------
    cells : DataFrame
        One row per distinct suppressed cell: ``table``, ``row`` (position), the dimension
        codes, ``kind`` (``withheld``; ``primary`` / ``secondary`` where the output tells them
        apart, as ``<5`` / ``suppressed (secondary)``), ``lp_min``, ``lp_max`` and,
        with ``integer``, ``int_min``, ``int_max``; ``width`` (of the tightest range),
        ``exact`` (one possible value), ``two_values`` (at most two).
    integer : bool
        Whether the integer program was run (whole-number tables).
    threshold : int
    n_tables, n_published : int
    seconds : float
    """

    cells: pd.DataFrame
    integer: bool
    threshold: int
    n_tables: int
    n_published: int
    seconds: float = 0.0

    @property
    def n_attacked(self) -> int:
        return len(self.cells)

    @property
    def n_primary(self) -> int:
        """Small cells attacked (marked ``<5`` or declared ``sensitive``)."""
        return int(self._small.sum())

    @property
    def _small(self) -> pd.Series:
        return (self.cells["kind"] == "primary") | self.cells["sensitive"]

    @property
    def n_exact(self) -> int:
        return int(self.cells["exact"].sum())

    @property
    def n_two_values(self) -> int:
        """Cells recovered to two values (not counting those recovered exactly)."""
        return int((self.cells["two_values"] & ~self.cells["exact"]).sum())

    @property
    def min_width_primary(self) -> float:
        w = self.cells.loc[self._small, "width"]
        return float(w.min()) if len(w) else math.nan

    @property
    def protected(self) -> bool:
        """No suppressed cell recovered exactly or to two values."""
        return self.n_exact == 0 and self.n_two_values == 0

    def to_frame(self) -> pd.DataFrame:
        return self.cells.copy()

    def summary(self) -> str:
        """A few lines of text: counts and range widths, never a suppressed cell's value."""
        how = "integer program" if self.integer else "linear program"
        c = self.cells
        lines = [f"Disclosure audit ({how}, threshold {self.threshold}): {self.n_tables} "
                 f"table(s), {self.n_published} published values, {self.n_attacked} suppressed "
                 f"cell(s) attacked ({self.n_primary} small)."]
        lines.append(f"Recovered exactly: {self.n_exact}; to two values: {self.n_two_values}.")
        if len(c):
            for kind, w in (("small", c.loc[self._small, "width"]),
                            ("other withheld", c.loc[~self._small, "width"])):
                if len(w):
                    lines.append(f"Range width of {kind} cells: min {w.min():g}, median "
                                 f"{w.median():g}, max {w.max():g}.")
        lines.append("Protected: no suppressed cell recoverable exactly or to two values."
                     if self.protected else
                     "NOT protected: see to_frame() for the cells and their ranges.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def audit(
    tables: Sequence[pd.DataFrame] | pd.DataFrame,
    *,
    value: str = "detected",
    status: str = "obs_status",
    threshold: int = 5,
    dims: Sequence[str] = DIMS,
    hierarchies: Hierarchies | Sequence[Hierarchies] | None = None,
    integer: bool | None = None,
    markers: bool = True,
    sensitive: Sequence[np.ndarray] | np.ndarray | None = None,
) -> Audit:
    """Attack published tables: the feasible range of every suppressed cell.

    For each suppressed cell, its least and greatest value over every non-negative table
    consistent with all published values of all ``tables`` and their additive relations (from
    the ``_T`` codes and ``hierarchies``), by linear programming and, for whole-number tables,
    by integer programming (the exact attack on counts).

    Parameters
    ----------
    tables : DataFrame or sequence of DataFrames (or SDGTables)
        As published: suppressed cells have a blank (NaN) or non-numeric ``value`` (``<5``,
        ``x``) or a ``status`` starting with ``suppressed``.
    value, status : str
        The count column and the status column (optional).
    threshold : int
        The threshold of the primary suppression (what ``<5`` means).
    dims, hierarchies
        As in :func:`suppress`.
    integer : bool, optional
        Run the integer program (default: when every published value is a whole number).
    markers : bool
        The attacker reads the markers (default True, the stronger attacker): a withheld row
        holds someone (zeros are published), a ``<5`` cell 1 to ``threshold - 1`` persons, a
        row marked ``suppressed (secondary)`` (outputs that tell complements apart) 5 or more.
    sensitive : array of bool, or one per table, optional
        The publisher's own audit: which rows are the small ones (``Suppression.primary``);
        reported in ``cells["sensitive"]``, never given to the attacker.

    Returns
    -------
    Audit

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = pd.DataFrame({"sex": ["F", "M", "_T"], "detected": [np.nan, 40, 43],
    ...                   "obs_status": ["suppressed", "", ""]})
    >>> a = audit(t, dims=["sex"])
    >>> a.n_exact, a.cells[["int_min", "int_max"]].values.tolist()
    (1, [[3.0, 3.0]])
    """
    t0 = time.perf_counter()
    frames = _frames(tables)
    link = _link(frames, list(dims), hierarchies)
    per_vals, per_kind = [], []
    for ti, t in enumerate(frames):
        if value not in t.columns:
            raise InputError(f"tables[{ti}]: no column {value!r}; it has {list(t.columns)}")
        raw = t[value]
        v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        st = (t[status].astype(str) if status in t.columns
              else pd.Series("", index=t.index)).str.strip()
        txt = raw.astype(str).str.strip()
        kind = np.full(len(t), "", dtype=object)
        hidden = ~np.isfinite(v) | st.str.startswith("suppressed").to_numpy()
        kind[hidden] = "withheld"
        kind[hidden & txt.str.startswith("<").to_numpy()] = "primary"
        kind[hidden & (st == SECONDARY).to_numpy()] = "secondary"
        v = np.where(hidden, np.nan, v)
        per_vals.append(v)
        per_kind.append(kind)
    b = _group_values(link, per_vals, "audit")
    m = link.A.shape[0]
    sens_g = np.zeros(m, dtype=bool)
    if sensitive is not None:
        sens = [sensitive] if isinstance(sensitive, np.ndarray) and sensitive.ndim == 1 \
            and len(frames) == 1 else list(sensitive)
        for g, flags in zip(link.group, sens, strict=True):
            sens_g[g[np.asarray(flags, dtype=bool)]] = True
    kind_g = np.full(m, "", dtype=object)
    for g, k in zip(link.group, per_kind, strict=True):
        for j, kk in zip(g, k, strict=True):
            if kk and not kind_g[j]:
                kind_g[j] = kk
    pub = np.isfinite(b)
    kind_g[pub] = ""
    t = float(threshold)
    if integer is None:
        integer = bool(np.all(np.abs(b[pub] - np.round(b[pub])) < 1e-6))
    lo = np.where(pub, b, 0.0)
    hi = np.where(pub, b, np.inf)
    if markers:  # "<t": 1 .. t-1 persons (0 < v < t for fractional EM shares); a complement
        # marked apart: >= t; any withheld row: someone (zeros are published)
        m_lo, m_hi = (1.0, t - 1.0) if integer else (0.0, t)
        lo = np.where(kind_g == "primary", m_lo, np.where(kind_g == "secondary", t,
                                                          np.where(pub, lo, m_lo)))
        hi = np.where(kind_g == "primary", m_hi, hi)
    total = float(np.nanmax(b)) if pub.any() else 0.0
    ceiling = 10.0 * (total + t) + 1e6  # stands for "no upper bound" in the programs
    hi = np.where(np.isfinite(hi), hi, ceiling)
    A = link.A
    x0 = _feasible(A, lo, hi, "audit")
    fit = A @ x0
    lo = np.where(pub, fit, lo)
    hi = np.where(pub, fit, hi)
    if integer:
        lo, hi = np.where(pub, np.round(fit), lo), np.where(pub, np.round(fit), hi)
    rows = []
    hidden = [int(j) for j in np.flatnonzero(~pub)]
    ranges = _ranges(A, lo, hi, hidden, ceiling / 2, integer=bool(integer))
    for j, (lp_min, lp_max, int_min, int_max) in zip(hidden, ranges, strict=True):
        ti, rr = link.first[j]
        row = {"table": ti, "row": rr}
        for d in dims:
            row[d] = str(frames[ti][d].iloc[rr]) if d in frames[ti].columns else TOTAL
        row["kind"] = kind_g[j] or "withheld"
        row["sensitive"] = bool(sens_g[j])
        row["lp_min"], row["lp_max"] = lp_min, lp_max
        if integer:
            row["int_min"], row["int_max"] = int_min, int_max
            w = row["int_max"] - row["int_min"]
            row["exact"] = w < 0.5
            row["two_values"] = w < 1.5
        else:
            w = row["lp_max"] - row["lp_min"]
            row["exact"] = w < 1e-6
            row["two_values"] = w <= 1.0 + 1e-9
        row["width"] = round(w, 6)
        rows.append(row)
    cols = ["table", "row", *dims, "kind", "sensitive", "lp_min", "lp_max"]
    cols += (["int_min", "int_max"] if integer else []) + ["width", "exact", "two_values"]
    cells = pd.DataFrame(rows, columns=cols)
    cells["exact"] = cells["exact"].astype(bool)
    cells["sensitive"] = cells["sensitive"].astype(bool)
    cells["two_values"] = cells["two_values"].astype(bool)
    return Audit(cells, bool(integer), int(threshold), len(frames), int(sum(
        np.isfinite(v).sum() for v in per_vals)), time.perf_counter() - t0)
