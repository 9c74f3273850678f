"""Silent misses and false alarms of the table checks, before and after the heterogeneity check
of models with interactions (issue 16).

Reads the default's replicates of the coverage study (``docs/validation_replicates.csv.gz``,
rows written with the observed cells ``counts`` and the best model's interactions ``terms``),
re-runs the heterogeneity check of :func:`tipstat.validate.assumption_warnings` on each table (the
best model refitted with :func:`tipstat.fit_loglinear`: milliseconds) and prints, per cell:

* ``coverage`` and its Monte Carlo SE ``sqrt(c (1 - c) / R)``, ``lower_bounds`` (share with
  status ``lower_bound``);
* ``warned_before`` / ``warned_after``: share with a caveat that is not ``sparse_table`` or
  ``note``, without / with the new check; ``het_fires``: share where the new check fires;
* ``silent_before`` / ``silent_after``: share that misses N with status ok and no caveat at all.

With ``--update`` the file is written back with, for every replicate of the method, the cells,
the best model's terms and ``codes`` (a warned replicate stored before codes were recorded gets
``unrecorded_check``), ``heterogeneity`` in ``codes`` and ``warned`` as this code's check says;
rows whose codes the run recorded are compared with the re-run first.

Run::

    python benchmarks/heterogeneity_check.py [--file docs/validation_replicates.csv.gz] [--update]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import tipstat
from tipstat.validate import assumption_warnings

ROOT = Path(__file__).resolve().parents[1]
NOT_WARNINGS = {"", "note"}
SILENT_OK = ("ok", "extended")
#: codes of the table checks that set the coverage study's ``warned`` (sparse_table apart;
#: "unrecorded_check": a warned replicate stored before codes were recorded)
TABLE_CHECKS = {"lack_of_fit", "dependence", "heterogeneity", "two_lists", "unstable",
                "internal_inconsistency", "unrecorded_check"}
#: cells where the default's assumptions hold (as ASSUMPTIONS_HOLD["default"] of coverage_study)
HOLD = {"independence", "positive", "negative", "sparse"}


def table(counts: str, k: int) -> tipstat.CaptureHistories:
    """The observed table of a replicate (cells in the order of ``pattern_matrix(k)``)."""
    return tipstat.CaptureHistories(np.array([int(c) for c in counts.split()]),
                                    [f"L{j + 1}" for j in range(k)])


def rerun(row: pd.Series, alpha: float = 0.05) -> bool:
    """Whether the table checks give the default's result on this replicate a
    ``heterogeneity`` caveat: its best model refitted and marked as a model average, as the
    default's result is, then :func:`tipstat.validate.assumption_warnings`."""
    h = table(row["counts"], int(row["k"]))
    terms = [t for t in str(row["terms"]).split(";") if t and t != "nan"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = tipstat.fit_loglinear(h, terms or "independence", ci="none", check=False)
    fit = dataclasses.replace(fit, diagnostics={**fit.diagnostics, "model_averaged": True,
                                                "assumes_independence": False})
    return any(w.code == "heterogeneity" for w in assumption_warnings(h, fit, alpha=alpha))


def _option(command: str, name: str, default: str) -> str:
    m = re.search(rf"--{name}[ =](\S+)", command)
    return m.group(1) if m else default


def regenerate(rows: pd.DataFrame) -> pd.DataFrame:
    """``counts`` and ``terms`` of replicates stored before they were recorded: each table is
    drawn again from its run's command (``--cells``, ``--reps``, ``--seed``; item ``i`` of the
    run has seed ``SeedSequence(seed).spawn(n_items)[i]``, its population the first of two
    children, as in ``coverage_study.run_replicate``), checked against the stored number of
    persons observed, and the best model is read from the stored model name."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from coverage_study import CELLS, N_TRUE

    from tipstat.simulate_populations import populations, scenario

    rows = rows.copy()
    for command, g in rows.groupby("command", sort=False):
        spec = _option(command, "cells", "all")
        cells = CELLS if spec == "all" else [(c.split(":")[0], int(c.split(":")[1]))
                                             for c in spec.split(",")]
        reps = int(_option(command, "reps", "200"))
        seqs = np.random.SeedSequence(int(_option(command, "seed", "20261122"))).spawn(
            len(cells) * reps)
        for i, r in g.iterrows():
            item = cells.index((r.scenario, int(r.k))) * reps + int(r.rep)
            pop_seed, _ = seqs[item].spawn(2)
            h = populations(n=N_TRUE, seed=pop_seed, **scenario(r.scenario, k=int(r.k))).histories
            if h.n_observed != r.n_observed:
                raise SystemExit(f"{r.scenario}:{r.k} replicate {r.rep}: the table drawn again "
                                 "differs from the stored one")
            rows.loc[i, "counts"] = " ".join(str(int(c)) for c in h.counts)
            m = re.search(r"best \[(.*)\]", str(r.model))
            rows.loc[i, "terms"] = ";".join(m.group(1).split(", ")) if m else ""
    return rows


def codes_of(v) -> set[str]:
    return set(str(v).split(";")) - NOT_WARNINGS if isinstance(v, str) else set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", default=str(ROOT / "docs" / "validation_replicates.csv.gz"))
    parser.add_argument("--method", default="default")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--update", action="store_true")
    parser.add_argument("--cells", default=None, help="comma-separated scenario:K cells")
    args = parser.parse_args()
    df = pd.read_csv(args.file)
    for col in ("counts", "terms", "codes"):
        if col not in df:
            df[col] = np.nan
    df["counts"] = df["counts"].astype(object)
    df["terms"] = df["terms"].astype(object)
    df["codes"] = df["codes"].astype(object)
    sel = df.method == args.method
    if args.cells:
        keep = {(c.split(":")[0], int(c.split(":")[1])) for c in args.cells.split(",")}
        sel &= np.array([(s, int(k)) in keep for s, k in zip(df.scenario, df.k, strict=True)])
    rows = df[sel].copy()
    old = rows["counts"].isna()
    if old.any():
        rows.loc[old] = regenerate(rows[old])
        # rows stored before codes were: the table checks' warned/sparse flags (a warning whose
        # code was not recorded: "unrecorded_check")
        rows.loc[old, "codes"] = [";".join(sorted((["unrecorded_check"] if w else [])
                                                  + (["sparse_table"] if sp else [])))
                                  for w, sp in zip(rows["warned"][old], rows["sparse"][old],
                                                   strict=True)]
        df.loc[rows.index[old], ["counts", "terms", "codes"]] = rows.loc[old, ["counts", "terms",
                                                                               "codes"]]
    fires = pd.Series([rerun(r, args.alpha) for _, r in rows.iterrows()], index=rows.index)
    had = rows.codes.map(lambda c: "heterogeneity" in codes_of(c))
    # the default never ran a heterogeneity check before (model averages were skipped), so
    # "before" is its caveats without the new one
    before = rows.codes.map(lambda c: codes_of(c) - {"heterogeneity"})
    after = [b | ({"heterogeneity"} if f else set()) for b, f in zip(before, fires, strict=True)]
    covered = (rows.lower <= rows.n_true) & (rows.n_true <= rows.upper)
    quiet_ok = rows.status.isin(SILENT_OK)
    rows = rows.assign(
        covered=covered, het=fires,
        warned_before=[bool(b - {"sparse_table"}) for b in before],
        warned_after=[bool(a - {"sparse_table"}) for a in after],
        silent_before=[(not c) and q and not b for c, q, b in zip(covered, quiet_ok, before,
                                                                   strict=True)],
        silent_after=[(not c) and q and not a for c, q, a in zip(covered, quiet_ok, after,
                                                                 strict=True)])
    out = []
    for (name, k), g in rows.groupby(["scenario", "k"], sort=False):
        c = g.covered.mean()
        out.append({"scenario": name, "k": int(k), "reps": len(g), "coverage": c,
                    "mcse": math.sqrt(c * (1 - c) / len(g)),
                    "lower_bounds": (g.status == "lower_bound").mean(),
                    "misses": (~g.covered).mean(),
                    "warned_before": g.warned_before.mean(), "warned_after": g.warned_after.mean(),
                    "het_fires": g.het.mean(), "silent_before": g.silent_before.mean(),
                    "silent_after": g.silent_after.mean(), "hold": name in HOLD})
    res = pd.DataFrame(out).sort_values(["hold", "scenario", "k"], ascending=[False, True, True])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(res.round(3).to_string(index=False))
    hold = rows[rows.scenario.isin(HOLD)]
    r = len(hold)
    for col in ("het", "warned_before", "warned_after") if r else ():
        p = float(hold[col].mean())
        print(f"where assumptions hold ({r} tables): {col} {p:.3f} (MC SE {math.sqrt(p * (1 - p) / r):.3f})")
    native = ~old          # codes recorded by the run itself (with the check of its code)
    print(f"in-run check vs re-run, {int(native.sum())} rows recorded with codes: "
          f"{int((had == fires)[native].sum())} agree; {int((fires & ~had).sum())} rows of all "
          f"{len(rows)} gain the caveat, {int((had & ~fires).sum())} lose it")
    if args.update:
        # the check of this code decides: 'heterogeneity' in codes as the re-run says, and
        # 'warned' (the runner's flag: a table check other than sparse_table fired) with it
        df.loc[rows.index, "codes"] = [";".join(sorted(a)) for a in after]
        df.loc[rows.index, "warned"] = [bool(a & TABLE_CHECKS) for a in after]
        df.to_csv(args.file, index=False)
        print(f"updated {len(rows)} rows of {args.file}")

if __name__ == "__main__":
    main()
