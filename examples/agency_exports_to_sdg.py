"""From agency exports to the SDG 16.2.2 table: the job of a national task force.

Each reporting entity (police, border guard, labour inspectorate, social services, NGOs...)
exports its victim records: coded to IC-TIP (CSV/Excel), or in IOM's HTCDS v2.0 layout (its Excel
template or a CSV with its system names), with a pseudonymous person key (HMAC-SHA-256 of the
normalised identifiers under a secret only the task force holds) or with clear identifiers and
the secret given from a file. One call, ``tipstat.pipeline.run_indicator``,

1. reads and validates every export, each in its own format (every error names the file row,
   column and problem; every record is accounted for: read = used + excluded per reason),
2. links the records of the same person across agencies and de-duplicates within agencies,
3. builds capture histories by sex x age x form of exploitation,
4. fits a stratified log-linear model (list x covariate interactions chosen by AIC) with
   bootstrap intervals (seed 2024 unless told otherwise: the same inputs give the same bits),
5. builds the SDG 16.2.2 table (small cells suppressed) and its headline: the total row;

then ``run.write(out)`` writes the table (CSV, Excel), its GLOTIP long form, the SDMX-CSV file
(SDG global database layout), the metadata (seed, method) and the HTML report. The same job from
the shell is ``tipstat indicator``.

Run on your own exports:

    python examples/agency_exports_to_sdg.py --exports exports/ --entity-map lists.csv \\
        --population population.csv --secret-file key.txt --year 2024 --country NLD

``lists.csv`` has columns ``entity_id, list_id``; ``population.csv`` has ``sex`` (F, M, _T),
``age_group`` (Y0T17, Y_GE18, _T) and ``population`` (docs/cli.md). Without ``--exports`` the
script runs on the bundled synthetic example (``tipstat.datasets.example()``: the exports of 8
agencies of a synthetic country with known truth, no real person).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import tipstat
from tipstat.pipeline import DEFAULT_SEED, run_indicator


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", default=None, help="folder of CSV/Excel exports")
    parser.add_argument("--entity-map", default=None, help="CSV: entity_id, list_id")
    parser.add_argument("--population", default=None, help="CSV: sex, age_group, population")
    parser.add_argument("--secret-file", default=None,
                        help="file holding the linkage key (records with clear identifiers)")
    parser.add_argument("--year", type=int, default=None, help="reference year")
    parser.add_argument("--country", default=None, help="ISO-3 code of the country")
    parser.add_argument("--out", default="sdg-output")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)

    truth = entities = today = secret = None
    if args.exports is None:
        ex = tipstat.datasets.example()
        folder = Path(tempfile.mkdtemp(prefix="agency-exports-"))
        files = []
        for entity, part in ex["records"].groupby("entity_id"):  # one export per agency
            files.append(folder / f"{entity}.csv")
            part.to_csv(files[-1], index=False)
        entity_map, entities = ex["list_definition"], ex["reporting_entity"]
        pop, year, country, truth = ex["population"], int(ex["year"]), ex["ref_area"], ex["truth"]
        today = f"{year + 1}-12-31"
        print(f"bundled synthetic example {country} {year}: {len(files)} agency exports")
    else:
        files = sorted(p for p in Path(args.exports).iterdir()
                       if p.suffix.lower() in (".csv", ".xlsx"))
        entity_map, pop, year, country = args.entity_map, args.population, args.year, args.country
        if args.secret_file:
            secret = tipstat.linkage.Secret(Path(args.secret_file).read_text().strip())

    run = run_indicator(files, entity_map, pop, secret=secret, country=country, year=year,
                        entities=entities, today=today, seed=args.seed,
                        n_boot=args.bootstrap)
    print(run.records.accounting().to_string(index=False), "\n")
    print(run.persons.accounting.to_string(index=False), "\n")
    for w in run.warnings:
        print(f"warning: {w.message}")
    columns = ["sex", "age", "exploitation", "detected", "total_est", "total_lcl", "total_ucl",
               "rate_per_100k", "obs_status"]
    print(run.sdg.table[columns].to_string(index=False), "\n")
    print(run.headline.text())
    if run.pooled is not None:
        print(f"check (not published): pooled default estimate {run.pooled.n_hat:,.0f}. "
              f"{run.pooled_note}")
    if truth is not None:
        print(f"truth of the synthetic country: {truth['N'].sum():,} victims, "
              f"{truth['detected'].sum():,} detected")
    written = run.write(args.out, title=f"SDG 16.2.2: {country} {year}")
    print("written: " + ", ".join(str(p) for p in written))
    return {"run": run, "records": run.records, "persons": run.persons,
            "histories": run.histories, "fit": run.fit, "sdg": run.sdg, "truth": truth}


if __name__ == "__main__":
    main()
