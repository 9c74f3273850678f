"""Silent misses and false alarms of the table checks, before and after the heterogeneity check
of models with interactions (issue 16).

Reads the default's replicates of the coverage study (``docs/validation_replicates.csv.gz``,
rows written with the observed cells ``counts`` and the best model's interactions ``terms``),
re-runs :func:`tipstat.validate.heterogeneity_beyond_model` on each table (the best model is
refitted with :func:`tipstat.fit_loglinear`: milliseconds) and prints, per cell:

* ``coverage`` and its Monte Carlo SE ``sqrt(c (1 - c) / R)``, ``lower_bounds`` (share with
  status ``lower_bound``);
* ``warned_before`` / ``warned_after``: share with a caveat that is not ``sparse_table`` or
  ``note``, without / with the new check; ``het_fires``: share where the new check fires;
* ``silent_before`` / ``silent_after``: share that misses N with status ok and no caveat at all.

With ``--update`` the rows whose ``codes`` predate the check (a run on older code) get the new
caveat added to ``codes`` and ``warned``, and the file is written back; rows that already carry
it are compared with the re-run (they must agree).

Run::

    python benchmarks/heterogeneity_check.py [--file docs/validation_replicates.csv.gz] [--update]
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import tipstat
from tipstat.validate import heterogeneity_beyond_model

ROOT = Path(__file__).resolve().parents[1]
NOT_WARNINGS = {"", "note"}
SILENT_OK = ("ok", "extended")
#: cells where the default's assumptions hold (as ASSUMPTIONS_HOLD["default"] of coverage_study)
HOLD = {"independence", "positive", "negative", "sparse"}


def table(counts: str, k: int) -> tipstat.CaptureHistories:
    """The observed table of a replicate (cells in the order of ``pattern_matrix(k)``)."""
    return tipstat.CaptureHistories(np.array([int(c) for c in counts.split()]),
                                    [f"L{j + 1}" for j in range(k)])


def rerun(row: pd.Series, alpha: float = 0.05) -> float:
    """p of the heterogeneity check on the replicate's table and best model (nan: no test)."""
    h = table(row["counts"], int(row["k"]))
    terms = [t for t in str(row["terms"]).split(";") if t and t != "nan"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = tipstat.fit_loglinear(h, terms or "independence", ci="none", check=False)
    return heterogeneity_beyond_model(h, fit)["p"]


def codes_of(v) -> set[str]:
    return set(str(v).split(";")) - NOT_WARNINGS if isinstance(v, str) else set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", default=str(ROOT / "docs" / "validation_replicates.csv.gz"))
    parser.add_argument("--method", default="default")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--update", action="store_true")
    args = parser.parse_args()
    df = pd.read_csv(args.file)
    sel = (df.method == args.method) & df["counts"].notna() if "counts" in df else None
    if sel is None or not sel.any():
        raise SystemExit("no replicate with recorded cells: re-run the coverage study")
    rows = df[sel].copy()
    rows["p_het"] = [rerun(r, args.alpha) for _, r in rows.iterrows()]
    fires = rows.p_het < args.alpha
    had = rows.codes.map(lambda c: "heterogeneity" in codes_of(c))
    # the default never ran a heterogeneity check before (model averages were skipped), so
    # "before" is its caveats without the new one
    before = rows.codes.map(lambda c: codes_of(c) - {"heterogeneity"})
    after = [b | ({"heterogeneity"} if f else set()) for b, f in zip(before, fires, strict=True)]
    stamped = rows.codes.notna() & rows.codes.str.contains("heterogeneity", na=False)
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
    agree = (had == fires)[stamped | rows.codes.notna()]
    print(f"in-run check vs re-run: {int((had[stamped] == fires[stamped]).sum())} of "
          f"{int(stamped.sum())} rows that carry the caveat agree; "
          f"{int((~had & fires).sum())} rows gain it ({len(agree)} rows compared)")
    if args.update:
        new = ~had & fires
        idx = rows.index[new]
        df.loc[idx, "codes"] = [";".join(sorted(codes_of(c) | {"heterogeneity"}))
                                for c in df.loc[idx, "codes"]]
        df.loc[idx, "warned"] = True
        df.to_csv(args.file, index=False)
        print(f"updated {len(idx)} rows of {args.file}")


if __name__ == "__main__":
    main()
