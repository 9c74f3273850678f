"""Forced-labour prevalence from a household survey, side by side with an MSE estimate.

What a statistics office runs once its survey is in (see docs/survey.md):

1. the microdata, the sampling design (strata, PSUs, weights, fpc) and the questionnaire
   mapping (which variable answers which item of the statistical definition),
2. every respondent classified by the definition (tipstat-prov-1: ICLS 2018 forced labour,
   trafficking for forced labour, children's forced labour), every exclusion counted,
3. design-based prevalence per 100,000 and estimated persons, overall and by domain, with
   intervals for rare proportions,
4. the tables ready to publish (domains with fewer than 5 unweighted cases withheld, and the
   domains that would give them back), and
5. the network scale-up estimate of the people in forced labour whom the respondents know
   (the design file's [nsum] table: the "how many people do you know who ..." questions), and
6. the survey next to the MSE estimate of identified and unidentified victims and the scale-up,
   each row saying what it counts, in a self-contained HTML report.

Run on the bundled synthetic country, or on your own files:

    python examples/survey_prevalence.py
    python examples/survey_prevalence.py survey.sav --design design.toml --mapping map.toml \\
        --by sex,region --mse-table lists.csv --population 5400000 --out results/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import tipstat
from tipstat import datasets
from tipstat.report.survey import write_survey_report
from tipstat.survey import read_design_spec, read_survey, run_survey, side_by_side

#: The synthetic country's agency lists in the survey's year (invented counts, like the survey):
#: labour inspection (LI), police (PO), NGO shelters (NG); one row per capture pattern.
SYNTHETIC_LISTS = pd.DataFrame({
    "LI": [1, 0, 0, 1, 1, 0, 1], "PO": [0, 1, 0, 1, 0, 1, 1], "NG": [0, 0, 1, 0, 1, 1, 1],
    "count": [150, 120, 90, 30, 25, 20, 8]})


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=None,
                        help="survey microdata (default: the bundled synthetic country)")
    parser.add_argument("--design", default=None, help="design TOML ([design] weights, ...)")
    parser.add_argument("--mapping", default=None, help="questionnaire mapping (TOML/CSV)")
    parser.add_argument("--by", default="sex,age_group,region",
                        help="domain columns, comma-separated")
    parser.add_argument("--mse-table", default=None,
                        help="capture-history table of the agency lists (CSV with 0/1 list "
                             "columns and count; default: the synthetic country's lists)")
    parser.add_argument("--population", type=float, default=None,
                        help="population the MSE rate is per (default: the bundled survey's)")
    parser.add_argument("--out", default="survey-output", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. data, design, mapping
    truth = None
    if args.data is None:
        sv = datasets.load_survey()
        spec = read_design_spec(sv["paths"]["design"])
        data, design, mapping = sv["data"], sv["design"], sv["mapping"]
        population, truth, source = sv["info"]["population"], sv["truth"], "synthetic country"
    else:
        spec = read_design_spec(args.design)
        data, design, mapping = read_survey(args.data), spec["design"], args.mapping
        population, source = spec["survey"].get("population"), Path(args.data).name
    population = args.population or population

    # 2-5. classify, estimate by domain, protect the tables; the scale-up if the design file
    # has an [nsum] table
    run = run_survey(data, design=design, mapping=mapping, by=args.by.split(","),
                     source=source, nsum=spec["nsum"] or None)
    print(f"{source}: {len(run.design.data):,} respondents; definition "
          f"{run.definition['name']} ({run.definition['status']}); reference period "
          f"{run.definition['reference_period']}")
    for stage, reasons in run.excluded.items():
        for reason, n in reasons.items():
            print(f"  excluded ({stage}) {reason}: {n}")
    published = run.published.table
    shown = ["indicator", *run.published.dims, "n_sample", "n_cases", "rate", "rate_lower",
             "rate_upper", "total", "total_lower", "total_upper", "obs_status"]
    print(published[shown].to_string(index=False, float_format="{:,.1f}".format), "\n")
    published.to_csv(out / "survey_prevalence.csv", index=False)
    if truth is not None:   # the synthetic country's truth: do the intervals cover it?
        totals = {r.indicator: r for r in run.table if not r.domain}
        for ind, r in totals.items():
            col = f"true_{ind}"
            if col in truth:
                true = int(truth.loc[truth.domain == "total", col].iloc[0])
                print(f"  {ind}: estimated {r.total:,.0f} [{r.total_ci[0]:,.0f}, "
                      f"{r.total_ci[1]:,.0f}], true {true:,}")

    if run.nsum is not None:
        e = run.nsum
        figure = ("withheld (too few respondents report anyone)" if run.nsum_withheld else
                  f"{e.n_hat:,.0f} [{e.ci[0]:,.0f}, {e.ci[1]:,.0f}]")
        print(f"\nnetwork scale-up, {run.nsum_label}: {figure}")
        for w in e.warnings:     # nsum_bias always: what the method assumes and cannot test
            print(f"  [{w.code}] {w}")
        if truth is not None and not run.nsum_withheld:
            true = int(truth.loc[truth.domain == "total", "true_forced_labour"].iloc[0])
            print(f"  true number in forced labour: {true:,}")

    # 6. MSE of the agency lists, and the three side by side
    lists = (tipstat.CaptureHistories.from_frame(pd.read_csv(args.mse_table))
             if args.mse_table else tipstat.CaptureHistories.from_frame(SYNTHETIC_LISTS))
    mse = tipstat.estimate_population(lists)
    side = side_by_side(published, mse, population=population,
                        survey_period=run.definition["reference_period"], nsum=run.nsum,
                        nsum_label=run.nsum_label or "hidden population (network scale-up)")
    print("\n" + side[["source", "indicator", "shown", "interval_shown", "rate_shown"]]
          .to_string(index=False))
    print(f"\n{side.attrs['note']}")
    side.to_csv(out / "side_by_side.csv", index=False)
    report = write_survey_report(out / "survey_report.html", run, side)
    print(f"written: {out / 'survey_prevalence.csv'}, {out / 'side_by_side.csv'}, {report}")
    return {"run": run, "mse": mse, "side": side, "truth": truth, "out": out}


if __name__ == "__main__":
    main()
