"""Code lists, crosswalks, and reading records from CSV, Excel, the HTCDS template and frames."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tipstat import InputError, TipstatWarning, simulate
from tipstat.ictip import capture_histories, codelists, read_records
from tipstat.linkage.keys import generate_secret

TODAY = "2025-06-30"


# ------------------------------------------------------------------------------ code lists
def test_every_shipped_code_list_loads_with_reserved_unknown():
    av = codelists.available()
    assert set(av.name) >= {"sex", "age_group", "exploitation_form", "exploitation_stratum",
                            "entity_type", "id_status", "citizenship_group", "country",
                            "person_key_scheme"}
    assert set(av.version) == {"tipstat-prov-1"}
    for name in av.name:
        cl = codelists.load(name)
        assert list(cl.frame.columns) == list(codelists.COLUMNS)
        if name not in ("admin_level", "person_key_scheme"):
            assert "_U" in cl


def test_exploitation_forms_carry_iccs_and_sdg_series():
    cl = codelists.load("exploitation_form").frame.set_index("code")
    assert cl.loc["SEX", "iccs_code"] == "02041" and cl.loc["LAB", "sdg_series"] == "VC_HTF_DETVFL"
    assert cl.loc["OTH.BEG", "parent_code"] == "OTH"
    assert (cl.loc[cl.parent_code != "", "iccs_code"]
            == cl.loc[cl.loc[cl.parent_code != "", "parent_code"], "iccs_code"].to_numpy()).all()
    assert codelists.load("country").frame.code.str.fullmatch(r"[A-Z]{3}|_U").all()
    assert len(codelists.load("country").codes) > 240


def test_unknown_version_and_crosswalk_are_errors():
    with pytest.raises(InputError, match="ictip-2025"):
        codelists.load("sex", "ictip-2025")
    with pytest.raises(InputError):
        codelists.crosswalk("nosuch")


def test_crosswalks_cover_htcds_picklists(data_dir):
    """Every value of the HTCDS v2.0 XLSForm picklists for gender, status, deciding organisation
    and type of exploitation maps to a tipstat code."""
    choices = pd.read_excel(data_dir / "htcds" / "htcds_xlsform.xlsx",
                            sheet_name="choices")
    xw = codelists.crosswalk("htcds-2.0")
    pick = {"gender": "sex", "traffickingstatus": "id_status",
            "traffickingstatusdecisionmakingorg": "entity_type",
            "typeofexploitation": "exploitation_form", "typeofsexexploitation": "sex_exploitation"}
    for list_name, target in pick.items():
        values = choices.loc[choices.list_name == list_name, "name"].astype(str)
        assert len(values) > 1
        missing = [v for v in values if v not in xw[target]]
        assert not missing, (list_name, missing)
    ctdc = codelists.crosswalk("ctdc")
    assert ctdc["exploitation_form"]["isSexAndLabour"] == "SEX;LAB"
    assert ctdc["age_group"]["9--17"] == "Y0T17"


# ------------------------------------------------------------------------------ files
def _country():
    return simulate.country(400, seed=3, lists={k: v for k, v in simulate.DEFAULT_LISTS.items()
                                                if k in "PKO"})


def test_csv_excel_and_frames_give_the_same_records(tmp_path):
    c = _country()
    by_entity = {e: g.drop(columns="entity_id") for e, g in c.records.groupby("entity_id")}
    paths = {}
    for i, (e, g) in enumerate(by_entity.items()):
        path = tmp_path / (f"{e}.csv" if i % 2 else f"{e}.xlsx")
        (g.to_csv(path, index=False) if i % 2 else g.to_excel(path, index=False))
        paths[e] = path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        a = read_records(c.records, c.list_definition, today=TODAY)
        b = read_records(paths, c.list_definition, today=TODAY)
    assert a.n_read == b.n_read == len(c.records)
    cols = ["entity_id", "list_id", "person_key", "sex", "age_group", "exploitation_stratum"]
    sa = a.frame[cols].sort_values(cols).reset_index(drop=True)
    sb = b.frame[cols].sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(sa, sb)
    # rows are cited by file and line
    assert all(":" in str(i) for i in b.frame.index)


def test_htcds_excel_template(data_dir, tmp_path):
    """Fill IOM's HTCDS v2.0 single-select template (its Case Sheet) and read it."""
    import openpyxl

    src = data_dir / "htcds" / "HTCDS_Excel_Spreadsheet_single_select_with_validation_v2.0.xlsx"
    dst = tmp_path / "ngo.xlsx"
    shutil.copy(src, dst)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        wb = openpyxl.load_workbook(dst)
    ws = wb["Case Sheet"]
    header = [c.value for c in ws[1]]
    col = {name: i + 1 for i, name in enumerate(header) if name}
    rows = [("Ana", "Kovač", "1999-04-02", "Feminine", "HR", "Actual victim of trafficking",
             "Sexual exploitation", "Prostitution", "2024-03-01"),
            ("Ion", "Popescu", "2008-01-15", "Masculine", "RO", "Possible victim of trafficking",
             "Forced begging", None, "2024-05-20"),
            ("Li", "Wei", "1985-12-30", "NonSpecifiedUnknown", None, "Not a victim of trafficking",
             "Forced labour", None, "2024-07-07")]
    fields = ["prs_FirstName", "prs_SecondName", "prs_Birthdate", "prs_Gender", "prs_Citizenship",
              "vic_TraffickingStatus", "vic_TypeOfExploitation", "vic_TypeOfSexExploitation",
              "cas_IncomingReferralDate"]
    for r, values in enumerate(rows, start=3):
        for f, v in zip(fields, values, strict=True):
            if v is not None:
                ws.cell(row=r, column=col[f], value=v)
    wb.save(dst)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        recs = read_records({"NGO1": dst}, {"NGO1": "N"}, format="htcds",
                            secret=generate_secret(), ref_area="HRV", today=TODAY)
    f = recs.frame
    assert recs.n_read == 3  # the template's ~1000 empty rows are not records
    assert f["sex"].tolist() == ["F", "M", "_U"]
    assert f["identification_status"].tolist() == ["IDENTIFIED", "PRESUMED", "NOT_VICTIM"]
    assert f["exploitation"].tolist() == ["SEX;SEX.PROS", "OTH.BEG", "LAB"]
    assert f["citizenship"].tolist() == ["HRV", "ROU", "_U"]
    assert f["citizenship_group"].tolist() == ["NAT", "FOR", "_U"]
    assert f["age_group_l1"].tolist() == ["Y_GE18", "Y0T17", "Y_GE18"]
    assert f["person_key"].str.len().tolist() == [64, 64, 64]
    assert "Kovač" not in f.to_csv() and "1999-04-02" not in f.to_csv()
    assert recs.accounting().set_index("item")["records"]["excluded: NOT_VICTIM"] == 1


# ------------------------------------------------------------------------------ accounting
@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["PRESUMED", "IDENTIFIED", "NOT_VICTIM", "_U"]),
                          st.sampled_from(["2023-06-01", "2024-02-02", "2024-11-30"]),
                          st.sampled_from(["NLD", "BEL"]), st.booleans()),
                min_size=1, max_size=40))
def test_accounting_always_adds_up(rows):
    n = len(rows)
    df = pd.DataFrame({
        "entity_id": ["A", "B"] * (n // 2) + ["A"] * (n % 2),
        "source_record_id": [str(i) for i in range(n)],
        "person_key": [f"{i % 7:064x}" for i in range(n)],
        "identification_status": [r[0] for r in rows],
        "identification_date": [r[1] for r in rows],
        "country_of_identification": [r[2] for r in rows],
        "is_deleted": [int(r[3]) for r in rows],
        "sex": "F", "exploitation": "SEX"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        recs = read_records(df, {"A": "LA", "B": "LB"}, period=2024, ref_area="NLD", today=TODAY)
    acc = recs.accounting().set_index("item")["records"]
    assert acc["read"] == n == acc["used"] + acc.filter(like="excluded").sum()
    used = recs.used
    assert (used.identification_status.isin(["PRESUMED", "IDENTIFIED"])).all()
    assert (used.identification_date.dt.year == 2024).all()
    assert (used.country_of_identification == "NLD").all()
    expect = sum(1 for s, d, c, deleted in rows
                 if s in ("PRESUMED", "IDENTIFIED") and d.startswith("2024") and c == "NLD"
                 and not deleted)
    assert len(used) == expect


def test_unknown_covariates_form_an_explicit_stratum_and_are_never_dropped():
    c = _country()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        recs = c.read(period=c.year)
        h = capture_histories(recs, by=["age_group"])
        with pytest.raises(InputError, match="unknown age_group"):
            capture_histories(recs, by=["age_group"], unknown="error")
    assert "_U" in set(h.strata_index["age_group"])
    assert h.n_observed == c.n_detected
    assert np.isclose(h.stratum_counts.sum(), c.n_detected)
