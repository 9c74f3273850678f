"""Reproduce the UK 2013 estimate of potential victims of modern slavery (Home Office, 2014).

Silverman (2014) estimated 10,000-13,000 potential victims in the UK in 2013 from five lists of
the National Referral Mechanism data (local authorities LA, NGOs NG, police and National Crime
Agency PFNCA, government organisations GO, general public GP). This script

1. refits the published model and prints the published figure beside tipstat's,
2. reruns the selection rule that chose it (Bales, Hesketh & Silverman 2015,
   ``tipstat.select_loglinear``),
3. adds a bootstrap interval that repeats the selection in every replicate
   (``tipstat.bootstrap``), which the published Wald interval does not, and
4. shows how much the answer depends on the model (``tipstat.compare``).

Run:  python examples/reproduce_uk_2013.py [--n-boot 1000] [--seed 2013] [--methods default]
"""

from __future__ import annotations

import argparse

import tipstat
from tipstat.report.reproduce import reproduce

PUBLISHED = 11_313            # Silverman (2014), with the authors' code
PUBLISHED_CI = (9_884, 13_027)  # 95% Wald interval on the log of the dark figure
MODEL = "LA:NG + NG:GP + PFNCA:GP + LA:PFNCA + GO:GP + NG:GO"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=2013)
    parser.add_argument("--methods", default="default",
                        help="methods for the comparison: 'default', 'all' or comma-separated")
    args = parser.parse_args(argv)

    h = tipstat.datasets.load("UK_5")
    print(h.summary(), "\n")

    # 1. the published model, refitted
    est = tipstat.fit_loglinear(h, MODEL, ci="wald")
    print(f"published  {PUBLISHED:>7,}  [{PUBLISHED_CI[0]:,}, {PUBLISHED_CI[1]:,}]  (95% Wald)")
    print(f"tipstat    {est.n_hat:>7,.0f}  [{est.ci[0]:,.0f}, {est.ci[1]:,.0f}]  ({est.ci_method})"
          f"  model {est.model}\n")
    out = {"refit": est}

    # 2. the selection rule
    rule = tipstat.select_loglinear(h, "bhs")
    print(f"Bales-Hesketh-Silverman rule selects {rule.model}: N-hat {rule.n_hat:,.0f}\n")
    out["rule"] = rule

    # 3. an interval that carries the selection step
    if args.n_boot > 0:
        boot = tipstat.bootstrap(h, "stepwise", n_boot=args.n_boot, seed=args.seed)
        print(f"stepwise selection with {args.n_boot} BCa bootstrap replicates (seed {args.seed}):"
              f" {boot.n_hat:,.0f} [{boot.ci[0]:,.0f}, {boot.ci[1]:,.0f}]\n")
        out["bootstrap"] = boot

    # 4. every published UK 2013 figure, and every method
    table = reproduce("uk-2013", selection=False)
    print(table[["dataset", "published_method", "published", "n_hat", "ci_method"]]
          .to_string(index=False), "\n")
    methods = args.methods if args.methods in ("default", "all") else args.methods.split(",")
    comparison = tipstat.compare(h, methods, seed=args.seed)
    print(comparison[["method", "model", "status", "n_hat", "lower", "upper", "ci_method"]]
          .to_string(index=False))
    out["comparison"] = comparison
    return out


if __name__ == "__main__":
    main()
