"""Log-linear model averaging (conting's model) timed against conting and a data-augmentation chain.

``fit_loglinear_bma`` enumerates the models and importance-samples each. conting samples the same
posterior by reversible jump with data augmentation: 20,000 iterations took the ``seconds`` in
``tests/reference/r_reference.csv`` (a 2-core machine with other R jobs).

The in-process baseline is a data-augmentation chain of the kind conting runs, with 20,000
iterations of an IWLS Metropolis-Hastings step and a Poisson imputation of the unseen cell. It
is written in numpy and fixed to the maximal model, so it has no model jumps: it is a lower bound
on the cost of conting's algorithm. Its effective sample size for N is printed too. That ESS is
what makes conting's HIV_Rome_4 and UK_5 rows differ, because most of those populations is
unseen.

``--speed REV`` times ``fit_loglinear_bma`` on simulated 5-, 6- and 8-list tables like the
coverage study's (N = 2000) against the module as it was at git revision ``REV`` (loaded in the
same process, so both timings share the machine's load), and prints the ratio and how far the
results differ (same kept models, n_hat, interval, posterior mean; ``identical``: the n_hat,
intervals, resampled draws and every model's log evidence, probability, ESS and median of N are
bit for bit the same; ``max_rel_diff``: the largest relative difference among those numbers).
Against 06ec68d (the batched Laplace fits), the stacked covariances and importance sampling,
in-place log posteriors, single sort of the pooled draws and one BLAS thread made fits 1.6-2.1x
faster at K = 6 (independence 16.6 -> 7.8 s, positive 7.3 -> 3.7 s, negative 6.2 -> 4.0 s),
3.7-4.4x at K = 5 and 2.4-3.0x on the K = 8 walk, on a 2-core machine busy with another job
(``--speed 06ec68d``); the enumerated fits are bit for bit identical, the walk's within 1.1e-13
(BLAS threads split the larger models' products differently; with one thread for both, equal).

Run: python benchmarks/bench_bma.py [--speed REV [--cells independence:6,...]]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import tipstat
from tipstat.models.bma import _Posterior, bma_model_space, fit_loglinear_bma

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference" / "r_reference.csv"


def da_chain(h: tipstat.CaptureHistories, iters: int = 20000, seed: int = 1) -> np.ndarray:
    """Data-augmentation MCMC of the maximal model under the UIP: the baseline."""
    s = bma_model_space(h)
    cols = np.arange(s.X.shape[1])
    X, y, miss = s.X, s.y.copy(), s.missing
    P = s.R
    post = _Posterior(s, cols, "UIP", 0.001, 0.001)
    start = np.zeros(len(cols))
    start[0] = np.log(s.y[~miss].mean())
    beta, _ = post.mode(start)
    rng = np.random.default_rng(seed)

    def proposal(b: np.ndarray, yc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eta = X @ b
        w = np.exp(eta)
        cov = np.linalg.inv(P + (X * w[:, None]).T @ X)
        return cov @ (X.T @ (w * (eta + (yc - w) / w))), cov

    def logp(b: np.ndarray, yc: np.ndarray) -> float:
        eta = X @ b
        return float(yc @ eta - np.exp(eta).sum() - 0.5 * b @ P @ b)

    def lq(x: np.ndarray, m: np.ndarray, c: np.ndarray) -> float:
        d = x - m
        return float(-0.5 * d @ np.linalg.solve(c, d) - 0.5 * np.linalg.slogdet(c)[1])

    out = np.empty(iters)
    for it in range(iters):
        y[miss] = rng.poisson(np.exp(X[miss] @ beta))
        m1, c1 = proposal(beta, y)
        nb = rng.multivariate_normal(m1, c1)
        m2, c2 = proposal(nb, y)
        if np.log(rng.random()) < logp(nb, y) - logp(beta, y) + lq(beta, m2, c2) - lq(nb, m1, c1):
            beta = nb
        out[it] = s.n_observed + y[miss].sum()
    return out


def main() -> list[dict]:
    import arviz as az

    ref = pd.read_csv(REFERENCE)
    rows = []
    fit_loglinear_bma(tipstat.datasets.load("Korea_3"), seed=1)  # imports
    for name in ("Spina_3", "HIV_Rome_4", "UK_5"):
        h = tipstat.datasets.load(name)
        r = ref[(ref.dataset == name) & ref.package.str.startswith("conting")].iloc[0]
        t0 = time.perf_counter()
        est = fit_loglinear_bma(h, prior="SBH", seed=1)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        chain = da_chain(h)
        t_base = time.perf_counter() - t0
        rows.append({
            "benchmark": f"fit_loglinear_bma {name} ({est.diagnostics['n_models']:.0f} models)",
            "target": "faster than conting (20,000 iterations)",
            "tipstat_ms": 1e3 * t_ours,
            "baseline": "data-augmentation chain, 20,000 iterations, one model (numpy)",
            "baseline_ms": 1e3 * t_base, "ratio": t_base / t_ours,
            "conting_ms": 1e3 * float(r.seconds), "ratio_vs_conting": float(r.seconds) / t_ours,
            "n_hat": est.n_hat, "ci": est.ci, "n_hat_conting": float(r.estimate),
            "ci_conting": (float(r.lower), float(r.upper)),
            "chain_ess_N": float(az.ess(chain[2000:][None, :])),
            "ess_N": est.diagnostics["ess"],
        })
    return rows


SPEED_CELLS = ("independence:5", "positive:5", "independence:6", "positive:6", "negative:6",
               "independence:8", "heterogeneity:8", "sparse:8")


def _module_at(rev: str):
    """``tipstat.models.bma`` as it was at git revision ``rev`` (a module beside the current one)."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(["git", "show", f"{rev}:tipstat/models/bma.py"], cwd=root, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "bma_baseline.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("tipstat.models._bma_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _agreement(old: tipstat.Estimate, new: tipstat.Estimate) -> tuple[bool, float]:
    """Whether two fits are bit for bit equal, and their largest relative difference.

    Compared: n_hat, the HPD and equal-tailed intervals, the posterior mean, SD and ESS, the
    resampled draws, and each model's log evidence, probability, ESS and median of N (models
    matched by label).
    """
    do, dn = old.diagnostics, new.diagnostics
    cols = ["log_evidence", "probability", "ess", "n_median"]
    mo = do["models"].set_index("model").sort_index()[cols]
    mn = dn["models"].set_index("model").sort_index()[cols]
    if not mo.index.equals(mn.index):
        return False, float("inf")
    a = np.concatenate([[old.n_hat, *old.ci, *do["equal_tailed"], do["posterior_mean"], old.se, do["ess"]],
                        old.draws, mo.to_numpy().ravel()])
    b = np.concatenate([[new.n_hat, *new.ci, *dn["equal_tailed"], dn["posterior_mean"], new.se, dn["ess"]],
                        new.draws, mn.to_numpy().ravel()])
    finite = np.isfinite(a) & np.isfinite(b)
    rel = np.abs(a[finite] - b[finite]) / np.maximum(np.abs(a[finite]), 1e-300)
    same_nan = np.array_equal(np.isnan(a), np.isnan(b))
    return bool(same_nan and np.array_equal(a, b, equal_nan=True)), float(rel.max(initial=0.0))


def speed(rev: str, cells: tuple[str, ...] = SPEED_CELLS, seed: int = 1) -> list[dict]:
    """Per-fit time of the current code against revision ``rev`` on simulated tables."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tipstat.simulate_populations import populations, scenario

    base = _module_at(rev)
    fit_loglinear_bma(tipstat.datasets.load("Korea_3"), seed=1)  # imports
    rows = []
    for cell in cells:
        name, k = cell.split(":")
        h = populations(n=2000, seed=seed, **scenario(name, k=int(k))).histories
        t0 = time.perf_counter()
        old = base.fit_loglinear_bma(h, seed=1)
        t_old = time.perf_counter() - t0
        t0 = time.perf_counter()
        new = fit_loglinear_bma(h, seed=1)
        t_new = time.perf_counter() - t0
        mo, mn = old.diagnostics["models"], new.diagnostics["models"]
        identical, max_rel = _agreement(old, new)
        rows.append({
            "cell": cell, "search": new.diagnostics["search"], "kept": len(mn),
            "same_kept": set(mo.model) == set(mn.model), "old_s": t_old, "new_s": t_new,
            "ratio": t_old / t_new, "n_hat": (old.n_hat, new.n_hat), "ci_old": old.ci,
            "ci_new": new.ci,
            "mean_rel_diff": new.diagnostics["posterior_mean"] / old.diagnostics["posterior_mean"] - 1,
            "ess": (old.diagnostics["ess"], new.diagnostics["ess"]),
            "identical": identical, "max_rel_diff": max_rel,
        })
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in rows[-1].items()), flush=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", metavar="REV", help="time against tipstat/models/bma.py at REV")
    parser.add_argument("--cells", default=",".join(SPEED_CELLS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.speed:
        speed(args.speed, tuple(args.cells.split(",")), args.seed)
        sys.exit()
    for row in main():
        print("  ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()))
