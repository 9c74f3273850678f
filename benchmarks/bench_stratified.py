"""Many strata: ``fit_stratified`` on a country analysed by region x year x sex x age x form.

Target (issue 15, deliver 7): 4 lists, 5,000 strata, 200 bootstrap replicates in <= 60 s and
<= 2 GB peak memory on 2 cores, with the same estimates. (Measured before the change: 1,000
strata and 50 replicates 15-18 s; 5,000 strata and 20 replicates 232 s and 19.2 GB.)

The table is synthetic (no records): ``N_s ~ Poisson(lambda_s)`` victims per stratum, each
caught by list ``j`` with a probability that depends on sex and form of exploitation, lists P and
K positively dependent; the observed capture patterns are the strata's counts. About 40 victims
per stratum, so many strata are sparse (zero cells, some strata with one or two persons).

tipstat: ``fit_stratified`` (AIC forward search of list x list and list x covariate terms, the
exact existence check, the parametric bootstrap with local re-selection). Baseline (in the same
run): the selected model refitted with a generic Poisson Newton on a design with one explicit
dummy column per stratum, as a stacked ``fit_design`` would need: up to 1,000 strata the dense
engine (``tipstat.models.poisson.poisson_newton``), beyond it (the dense design of 5,000 strata
alone is 3 GB) the same Newton iteration on a ``scipy.sparse`` design with sparse Cholesky-free
solves (``spsolve``); one fit and ``B_BASE`` bootstrap refits timed and scaled to B. The ratio is
baseline / tipstat, although tipstat's time also includes the model search and the re-selection
in every replicate. Each size runs in a fresh subprocess (with this checkout's ``tipstat`` first
on the path), and its peak memory is that process's maximum resident set.

Run: python benchmarks/bench_stratified.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SIZES = ((1000, 50), (5000, 200))  # (strata, bootstrap replicates)
B_BASE = 1
MEAN_PER_STRATUM = 40.0


def synthetic_country(n_strata: int, seed: int = 2024):
    """CaptureHistories of 4 lists over ``n_strata`` strata (region x year x sex x age x form)."""
    from tipstat import CaptureHistories

    rng = np.random.default_rng(seed)
    regions = n_strata // (5 * 2 * 4 * 5)
    grid = pd.MultiIndex.from_product(
        [[f"r{i:03d}" for i in range(regions)], [str(y) for y in range(2019, 2024)],
         ["F", "M"], ["0-17", "18-29", "30-49", "50+"], ["sexual", "labour", "crime",
                                                         "marriage", "other"]],
        names=["region", "year", "sex", "age", "form"]).to_frame(index=False)
    lam = MEAN_PER_STRATUM * rng.gamma(2.0, 0.5, len(grid))
    n = rng.poisson(lam)
    base = np.array([0.30, 0.25, 0.20, 0.15])
    sex_eff = np.where(grid["sex"].to_numpy() == "F", 1.2, 0.8)
    form_eff = 1.0 + 0.15 * grid["form"].cat.codes.to_numpy() if hasattr(
        grid["form"], "cat") else 1.0 + 0.15 * pd.factorize(grid["form"])[0]
    pats = np.array([[(c >> j) & 1 for j in range(4)] for c in range(16)])
    counts = np.zeros((len(grid), 16))
    for s in range(len(grid)):
        p = np.clip(base * sex_eff[s] * np.array([form_eff[s], 1, 1, 1]), 0.01, 0.9)
        caught = rng.random((n[s], 4)) < p
        # P and K dependent: half of those on P but not K are also put on K
        extra = caught[:, 0] & ~caught[:, 1] & (rng.random(n[s]) < 0.5)
        caught[extra, 1] = True
        code = caught @ (1 << np.arange(4))
        counts[s] = np.bincount(code, minlength=16)
    rows = []
    for c in range(1, 16):
        df = grid.copy()
        for j, name in enumerate("PKIO"):
            df[name] = pats[c, j]
        df["count"] = counts[:, c]
        rows.append(df)
    df = pd.concat(rows, ignore_index=True)
    df = df[df["count"] > 0]
    h = CaptureHistories.from_frame(df, strata=["region", "year", "sex", "age", "form"],
                                    lists=list("PKIO"))
    return h, int(n.sum())


def sparse_newton(X, y: np.ndarray, beta: np.ndarray | None = None, maxiter: int = 30,
                  tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Generic damped Newton for a Poisson log-linear model on a sparse design ``X``.

    Maximises ``sum(y * eta - exp(eta))``, ``eta = X beta``, with the sparse information
    ``X' diag(mu) X`` solved by ``scipy.sparse.linalg.spsolve``; stops when the decrement
    ``g' H^-1 g < tol``. Returns ``(beta, mu)``.
    """
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    X = sparse.csr_matrix(X)
    XT = X.T.tocsr()
    if beta is None:
        beta = spsolve((XT @ X).tocsc(), XT @ np.log(y + 0.5))
    eta = X @ beta
    mu = np.exp(eta)
    ll = float(y @ eta - mu.sum())
    for _ in range(maxiter):
        g = XT @ (y - mu)
        H = (XT @ sparse.diags(mu) @ X).tocsc()
        step = spsolve(H, g)
        dec = float(g @ step)
        t = 1.0
        while True:
            nb = beta + t * step
            ne = X @ nb
            nm = np.exp(ne)
            nl = float(y @ ne - nm.sum())
            if nl >= ll - 1e-12 * (1 + abs(ll)) or t < 1e-8:
                break
            t *= 0.5
        beta, eta, mu, ll = nb, ne, nm, nl
        if dec < tol:
            break
    return beta, mu


def one(n_strata: int, n_boot: int) -> dict:
    """One size, in this process (called in a subprocess by :func:`main`)."""
    import resource

    from tipstat.models.poisson import poisson_newton
    from tipstat.models.stratified import _Layout, fit_stratified

    h, n_true = synthetic_country(n_strata)
    t0, c0 = time.perf_counter(), time.process_time()
    est = fit_stratified(h, n_boot=n_boot, seed=1)
    t_ours, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # replicate fits on worker processes (from 100,000 replicate-strata): the largest worker
    peak_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    cells = est.cells.table
    layout = _Layout(cells[list(h.strata)], h.k)
    y = np.asarray(est.diagnostics["completed_counts"], dtype=float)
    S, C1 = layout.S, layout.C - 1
    rng = np.random.default_rng(1)
    if n_strata <= 1000:  # dense engine
        D = np.zeros((S * C1, S))
        D[np.arange(S * C1), layout.s_of_row] = 1.0
        X = np.column_stack([D, layout.matrix(est.diagnostics["model_obj"])])
        t0 = time.perf_counter()
        res = poisson_newton(X, y.ravel())
        mu = np.column_stack([np.exp(res.beta[:S]), res.mu.reshape(S, C1)])
        t_one = time.perf_counter() - t0
        for _ in range(B_BASE):
            poisson_newton(X, rng.poisson(mu)[:, 1:].ravel().astype(float), res.beta)
        kind = "dense"
    else:  # the dense design of 5,000 strata alone is 3 GB: the same on a sparse design
        from scipy import sparse

        D = sparse.csr_matrix((np.ones(S * C1), (np.arange(S * C1), layout.s_of_row)),
                              shape=(S * C1, S))
        X = sparse.hstack([D, sparse.csr_matrix(layout.matrix(est.diagnostics["model_obj"]))],
                          format="csr")
        t0 = time.perf_counter()
        beta, mu_obs = sparse_newton(X, y.ravel())
        mu = np.column_stack([np.exp(beta[:S]), mu_obs.reshape(S, C1)])
        t_one = time.perf_counter() - t0
        for _ in range(B_BASE):
            sparse_newton(X, rng.poisson(mu)[:, 1:].ravel().astype(float), beta)
        kind = "sparse (scipy.sparse, spsolve)"
    t_base = t_one + (time.perf_counter() - t0 - t_one) * n_boot / B_BASE
    n_hat_base = float(y.sum() + mu[:, 0].sum())
    return {"benchmark": f"fit_stratified, 4 lists, {h.n_strata:,} strata, B={n_boot}",
            "target": "<= 60 s, <= 2 GB (5,000 strata, B=200)", "tipstat_ms": 1e3 * t_ours,
            "baseline": f"{kind} stratum-dummy design, generic Poisson Newton: 1 fit + "
                        f"{n_boot} refits of the selected model ({B_BASE} timed, scaled)",
            "n_hat_baseline": n_hat_base,
            "baseline_ms": 1e3 * t_base, "ratio": t_base / t_ours, "peak_mb": peak,
            "peak_worker_mb": peak_worker,
            "cpu_s": cpu, "load_1min": os.getloadavg()[0],
            "n_hat": est.n_hat, "ci": [round(v) for v in est.ci], "n_true": n_true,
            "model": est.model, "status": est.status}


def main() -> list[dict]:
    rows = []
    for s, b in SIZES:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        out = subprocess.run([sys.executable, __file__, "--one", str(s), str(b)],
                             capture_output=True, text=True, check=True, env=env)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(one(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        for row in main():
            print(row["benchmark"])
            print(f"  tipstat  {row['tipstat_ms'] / 1e3:8.1f} s ({row['cpu_s']:.1f} s CPU; machine "
                  f"load {row['load_1min']:.1f}), peak {row['peak_mb']:.0f} MB  "
                  f"(target {row['target']})")
            print(f"  baseline {row['baseline_ms'] / 1e3:8.1f} s  ({row['baseline']})")
            print(f"  N-hat {row['n_hat']:,.0f} {row['ci']} (truth {row['n_true']:,}); "
                  f"{row['model']}")
