"""tipstat.pipeline: agency exports of mixed formats (IC-TIP CSV, HTCDS CSV, the HTCDS Excel
template) with clear identifiers -> one linked SDG table, its headline and its exports; the
population table's aliases and totals; tipstat.sdmx."""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from tipstat import simulate
from tipstat.errors import InputError, TipstatWarning
from tipstat.ictip import detect_format
from tipstat.ictip.keys import generate_secret
from tipstat.indicator import normalise_population
from tipstat.pipeline import DEFAULT_SEED, run_indicator
from tipstat.sdmx import DIMENSIONS, HEADER

FOUR = {k: v for k, v in simulate.DEFAULT_LISTS.items() if k in "PKOR"}
HTCDS_SEX = {"F": "Feminine", "M": "Masculine"}
HTCDS_STATUS = {"PRESUMED": "Possible victim of trafficking",
                "IDENTIFIED": "Actual victim of trafficking",
                "NOT_VICTIM": "Not a victim of trafficking"}
HTCDS_FORM = {"SEX": "Sexual exploitation", "LAB": "Forced labour", "LAB.DOM": "Servitude",
              "LAB.OTH": "Child labour", "ORG": "Organ removal", "OTH": "Other",
              "OTH.BEG": "Forced begging", "OTH.MAR": "Forced marriage", "OTH.OTH": "Other"}
HTCDS_SUB = {"SEX.PROS": "Prostitution", "SEX.PORN": "Pornography",
             "SEX.OTH": "Private Sexual Services"}
FIELDS = ["prs_FirstName", "prs_SecondName", "prs_Birthdate", "prs_Gender", "prs_Citizenship",
          "vic_TraffickingStatus", "vic_TypeOfExploitation", "vic_TypeOfSexExploitation",
          "cas_IncomingReferralDate"]
TEMPLATE = "HTCDS_Excel_Spreadsheet_single_select_with_validation_v2.0.xlsx"


def to_htcds(part: pd.DataFrame) -> pd.DataFrame:
    """IC-TIP records with clear identifiers -> the HTCDS v2.0 system names and picklist labels."""
    rows = []
    for r in part.itertuples(index=False):
        forms, sub = [], None
        for code in str(r.exploitation if isinstance(r.exploitation, str) else "").split(";"):
            if not code:
                continue
            if code in HTCDS_SUB:
                forms.append("Sexual exploitation")
                sub = HTCDS_SUB[code]
            else:
                # no HTCDS label for this sub-form (e.g. OTH.CRIM): its top form
                forms.append(HTCDS_FORM.get(code, HTCDS_FORM[code.split(".")[0]]))
        rows.append({"prs_FirstName": r.given_name, "prs_SecondName": r.family_name,
                     "prs_Birthdate": r.birth_date,
                     "prs_Gender": HTCDS_SEX.get(r.sex, "NonSpecifiedUnknown"),
                     "prs_Citizenship": r.citizenship if isinstance(r.citizenship, str) else None,
                     "vic_TraffickingStatus": HTCDS_STATUS[r.identification_status],
                     "vic_TypeOfExploitation": ";".join(dict.fromkeys(forms)) or None,
                     "vic_TypeOfSexExploitation": sub,
                     "cas_IncomingReferralDate": r.identification_date})
    return pd.DataFrame(rows, columns=FIELDS)


def make_country(folder: Path, data_dir: Path, n: int = 1200, seed: int = 11) -> dict:
    """A country with clear identifiers: POL_*, BORDER, SOCIAL as IC-TIP CSV, NGO_SHELTER as an
    HTCDS CSV, NGO_OUTREACH in IOM's HTCDS Excel template; a key file; a population file."""
    import openpyxl

    c = simulate.country(n, seed=seed, lists=FOUR)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for entity, part in c.clear_records.groupby("entity_id"):
        if entity == "NGO_SHELTER":
            path = folder / f"{entity}.csv"
            to_htcds(part).to_csv(path, index=False)
        elif entity == "NGO_OUTREACH":
            path = folder / f"{entity}.xlsx"
            shutil.copy(data_dir / "htcds" / TEMPLATE, path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                wb = openpyxl.load_workbook(path)
            ws = wb["Case Sheet"]
            col = {name: i + 1 for i, name in enumerate(c.value for c in ws[1]) if name}
            for i, values in enumerate(to_htcds(part).itertuples(index=False), start=3):
                for f, v in zip(FIELDS, values, strict=True):
                    if isinstance(v, str):
                        ws.cell(row=i, column=col[f], value=v)
            wb.save(path)
        else:
            path = folder / f"{entity}.csv"
            part.to_csv(path, index=False)
        files.append(path)
    entity_map = folder / "lists.csv"
    c.list_definition.to_csv(entity_map, index=False)
    population = folder / "population.csv"
    c.population.to_csv(population, index=False)
    key = folder / "key.txt"
    secret = generate_secret()  # the task force's own key (the simulator's is seed-derived)
    key.write_text(secret + "\n")
    key.chmod(0o600)
    secrets_ = [str(v) for col in ("family_name", "given_name", "birth_date")
                for v in set(c.clear_records[col].dropna())]
    return {"country": c, "secret": secret, "files": files, "entity_map": entity_map,
            "population": population, "key": key, "identifiers": secrets_}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, data_dir):
    return make_country(tmp_path_factory.mktemp("mixed"), data_dir)


@pytest.fixture(scope="module")
def mixed_run(mixed):
    c = mixed["country"]
    return run_indicator(mixed["files"], mixed["entity_map"], mixed["population"],
                         secret=c.secret, country=c.ref_area, year=c.year, n_boot=30,
                         today=f"{c.year + 1}-12-31")


def test_formats_are_detected_per_file(mixed):
    assert {p.name: detect_format(p) for p in mixed["files"]} == {
        "BORDER.csv": "ictip", "NGO_OUTREACH.xlsx": "htcds", "NGO_SHELTER.csv": "htcds",
        "POL_NORTH.csv": "ictip", "POL_SOUTH.csv": "ictip", "SOCIAL.csv": "ictip"}


def test_mixed_formats_link_to_the_known_persons(mixed, mixed_run):
    c, run = mixed["country"], mixed_run
    assert run.formats["NGO_OUTREACH.xlsx"] == "htcds" and run.formats["BORDER.csv"] == "ictip"
    # every record is accounted for; the template's empty rows are not records
    assert run.accounting["read"] == len(c.clear_records)
    assert run.accounting["read"] == run.accounting["used"] + sum(
        v for k, v in run.accounting.items() if k.startswith("excluded"))
    # HTCDS persons are keyed with the same secret as the IC-TIP ones, so linkage finds exactly
    # the simulated detected persons (a failed cross-format link would add persons)
    assert run.headline.detected == c.n_detected
    assert run.histories.n_observed == c.n_detected
    assert set(run.histories.lists) == set("PKOR")


def test_headline_is_the_sdg_total_row(mixed_run):
    run = mixed_run
    t = run.sdg.table
    total = t[(t.sex == "_T") & (t.age == "_T") & (t.exploitation == "_T")].iloc[0]
    h = run.headline
    assert (h.n_hat, h.lower, h.upper) == (total.total_est, total.total_lcl, total.total_ucl)
    assert h.lower <= h.n_hat <= h.upper and h.source == "sdg_16_2_2 total row"
    assert h.method == "stratified log-linear MSE by sex x age x form"
    assert h.text().startswith(f"Estimated victims, detected and undetected: {h.n_hat:,.0f} [")
    # the stratified fit's total is the sum of its cells (the same number, not a second fit)
    assert h.n_hat == pytest.approx(run.fit.n_hat, rel=1e-9)
    assert run.seed == DEFAULT_SEED == run.sdg.seed == run.sdg.meta["seed"]
    assert run.pooled is not None and "differ by sex, age and form" in run.pooled_note


def test_outputs_are_the_same_bits_twice_and_hold_no_identifier(mixed, mixed_run, tmp_path):
    c = mixed["country"]
    again = run_indicator(mixed["files"], mixed["entity_map"], mixed["population"],
                          secret=c.secret, country=c.ref_area, year=c.year, n_boot=30,
                          today=f"{c.year + 1}-12-31", pooled=False)
    a = mixed_run.write(tmp_path / "a", report=False)
    b = again.write(tmp_path / "b", report=False)
    same = [p.name for p in a]
    assert same == ["sdg_16_2_2.csv", "sdg_16_2_2_glotip.csv", "sdg_16_2_2_sdmx.csv",
                    "sdg_16_2_2_metadata.json", "sdg_16_2_2.xlsx"]
    for name in same:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    text = "\n".join(p.read_text(encoding="utf-8") for p in a if p.suffix in (".csv", ".json"))
    leaked = [v for v in mixed["identifiers"] if v in text]
    assert leaked == [] and len(b) == len(a)


def test_sdmx_csv_layout(mixed_run, tmp_path):
    from tipstat.sdmx import write_sdmx_csv

    path = write_sdmx_csv(mixed_run.sdg, tmp_path / "x.csv")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == HEADER and DIMENSIONS[:4] == ("FREQ", "REPORTING_TYPE", "SERIES",
                                                          "REF_AREA")
    assert {r["STRUCTURE_ID"] for r in rows} == {"IAEG-SDGs:DF_SDG_GLH(1.26)"}
    official = {r["SERIES"] for r in rows if r["NATURE"] == "C"}
    assert official <= {"VC_HTF_DETV", "VC_HTF_DETVR", "VC_HTF_DETVSX", "VC_HTF_DETVSXR",
                        "VC_HTF_DETVFL", "VC_HTF_DETVFLR", "VC_HTF_DETVOG", "VC_HTF_DETVOGR",
                        "VC_HTF_DETVOP", "VC_HTF_DETVOPR"}
    # the estimate is never under an official code
    assert all(r["SERIES"].startswith("TIPSTAT_") for r in rows if r["NATURE"] == "M")
    tot = [r for r in rows if (r["SERIES"], r["SEX"], r["AGE"]) == ("TIPSTAT_VC_HTF_ESTV", "_T",
                                                                   "_T")]
    h = mixed_run.headline
    assert float(tot[0]["OBS_VALUE"]) == pytest.approx(h.n_hat, abs=1e-4)
    assert float(tot[0]["LOWER_BOUND"]) == pytest.approx(h.lower, abs=1e-4)
    det = [r for r in rows if (r["SERIES"], r["SEX"], r["AGE"]) == ("VC_HTF_DETV", "_T", "_T")]
    assert float(det[0]["OBS_VALUE"]) == h.detected and det[0]["OBS_STATUS"] == "A"
    # suppressed rows publish no value
    sup = [r for r in rows if r["OBS_STATUS"] == "Q"]
    assert sup and all(r["OBS_VALUE"] == "" for r in sup)


def test_entities_without_records_are_counted_and_unmapped_ones_refused(mixed, tmp_path):
    c = mixed["country"]
    files = [p for p in mixed["files"] if p.suffix == ".csv" and not p.name.startswith("NGO")]
    emap = pd.concat([c.list_definition, pd.DataFrame({"entity_id": ["LABOUR_INSP"],
                                                       "list_id": ["P"]})])
    run = run_indicator(files, emap, mixed["population"], secret=c.secret, country=c.ref_area,
                        year=c.year, n_boot=5, by=["sex"], today="2025-12-31", pooled=False)
    assert run.accounting["entities without records"] == 3  # the two NGOs and LABOUR_INSP
    assert any("sent no record: LABOUR_INSP, NGO_OUTREACH, NGO_SHELTER" in w.message
               for w in run.warnings)
    assert any("['O'] have no record in scope" in w.message for w in run.warnings)
    assert "O" not in run.histories.lists
    with pytest.raises(InputError, match="entity_id"):
        run_indicator(files, c.list_definition[c.list_definition.entity_id != "BORDER"],
                      mixed["population"], secret=c.secret, country=c.ref_area, year=c.year,
                      n_boot=5, today="2025-12-31")


def test_population_aliases_and_derived_totals():
    given = pd.DataFrame({"Sex": ["Female", "Male", "female", "MALE"],
                          "age": ["0 to 17 years", "Child", "Adult (18 years or over)",
                                  "18 years or over"],
                          "Population": ["100", "110", "400", "390"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", TipstatWarning)  # consistent: no warning
        t = normalise_population(given)
    got = {(s, a): v for s, a, v in zip(t.sex, t.age_group, t.population, strict=True)}
    assert got == {("F", "Y0T17"): 100, ("M", "Y0T17"): 110, ("F", "Y_GE18"): 400,
                   ("M", "Y_GE18"): 390, ("F", "_T"): 500, ("M", "_T"): 500,
                   ("_T", "Y0T17"): 210, ("_T", "Y_GE18"): 790, ("_T", "_T"): 1000}
    assert t.derived.sum() == 5
    # a given total that is not the sum of its parts is kept, with a warning
    bad = pd.concat([given, pd.DataFrame({"Sex": ["Total"], "age": ["Total"],
                                          "Population": ["2000"]})])
    with pytest.warns(TipstatWarning, match="sum to 1,000"):
        t = normalise_population(bad)
    assert float(t.set_index(["sex", "age_group"]).loc[("_T", "_T"), "population"]) == 2000


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"sex": ["F"], "age_group": ["_T"]}), r"column\(s\) \['population'\] missing"),
    (pd.DataFrame({"sex": ["Q"], "age_group": ["_T"], "population": [1]}), "rule 9"),
    (pd.DataFrame({"sex": ["F"], "age_group": ["_T"], "population": [0]}), "population > 0"),
    (pd.DataFrame({"sex": ["F", "F"], "age_group": ["_T", "_T"], "population": [1, 2]}),
     "two rows for sex=F, age_group=_T"),
])
def test_population_errors_are_specific(frame, message):
    with pytest.raises(InputError, match=message):
        normalise_population(frame)


def test_missing_population_row_is_named(mixed):
    c = mixed["country"]
    pop = c.population[~((c.population.sex == "F") & (c.population.age_group == "Y0T17"))
                       & (c.population.sex != "_T") & (c.population.age_group != "_T")]
    with pytest.raises(InputError, match="no row for sex=F x age_group=Y0T17"):
        run_indicator(c.records, c.list_definition, pop, country=c.ref_area, year=c.year,
                      by=["sex", "age"], n_boot=5, today="2025-12-31", pooled=False)


def test_published_table_survives_the_attackers_audit(mixed_run, tmp_path):
    """The SDG table as written passes the integer-programming attack: no withheld row is
    recovered exactly or to two values, and the audit's summary goes into the metadata."""
    import json

    audit = mixed_run.disclosure_audit()
    assert audit.n_attacked > 0 and audit.integer
    assert audit.n_exact == 0 and audit.n_two_values == 0 and audit.protected
    mixed_run.write(tmp_path, report=False, excel=False)
    meta = json.loads((tmp_path / "sdg_16_2_2_metadata.json").read_text())
    assert meta["disclosure_audit"] == audit.summary().split("\n")
