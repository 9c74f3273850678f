"""Sensitivity analysis of an MSE estimate: every method, every list left out, lists merged.

The analysis every MSE report needs before it states a number (see the method guide):

1. all available methods side by side (``tipstat.compare``) with a forest plot,
2. the estimate refitted with each list left out in turn (does one list drive it?),
3. lists from related institutions merged (are they really independent sources?),
4. the reliability check of Binette & Steorts (``tipstat.internal_consistency``), and
5. a self-contained HTML report of all of it.

Run on a bundled table or on your own capture-history file (0/1 list columns and ``count``):

    python examples/sensitivity_analysis.py                      # UK 2013
    python examples/sensitivity_analysis.py my_table.csv --out results/
    python examples/sensitivity_analysis.py UK_6 --merge PF,NCA
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import tipstat
from tipstat.comparison import leave_one_list_out


def load(source: str) -> tipstat.CaptureHistories:
    if Path(source).exists():
        return tipstat.CaptureHistories.from_frame(pd.read_csv(source))
    return tipstat.datasets.load(source)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", nargs="?", default="UK_5", help="file or bundled table name")
    parser.add_argument("--out", default="sensitivity-output", help="output folder")
    parser.add_argument("--merge", default=None, help="comma-separated lists to merge into one")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    h = load(args.table)
    print(h.summary(), "\n")

    comparison = tipstat.compare(h, seed=args.seed)
    print(comparison[["method", "model", "status", "n_hat", "lower", "upper", "ci_method", "aic"]]
          .to_string(index=False), "\n")
    comparison.drop(columns=["warnings"]).to_csv(out / "compare.csv", index=False)
    from tipstat.report.plots import plot_forest

    ax = plot_forest(comparison)
    ax.figure.savefig(out / "forest.png", dpi=120, bbox_inches="tight")

    loo_methods = ["bic_average", "independence", "bic"]
    loo = leave_one_list_out(h, loo_methods)
    print(loo.to_string(index=False), "\n")
    loo.to_csv(out / "leave_one_out.csv", index=False)

    merged = None
    if args.merge:
        group = args.merge.split(",")
        hm = h.merge_lists({"+".join(group): group})
        merged = tipstat.compare(hm, loo_methods)
        print(f"lists {group} merged:")
        print(merged[["method", "model", "status", "n_hat", "lower", "upper"]]
              .to_string(index=False), "\n")

    reliability = None
    if h.k >= 3:
        reliability = tipstat.internal_consistency(h, tipstat.estimate_population)
        print(reliability.indicator["note"], "\n")

    from tipstat.report.html import write_report

    report = write_report(out / "report.html", h, comparison=comparison, sensitivity=loo,
                          seed=args.seed, reliability=reliability,
                          title=f"Sensitivity analysis: {args.table}")
    print(f"written: {out / 'compare.csv'}, {out / 'leave_one_out.csv'}, {out / 'forest.png'}, "
          f"{report}")
    return {"comparison": comparison, "leave_one_out": loo, "merged": merged,
            "reliability": reliability}


if __name__ == "__main__":
    main()
