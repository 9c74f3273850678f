"""Coverage study: every available MSE method x known-truth scenario x replicates, and the
internal-consistency benchmark on the real trafficking tables. Writes docs/validation.md.

For each scenario cell (a scenario of :data:`tipstat.simulate_populations.SCENARIOS` at a number
of lists K, population size N) ``--reps`` populations are drawn; every method estimates N and
is scored against the truth:

* relative bias ``mean(N_hat / N - 1)``, mean log relative bias ``mean(log(N_hat / N))``;
* relative RMSE ``sqrt(mean((N_hat / N - 1)^2))``;
* coverage of the 95% interval ``mean(L <= N <= U)`` (a replicate without a finite interval or
  estimate counts as not covered; their number is reported as ``failed``) and its Monte Carlo
  standard error ``sqrt(c (1 - c) / R)``;
* median relative interval width ``(U - L) / N``;
* warning rate: share of replicates where :func:`tipstat.validate.assumption_warnings` fires
  (lack of fit or list dependence; the sparse-table warning, about the accuracy of the
  approximations rather than the model's assumptions, is counted separately);
* ``lower_bound_rate``: share answered with status ``lower_bound`` (interval ``[L, inf)``, no
  point: such replicates are also counted in ``failed``, and cover when ``L <= N``);
* ``silent_miss_rate``: share of replicates whose interval misses N with status ok and no
  caveat at all (the result's own caveats and the table checks; recorded per replicate in
  ``codes`` since issue 16, NaN for older rows).

Then :func:`tipstat.validate.internal_consistency` (``min_seen=30``) runs every method on the
published trafficking tables; the benchmark pools the lists of Binette & Steorts' (2022) five
tables, as the paper does (per-list results kept in docs/validation_ic.csv.gz, so slow methods
are run once with ``--ic``).

Run (about 15 minutes on 2 shared cores)::

    /work/venv/bin/python benchmarks/coverage_study.py --reps 200 --n-jobs 2

The slow methods (``bootstrap``, ``latent_class``, ``bayes_loglinear``, ``loglinear_bma``) are
added by name on chosen cells, e.g. ``--add --methods latent_class --cells independence:4
--reps 100 --slow-reps 100 --mcmc-draws 400 --mcmc-tune 300``. ``--quick`` runs 10 replicates
to check the script. ``--scheduler tcp://host:8786`` (or ``local``) sends the replicates to a
Dask cluster through ``tipstat.parallel``, with the same results as a local run of the same
``--seed``: the slow cells (the MCMC methods at 200 replicates, ``loglinear_bma`` at K >= 6)
are hours on two cores and minutes on a cluster.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binom

import tipstat
from tipstat.simulate_populations import SCENARIOS, populations, scenario
from tipstat.validate import assumption_warnings, internal_consistency

ROOT = Path(__file__).resolve().parents[1]
#: The five tables of Binette & Steorts' (2022) internal-consistency benchmark (MSETools' UK,
#: Netherlands, NewOrleans, WesternUS, Australia): the issue's target is judged on their lists.
BS_TABLES = ["UK_5", "Netherlands_5", "NewOrleans_5", "Western_5", "Australia_4"]
#: Other trafficking / slavery tables of tipstat.datasets: other groupings of the same persons
#: (UK_4, UK_6, Netherlands_6, NewOrleans_8) or a historical case (Korea_3, K = 3 so each list
#: is estimated from a two-list table). Reported, not pooled into the target.
OTHER_TABLES = ["UK_4", "UK_6", "Netherlands_6", "NewOrleans_8", "Korea_3"]
REAL_TABLES = BS_TABLES + OTHER_TABLES
N_TRUE = 2000

#: (scenario, K) cells of the study
CELLS = [
    ("independence", 3), ("independence", 4), ("independence", 5), ("independence", 6),
    ("independence", 8),
    ("positive", 4), ("positive", 6),
    ("negative", 4), ("negative", 6),
    ("heterogeneity", 3), ("heterogeneity", 5), ("heterogeneity", 8),
    ("latent_classes", 4),
    ("sparse", 4), ("sparse", 8),
]

#: Scenarios where the assumptions of each method hold (a pairwise log-linear model with the
#: right terms is in its search space and there is no capture heterogeneity).
ASSUMPTIONS_HOLD = {
    "independence": {"independence", "sparse"},
    "default": {"independence", "positive", "negative", "sparse"},
    "bic": {"independence", "positive", "negative", "sparse"},
    "stepwise": {"independence", "positive", "negative", "sparse"},
    "bhs": {"independence", "positive", "negative", "sparse"},
    "aic": {"independence", "positive", "negative", "sparse"},
    "bootstrap": {"independence", "positive", "negative", "sparse"},
    "bayes_loglinear": {"independence", "positive", "negative", "sparse"},
    "loglinear_bma": {"independence", "positive", "negative", "sparse"},
    "graphical": {"independence", "positive", "negative", "sparse"},
    # Mth models: lists independent given a heterogeneity that is a function of the number of
    # captures (Chao's is a lower bound under any heterogeneity); logit-normal is Darroch's
    "mth_chao": {"independence", "sparse"},
    "mth_poisson": {"independence", "sparse"},
    "mth_darroch": {"independence", "sparse", "heterogeneity"},
    # a mixture of classes of independent list captures (continuous heterogeneity only approx.)
    "latent_class": {"independence", "latent_classes", "sparse"},
}


# ---------------------------------------------------------------------------- methods
def _public(name: str, module: str):
    """A public tipstat function, or from its module if not yet exported; None if absent."""
    try:
        return getattr(tipstat, name)
    except AttributeError:
        pass
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


#: Sampler and bootstrap sizes of the slow methods (set from the command line; recorded in the
#: report). MCMC: draws and warm-up per chain, chains (run one after another on one core).
SIZES = {"mcmc_draws": 500, "mcmc_tune": 500, "mcmc_chains": 2, "n_boot": 500}


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    requires: tuple[str, str]
    max_k: int = 99

    def available(self) -> bool:
        return _public(*self.requires) is not None

    def __call__(self, h, seed=None):
        f = _public(*self.requires)
        k = h.k
        if self.name == "independence":
            return f(h, "independence")
        if self.name == "default":
            # tipstat's default estimator exactly as users get it (exhaustive BIC average up
            # to 40,000 models: about 4 s per fit at K = 6; greedy at K = 8)
            return f(h)
        if self.name == "bic":
            # the single BIC-selected model; the exhaustive search is replaced by the greedy
            # one from K = 6, as for "aic" (see docs/validation.md)
            return f(h, "bic", search="greedy" if k >= 6 else "auto")
        if self.name in ("stepwise", "bhs"):
            return f(h, self.name)
        if self.name == "aic":
            return f(h, "aic", search="greedy" if k >= 6 else "auto")
        if self.name in CLOSEDP:
            return f(h, CLOSEDP[self.name])
        sub_seed = int(np.random.default_rng(seed).integers(2**31))
        if self.name == "graphical":
            return f(h, seed=sub_seed, draws=250, chains=2)
        if self.name == "bootstrap":
            # the registry's "bootstrap" method (tipstat.compare): stepwise selection re-run on
            # every nonparametric replicate, BCa interval
            return f(h, "stepwise", n_boot=SIZES["n_boot"], ci="bca", seed=sub_seed, n_jobs=1)
        if self.name == "loglinear_bma":
            return f(h, seed=sub_seed)
        if self.name in ("latent_class", "bayes_loglinear"):
            return f(h, seed=sub_seed, draws=SIZES["mcmc_draws"], tune=SIZES["mcmc_tune"],
                     chains=SIZES["mcmc_chains"], cores=1)
        raise ValueError(self.name)


#: Rcapture closedp heterogeneity models of the study
CLOSEDP = {"mth_chao": "Mth Chao (LB)", "mth_poisson": "Mth Poisson2", "mth_darroch": "Mth Darroch"}


METHODS = [
    Method("independence", "log-linear independence (profile CI)",
           ("fit_loglinear", "tipstat.models.loglinear")),
    Method("default", "default: tipstat.estimate_population, BIC model average over two-way "
                      "log-linear models (Buckland log-normal CI joined over Occam's window; "
                      "a lower bound where a defensible model bounds nothing)",
           ("estimate_population", "tipstat.models.default")),
    Method("bic", "select_loglinear BIC (profile CI, conditional on the model; the default "
                  "before the BIC average)",
           ("select_loglinear", "tipstat.models.selection")),
    Method("stepwise", "select_loglinear stepwise (Chan et al. 2021; Wald CI)",
           ("select_loglinear", "tipstat.models.selection")),
    Method("bhs", "select_loglinear BHS (Bales et al. 2015; Wald CI)",
           ("select_loglinear", "tipstat.models.selection")),
    Method("aic", "select_loglinear AIC (profile CI, conditional on the model)",
           ("select_loglinear", "tipstat.models.selection")),
    Method("bootstrap", "stepwise selection re-run on every bootstrap replicate, BCa interval "
                        "(tipstat.bootstrap; compare's 'bootstrap')",
           ("bootstrap", "tipstat.models.bootstrap")),
    Method("mth_chao", "closedp Mth Chao (LB) heterogeneity model (profile CI)",
           ("fit_closedp_model", "tipstat.models.heterogeneity")),
    Method("mth_poisson", "closedp Mth Poisson2 heterogeneity model (profile CI)",
           ("fit_closedp_model", "tipstat.models.heterogeneity")),
    Method("mth_darroch", "closedp Mth Darroch heterogeneity model (profile CI)",
           ("fit_closedp_model", "tipstat.models.heterogeneity")),
    # K <= 6 enumerates all decomposable graphs (about 2 s per fit), K = 8 samples them by
    # MCMC (14,000 steps per chain: 0.5-6.5 s per fit; measured 2026-11-22)
    Method("graphical", "Bayesian decomposable graphical models (dga)",
           ("fit_graphical", "tipstat.models.graphical"), max_k=8),
    Method("latent_class", "Bayesian latent-class model (LCMCR)",
           ("fit_latent_class", "tipstat.models.latent_class"), max_k=8),
    Method("bayes_loglinear", "Bayesian log-linear, all two-way terms, horseshoe prior",
           ("fit_bayes_loglinear", "tipstat.models.bayes_loglinear"), max_k=8),
    # K = 6 enumerates 32,768 models (batched fits since session 4: 4-8 s per fit, was
    # 85-340 s), K = 8 walks over 2^28 (the default 5,000 steps: 2-6 s per fit on the
    # simulated tables; measured 2026-11-22)
    Method("loglinear_bma", "Bayesian averaging over hierarchical log-linear models (conting)",
           ("fit_loglinear_bma", "tipstat.models.bma"), max_k=8),
]


#: Why an available method is not run at the study's size (measured, see docs/validation.md)
NOT_RUN = {
    "latent_class": "NUTS sampling (PyMC/nutpie) costs seconds to minutes per fit on 2 shared "
                    "cores: run on a subset of cells with --methods latent_class",
    "bayes_loglinear": "NUTS sampling (PyMC/nutpie) costs seconds to minutes per fit on 2 "
                       "shared cores: run on a subset of cells with --methods bayes_loglinear",
}
#: Methods whose replicates are capped at --slow-reps
SLOW = {"graphical", "latent_class", "bayes_loglinear"}
#: Methods left out of --methods all (run them by name)
NOT_BY_DEFAULT = {"latent_class", "bayes_loglinear", "bootstrap", "loglinear_bma"}


# ---------------------------------------------------------------------------- one replicate
def run_replicate(item, seed_seq):
    """All methods on one population; item = (cell index, replicate, method names)."""
    cell, rep, names = item
    name, k = CELLS[cell]
    pop_seed, method_seed = seed_seq.spawn(2)
    pop = populations(n=N_TRUE, seed=pop_seed, **scenario(name, k=k))
    h = pop.histories
    rows = []
    for m in METHODS:
        if m.name not in names or k > m.max_k:
            continue
        t0 = time.perf_counter()
        row = {"scenario": name, "k": k, "rep": rep, "method": m.name, "n_true": pop.n,
               "n_observed": h.n_observed, "n_hat": math.nan, "lower": math.nan,
               "upper": math.nan, "status": "", "model": "", "warned": False, "sparse": False,
               "rhat": math.nan, "ess": math.nan, "divergences": math.nan, "codes": "",
               # the observed cells (pattern order of h.patterns) and the interaction terms of
               # the reported (best) model: the table checks can be re-run on them later
               "counts": " ".join(str(int(c)) for c in h.counts), "terms": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = m(h, method_seed)
                found = assumption_warnings(h, est)
                row.update(n_hat=est.n_hat, lower=est.ci[0], upper=est.ci[1], status=est.status,
                           model=est.model,
                           warned=any(not w.startswith("sparse table") for w in found),
                           sparse=any(w.startswith("sparse table") for w in found))
                d = est.diagnostics or {}
                # every caveat the result carries (its own and the table checks), by code
                row["codes"] = ";".join(sorted({getattr(w, "code", "note")
                                                for w in (*est.warnings, *found)}))
                coef = d.get("coefficients")
                if coef is not None:
                    row["terms"] = ";".join(str(t) for t in coef[0] if ":" in str(t))
                row.update(rhat=float(d.get("rhat", math.nan)),
                           ess=float(d.get("ess_bulk", math.nan)),
                           divergences=float(d.get("divergences", math.nan)))
        except Exception as err:  # a failure is a result: counted, never dropped
            row.update(status=f"error: {type(err).__name__}")
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows


def _replicate_star(job):
    return run_replicate(*job)


def run_checkpointed(items: list, seed: int, n_jobs: int, path: Path,
                     minutes: float | None = None) -> pd.DataFrame:
    """Run the items in ``n_jobs`` processes, appending each one's rows to ``path`` as it
    finishes. Item ``i`` gets ``SeedSequence(seed).spawn(len(items))[i]``, as in
    :func:`tipstat.parallel.map`, so the replicates are those of a run without a checkpoint;
    they are started replicate-major (replicate 0 of every cell, then 1, ...), so a run stopped
    after ``minutes`` has nearly as many replicates in every cell. Replicates already in
    ``path`` are skipped. Returns every row in ``path``."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    seqs = np.random.SeedSequence(seed).spawn(len(items))
    done: set[tuple] = set()
    if path.exists():
        old = pd.read_csv(path)
        done = set(zip(old.scenario, old.k.astype(int), old.rep.astype(int), strict=True))
    order = sorted(range(len(items)), key=lambda i: (items[i][1], items[i][0]))
    todo = [(items[i], seqs[i]) for i in order
            if (*CELLS[items[i][0]], items[i][1]) not in done]
    deadline = time.monotonic() + 60 * minutes if minutes else math.inf
    header = not path.exists()
    with ProcessPoolExecutor(max(1, n_jobs)) as pool:
        running = set()
        queue = iter(todo)
        while True:
            while len(running) < max(1, n_jobs) and time.monotonic() < deadline:
                job = next(queue, None)
                if job is None:
                    break
                running.add(pool.submit(_replicate_star, job))
            if not running:
                break
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                pd.DataFrame(fut.result()).to_csv(path, mode="a", header=header, index=False)
                header = False
            print(f"{time.strftime('%H:%M:%S')} {len(pd.read_csv(path))} rows in {path.name}",
                  flush=True)
    return pd.read_csv(path)


def _share(g: pd.DataFrame, col: str, cond) -> float:
    """Share of the replicates with a value of ``col`` for which ``cond`` holds (NaN if none)."""
    if col not in g:
        return math.nan
    v = g[col].dropna()
    return float(cond(v).mean()) if len(v) else math.nan


#: Caveat codes that do not warn about the estimate (a silent miss may carry them)
NOT_WARNINGS = {"", "note"}


def _silent(g: pd.DataFrame, covered: pd.Series) -> float:
    """Share of replicates that miss N (interval without N, or no interval) with status ok or
    extended and no caveat at all (``codes``: every caveat of the result and of the table
    checks); NaN for rows stored before ``codes`` was recorded."""
    if "codes" not in g or g["codes"].isna().all():
        return math.nan
    codes = g["codes"].fillna("").astype(str)
    quiet = codes.map(lambda c: not (set(c.split(";")) - NOT_WARNINGS))
    return float((~covered & g.status.isin(["ok", "extended"]) & quiet).mean())


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (method, name, k), g in df.groupby(["method", "scenario", "k"], sort=False):
        ok = np.isfinite(g.n_hat) & (g.n_hat > 0)
        rel = g.n_hat[ok] / g.n_true[ok] - 1
        covered = (g.lower <= g.n_true) & (g.n_true <= g.upper)
        c = covered.mean()
        width = ((g.upper - g.lower) / g.n_true)[ok & np.isfinite(g.upper)]
        out.append({
            "method": method, "scenario": name, "k": k, "reps": len(g),
            "failed": int((~ok).sum()),
            "rel_bias": rel.mean(), "mean_log_rel_bias": np.log1p(rel).mean(),
            "rel_rmse": math.sqrt((rel**2).mean()) if len(rel) else math.nan,
            "coverage": c, "coverage_mcse": math.sqrt(c * (1 - c) / len(g)),
            "median_rel_width": width.median() if len(width) else math.nan,
            "infinite_upper": int((~np.isfinite(g.upper[ok])).sum()),
            "warning_rate": g["warned"].astype(bool).mean(),
            "lower_bound_rate": float((g.status == "lower_bound").mean()),
            "silent_miss_rate": _silent(g, covered),
            "sparse_warning_rate": g["sparse"].astype(bool).mean(),
            "assumptions_hold": name in ASSUMPTIONS_HOLD.get(method, set()),
            "sec_per_fit": g["seconds"].mean(),
            # MCMC diagnostics of N (NaN for other methods)
            "rhat_gt_1.05": _share(g, "rhat", lambda v: v > 1.05),
            "median_ess": float(g["ess"].median()) if "ess" in g and g["ess"].notna().any()
            else math.nan,
            "divergent_fits": _share(g, "divergences", lambda v: v > 0),
        })
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------- internal consistency
IC_SEED = 20260101


def ic_run(methods: list[Method], tables: list[str] = REAL_TABLES) -> pd.DataFrame:
    """Per-list results of :func:`internal_consistency` (its default ``min_seen=30``, Binette &
    Steorts' filter) for every method on every table."""
    out = []
    for m in methods:
        for name in tables:
            h = tipstat.datasets.load(name)
            if h.n_strata > 1:
                h = h.pooled()
            if h.k - 1 > m.max_k:
                continue
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ic = internal_consistency(h, lambda x, m=m: m(x, IC_SEED))
            out.append(ic.table.assign(method=m.name, table=name,
                                       seconds=time.perf_counter() - t0))
            print(f"  internal consistency {m.name} {name}: "
                  f"{ic.summary['mean_log_rel_bias']:+.3f}", flush=True)
    return pd.concat(out, ignore_index=True)


def _lrb(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    v = g.log_rel_bias.astype(float).to_numpy()
    ok = np.isfinite(v)
    return v[ok], g.covered[ok].astype(float).to_numpy()


def ic_per_table(ic: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (method, table), g in ic.groupby(["method", "table"], sort=False):
        v, c = _lrb(g)
        excluded = int((g.status == "too_few_seen").sum())
        rows.append({"method": method, "table": table, "lists": len(g), "excluded": excluded,
                     "evaluated": len(v), "failed": len(g) - excluded - len(v),
                     "mean_log_rel_bias": v.mean() if len(v) else math.nan,
                     "coverage": c.mean() if len(c) else math.nan})
    return pd.DataFrame(rows)


def ic_pooled(ic: pd.DataFrame, tables: list[str] = BS_TABLES) -> pd.DataFrame:
    """The benchmark: every list of the Binette & Steorts tables pooled (as the paper pools).

    ``se`` is the standard error of the pooled mean over lists (sd / sqrt(evaluated)): the
    sampling uncertainty of the benchmark itself. ``per_table_mean`` averages the tables' means
    instead; ``mean_without_K`` leaves out Netherlands' list K as the paper does.
    """
    rows = []
    for method, g in ic[ic.table.isin(tables)].groupby("method", sort=False):
        v, c = _lrb(g)
        excluded = int((g.status == "too_few_seen").sum())
        per_table = [x for x in (_lrb(t)[0] for _, t in g.groupby("table")) if len(x)]
        no_k = _lrb(g[~((g.table == "Netherlands_5") & (g.list == "K"))])[0]
        rows.append({
            "method": method, "lists": len(g), "excluded": excluded, "evaluated": len(v),
            "failed": len(g) - excluded - len(v),
            "mean_log_rel_bias": v.mean() if len(v) else math.nan,
            "se": v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else math.nan,
            "median_log_rel_bias": float(np.median(v)) if len(v) else math.nan,
            "rmse_log": float(np.sqrt(np.mean(v**2))) if len(v) else math.nan,
            "coverage": c.mean() if len(c) else math.nan,
            "per_table_mean": float(np.mean([x.mean() for x in per_table])) if per_table
            else math.nan,
            "mean_without_K": no_k.mean() if len(no_k) else math.nan,
            **_bounds_and_misses(g),
        })
    return pd.DataFrame(rows)


def _bounds_and_misses(g: pd.DataFrame) -> dict[str, float]:
    """How a method answers on the lists it does not estimate (issue 16).

    ``lower_bounds``: lists answered with status ``lower_bound`` (interval ``[L, inf)``);
    ``bounds_hold``: how many of those bounds are below the list size; ``coverage_all``: share
    of the estimated lists (``failed`` and ``lower_bound`` included, a list without an interval
    counting as a miss) whose interval, bounded or not, contains the list size;
    ``silent_misses``: misses with status ok/extended and no warning at all.
    """
    tried = g[~g.status.isin(["too_few_seen", "no_overlap"])]
    lo = tried.lower.astype(float)
    hi = tried.upper.astype(float)
    inside = (lo <= tried.n_true) & (tried.n_true <= hi)
    bound = tried.status == "lower_bound"
    note = tried["note"].fillna("").astype(str) if "note" in tried else pd.Series("", tried.index)
    miss = ~inside & tried.status.isin(["ok", "extended"])
    return {"lower_bounds": int(bound.sum()), "bounds_hold": int((bound & inside).sum()),
            "coverage_all": float(inside.mean()) if len(tried) else math.nan,
            "silent_misses": int((miss & (note == "")).sum())}


# ---------------------------------------------------------------------------- report
def machine() -> dict[str, str]:
    """The machine description of benchmarks/run.py, plus the load at the start of the run."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import machine as describe

    info = describe()
    info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


def _fmt(df: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table (pandas' to_markdown needs the tabulate package, not a dependency)."""
    def cell(v) -> str:
        if isinstance(v, bool | np.bool_):
            return "yes" if v else "no"
        if isinstance(v, float | np.floating):
            return "-" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.{digits}f}")
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _stored(report: Path, name: str) -> Path:
    """A stored result file beside the report, else the repository's (docs/)."""
    beside = report.parent / name
    return beside if beside.exists() else ROOT / "docs" / name


def write_report(path: Path, summary: pd.DataFrame, ic: pd.DataFrame,
                 info: dict[str, str], command: str, elapsed: float, reps: int,
                 skipped: list[str], reduced: dict[str, int], not_run: dict[str, str]) -> None:
    default = summary[summary.method == "default"]
    if default.empty:
        default = summary[summary.method == "independence"]
    if default.empty:  # a report of other methods only
        default = summary[summary.method == summary.method.iloc[0]]
    dname = default.method.iloc[0]
    hold = default[default.assumptions_hold]
    fail = default[~default.assumptions_hold]
    ic_def = ic[ic.method == dname]
    pooled = ic_pooled(ic)
    prow = pooled[pooled.method == dname].iloc[0]
    ic_mean = float(prow.mean_log_rel_bias)
    targets = [
        ("coverage >= 0.93 where its assumptions hold (every such cell)",
         f"min {hold.coverage.min():.3f} over {len(hold)} cells "
         f"({int((hold.coverage >= 0.93).sum())} of {len(hold)} cells reach 0.93)",
         bool((hold.coverage >= 0.93).all())),
        ("abs(mean log relative bias) <= 0.10 on the internal-consistency benchmark",
         f"{ic_mean:+.3f} (SE {prow.se:.2f}; mean over the {int(prow.evaluated)} lists of "
         f"Binette & Steorts' {len(BS_TABLES)} tables that enter the check and could be "
         "estimated)",
         abs(ic_mean) <= 0.10),
        ("coverage >= 0.93 on the internal-consistency benchmark",
         f"{prow.coverage:.3f} over the {int(prow.evaluated)} lists with a finite interval; "
         f"{prow.coverage_all:.3f} counting every estimated list ({int(prow.lower_bounds)} "
         f"lower bounds, {int(prow.bounds_hold)} of them below the list size; a list without "
         f"an interval counts as a miss); {int(prow.silent_misses)} silent misses",
         bool(prow.coverage >= 0.93 and prow.coverage_all >= 0.93)),
        ("a warning that fires where assumptions fail",
         f"warning rate {fail.warning_rate.min():.2f}-{fail.warning_rate.max():.2f} where they "
         f"fail vs {hold.warning_rate.min():.2f}-{hold.warning_rate.max():.2f} where they hold",
         bool(len(fail)) and float(fail.warning_rate.mean()) > float(hold.warning_rate.mean())),
    ]
    lines = [
        "# Validation: coverage study and internal consistency",
        "",
        "Generated by `benchmarks/coverage_study.py` (do not edit by hand; rerun the command "
        "below). Raw per-replicate results: `docs/validation_replicates.csv.gz`.",
        "",
        "## Command and machine",
        "",
        f"    {command}",
        "",
        "Machine: " + ", ".join(f"{k}: {v}" for k, v in info.items()) + ". The machine is shared "
        "with other jobs (load average well above its 2 cores during the runs), so the seconds "
        "per fit below are inflated and only comparable within a run.",
        "",
        "## Targets for the default method",
        "",
        f"Default method: `{dname}`. A target is judged on the numbers below; a Monte Carlo "
        f"standard error of about {math.sqrt(0.95 * 0.05 / reps):.3f} applies to each coverage "
        f"at {reps} replicates, so a method with exactly 95% coverage shows below 0.93 in "
        f"{100 * binom.cdf(math.ceil(0.93 * reps) - 1, reps, 0.95):.0f}% of cells by chance.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *[f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets],
        "",
        "How to read this: the default averages over the log-linear models with BIC weights, "
        "and its interval carries the spread between them (Buckland et al. 1997) and spans "
        "every model in Occam's window; where a model in the window has no finite estimate, "
        "or the weight rests on untestable models, it answers with a lower bound (status "
        "`lower_bound`, counted in `lower_bounds` / `coverage_all` of the benchmark; "
        "docs/methods.md). The "
        "intervals of a selected model (`bic`, `aic`, `stepwise`, `bhs`) are "
        "conditional on the selected model, so model uncertainty is not in them; where the "
        "selection sometimes misses a dependence, coverage falls below nominal even though the "
        "true model is in the search space (`tipstat.bootstrap` re-runs the selection). Capture "
        "heterogeneity is outside every log-linear model with two-way terms, and every method "
        "that ignores it is biased low there. The warning is "
        "`tipstat.validate.assumption_warnings` (lack of fit of the selected model; pairwise "
        "dependence among persons seen elsewhere when the model is independence; capture "
        "heterogeneity, against Mt or beyond the (best) model's interactions): it can only "
        "see what leaves a trace in the observed cells, and at level 0.05 it also fires by "
        "chance where the assumptions hold.",
        "",
        "## Scenarios",
        "",
        f"N = {N_TRUE} in every cell. " + " ".join(f"`{k}`: {v}." for k, v in SCENARIOS.items()),
        "`assumptions_hold` marks cells where the method's model class contains the truth "
        "(no capture heterogeneity; for the independence model, no dependence either).",
        "",
    ]
    if skipped:
        lines += [f"Methods not in this version of tipstat (skipped): {', '.join(skipped)}.", ""]
    if not_run:
        lines += ["Available methods left out (in whole or in part): "
                  + "; ".join(f"`{k}`: {v}" for k, v in not_run.items()) + ".", ""]
    if reduced:
        lines += ["Methods run with fewer replicates or lists because of their cost: "
                  + "; ".join(f"`{k}`: {v}" for k, v in reduced.items()) + ".", ""]
    cols = ["scenario", "k", "reps", "failed", "rel_bias", "mean_log_rel_bias", "rel_rmse",
            "coverage", "coverage_mcse", "median_rel_width", "infinite_upper", "warning_rate",
            "sparse_warning_rate", "lower_bound_rate", "silent_miss_rate", "assumptions_hold",
            "sec_per_fit"]
    mcmc = ["rhat_gt_1.05", "median_ess", "divergent_fits"]
    for method, g in summary.groupby("method", sort=False):
        label = next(m.label for m in METHODS if m.name == method)
        shown = cols + mcmc if method in ("latent_class", "bayes_loglinear") else cols
        lines += [f"### {method}: {label}", "", _fmt(g[shown]), ""]
    lines += ["MCMC columns: share of replicates with R-hat of N above 1.05, median bulk ESS of N, "
              "share of fits with divergent transitions (NaN where the run predates them).", ""]
    lines += [
        "## Internal consistency on the real trafficking tables",
        "",
        "Binette & Steorts (2022): each list in turn is a population of known size, estimated "
        "from the other lists' captures of its members (`tipstat.validate.internal_consistency`"
        "); log relative bias `log(N-hat / list size)`, coverage = share of 95% intervals "
        "containing the list size. As in the paper (MSETools `analyses/internal_consistency`), a "
        "list enters only when at least 30 of its members are on some other list (the check's "
        "`min_seen=30`; below that the K-1 list table has 1-20 persons and every estimator sits "
        "on the boundary), estimates that do not exist are dropped and counted, and the "
        "benchmark pools the lists of the five tables of the paper (UK_5, Netherlands_5, "
        "NewOrleans_5, Western_5, Australia_4). New Orleans and Western have no list with 30 "
        "members seen elsewhere, so the benchmark is the 10-11 lists of UK, Netherlands and "
        "Australia. The paper also leaves out Netherlands' list K (`mean_without_K`); with it "
        "left out, tipstat's independence model reproduces the paper's -0.29 (median -0.28) "
        "(`tests/test_validate.py`). `se` is the standard error of the pooled mean over lists: "
        "with about ten lists it is 0.17 or more for every method, larger than the target's "
        "tolerance of 0.10 (and it leaves out each list's own estimation error).",
        "",
        "Benchmark (lists of the five tables pooled):",
        "",
        _fmt(pooled),
        "",
        "Per table (every trafficking table of `tipstat.datasets`; UK_4, UK_6, Netherlands_6 and "
        "NewOrleans_8 regroup the lists of the same persons, Korea_3 is estimated from two-list "
        "tables):",
        "",
        _fmt(ic_per_table(ic)),
        "",
        "Per list (default method):",
        "",
        _fmt(ic_def[["table", "list", "n_true", "n_seen", "n_hat", "lower", "upper",
                     "log_rel_bias", "covered", "status", "model"]], 2),
        "",
    ]
    notes = _stored(path, "validation_notes.md")
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--methods", default="all",
                        help="comma-separated method names; 'all' = every available method except "
                             f"{sorted(NOT_BY_DEFAULT)} (slow: run them by name)")
    parser.add_argument("--cells", default="all",
                        help="comma-separated scenario:K cells (default every cell of CELLS)")
    parser.add_argument("--slow-reps", type=int, default=50,
                        help=f"replicates for methods too slow for --reps ({sorted(SLOW)})")
    parser.add_argument("--mcmc-draws", type=int, default=SIZES["mcmc_draws"])
    parser.add_argument("--mcmc-tune", type=int, default=SIZES["mcmc_tune"])
    parser.add_argument("--mcmc-chains", type=int, default=SIZES["mcmc_chains"])
    parser.add_argument("--n-boot", type=int, default=SIZES["n_boot"],
                        help="bootstrap replicates per fit of the 'bootstrap' method")
    parser.add_argument("--ic", default="run",
                        help="internal-consistency benchmark: 'run' (the methods of this run, "
                             "stored ones kept for the others), 'none' (stored results only) "
                             "or comma-separated method names")
    parser.add_argument("--ic-tables", default="all", choices=["all", "bs"],
                        help="tables of a fresh internal-consistency run: every trafficking "
                             "table, or Binette & Steorts' five (for slow methods)")
    parser.add_argument("--scheduler", default=None,
                        help="run the replicates on a Dask cluster through tipstat.parallel: "
                             "a scheduler address (tcp://host:8786) or 'local' (a LocalCluster "
                             "of --n-jobs processes); results are identical to a local run with "
                             "the same --seed")
    parser.add_argument("--checkpoint", default=None,
                        help="append each replicate's rows to this CSV as it finishes (replicates "
                             "interleaved over the cells, rep 0 of every cell first; replicates "
                             "already in the file are skipped, so a stopped run resumes); the "
                             "seeds are those of a run without it")
    parser.add_argument("--minutes", type=float, default=None,
                        help="with --checkpoint: start no replicate after this many minutes and "
                             "report what finished (fewer replicates per cell, stated)")
    parser.add_argument("--quick", action="store_true", help="10 replicates, report to /tmp")
    parser.add_argument("--out", default=str(ROOT / "docs" / "validation.md"))
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from docs/validation_replicates.csv.gz")
    parser.add_argument("--add", action="store_true",
                        help="add the --methods to the replicates already in "
                             "docs/validation_replicates.csv.gz and rewrite the report "
                             "(replicate seeds follow the item order, so --cells/--reps "
                             "draw other populations than the main run: a separate sample)")
    args = parser.parse_args()
    SIZES.update(mcmc_draws=args.mcmc_draws, mcmc_tune=args.mcmc_tune,
                 mcmc_chains=args.mcmc_chains, n_boot=args.n_boot)
    reps = 10 if args.quick else args.reps
    out = Path("/tmp/validation_quick.md") if args.quick else Path(args.out)
    info = machine()
    wanted = ([m.name for m in METHODS if m.name not in NOT_BY_DEFAULT] if args.methods == "all"
              else args.methods.split(","))
    cells = list(range(len(CELLS))) if args.cells == "all" else [
        CELLS.index((c.split(":")[0], int(c.split(":")[1]))) for c in args.cells.split(",")]
    methods = [m for m in METHODS if m.name in wanted and m.available()]
    skipped = [m.name for m in METHODS if m.name in wanted and not m.available()]
    slow = SLOW
    fast_names = tuple(m.name for m in methods if m.name not in slow)
    slow_names = tuple(m.name for m in methods if m.name in slow)
    slow_reps = min(reps, args.slow_reps)
    items = []
    for c in cells:
        for r in range(reps):
            names = fast_names + (slow_names if r < slow_reps else ())
            items.append((c, r, names))
    print(f"{len(items)} populations x methods {[m.name for m in methods]} "
          f"(skipped: {skipped}); n_jobs={args.n_jobs}", flush=True)
    start = time.perf_counter()
    raw = out.parent / "validation_replicates.csv.gz"
    if args.report_only:
        df = pd.read_csv(_stored(out, raw.name))
    elif args.checkpoint:
        df = run_checkpointed(items, args.seed, args.n_jobs, Path(args.checkpoint), args.minutes)
        df["command"] = " ".join([Path(sys.executable).as_posix(), "benchmarks/coverage_study.py",
                                  *sys.argv[1:]])
        df["command_minutes"] = (time.perf_counter() - start) / 60
    else:
        from tipstat import parallel

        if args.scheduler:
            from dask.distributed import Client, LocalCluster

            cluster = (LocalCluster(n_workers=args.n_jobs, threads_per_worker=1,
                                    processes=True) if args.scheduler == "local" else None)
            with Client(cluster if cluster is not None else args.scheduler) as client:
                results = parallel.map(run_replicate, items, seed=args.seed, client=client,
                                       chunks_per_worker=25)
            if cluster is not None:
                cluster.close()
        else:
            results = parallel.map(run_replicate, items, seed=args.seed, n_jobs=args.n_jobs,
                                   chunks_per_worker=25,
                                   backend="loky" if args.n_jobs > 1 else "serial")
        df = pd.DataFrame([row for rows in results for row in rows])
        df["command"] = " ".join([Path(sys.executable).as_posix(), "benchmarks/coverage_study.py",
                                  *sys.argv[1:]])
        df["command_minutes"] = (time.perf_counter() - start) / 60
        if not args.quick:  # keep the new rows even if what follows fails
            df.to_csv(Path(tempfile.gettempdir()) / "coverage_study_last_run.csv.gz", index=False)
    # stored replicates: beside the report, else the repository's (a report written elsewhere
    # with --out starts from them and leaves them as they are)
    stored_raw = _stored(out, raw.name)
    if (args.add or args.report_only) and not args.quick and stored_raw.exists():
        old = pd.read_csv(stored_raw) if not args.report_only else df.iloc[:0]
        if "command" not in old:  # written before commands were recorded: take it from the report
            prev = [ln.strip() for ln in out.read_text().splitlines()
                    if "coverage_study.py" in ln and ln.startswith("    ")] if out.exists() else []
            old["command"] = prev[0] if prev else "benchmarks/coverage_study.py (not recorded)"
        # replace the (method, cell)s of this run; keep every other stored replicate
        key = ["method", "scenario", "k"]
        new_keys = set(map(tuple, df[key].drop_duplicates().to_numpy().tolist()))
        old = old[[tuple(r) not in new_keys for r in old[key].to_numpy().tolist()]]
        df = pd.concat([old, df], ignore_index=True)
        methods = [m for m in METHODS if m.name in set(df.method) and m.available()]
        skipped = [m.name for m in METHODS if not m.available()]
    sizes = df.groupby(["method", "scenario", "k"]).size()
    reps = int(sizes.max())
    reduced = {}
    for name, g in sizes.groupby(level=0):
        if g.max() < reps or len(g) < len(CELLS):
            kmax = int(g.index.get_level_values(2).max())
            per_cell = (f"{int(g.max())}" if g.min() == g.max()
                        else f"{int(g.min())}-{int(g.max())}")
            reduced[name] = (f"{per_cell} replicates per cell in {len(g)} of {len(CELLS)} cells, "
                             f"K <= {kmax}")
    print(f"simulation done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    if not args.quick and not args.report_only:
        df = df.round({"n_hat": 3, "lower": 3, "upper": 3, "seconds": 4})
        df.to_csv(raw, index=False)
    order = {m.name: i for i, m in enumerate(METHODS)}
    cell_order = {c: i for i, c in enumerate(CELLS)}
    summary = summarise(df)
    summary = summary.assign(
        _m=summary.method.map(order),
        _c=[cell_order.get((s, int(k)), len(CELLS))
            for s, k in zip(summary.scenario, summary.k, strict=True)],
    ).sort_values(["_m", "_c"], kind="stable").drop(columns=["_m", "_c"])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.round(3).to_string(index=False), flush=True)
    ic_path = out.parent / "validation_ic.csv.gz"
    # stored results: beside the report, else the repository's (a report written elsewhere with
    # --out); a quick run starts from none of them, except with --ic none (stored results only)
    source = _stored(out, ic_path.name)
    stored = source.exists() and (not args.quick or args.ic == "none")
    ic = pd.read_csv(source) if stored else pd.DataFrame()
    if args.ic != "none":
        names = (set(wanted) if args.ic == "run" else set(args.ic.split(",")))
        fresh = ic_run([m for m in METHODS if m.name in names and m.available()],
                       BS_TABLES if args.ic_tables == "bs" else REAL_TABLES)
        ic = pd.concat([ic[~ic.method.isin(fresh.method.unique())] if len(ic) else ic, fresh],
                       ignore_index=True)
        if not args.quick:
            ic.round({"n_hat": 3, "lower": 3, "upper": 3, "seconds": 2}).to_csv(ic_path,
                                                                                 index=False)
    ic = ic.sort_values("method", key=lambda c: c.map(order), kind="stable")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(ic_pooled(ic).round(3).to_string(index=False), flush=True)
    elapsed = time.perf_counter() - start
    if "command_minutes" not in df:
        df["command_minutes"] = np.nan
    runs = df.groupby("command", sort=False)["command_minutes"].first()
    commands = "\n    ".join(
        f"{cmd}    # {mins:.1f} min" if np.isfinite(mins) else f"{cmd}    # see docs/validation_run.log"
        for cmd, mins in runs.items())
    not_run = {m.name: NOT_RUN.get(m.name, "not requested") for m in METHODS
               if m.available() and m.name not in set(df.method)}
    write_report(out, summary, ic, info, commands, elapsed, reps, skipped, reduced, not_run)
    print(f"wrote {out} ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
