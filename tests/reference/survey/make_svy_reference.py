"""Regenerate ``svy_results.json``: svy's numbers for the three cases R printed too few digits
of (or none), read by ``tests/survey/test_against_r_survey.py``.

svy (https://pypi.org/project/svy/) is an independent implementation checked by its authors
against R's ``survey``; it is not a dependency of tipstat (it needs numpy >= 2 and scipy >= 1.13,
above the project's lower bounds), so its results are stored here and the tests always run.

Run (once, in an environment with svy and polars installed)::

    python -m tests.reference.survey.make_svy_reference
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pandas as pd

REF = Path(__file__).resolve().parent


def _load(name: str) -> pd.DataFrame:
    return pd.read_csv(REF / f"{name}.csv", dtype={"cds": str})


def main() -> None:
    import polars as pl
    import svy

    out: dict = {"svy_version": version("svy"), "polars_version": version("polars")}
    c2 = _load("apiclus2")
    s = svy.Sample(pl.from_pandas(c2[["dnum", "snum", "pw", "fpc1", "fpc2", "api00", "enroll"]]),
                   svy.Design(psu="dnum", ssu="snum", wgt="pw",
                              pop_size=svy.PopSize("fpc1", "fpc2")))
    m = s.estimation.mean("api00").to_polars()
    t = s.estimation.total("enroll", drop_nulls=True).to_polars()
    out["clus2_fpc"] = {"mean_api00_se": float(m["se"][0]), "total_enroll_se": float(t["se"][0])}

    c1 = _load("apiclus1")
    df = c1.assign(yes=(c1["sch.wide"] == "Yes").astype(int))
    s = svy.Sample(pl.from_pandas(df[["dnum", "pw", "fpc", "stype", "yes"]]),
                   svy.Design(psu="dnum", wgt="pw", pop_size="fpc"))
    logit = s.estimation.prop("yes", by="stype", ci_method="logit").to_polars()
    beta_all = s.estimation.prop("yes", ci_method="beta").to_polars().filter(pl.col("yes") == 1)
    beta_by = s.estimation.prop("yes", by="stype", ci_method="beta").to_polars()
    out["sch_wide_logit_by_stype"] = {
        r["stype"]: {k: (int(r[k]) if k == "df" else float(r[k]))
                     for k in ("est", "se", "df", "lci", "uci")}
        for r in logit.filter(pl.col("yes") == 1).iter_rows(named=True)}
    out["sch_wide_beta"] = {"lci": float(beta_all["lci"][0]), "uci": float(beta_all["uci"][0])}
    out["sch_wide_beta_by_stype"] = {
        r["stype"]: {"lci": float(r["lci"]), "uci": float(r["uci"])}
        for r in beta_by.filter(pl.col("yes") == 1).iter_rows(named=True)}
    (REF / "svy_results.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
