"""Bayesian log-linear model (``tipstat.fit_bayes_loglinear``, horseshoe, NUTS via nutpie):
the cost of a further table once the model's graph is compiled.

Compiling the PyMC model for nutpie (PyTensor -> numba) costs several seconds; sampling it a
second or two. tipstat keeps the compiled model per (lists, design, prior constants) and re-uses
it with the next table's counts, so strata, internal-consistency sub-tables, bootstrap or
simulation replicates with the same lists pay the compilation once.

- tipstat: the fit of a second simulated table with the same lists (compiled model re-used),
  at K = 4, 6 and 8 lists (N = 2,000, independent lists, p = 0.25), 2 chains x 400 draws after
  300 warm-up draws, one core (the coverage study's settings).
- baseline: the same fit, same seed, after :func:`clear_compiled_cache` (compiled anew), in the
  same process. ``identical`` checks that both give the same draws of N.

Run: python benchmarks/bench_bayes_loglinear.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import tipstat
from tipstat.models.bayes_loglinear import clear_compiled_cache
from tipstat.simulate import populations

SETTINGS = {"draws": 400, "tune": 300, "chains": 2, "cores": 1, "seed": 7}


def _table(k: int, seed: int) -> tipstat.CaptureHistories:
    return populations(n=2000, k=k, p=0.25, seed=seed).histories


def _fit(h: tipstat.CaptureHistories) -> tuple[tipstat.Estimate, float]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = tipstat.fit_bayes_loglinear(h, **SETTINGS)
    return est, time.perf_counter() - t0


def main() -> list[dict]:
    rows = []
    for k in (4, 6, 8):
        first, second = _table(k, 1), _table(k, 2)
        clear_compiled_cache()
        _fit(first)                        # compiles the graph of K lists
        reused, t_reused = _fit(second)    # re-uses it
        clear_compiled_cache()
        fresh, t_fresh = _fit(second)      # compiles it again
        rows.append({
            "benchmark": f"fit_bayes_loglinear K = {k}, a further table with the same lists",
            "target": "same draws as a fresh compilation, faster",
            "tipstat_ms": t_reused * 1e3,
            "baseline": "same fit compiled anew (clear_compiled_cache)",
            "baseline_ms": t_fresh * 1e3,
            "ratio": t_fresh / t_reused,
            "met": bool(np.array_equal(reused.draws, fresh.draws)) and t_reused < t_fresh,
            "identical": bool(np.array_equal(reused.draws, fresh.draws)),
            "n_hat": reused.n_hat,
        })
    clear_compiled_cache()
    return rows


if __name__ == "__main__":
    for row in main():
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()))
