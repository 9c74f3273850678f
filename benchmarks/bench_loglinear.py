"""One log-linear fit on UK_6 (6 lists, 63 cells): tipstat vs statsmodels' Poisson GLM on the same
design, in the same process. Target (issue 2): <= 0.5 ms per fit and >= 4x faster.

Both sides compute the point estimate and its standard error (tipstat also runs its existence
check); the profile-likelihood interval is timed separately.

Run: python benchmarks/bench_loglinear.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import tipstat
from tipstat.models.design import loglinear_design


def per_call(func, min_time: float = 1.0, clock=time.perf_counter) -> float:
    """Mean seconds per call over >= ``min_time`` of wall time, on ``clock`` (wall or CPU: on a
    loaded machine the CPU time of this process is the steadier measure)."""
    func()
    n, start, c0 = 0, time.perf_counter(), clock()
    while time.perf_counter() - start < min_time:
        func()
        n += 1
    return (clock() - c0) / n


def main() -> list[dict]:
    import statsmodels.api as sm

    h = tipstat.datasets.load("UK_6")
    y = np.asarray(h.counts, float)
    rows = []
    for terms in ("independence", "all2"):
        X = loglinear_design(h.lists, terms).observable

        def ours(terms=terms):
            return tipstat.fit_loglinear(h, terms, ci="wald")

        def theirs(X=X):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = sm.GLM(y, X, family=sm.families.Poisson()).fit()
            return h.n_observed + np.exp(res.params[0]), res.bse[0]

        t_ours, t_theirs = per_call(ours), per_call(theirs)
        cpu_ours = per_call(ours, clock=time.process_time)
        cpu_theirs = per_call(theirs, clock=time.process_time)
        est = ours()
        n_sm = theirs()[0]
        t_profile = per_call(lambda terms=terms: tipstat.fit_loglinear(h, terms), 2.0)
        rows.append({"benchmark": f"fit_loglinear UK_6 {terms}", "target": "<= 0.5 ms, >= 4x",
                     "tipstat_ms": 1e3 * t_ours, "baseline": "statsmodels GLM Poisson",
                     "baseline_ms": 1e3 * t_theirs, "ratio": t_theirs / t_ours,
                     "tipstat_cpu_ms": 1e3 * cpu_ours, "baseline_cpu_ms": 1e3 * cpu_theirs,
                     "profile_ci_ms": 1e3 * t_profile, "n_hat": est.n_hat, "n_hat_sm": n_sm,
                     "status": est.status})
    return rows


if __name__ == "__main__":
    import os

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for r in main():
        print(f"{r['benchmark']:36s} tipstat {r['tipstat_ms']:7.3f} ms | {r['baseline']} "
              f"{r['baseline_ms']:7.3f} ms | ratio {r['ratio']:5.1f}x | CPU {r['tipstat_cpu_ms']:.3f} vs "
              f"{r['baseline_cpu_ms']:.3f} ms ({r['baseline_cpu_ms'] / r['tipstat_cpu_ms']:.1f}x) "
              f"| with profile CI "
              f"{r['profile_ci_ms']:6.2f} ms | N-hat {r['n_hat']:.4f} vs {r['n_hat_sm']:.4f} "
              f"({r['status']}) | target {r['target']}")
