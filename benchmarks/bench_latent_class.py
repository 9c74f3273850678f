"""Latent-class MSE (``tipstat.fit_latent_class``, NUTS via nutpie) timed against LCMCR's
reference timings and against PyMC's own NUTS sampler on the same model.

Target (issue 4): the posterior of N on a 5-list table with R-hat <= 1.01 and bulk ESS >= 1,000
in <= 60 s wall on 2 cores, compilation included.

- tipstat: the first call in this fresh process (model build + nutpie/numba compilation +
  4 chains x 1,000 draws after 1,000 warm-up draws, on 2 cores), then a second call on another
  5-list table (the compiled sampler is reused: the cost of each further table).
- baseline: the same model and draws with ``sampler="pymc"`` (PyMC's NUTS, C backend), in the
  same process (so it profits from PyTensor's on-disk cache of compiled C code).
- LCMCR: the ``seconds`` of the ``lcmCR`` rows of ``tests/reference/r_reference.csv`` (one
  Gibbs chain; 10,000 burn-in + 1,000 x 10 iterations, and the 100,000 + 10,000 x 20 long run;
  LCMCR reports no R-hat or ESS).

Run: python benchmarks/bench_latent_class.py
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pandas as pd

import tipstat

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference" / "r_reference.csv"
SETTINGS = {"draws": 1000, "tune": 1000, "chains": 4, "cores": 2, "seed": 1}


def _fit(name: str, **kwargs) -> tuple[tipstat.Estimate, float]:
    h = tipstat.datasets.load(name)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = tipstat.fit_latent_class(h, **{**SETTINGS, **kwargs})
    return est, time.perf_counter() - t0


def main() -> list[dict]:
    ref = pd.read_csv(REFERENCE)
    lcmcr = ref[ref.package.str.startswith("LCMCR")].set_index(["dataset", "method"])
    rows = []
    runs = [("MY_5", "nutpie", "first call: compile + sample"),
            ("NewOrleans_5", "nutpie", "second table: compiled sampler reused")]
    baseline: dict[str, float] = {}
    for name, sampler, what in runs:
        est, sec = _fit(name, sampler=sampler)
        base, base_sec = _fit(name, sampler="pymc")
        baseline[name] = base_sec
        d = est.diagnostics
        met = d["rhat"] <= 1.01 and d["ess_bulk"] >= 1000 and sec <= 60
        rows.append({
            "benchmark": f"fit_latent_class {name} ({what})",
            "target": "R-hat <= 1.01, bulk ESS >= 1000, <= 60 s",
            "met": bool(met),
            "tipstat_ms": 1e3 * sec,
            "baseline": "same model, PyMC's NUTS (sampler='pymc')",
            "baseline_ms": 1e3 * base_sec,
            "ratio": base_sec / sec,
            "lcmcr_ms": 1e3 * float(lcmcr.loc[(name, "lcmCR"), "seconds"]),
            "lcmcr_long_ms": 1e3 * float(lcmcr.loc[(name, "lcmCR (long run)"), "seconds"]),
            "ratio_vs_lcmcr_long": float(lcmcr.loc[(name, "lcmCR (long run)"), "seconds"]) / sec,
            "n_hat": est.n_hat, "ci": est.ci,
            "n_hat_lcmcr_long": float(lcmcr.loc[(name, "lcmCR (long run)"), "estimate"]),
            "rhat": d["rhat"], "ess_bulk": d["ess_bulk"], "ess_tail": d["ess_tail"],
            "divergences": d["divergences"], "rerun_chains": d["rerun_chains"],
            "n_hat_pymc": base.n_hat, "rhat_N_pymc": base.diagnostics["rhat"],
            "ess_bulk_N_pymc": base.diagnostics["ess_bulk"],
        })
    return rows


if __name__ == "__main__":
    for row in main():
        print(f"\n{row['benchmark']}  [target: {row['target']}: {'met' if row['met'] else 'NOT met'}]")
        print(f"  tipstat (nutpie)   {row['tipstat_ms'] / 1e3:7.1f} s   N-hat {row['n_hat']:,.0f} "
              f"[{row['ci'][0]:,.0f}, {row['ci'][1]:,.0f}]  R-hat {row['rhat']:.4f}  "
              f"ESS bulk {row['ess_bulk']:,.0f} tail {row['ess_tail']:,.0f}  "
              f"divergences {row['divergences']}  re-run chains {row['rerun_chains']}")
        print(f"  baseline (PyMC)    {row['baseline_ms'] / 1e3:7.1f} s   N-hat {row['n_hat_pymc']:,.0f}  "
              f"R-hat {row['rhat_N_pymc']:.4f}  ESS bulk {row['ess_bulk_N_pymc']:,.0f}   "
              f"ratio baseline/tipstat {row['ratio']:.2f}")
        print(f"  LCMCR (reference)  {row['lcmcr_ms'] / 1e3:7.1f} s (default run), "
              f"{row['lcmcr_long_ms'] / 1e3:.1f} s (long run; N-hat {row['n_hat_lcmcr_long']:,.0f}); "
              f"ratio long run/tipstat {row['ratio_vs_lcmcr_long']:.2f}")
