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
``age_group`` (Y0T17, Y_GE18, _T) and ``population``. Without ``--exports`` the script first
writes the exports of a synthetic country (known truth, no real person) and runs on them.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pandas as pd

import tipstat
from tipstat import ictip, linkage, simulate


def synthetic_exports(folder: Path, seed: int) -> tuple[Path, Path, Path, simulate.SyntheticCountry]:
    """Write a synthetic country's agency exports, list mapping and population table."""
    c = simulate.country(n_victims=4000, seed=seed,
                         lists={k: v for k, v in simulate.DEFAULT_LISTS.items() if k != "Z"})
    exports = folder / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    for entity, part in c.records.groupby("entity_id"):
        part.to_csv(exports / f"{entity}.csv", index=False)
    lists = folder / "lists.csv"
    c.list_definition.to_csv(lists, index=False)
    population = folder / "population.csv"
    c.population.to_csv(population, index=False)
    return exports, lists, population, c


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

    truth = None
    if args.exports is None:
        exports, lists, population, truth = synthetic_exports(out / "synthetic-input", args.seed)
        year, country = truth.year, truth.ref_area
        print(f"synthetic country {country} {year}: exports written to {exports}")
    else:
        exports, lists, population = Path(args.exports), Path(args.entity_map), Path(args.population)
        year, country = args.year, args.country

    files = sorted(p for p in exports.iterdir() if p.suffix.lower() in (".csv", ".xlsx", ".ods"))
    entity_map = pd.read_csv(lists)
    pop = pd.read_csv(population)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = ictip.read_records([str(f) for f in files], entity_map, period=year,
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
        print(f"truth of the synthetic country: {truth.n_victims:,} victims, "
              f"{truth.n_detected:,} detected")

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
