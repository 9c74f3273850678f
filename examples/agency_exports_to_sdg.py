"""From agency exports to the SDG 16.2.2 table: the job of a national task force.

Each reporting entity (police, border guard, labour inspectorate, social services, NGOs...)
exports its victim records, coded to IC-TIP, with a pseudonymous person key (HMAC-SHA-256 of the
normalised identifiers under a secret only the task force holds). This script

1. reads and validates every export (every error names the file row, column and value; every
   record is accounted for: read = used + excluded per reason),
2. links the records of the same person across agencies and de-duplicates within agencies,
3. builds capture histories by sex x age x form of exploitation,
4. fits a stratified log-linear model (list x covariate interactions chosen by AIC) with
   bootstrap intervals,
5. writes the SDG 16.2.2 table (small cells suppressed), its GLOTIP long form, and an HTML report.

Run on your own exports:

    python examples/agency_exports_to_sdg.py --exports exports/ --entity-map lists.csv \\
        --population population.csv --year 2024 --country NLD

``lists.csv`` has columns ``entity_id, list_id``; ``population.csv`` has ``sex`` (F, M, _T),
``age_group`` (Y0T17, Y_GE18, _T) and ``population``. Without ``--exports`` the script runs on
the bundled synthetic example (``tipstat.datasets.example()``: the exports of 8 agencies of a
synthetic country with known truth, no real person).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pandas as pd

import tipstat
from tipstat import ictip, linkage


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", default=None, help="folder of CSV/Excel exports")
    parser.add_argument("--entity-map", default=None, help="CSV: entity_id, list_id")
    parser.add_argument("--population", default=None, help="CSV: sex, age_group, population")
    parser.add_argument("--year", type=int, default=None, help="reference year")
    parser.add_argument("--country", default=None, help="ISO-3 code of the country")
    parser.add_argument("--out", default="sdg-output")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    truth = entities = None
    if args.exports is None:
        ex = tipstat.datasets.example()
        files, entity_map, entities = ex["record_files"], ex["list_definition"], ex["reporting_entity"]
        pop, year, country, truth = ex["population"], ex["year"], ex["ref_area"], ex["truth"]
        print(f"bundled synthetic example {country} {year}: {len(files)} agency exports")
    else:
        exports = Path(args.exports)
        files = [str(p) for p in sorted(exports.iterdir())
                 if p.suffix.lower() in (".csv", ".xlsx", ".ods")]
        entity_map, pop = pd.read_csv(args.entity_map), pd.read_csv(args.population)
        year, country = args.year, args.country

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = ictip.read_records(files, entity_map, entities=entities, period=year,
                                     ref_area=country)                          # 1. validate
        persons = linkage.link_exact(records)                                   # 2. link
        h = ictip.capture_histories(persons, by=["sex", "age_group", "exploitation"])  # 3.
        fit = tipstat.fit_stratified(h, bootstrap=args.bootstrap, seed=args.seed)     # 4.
        sdg = tipstat.sdg_16_2_2(fit, pop, ref_area=country, time_period=year)        # 5.
    print(records.accounting().to_string(index=False), "\n")
    print(persons.accounting.to_string(index=False), "\n")
    for w in dict.fromkeys(str(w.message) for w in caught):
        print(f"warning: {w}")

    sdg.to_csv(out / "sdg_16_2_2.csv")
    sdg.to_csv(out / "sdg_16_2_2_glotip.csv", glotip=True)
    columns = [c for c in ("sex", "age", "exploitation", "detected", "total_est", "total_lcl",
                           "total_ucl", "rate_per_100k", "obs_status") if c in sdg.table]
    print(sdg.table[columns].to_string(index=False), "\n")
    print(f"total: {fit.n_hat:,.0f} victims [{fit.ci[0]:,.0f}, {fit.ci[1]:,.0f}], "
          f"{h.n_observed:,} detected")
    if truth is not None:
        print(f"truth of the synthetic country: {truth['N'].sum():,} victims, "
              f"{truth['detected'].sum():,} detected")

    from tipstat.report.html import write_report

    accounting = dict(zip(records.accounting()["item"], records.accounting()["records"],
                          strict=True))
    report = write_report(out / "report.html", h, accounting=accounting, sdg_table=sdg.table,
                          seed=args.seed, title=f"SDG 16.2.2: {country} {year}")
    print(f"written: {out / 'sdg_16_2_2.csv'}, {out / 'sdg_16_2_2_glotip.csv'}, {report}")
    return {"records": records, "persons": persons, "histories": h, "fit": fit, "sdg": sdg,
            "truth": truth}


if __name__ == "__main__":
    main()
