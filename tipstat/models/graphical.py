"""Bayesian model averaging over decomposable graphical models (Madigan & York 1997).

The complete ``2**K`` table (the unobserved cell ``n_0 = N - n_obs`` included) is multinomial
given N, with cell probabilities that factorise over a decomposable graph ``G`` with cliques
``C`` and separators ``S``. Under the hyper-Dirichlet prior whose every marginal on a vertex set
``A`` is Dirichlet with ``delta * 2**(K - |A|)`` per cell (total weight ``T = delta * 2**K``),
the probability of the complete table is closed-form (Dawid & Lauritzen 1993):

.. math::

    p(n \\mid N, G) = \\frac{N!}{\\prod_x n_x!}
        \\frac{\\prod_{C} h_C(n_C)}{\\prod_{S} h_S(n_S)},
    \\qquad
    \\log h_A(n_A) = \\sum_{x_A} \\big[\\log\\Gamma(n_{x_A} + a_A) - \\log\\Gamma(a_A)\\big]
        + \\log\\Gamma(T) - \\log\\Gamma(N + T),

with ``a_A = delta * 2**(K - |A|)`` and ``n_A`` the marginal table on ``A`` (``h_∅ = 1``). Only
the marginal cell of the all-absent pattern depends on N. The joint posterior over graphs and N is

.. math::

    p(G, N \\mid y) \\propto p(G)\\, p(N)\\, p(n(N) \\mid N, G),

with ``p(G)`` uniform over decomposable graphs and ``p(N)`` ∝ 1/N by default (as HRDAG's R
package dga). N is evaluated on a grid of values of ``n_0``; the posterior of N is the column sum
of the ``graphs × grid`` table and the posterior probability of a graph its row sum.

For up to :data:`ENUMERATE_UP_TO` lists every decomposable graph is enumerated (822 for 5 lists,
18,154 for 6). For more lists a Metropolis sampler moves over decomposable graphs by adding or
removing one edge (proposals that break chordality are rejected), with N summed out on the grid,
so each graph's marginal likelihood is exact; the posterior of N is the mixture of the graphs'
conditional posteriors weighted by visit frequency (Rao-Blackwellised), and several chains give
R-hat and ESS.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import gammaln

from .._checks import DEFAULT_SEED, check_ci, check_seed, is_level
from ..errors import InputError, Problem
from ..estimate import Caveat, Estimate
from ..histories import CaptureHistories
from ..parallel import generator
from .checks import attach_checks
from .graphs import Decomposition, adjacency, decompose, edge_pairs, enumerate_decomposable, graph_label
from .intervals import grid_quantile
from .posterior_checks import (
    LOWER_BOUND_MASS,
    NOT_IDENTIFIED_WARN,
    PPP_DRAWS,
    PRIOR_SHIFT_WARN,
    ppp_caveat,
    predictive_check,
    prior_shift_caveat,
)
from .sampling import convergence

__all__ = ["ENUMERATE_UP_TO", "LOWER_BOUND_MASS", "NOT_IDENTIFIED_WARN", "PRIOR_SHIFT_WARN",
           "fit_graphical", "hyper_dirichlet_shares", "log_prior_n"]

#: Largest number of lists for which ``search="auto"`` enumerates every decomposable graph.
ENUMERATE_UP_TO = 6

PRIORS_N = ("1/N", "rissanen", "uniform")
_CHUNK_CELLS = 262_144  # graphs x grid values evaluated at once: 2 MB of float64 stays in cache
#: With MCMC, conditional quantiles of N are computed for this many most-visited graphs.
MCMC_TABLE_QUANTILES = 1000
# The posterior probability of the complete graph (N not identified there: the posterior of N
# given it is the prior's, reshaped by the hyper-Dirichlet) above which the result carries a
# ``not_identified_mass`` caveat (NOT_IDENTIFIED_WARN) and above which the status is
# ``"lower_bound"`` (LOWER_BOUND_MASS), and the relative move of the upper end under a second
# prior on N that gives ``prior_driven`` (PRIOR_SHIFT_WARN) are the shared rules of
# :mod:`tipstat.models.posterior_checks`, re-exported here.


# --------------------------------------------------------------------------- priors and grid
def _log2_star(x: np.ndarray) -> np.ndarray:
    """Rissanen's iterated logarithm ``log2 x + log2 log2 x + ...`` (positive terms only)."""
    out = np.zeros_like(x, dtype=float)
    cur = np.asarray(x, dtype=float).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        cur = np.where(cur > 1, np.log2(np.maximum(cur, 1.0)), 0.0)
        while np.any(cur > 0):
            out += cur
            cur = np.where(cur > 1, np.log2(np.maximum(cur, 1.0)), 0.0)
    return out


def log_prior_n(n: np.ndarray, prior: str | Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Log prior of the population size N (up to a constant).

    ``"1/N"``: ``-log N`` (dga's default; scale-invariant). ``"rissanen"``: Rissanen's universal
    prior for integers, ``-log(2) * log2*(N)`` with ``log2*(N) = log2 N + log2 log2 N + ...``
    (positive terms). ``"uniform"``: flat on the grid. A callable gets the array of N and returns
    log prior values.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(log_prior_n(np.array([1.0, 10.0]), "1/N"), 4).tolist()
    [-0.0, -2.3026]
    """
    n = np.asarray(n, dtype=float)
    if callable(prior):
        out = np.asarray(prior(n), dtype=float)
        if out.shape != n.shape or not np.all(np.isfinite(out)):
            raise InputError("prior_n: the callable must return finite log prior values, one per N",
                             [Problem("prior_n", None, None, f"{n.shape[0]} finite values")])
        return out
    if prior == "1/N":
        return -np.log(n)
    if prior == "rissanen":
        return -math.log(2.0) * _log2_star(n)
    if prior == "uniform":
        return np.zeros_like(n)
    raise InputError("unknown prior on N",
                     [Problem("prior_n", None, prior, f"one of {PRIORS_N} or a callable")])


def default_grid(n_obs: float, dense: int = 2000, ratio: float = 1.002, top: float = 1e5) -> np.ndarray:
    """Default grid of undetected counts ``n_0``: every integer up to ``dense``, then a geometric
    grid with relative spacing ``ratio - 1`` up to ``top * n_obs`` (at least ``100 * dense``).

    The geometric part costs few points (about 1,150 per factor of 10), so the default reaches far
    into the tail: with the ``1/N`` prior and small ``delta`` the posterior of N decays only like
    ``N**(-2 + delta)`` under the saturated graph.

    The posterior mass of a grid point is its density times the width it stands for, so quantiles
    are exact on the integer part and within ``ratio - 1`` (0.2%) beyond it.

    Examples
    --------
    >>> g = default_grid(500)
    >>> int(g[0]), int(g[1999]), bool(g[-1] >= 500_000)
    (0, 1999, True)
    """
    upper = max(top * n_obs, 100.0 * dense)
    n_geo = math.ceil(math.log(upper / dense) / math.log(ratio)) + 1
    geo = np.unique(np.round(dense * ratio ** np.arange(n_geo)))
    return np.concatenate([np.arange(dense, dtype=float), geo[geo >= dense]])


def _grid_widths(grid: np.ndarray) -> np.ndarray:
    if grid.size == 1:
        return np.ones(1)
    d = np.diff(grid)
    w = np.empty_like(grid)
    w[0], w[-1] = d[0], d[-1]
    w[1:-1] = (d[:-1] + d[1:]) / 2
    return w


def _check_grid(n_missing: Sequence[float] | np.ndarray) -> np.ndarray:
    grid = np.asarray(n_missing, dtype=float).ravel()
    problems = []
    if grid.size < 2:
        problems.append(Problem("n_missing", None, int(grid.size), "at least 2 grid values"))
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(grid) | (grid < 0) | (grid != np.round(grid))
    for i in np.flatnonzero(bad):
        problems.append(Problem("n_missing", int(i), float(grid[i]), "a non-negative integer"))
    if grid.size >= 2 and np.any(np.diff(grid) <= 0):
        i = int(np.argmax(np.diff(grid) <= 0)) + 1
        problems.append(Problem("n_missing", i, float(grid[i]), "strictly increasing values"))
    if problems:
        raise InputError("n_missing must be a grid of undetected counts", problems)
    return grid


# --------------------------------------------------------------------------- the likelihood
class _Tables:
    """Log ``h_A`` of every vertex set ``A`` on the grid (``H``, shape ``2**K x grid``) and the
    part of the log posterior that does not depend on the graph (``base``)."""

    def __init__(self, y: np.ndarray, k: int, delta: float, grid: np.ndarray,
                 prior_n: str | Callable[[np.ndarray], np.ndarray],
                 log_prior_graph: Callable[[int], float] | None = None):
        self.log_prior_graph = log_prior_graph
        cells = np.arange(2**k)
        full = np.concatenate([[0.0], y])
        n_obs = float(y.sum())
        total = delta * 2**k
        n_tot = n_obs + grid
        norm = gammaln(total) - gammaln(n_tot + total)
        H = np.zeros((2**k, grid.size))
        for a in range(1, 2**k):
            alpha = delta * 2 ** (k - a.bit_count())
            marg = np.bincount(cells & a, weights=full, minlength=2**k)
            rest = np.delete(marg, 0)
            rest = rest[rest > 0]
            const = float(np.sum(gammaln(rest + alpha) - gammaln(alpha)))
            H[a] = gammaln(marg[0] + grid + alpha) - gammaln(alpha) + const + norm
        self.H = H
        self.grid = grid
        self.n = n_tot
        self.widths = _grid_widths(grid)
        self.base = (gammaln(n_tot + 1) - gammaln(grid + 1) - float(np.sum(gammaln(y + 1)))
                     + log_prior_n(n_tot, prior_n) + np.log(self.widths))

    def every(self, step: int) -> _Tables:
        """The same tables on every ``step``-th grid value, each standing for ``step`` values."""
        sub = object.__new__(_Tables)
        idx = np.arange(0, self.grid.size, step)
        sub.H, sub.grid, sub.n = self.H[:, idx], self.grid[idx], self.n[idx]
        sub.widths = self.widths[idx] * step
        sub.base = self.base[idx] + math.log(step)
        sub.log_prior_graph = self.log_prior_graph
        return sub

    def graph_prior(self, graphs: Sequence[Decomposition]) -> np.ndarray:
        """Log prior weight of each graph (0 for the uniform prior)."""
        if self.log_prior_graph is None:
            return np.zeros(len(graphs))
        return np.array([self.log_prior_graph(g.edges) for g in graphs], dtype=float)

    def incidence(self, graphs: Sequence[Decomposition]) -> sparse.csr_matrix:
        """Graphs x vertex sets: +1 per clique, -1 per separator (a handful per row, so sparse:
        ``incidence @ H`` costs a few additions per grid value instead of ``2**K``)."""
        return _incidence(graphs, self.H.shape[0])

    def log_weights(self, graph: Decomposition) -> np.ndarray:
        w = self.base + self.H[list(graph.cliques)].sum(axis=0)
        if graph.separators:
            w = w - self.H[list(graph.separators)].sum(axis=0)
        return w


#: Graph sets whose incidence matrices :func:`_incidence` keeps (the enumerated graphs of a K,
#: the pruned set of the fine pass): they depend on the graphs only, not on the table.
_INCIDENCE: dict[tuple, sparse.csr_matrix] = {}
_INCIDENCE_KEEP = 4


def _incidence(graphs: Sequence[Decomposition], n_sets: int) -> sparse.csr_matrix:
    """Graphs x vertex sets: +1 per clique, -1 per separator, in SciPy's canonical CSR form
    (columns sorted in each row, a separator that occurs twice one entry -2).

    Built once per graph set and kept (:data:`_INCIDENCE_KEEP` sets): a slice of rows of the
    canonical form is the canonical form of those graphs alone, so ``incidence[rows] @ H`` adds
    the same numbers in the same order as a matrix built for the rows.
    """
    key = (n_sets, tuple((g.cliques, g.separators) for g in graphs))
    hit = _INCIDENCE.get(key)
    if hit is not None:
        return hit
    sizes = [len(g.cliques) + len(g.separators) for g in graphs]
    rows = np.repeat(np.arange(len(graphs)), sizes)
    cols = [v for g in graphs for v in (*g.cliques, *g.separators)]
    vals = [v for g in graphs for v in [1.0] * len(g.cliques) + [-1.0] * len(g.separators)]
    inc = sparse.csr_matrix((vals, (rows, cols)), shape=(len(graphs), n_sets))
    if len(_INCIDENCE) >= _INCIDENCE_KEEP:
        _INCIDENCE.pop(next(iter(_INCIDENCE)))
    _INCIDENCE[key] = inc
    return inc


#: ``exp(x)`` is exactly 0.0 in double precision below about -745.13 (the result is under half
#: the smallest subnormal): grid values this far below a row's maximum are exact zeros of the
#: unnormalised posterior, so they are not exponentiated and the cumulative sums of
#: :func:`_search_cumsum` for the conditional quantiles stop before them.
_EXP_ZERO = -746.0


def _band(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``w`` (log weights, maximum 0): the first index and one past the last
    index where ``w > _EXP_ZERO`` (the whole row when none is)."""
    live = w > _EXP_ZERO
    lo = live.argmax(axis=1)
    hi = live.shape[1] - live[:, ::-1].argmax(axis=1)
    dead = ~live[np.arange(len(w)), lo]
    lo[dead], hi[dead] = 0, live.shape[1]
    return lo, hi


def _exp_band(w: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``np.exp(w, out=w)`` where the values outside each row's band ``[lo, hi)`` are known to
    give exactly 0.0 (:func:`_band`): the band is exponentiated, the rest set to 0.0."""
    for r in range(w.shape[0]):
        row = w[r]
        a, b = lo[r], hi[r]
        np.exp(row[a:b], out=row[a:b])
        row[:a] = 0.0
        row[b:] = 0.0
    return w


def _search_cumsum(row: np.ndarray, lo: int, hi: int, targets: np.ndarray,
                   first: int = 256) -> np.ndarray:
    """``np.searchsorted(np.cumsum(row), targets, side="right")`` for a non-negative
    ``row`` that is zero outside ``[lo, hi)`` and non-negative targets, without summing the
    whole row: the cumulative sum is taken in blocks, ``[lo, first)`` (at least 256 values)
    and then blocks twice as long as the one before, until every target is passed.

    Bit for bit the full computation: ``np.cumsum`` adds in order, so a block whose first value
    has the previous block's last sum added to it continues the same sums; before ``lo`` the
    sums are 0.0 (<= every target) and from ``hi`` on they stay at the last one. A target that
    no sum exceeds gets ``len(row)``.
    """
    t = np.asarray(targets, dtype=float)
    lo, hi = int(lo), int(hi)
    end = min(hi, max(lo + 256, int(first)))
    c = np.cumsum(row[lo:end])
    k = np.searchsorted(c, t, side="right")
    if t.size == 0 or (k.max() < c.size and t.min() >= 0):
        return k + lo   # (the usual case: one block)
    out = np.full(t.shape, row.shape[0], dtype=np.intp)
    pend = t >= 0
    out[~pend] = 0
    pos, size = lo, end - lo
    while True:
        hit = pend & (k < c.size)
        out[hit] = pos + k[hit]
        pend &= ~hit
        if not pend.any() or end >= hi:
            return out
        pos, size = end, 2 * size
        end = min(hi, pos + size)
        carry = float(c[-1])
        c = row[pos:end].copy()
        c[0] += carry
        np.cumsum(c, out=c)
        k = np.searchsorted(c, t, side="right")


def _graph_labels(graphs: Sequence[Decomposition], lists: Sequence[str]) -> list[str]:
    """:func:`~tipstat.models.graphs.graph_label` of each graph, each clique's part made once
    (the 822 graphs of five lists have 31 distinct cliques)."""
    parts: dict[int, str] = {}
    out = []
    for g in graphs:
        for c in g.cliques:
            if c not in parts:
                parts[c] = graph_label((c,), lists)
        out.append("".join([parts[c] for c in g.cliques]))
    return out


def _logsumexp_rows(w: np.ndarray) -> np.ndarray:
    m = w.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(w - m).sum(axis=-1, keepdims=True)))[..., 0]


def _mix_graphs(tables: _Tables, graphs: Sequence[Decomposition], qs: np.ndarray,
                log_mix: np.ndarray | None = None, n_quantiles: int | None = None):
    """Mixtures of the graphs' conditional posteriors ``p(N | G, y)`` on the grid.

    Parameters
    ----------
    log_mix : array (n_graphs, n_mixtures), optional
        Log mixture weights (e.g. MCMC visit counts of each chain); ``None`` weights the graphs
        by their marginal likelihoods (the exact model average).
    n_quantiles : int, optional
        Compute conditional quantiles ``qs`` of N for the first ``n_quantiles`` graphs only
        (``None``: all); the others get ``nan``.

    Returns
    -------
    pmfs : array (n_mixtures, grid), normalised; log_z : log marginal likelihood of each graph;
    quant : array (n_graphs, len(qs)).
    """
    n_graphs = len(graphs)
    n_quantiles = n_graphs if n_quantiles is None else n_quantiles
    chunk = max(1, _CHUNK_CELLS // tables.grid.size)
    log_z = np.empty(n_graphs)
    quant = np.full((n_graphs, qs.size), np.nan)
    n_mix = 1 if log_mix is None else log_mix.shape[1]
    acc = np.zeros((n_mix, tables.grid.size))
    ref0 = -math.inf  # running reference of the exact average, so nothing overflows
    last = tables.grid.size - 1
    if log_mix is not None:
        ref = log_mix.max(axis=0)
    incidence = tables.incidence(graphs)
    prior = None if tables.log_prior_graph is None else tables.graph_prior(graphs)
    for start in range(0, n_graphs, chunk):
        sl = slice(start, start + chunk)
        w = np.asarray(incidence[sl] @ tables.H)
        w += tables.base
        if prior is not None:  # (the uniform prior adds zeros)
            w += prior[sl, None]
        mode = w.argmax(axis=1)  # where the sums for the quantiles of each row start
        m = w[np.arange(w.shape[0]), mode]
        w -= m[:, None]
        lo, hi = _band(w)
        e = _exp_band(w, lo, hi)  # unnormalised conditional posteriors, max 1 per row
        total = e.sum(axis=1)
        log_z[sl] = m + np.log(total)
        # p(N | G) = e / total, so the weight of row e is mix_weight / total
        if log_mix is None:
            top = float(m.max())
            if top > ref0:
                acc *= math.exp(ref0 - top)
                ref0 = top
            acc[0] += np.exp(m - ref0) @ e
        else:
            acc += (np.exp(log_mix[sl] - ref) / total[:, None]).T @ e
        if start < n_quantiles:
            for r in range(min(n_quantiles - start, e.shape[0])):
                idx = np.minimum(_search_cumsum(e[r], lo[r], hi[r], qs * total[r],
                                                 first=mode[r] + 256), last)
                quant[start + r] = tables.n[idx]
    return acc / acc.sum(axis=1, keepdims=True), log_z, quant


# --------------------------------------------------------------------------- enumeration
#: With enumeration on long grids, graphs whose posterior probability on a coarse pass is below
#: this are left out of the fine pass (their total weight is below ``n_graphs * PRUNE``).
PRUNE = 1e-12
_COARSE_POINTS = 2048
#: ... and graphs below this probability get their conditional quantiles from the coarse pass.
QUANTILE_PROB = 1e-6


def _enumerate(tables: _Tables, graphs: Sequence[Decomposition], qs: np.ndarray):
    """Exact model average. On long grids a first pass over every ``step``-th grid value gives
    each graph's approximate probability; graphs below :data:`PRUNE` keep those coarse values
    (probability and conditional quantiles) and are left out of the fine pass and the average;
    graphs below :data:`QUANTILE_PROB` get coarse conditional quantiles."""
    step = tables.grid.size // _COARSE_POINTS
    if step < 4:
        pmfs, log_z, quant = _mix_graphs(tables, graphs, qs)
        return pmfs[0], np.exp(log_z - _logsumexp_rows(log_z[None, :])[0]), quant
    _, log_z, quant = _mix_graphs(tables.every(step), graphs, qs)
    log_p = log_z - _logsumexp_rows(log_z[None, :])[0]
    keep = np.flatnonzero(log_p >= math.log(PRUNE))
    keep = keep[np.argsort(-log_p[keep], kind="stable")]
    n_exact = int(np.sum(log_p >= math.log(QUANTILE_PROB)))
    pmfs, log_z_keep, quant_keep = _mix_graphs(tables, [graphs[i] for i in keep], qs, n_quantiles=n_exact)
    quant_keep[n_exact:] = quant[keep[n_exact:]]
    log_z[keep], quant[keep] = log_z_keep, quant_keep
    return pmfs[0], np.exp(log_z - _logsumexp_rows(log_z[None, :])[0]), quant


# --------------------------------------------------------------------------- MCMC over graphs
class _GraphSampler:
    """Metropolis over decomposable graphs with N summed out: propose toggling one uniformly
    chosen edge; stay if the new graph is not chordal, else accept with probability
    ``min(1, p(G') p(y | G') / (p(G) p(y | G)))`` (symmetric proposal)."""

    def __init__(self, tables: _Tables, k: int):
        self.t = tables
        self.k = k
        self.n_pairs = len(edge_pairs(k))
        self.cache: dict[int, tuple[Decomposition, float] | None] = {}

    def lookup(self, edges: int) -> tuple[Decomposition, float] | None:
        hit = self.cache.get(edges, False)
        if hit is not False:
            return hit
        d = decompose(adjacency(edges, self.k), edges)
        out = None
        if d is not None:
            H = self.t.H
            w = self.t.base.copy()
            for c in d.cliques:
                w += H[c]
            for s in d.separators:
                w -= H[s]
            lp = 0.0 if self.t.log_prior_graph is None else self.t.log_prior_graph(edges)
            if lp > -math.inf:  # a graph the prior excludes is treated as not decomposable
                w += lp
                m = float(w.max())
                w -= m
                out = (d, m + math.log(float(np.exp(w, out=w).sum())))
        self.cache[edges] = out
        return out

    def start(self, rng: np.random.Generator, moves: int) -> int:
        """A random decomposable graph: ``moves`` random legal edge toggles from the empty graph."""
        edges = 0
        for e in rng.integers(self.n_pairs, size=moves):
            new = edges ^ (1 << int(e))
            if (decompose(adjacency(new, self.k)) is not None
                    and (self.t.log_prior_graph is None or self.lookup(new) is not None)):
                edges = new
        if self.lookup(edges) is None:
            raise InputError("graph_prior excludes the graphs the sampler starts from",
                             [Problem("graph_prior", None, "custom",
                                      "a prior under which the empty graph is possible")])
        return edges

    def run(self, edges: int, steps: int, burn: int, thin: int, rng: np.random.Generator):
        cur = self.lookup(edges)
        assert cur is not None
        cur_lz = cur[1]
        proposals = rng.integers(self.n_pairs, size=burn + steps)
        log_u = np.log(rng.random(burn + steps))
        visits: Counter[int] = Counter()
        trace = []
        accepted = 0
        for t in range(burn + steps):
            new = edges ^ (1 << int(proposals[t]))
            hit = self.lookup(new)
            if hit is not None and log_u[t] < hit[1] - cur_lz:
                edges, cur_lz = new, hit[1]
                accepted += t >= burn
            if t >= burn:
                visits[edges] += 1
                if (t - burn) % thin == thin - 1:
                    trace.append(edges)
        return visits, trace, accepted / max(steps, 1)


def _mcmc(tables: _Tables, k: int, qs: np.ndarray, chains: int, steps: int, burn: int,
          draws: int, rng: np.random.Generator):
    sampler = _GraphSampler(tables, k)
    thin = max(1, steps // draws)
    visits: Counter[int] = Counter()
    traces, accept, per_chain = [], [], []
    for _ in range(chains):
        start = sampler.start(rng, moves=4 * sampler.n_pairs)
        v, trace, acc = sampler.run(start, steps, burn, thin, rng)
        visits.update(v)
        per_chain.append(v)
        traces.append(trace[:draws])
        accept.append(acc)
    keys = sorted(visits, key=lambda e: -visits[e])
    graphs = [sampler.cache[e][0] for e in keys]
    counts = np.array([[v[e] for v in per_chain] + [visits[e]] for e in keys], dtype=float)
    with np.errstate(divide="ignore"):
        log_mix = np.log(counts)
    pmfs, log_z, quant = _mix_graphs(tables, graphs, qs, log_mix, n_quantiles=MCMC_TABLE_QUANTILES)
    return dict(pmf=pmfs[-1], chain_pmfs=pmfs[:-1], graphs=graphs, keys=keys,
                freq=counts[:, -1] / counts[:, -1].sum(), log_z=log_z, quant=quant, traces=traces,
                accept=accept, n_evaluated=sum(v is not None for v in sampler.cache.values()))


# --------------------------------------------------------------------------- public API
def _check_input(h: CaptureHistories, delta: float | None, level: float,
                 search: str) -> tuple[np.ndarray, float]:
    if not isinstance(h, CaptureHistories):
        raise InputError("fit_graphical takes CaptureHistories",
                         [Problem("h", None, type(h).__name__, "tipstat.CaptureHistories")])
    problems = []
    y = np.asarray(h.counts, dtype=float)
    if h.k < 2:
        problems.append(Problem("lists", None, h.k, "at least 2 lists"))
    if np.any(y != np.round(y)):
        problems.append(Problem("count", None, None, "integer counts (not expected counts)"))
    if y.sum() <= 0:
        problems.append(Problem("count", None, float(y.sum()), "at least one observed person"))
    d = 2.0 ** -h.k if delta is None else delta
    if not (isinstance(d, int | float) and math.isfinite(d) and d > 0):
        problems.append(Problem("delta", None, delta, "a positive number (dga suggests 2**-K)"))
    if not is_level(level):
        problems.append(Problem("level", None, level, "a number between 0 and 1"))
    if search not in ("auto", "enumerate", "mcmc"):
        problems.append(Problem("search", None, search, "'auto', 'enumerate' or 'mcmc'"))
    if problems:
        raise InputError("invalid input to fit_graphical", problems)
    return y, float(d)


def fit_graphical(
    h: CaptureHistories,
    *,
    level: float = 0.95,
    ci: str = "equal_tailed",
    seed: int = DEFAULT_SEED,
    search: str = "auto",
    delta: float | None = None,
    prior_n: str | Callable[[np.ndarray], np.ndarray] = "1/N",
    n_missing: Sequence[float] | np.ndarray | None = None,
    draws: int = 1000,
    chains: int = 4,
    steps: int | None = None,
    burn: int | None = None,
    graph_prior: float | Callable[[tuple[tuple[str, str], ...]], float] | None = None,
    check: bool = True,
) -> Estimate:
    """Population size by Bayesian averaging over decomposable graphical models.

    Madigan & York (1997), as HRDAG's R package dga (``bma.cr``), extended beyond 5 lists by a
    Metropolis sampler over decomposable graphs. With ``n_0 = N - n_obs`` on a grid,

    .. math::

        p(N \\mid y) \\propto p(N) \\sum_G p(G) \\frac{N!}{n_0! \\prod_x y_x!}
            \\frac{\\prod_{C \\in G} h_C}{\\prod_{S \\in G} h_S},

    where ``h_A`` is the Dirichlet-multinomial marginal likelihood of the marginal table on the
    vertex set ``A`` under a hyper-Dirichlet prior with ``delta`` prior observations per cell of
    the full table (see the module docstring). Strata are pooled.

    Parameters
    ----------
    h : CaptureHistories
        The capture histories (K >= 2 lists; pooled over strata).
    delta : float, optional
        Hyper-Dirichlet prior weight per cell of the ``2**K`` table; default ``2**-K`` (dga's
        suggestion: one prior observation in total).
    prior_n : {"1/N", "rissanen", "uniform"} or callable
        Prior on N (see :func:`log_prior_n`); dga's default is ``"1/N"``.
    n_missing : array of int, optional
        Grid of undetected counts ``n_0`` (dga's ``Nmissing``), increasing. Each point stands for
        the width around it (the step of a regular grid). Default :func:`default_grid`: every
        integer to 2,000, then 0.2% steps up to 100,000 ``n_obs``. A coarse regular grid
        over-weights the spike of the posterior at ``n_0 = 0`` that sparse tables have.
    level : float
        Level of the posterior interval.
    ci : {"equal_tailed"}
        Interval method: the equal-tailed posterior interval.
    seed : int
        Seed of the draws and of the MCMC (default :data:`tipstat.models.DEFAULT_SEED`).
    search : {"auto", "enumerate", "mcmc"}
        How the graphs are explored: ``"auto"`` enumerates all decomposable graphs when
        K <= :data:`ENUMERATE_UP_TO` and samples them by MCMC otherwise.
    draws, chains : int
        Posterior draws per chain stored in ``idata`` / ``draws``. With enumeration they are
        sampled exactly from the grid posterior; with MCMC they are the thinned chains.
    steps, burn : int, optional
        MCMC iterations per chain after burn-in (default ``max(20 * draws, 500 * K(K-1)/2)``)
        and burn-in (default ``steps // 5``).
    graph_prior : float or callable, optional
        Prior over the decomposable graphs (dga's ``log.prior.model.weights``). ``None``
        (default): uniform. A number ``q`` in (0, 1): each list pair is an edge with
        probability ``q``, independently, restricted to decomposable graphs (``p(G) ∝
        q^|E| (1 - q)^(P - |E|)``; ``q < 0.5`` favours sparse graphs). A callable receives the
        graph's edges as pairs of list names and returns its log prior weight (up to a
        constant; ``-inf`` excludes the graph).
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` to the result
        (the table's: sparse table, two lists; on the pooled table when stratified). False for inner fits.

    Returns
    -------
    Estimate
        ``n_hat`` = posterior median, ``ci`` = equal-tailed interval, ``se`` = posterior SD;
        ``diagnostics["models"]``: one row per graph, most probable first (posterior probability,
        median and interval of N given the graph; with MCMC ``prob`` is the visit frequency,
        ``prob_visited`` the exact probability renormalised over the visited graphs, and the
        conditional quantiles are given for the 1,000 most visited graphs);
        ``diagnostics["posterior"]``: the grid posterior of N; ``tail_mass_top1pct`` (mass in the
        top 1% of the grid range, as in dga's checks) and ``tail_mass_beyond_grid`` (power-law
        extrapolation; a warning above 1e-3); for MCMC also ``rhat``, ``ess_bulk``, ``ess_tail``
        (of N, :func:`tipstat.models.sampling.convergence`), ``acceptance``, ``chain_medians``,
        ``graphs_visited``, ``term_probabilities``.
        ``idata`` has ``N`` and ``graph`` (row of ``diagnostics["models"]``) as variables.
        What the posterior rests on: ``not_identified_mass``, ``nobody_missed_mass``,
        ``prior_shift`` (caveats ``not_identified_mass``, ``prior_driven``, status
        ``lower_bound``) and ``ppp``, the posterior predictive p-value of the observed cells
        from the draws of (graph, N) (:func:`tipstat.models.posterior_checks.predictive_check`;
        caveat ``lack_of_fit`` outside [0.05, 0.95]).

    Examples
    --------
    >>> import tipstat
    >>> est = tipstat.fit_graphical(tipstat.datasets.load("Spina_3"), seed=1)
    >>> est.n_hat, est.ci
    (725.0, (686.0, 784.0))
    >>> bool(est.diagnostics["models"].prob.iloc[0] > 0.5)
    True
    """
    y, d = _check_input(h, delta, level, search)
    check_ci(ci, ("equal_tailed",), "fit_graphical")
    seed = check_seed(seed, "fit_graphical")
    k = h.k
    grid = default_grid(float(y.sum())) if n_missing is None else _check_grid(n_missing)
    if callable(prior_n):
        prior_label = getattr(prior_n, "__name__", "custom")
    else:
        log_prior_n(np.array([1.0]), prior_n)  # validates the name
        prior_label = prior_n
    for name, value in (("draws", draws), ("chains", chains), ("steps", steps), ("burn", burn)):
        low = 0 if name == "burn" else 1
        if value is not None and (not isinstance(value, int | np.integer) or value < low):
            raise InputError("invalid sampling option", [Problem(name, None, value, "a positive integer")])
    if search == "auto":
        search = "enumerate" if k <= ENUMERATE_UP_TO else "mcmc"
    if search == "enumerate" and k > ENUMERATE_UP_TO + 1:
        raise InputError("too many lists to enumerate every decomposable graph",
                         [Problem("search", None, search, f"'mcmc' for K > {ENUMERATE_UP_TO + 1}")])

    rng = generator(seed)
    alpha = (1 - level) / 2
    qs = np.array([alpha, 0.5, 1 - alpha])
    tables = _Tables(y, k, d, grid, prior_n, _graph_prior(graph_prior, h.lists))
    n = tables.n
    diagnostics: dict = {"delta": d, "prior_n": prior_label, "grid_size": int(grid.size),
                         "grid_max": float(grid[-1]), "search": search}
    warns: list[str] = []  # of Caveat (a str)

    if graph_prior is not None:
        diagnostics["graph_prior"] = graph_prior if isinstance(graph_prior, int | float) \
            else getattr(graph_prior, "__name__", "custom")
    if search == "enumerate":
        graphs = enumerate_decomposable(k)
        if tables.log_prior_graph is not None:
            keep = np.isfinite(tables.graph_prior(graphs))
            diagnostics["graphs_excluded_by_prior"] = int((~keep).sum())
            graphs = [g for g, ok in zip(graphs, keep, strict=True) if ok]
            if not graphs:
                raise InputError("graph_prior excludes every graph",
                                 [Problem("graph_prior", None, diagnostics["graph_prior"],
                                          "a prior that leaves some graph possible")])
        pmf, probs, quant = _enumerate(tables, graphs, qs)
        order = np.argsort(-probs, kind="stable")
        model = (f"BMA over {len(graphs)} decomposable graphs (enumerated), delta={d:g}, "
                 f"prior N: {prior_label}")
        graph_idx = rng.choice(len(graphs), size=(chains, draws), p=probs[order] / probs.sum())
        table_graphs = [graphs[i] for i in order]
        table = pd.DataFrame({
            "graph": _graph_labels(table_graphs, h.lists),
            "prob": probs[order],
            "n_median": quant[order, 1],
            "n_lower": quant[order, 0],
            "n_upper": quant[order, 2],
        })
        N_draws = _draw_given_graphs(tables, table_graphs, graph_idx, rng)
    else:
        n_pairs = k * (k - 1) // 2
        steps = steps if steps is not None else max(20 * draws, 500 * n_pairs)
        burn = burn if burn is not None else steps // 5
        if steps < draws:
            raise InputError("steps must be at least draws",
                             [Problem("steps", None, steps, f">= draws ({draws})")])
        res = _mcmc(tables, k, qs, chains, steps, burn, draws, rng)
        pmf = res["pmf"]
        table_graphs = res["graphs"]
        rel = np.exp(res["log_z"] - _logsumexp_rows(res["log_z"][None, :])[0])
        table = pd.DataFrame({
            "graph": _graph_labels(table_graphs, h.lists),
            "prob": res["freq"],
            "prob_visited": rel,
            "n_median": res["quant"][:, 1],
            "n_lower": res["quant"][:, 0],
            "n_upper": res["quant"][:, 2],
        })
        pos = {e: i for i, e in enumerate(res["keys"])}
        graph_idx = np.array([[pos[e] for e in tr] for tr in res["traces"]])
        N_draws = _draw_given_graphs(tables, table_graphs, graph_idx, rng)
        model = (f"BMA over decomposable graphs (MCMC: {chains} chains x {steps} steps, "
                 f"{len(table_graphs)} graphs visited), delta={d:g}, prior N: {prior_label}")
        pairs = edge_pairs(k)
        edge_p = np.zeros(len(pairs))
        for e, f in zip(res["keys"], res["freq"], strict=True):
            for j in range(len(pairs)):
                if e >> j & 1:
                    edge_p[j] += f
        diagnostics.update(
            acceptance=res["accept"],
            graphs_visited=len(table_graphs),
            graphs_evaluated=res["n_evaluated"],
            steps=steps, burn=burn,
            term_probabilities={f"{h.lists[i]}:{h.lists[j]}": float(p)
                                for (i, j), p in zip(pairs, edge_p, strict=True)},
        )
        diagnostics["chain_medians"] = [grid_quantile(n, np.cumsum(p), 0.5) for p in res["chain_pmfs"]]

    cdf = np.cumsum(pmf)
    n_hat = grid_quantile(n, cdf, 0.5)
    lo, hi = grid_quantile(n, cdf, alpha), grid_quantile(n, cdf, 1 - alpha)
    mean = float(pmf @ n)
    sd = float(math.sqrt(max(pmf @ (n - mean) ** 2, 0.0)))
    top = n >= n[0] + 0.99 * (n[-1] - n[0])
    beyond = _tail_beyond(n, pmf, tables.widths)
    diagnostics.update(models=table, posterior=pd.DataFrame({"N": n, "prob": pmf}),
                       posterior_mean=mean, tail_mass_top1pct=float(pmf[top].sum()),
                       tail_mass_beyond_grid=beyond)
    if beyond > 1e-3:
        warns.append(f"about {beyond:.2g} of the posterior mass of N lies beyond the grid "
                     f"(n_0 > {grid[-1]:,.0f}): extend n_missing")

    import arviz as az

    idata = az.from_dict(posterior={"N": N_draws, "graph": graph_idx},
                         attrs={"method": "graphical", "model": model, "seed": str(seed)})
    if search == "mcmc":
        conv = convergence(idata, "N")  # (a Metropolis walk: no divergences to count)
        diagnostics.update(rhat=conv["rhat"], ess_bulk=conv["ess_bulk"], ess_tail=conv["ess_tail"])
        if chains > 1 and diagnostics["rhat"] > 1.01:
            warns.append(Caveat("convergence", f"R-hat of N is {diagnostics['rhat']:.3f} > 1.01: "
                                "run longer chains (steps)",
                                {"rhat": diagnostics["rhat"], "threshold": 1.01}))
        spread = (max(diagnostics["chain_medians"]) - min(diagnostics["chain_medians"])) / n_hat
        if spread > 0.02:
            warns.append(Caveat("convergence", f"chain medians of N differ by {100 * spread:.1f}%: "
                                "run longer chains", {"spread": spread, "threshold": 0.02}))
    found, status = _rests_on(table, k, h.lists, float(y.sum()), n, pmf, (lo, hi), prior_n,
                              level, diagnostics)
    warns += found
    fit_check = _predictive(y, k, d, table_graphs, graph_idx, N_draws, seed)
    diagnostics["ppp"] = fit_check.ppp
    lack = ppp_caveat(fit_check, "the averaged graphs")
    if lack is not None:
        warns.append(lack)
    est = Estimate(
        n_hat=n_hat, ci=(lo, hi), level=level, n_observed=float(y.sum()), method="graphical",
        model=model, status="ok", ci_method="posterior equal-tailed", se=sd,
        diagnostics=diagnostics, draws=N_draws.ravel(), idata=idata, seed=seed,
        warnings=tuple(warns),
    )
    if status == "lower_bound":
        est = est.as_lower_bound()
    return attach_checks(est, h, check=check)


def _rests_on(table: pd.DataFrame, k: int, lists: Sequence[str], n_obs: float, n: np.ndarray,
              pmf: np.ndarray, ci: tuple[float, float], prior_n: Any, level: float,
              diagnostics: dict) -> tuple[list[Caveat], str]:
    """What the posterior rests on: its mass on the complete graph (N not identified there),
    on N = observed, and how far the interval's upper end moves under a second prior on N.

    The prior on N enters the joint posterior of (graph, N) as a factor of N alone, so the
    posterior of N under a second prior ``p2`` is exactly ``p(N | y) p2(N) / p1(N)`` on the
    grid: no refit. The second prior is the first times N (``1/N`` -> flat; a callable or
    Rissanen's prior likewise), or ``1/N`` when the first is flat. Adds ``not_identified_mass``,
    ``nobody_missed_mass`` and ``prior_shift`` to ``diagnostics``; returns the caveats and the
    status (``"lower_bound"`` when more than :data:`LOWER_BOUND_MASS` of the posterior is on
    the complete graph).
    """
    full = "[" + ",".join(lists) + "]"
    prob = table["prob"].to_numpy()
    mass = float(prob[(table["graph"] == full).to_numpy()].sum()) if k > 1 else 0.0
    nobody = float(pmf[0]) if n[0] == n_obs else 0.0
    second = n if prior_n != "uniform" else 1.0 / n
    pmf2 = pmf * second
    pmf2 /= pmf2.sum()
    alpha = (1 - level) / 2
    hi2 = grid_quantile(n, np.cumsum(pmf2), 1 - alpha)
    diagnostics.update(not_identified_mass=mass, nobody_missed_mass=nobody)
    out: list[Caveat] = []
    if mass > NOT_IDENTIFIED_WARN:
        msg = (f"{100 * mass:.0f}% of the posterior is on the complete graph, under which N is "
               "not identified (its posterior there is the prior's)")
        if nobody > 0.01:
            msg += f"; {100 * nobody:.0f}% is on N = {n_obs:,.0f} (nobody missed)"
        out.append(Caveat("not_identified_mass", msg,
                          {"share": mass, "nobody_missed": nobody,
                           "threshold": NOT_IDENTIFIED_WARN}))
    shifted = prior_shift_caveat(ci[1], hi2, "on N", "flat" if prior_n != "uniform" else "1/N",
                                 diagnostics)
    if shifted is not None:
        out.append(shifted)
    status = "ok"
    if mass > LOWER_BOUND_MASS:
        status = "lower_bound"
        out.append(Caveat("lower_bound_only", (
            f"the data support only a lower bound on N: {100 * mass:.0f}% of the posterior is on "
            "a graph under which N is not identified"),
            {"share": mass, "threshold": LOWER_BOUND_MASS}))
    return out, status


def _graph_prior(spec: Any, lists: Sequence[str]) -> Callable[[int], float] | None:
    """The log prior of a graph (by edge mask) from ``fit_graphical``'s ``graph_prior``."""
    if spec is None:
        return None
    pairs = edge_pairs(len(lists))
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        q = float(spec)
        if not 0 < q < 1:
            raise InputError("graph_prior must be an edge probability in (0, 1)",
                             [Problem("graph_prior", None, spec, "a number in (0, 1) or a callable")])
        a, b = math.log(q), math.log1p(-q)
        return lambda edges: edges.bit_count() * a + (len(pairs) - edges.bit_count()) * b
    if not callable(spec):
        raise InputError("graph_prior must be None, an edge probability or a callable",
                         [Problem("graph_prior", None, type(spec).__name__,
                                  "None, a number in (0, 1), or f(edges) -> log weight")])

    def log_prior(edges: int) -> float:
        named = tuple((lists[i], lists[j]) for e, (i, j) in enumerate(pairs) if edges >> e & 1)
        value = float(spec(named))
        if math.isnan(value) or value == math.inf:
            raise InputError("graph_prior returned an invalid log weight",
                             [Problem("graph_prior", None, value, "a finite number or -inf")])
        return value

    return log_prior


def _tail_beyond(n: np.ndarray, pmf: np.ndarray, widths: np.ndarray) -> float:
    """Posterior mass beyond the grid, extrapolating a power-law tail ``f(N) ∝ N**-s`` fitted to
    the density at the last grid point and at the point nearest a tenth of it."""
    dens = pmf / widths
    j = int(np.searchsorted(n, n[-1] / 10))
    if j >= n.size - 1 or dens[-1] <= 0 or dens[j] <= 0:
        return 0.0 if dens[-1] <= 0 else float("inf")
    s = math.log(dens[j] / dens[-1]) / math.log(n[-1] / n[j])
    return float("inf") if s <= 1 else float(dens[-1] * n[-1] / (s - 1))


def hyper_dirichlet_shares(y: np.ndarray, k: int, delta: float, graph: Decomposition,
                           n0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Posterior draws of the cell probabilities of the ``2**K`` table under one decomposable
    graph, given complete tables whose unobserved cell is ``n0`` (one draw per entry).

    The hyper-Dirichlet posterior (Dawid & Lauritzen 1993) factorises along the cliques in
    running-intersection order ``C_1, ..., C_m`` with ``S_i = C_i ∩ (C_1 ∪ ... ∪ C_{i-1})``:
    the conditionals ``p(x_{C_i \\ S_i} | x_{S_i})`` are independent Dirichlets with parameters
    ``n_{C_i}(x_{C_i}) + delta 2**(K - |C_i|)`` over the cells that share ``x_{S_i}``, and
    ``p(x) = prod_i p(x_{C_i \\ S_i} | x_{S_i})``. Each Dirichlet is drawn as normalised Gamma
    variates.

    Returns
    -------
    array (len(n0), 2**K)
        Cell probabilities, pattern ``c`` in column ``c`` (column 0: on no list).

    Examples
    --------
    >>> import numpy as np
    >>> from tipstat.models.graphs import decompose, adjacency
    >>> g = decompose(adjacency(0, 2), 0)               # two independent lists
    >>> p = hyper_dirichlet_shares(np.array([30.0, 20.0, 10.0]), 2, 0.25, g,
    ...                            np.array([40.0] * 4000), np.random.default_rng(1))
    >>> np.round(p.mean(axis=0), 2).tolist()            # (70/100)(60/100), ...
    [0.42, 0.28, 0.18, 0.12]
    """
    n0 = np.asarray(n0, dtype=float)
    plan = _dirichlet_plan(k, graph.cliques)
    shapes = _dirichlet_shapes(y, k, delta, plan, n0)
    return _dirichlet_shares(rng.gamma(np.concatenate([a.ravel() for a in shapes])), plan,
                             n0.size, k)


@functools.lru_cache(maxsize=4096)
def _dirichlet_plan(k: int, cliques: tuple[int, ...]) -> tuple[tuple, ...]:
    """What :func:`hyper_dirichlet_shares` needs of each clique ``C`` of a graph (running
    intersection order): its size, the marginal cell ``codes`` of the ``2**K`` cells, the
    distinct codes ``uniq`` and each cell's position ``inv`` among them, each marginal cell's
    separator group ``s_inv`` and the marginal cells of every group. Depends on the graph
    only: kept per (K, cliques)."""
    cells = np.arange(2**k)
    out = []
    seen = 0
    for clique in cliques:
        sep = clique & seen
        seen |= clique
        codes = cells & clique
        uniq, inv = np.unique(codes, return_inverse=True)
        s_uniq, s_inv = np.unique(uniq & sep, return_inverse=True)
        groups = tuple(np.flatnonzero(s_inv == j) for j in range(s_uniq.size))
        out.append((clique.bit_count(), codes, uniq, inv, s_inv, groups))
    return tuple(out)


def _dirichlet_shapes(y: np.ndarray, k: int, delta: float, plan: tuple, n0: np.ndarray
                      ) -> list[np.ndarray]:
    """The Gamma shapes of each clique of ``plan`` (draws x marginal cells): the clique's
    marginal counts plus ``delta 2**(K - |C|)``, ``n0`` added to the cell of the unobserved
    pattern (``uniq[0] == 0``)."""
    full = np.concatenate([[0.0], np.asarray(y, dtype=float)])
    out = []
    for size, codes, uniq, _, _, _ in plan:
        counts = np.bincount(codes, weights=full, minlength=2**k)[uniq]
        shape = np.broadcast_to(counts + delta * 2.0 ** (k - size), (n0.size, uniq.size)).copy()
        shape[:, 0] += n0
        out.append(shape)
    return out


def _dirichlet_shares(gammas: np.ndarray, plan: tuple, n: int, k: int) -> np.ndarray:
    """Cell probabilities (``n x 2**K``) from the Gamma variates of the cliques of ``plan``,
    drawn one clique after the other (``gammas`` flat, as one ``rng.gamma`` call over the
    shapes of :func:`_dirichlet_shapes` raveled and joined draws them): each Dirichlet is its
    Gamma variates over their sum in each separator group, and ``p(x)`` the product over the
    cliques (summed as logs)."""
    log_p = np.zeros((n, 2**k))
    at = 0
    for _, _, uniq, inv, s_inv, groups in plan:
        g = gammas[at:at + n * uniq.size].reshape(n, uniq.size)
        at += n * uniq.size
        # (each group's sum over a column selection, as numpy lays it out: g.sum(axis=1)
        # would add the same numbers in another order)
        sums = np.zeros((n, len(groups)))
        for j, cols in enumerate(groups):
            sums[:, j] = g[:, cols].sum(axis=1)
        with np.errstate(divide="ignore"):
            log_p += np.log(g / sums[:, s_inv])[:, inv]
    return np.exp(log_p)


def _predictive(y: np.ndarray, k: int, delta: float, graphs: Sequence[Decomposition],
                graph_idx: np.ndarray, n_draws: np.ndarray, seed: int) -> Any:
    """Posterior predictive check (:func:`tipstat.models.posterior_checks.predictive_check`)
    from the posterior draws of (graph, N): for each, cell probabilities from the graph's
    hyper-Dirichlet posterior given the complete table, then the shares of the observed cells.
    Its own stream (``seed``, key 3): the draws of N are unchanged.

    The graphs drawn are taken in increasing order, each one's cliques in order, as a loop of
    :func:`hyper_dirichlet_shares` over them would; their Gamma variates come from one
    ``rng.gamma`` call over all the shapes, which takes the same numbers from the stream.
    """
    rng = generator(seed, 3)
    g_flat, n_flat = graph_idx.ravel(), n_draws.ravel()
    pick = np.sort(rng.choice(g_flat.size, size=min(PPP_DRAWS, g_flat.size), replace=False))
    n0 = n_flat[pick] - float(y.sum())
    g_pick = g_flat[pick]
    todo = []
    shapes: list[np.ndarray] = []
    for g in np.unique(g_pick):
        sel = g_pick == g
        plan = _dirichlet_plan(k, graphs[g].cliques)
        todo.append((sel, plan))
        shapes += [a.ravel() for a in _dirichlet_shapes(y, k, delta, plan, n0[sel])]
    gammas = rng.gamma(np.concatenate(shapes))
    shares = np.empty((pick.size, 2**k))
    at = 0
    for sel, plan in todo:
        n = int(sel.sum())
        used = n * sum(part[2].size for part in plan)
        shares[sel] = _dirichlet_shares(gammas[at:at + used], plan, n, k)
        at += used
    return predictive_check(y, shares[:, 1:], seed=rng.integers(2**63))


def _draw_given_graphs(tables: _Tables, graphs: Sequence[Decomposition], graph_idx: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Draw N from p(N | graph, y) for each entry of ``graph_idx`` (inverse CDF on the grid)."""
    u = rng.random(graph_idx.shape)
    out = np.empty(graph_idx.shape)
    for g in np.unique(graph_idx):
        w = tables.log_weights(graphs[g])
        p = np.exp(w - w.max())
        cdf = np.cumsum(p) / p.sum()
        sel = graph_idx == g
        idx = np.minimum(np.searchsorted(cdf, u[sel], side="right"), cdf.size - 1)
        out[sel] = tables.n[idx]
    return out
