"""Graphical model averaging (Madigan & York) timed against dga's reference timings and an
in-process naive implementation. Targets (issue 4): >= 10x faster than dga on UK_5 (16 s) and
Netherlands_5 (39 s) on dga's own grids, and NewOrleans_8 (8 lists, MCMC over decomposable
graphs) in <= 60 s.

- 5 lists: ``fit_graphical`` with the reference row's ``delta`` and ``Nmissing`` grid, beside the
  ``seconds`` of the dga row in ``tests/reference/r_reference.csv`` (a 2-core machine with
  other jobs, as here), and beside a naive in-process version that, like dga's R loop, builds
  each graph's clique and separator marginal tables and their log-gamma terms from scratch
  (no sharing of vertex-set terms between graphs, no matrix product).
- 8 lists: the full MCMC fit; baseline = the same decomposability / clique / separator step done
  with networkx (``is_chordal`` + ``chordal_graph_cliques`` + a junction tree by maximum
  spanning tree) on the same random graph proposals.

Run: python benchmarks/bench_graphical.py
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import gammaln

import tipstat
from tipstat.models.graphical import fit_graphical
from tipstat.models.graphs import adjacency, decompose, edge_pairs, enumerate_decomposable

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference" / "r_reference.csv"


def naive_bma(y: np.ndarray, k: int, delta: float, grid: np.ndarray) -> np.ndarray:
    """Posterior of N by a plain loop over graphs, cliques and separators (the baseline)."""
    cells = np.arange(2**k)
    full = np.concatenate([[0.0], y])
    n_obs = y.sum()
    total = delta * 2**k

    def log_h(a: int) -> np.ndarray:
        alpha = delta * 2 ** (k - a.bit_count())
        marg = np.bincount(cells & a, weights=full, minlength=2**k)
        out = gammaln(marg[0] + grid + alpha) - gammaln(alpha)
        for m in marg[1:]:
            if m > 0:
                out = out + gammaln(m + alpha) - gammaln(alpha)
        return out + gammaln(total) - gammaln(n_obs + grid + total)

    base = gammaln(n_obs + grid + 1) - gammaln(grid + 1) - np.sum(gammaln(y + 1)) - np.log(n_obs + grid)
    rows = []
    for g in enumerate_decomposable(k):
        w = base.copy()
        for c in g.cliques:
            w += log_h(c)
        for s in g.separators:
            w -= log_h(s)
        rows.append(w)
    w = np.array(rows)
    p = np.exp(w - w.max()).sum(axis=0)
    return p / p.sum()


def networkx_step(edges: int, k: int):
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(k))
    g.add_edges_from(p for e, p in enumerate(edge_pairs(k)) if edges >> e & 1)
    if not nx.is_chordal(g):
        return None
    cliques = [frozenset(c) for c in nx.chordal_graph_cliques(g)]
    jt = nx.Graph()
    jt.add_nodes_from(range(len(cliques)))
    for i in range(len(cliques)):
        for j in range(i + 1, len(cliques)):
            s = cliques[i] & cliques[j]
            if s:
                jt.add_edge(i, j, weight=len(s))
    tree = nx.maximum_spanning_tree(jt)
    return cliques, [cliques[i] & cliques[j] for i, j in tree.edges]


def main() -> list[dict]:
    ref = pd.read_csv(REFERENCE)
    rows = []
    for name in ("UK_5", "Netherlands_5"):
        r = ref[(ref.dataset == name) & ref.package.str.startswith("dga")].iloc[0]
        m = re.search(r"Nmissing grid (\d+)\.\.(\d+) step (\d+)", r.notes)
        grid = np.arange(int(m[1]), int(m[2]) + 1, int(m[3]))
        delta = float(re.search(r"delta=([0-9.]+)", r.model)[1])
        h = tipstat.datasets.load(name)
        fit_graphical(h, delta=delta, n_missing=grid[:100], draws=10)  # imports, graph list
        t0 = time.perf_counter()
        est = fit_graphical(h, delta=delta, n_missing=grid, seed=1)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        pmf = naive_bma(np.asarray(h.counts, float), h.k, delta, grid.astype(float))
        t_naive = time.perf_counter() - t0
        n = grid + h.n_observed
        naive_median = float(n[np.searchsorted(np.cumsum(pmf), 0.5, side="right")])
        rows.append({
            "benchmark": f"fit_graphical {name} (822 graphs, grid {grid.size})",
            "target": ">= 10x faster than dga",
            "tipstat_ms": 1e3 * t_ours, "baseline": "naive loop over graphs (in-process)",
            "baseline_ms": 1e3 * t_naive, "ratio": t_naive / t_ours,
            "dga_ms": 1e3 * float(r.seconds), "ratio_vs_dga": float(r.seconds) / t_ours,
            "n_hat": est.n_hat, "ci": est.ci, "n_hat_dga": float(r.estimate),
            "ci_dga": (float(r.lower), float(r.upper)), "n_hat_naive": naive_median,
        })

    h = tipstat.datasets.load("NewOrleans_8")
    t0 = time.perf_counter()
    est = fit_graphical(h, seed=1)
    t_ours = time.perf_counter() - t0
    d = est.diagnostics
    # the graph step on the same kind of proposals: random walks of single-edge toggles
    rng = np.random.default_rng(0)
    k = h.k
    proposals = []
    edges = 0
    for e in rng.integers(len(edge_pairs(k)), size=5000):
        new = edges ^ (1 << int(e))
        proposals.append(new)
        if decompose(adjacency(new, k)) is not None:
            edges = new
    t0 = time.perf_counter()
    ours = [decompose(adjacency(p, k), p) for p in proposals]
    t_step_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = [networkx_step(p, k) for p in proposals]
    t_step_nx = time.perf_counter() - t0
    assert [o is None for o in ours] == [t is None for t in theirs]
    rows.append({
        "benchmark": "fit_graphical NewOrleans_8 (MCMC, 4 chains)", "target": "<= 60 s",
        "tipstat_ms": 1e3 * t_ours, "baseline": "networkx chordality+cliques+junction tree, 5000 moves",
        "baseline_ms": 1e3 * t_step_nx, "ratio": t_step_nx / t_step_ours,
        "graph_step_ms": 1e3 * t_step_ours, "n_hat": est.n_hat, "ci": est.ci,
        "rhat": d["rhat"], "ess_bulk": d["ess_bulk"], "graphs_visited": d["graphs_visited"],
    })
    return rows


if __name__ == "__main__":
    for r in main():
        line = (f"{r['benchmark']:48s} tipstat {r['tipstat_ms'] / 1e3:7.2f} s | N-hat {r['n_hat']:.0f} "
                f"[{r['ci'][0]:.0f}, {r['ci'][1]:.0f}]")
        if "dga_ms" in r:
            line += (f" | dga {r['dga_ms'] / 1e3:.2f} s (N-hat {r['n_hat_dga']:.0f} [{r['ci_dga'][0]:.0f}, "
                     f"{r['ci_dga'][1]:.0f}]): {r['ratio_vs_dga']:.1f}x | {r['baseline']} "
                     f"{r['baseline_ms'] / 1e3:.2f} s (N-hat {r['n_hat_naive']:.0f}): {r['ratio']:.1f}x")
        else:
            line += (f" | R-hat {r['rhat']:.3f} ESS {r['ess_bulk']:.0f}, {r['graphs_visited']} graphs"
                     f" | graph step: tipstat {r['graph_step_ms']:.0f} ms vs {r['baseline']} "
                     f"{r['baseline_ms']:.0f} ms: {r['ratio']:.1f}x")
        print(line + f" | target {r['target']}")
