"""Code lists, crosswalks, and reading records from CSV, Excel, the HTCDS template and frames."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tipstat import InputError, TipstatWarning, simulate
from tipstat.ictip import capture_histories, codelists, read_records
from tipstat.ictip.keys import generate_secret
from tipstat.linkage import persons

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
        h = capture_histories(persons(recs), by=["age_group"])
        with pytest.raises(InputError, match="unknown age_group"):
            capture_histories(persons(recs), by=["age_group"], unknown="error")
    assert "_U" in set(h.strata_index["age_group"])
    assert h.n_observed == c.n_detected
    assert np.isclose(h.stratum_counts.sum(), c.n_detected)


# ------------------------------------------------------------------------------ robustness
# Invented people; none of these strings may appear in any message, warning or accounting.
NAMES = ["Kamira Dorlen", "Zoltavia", "Brunhelm Osk", "Quenby Varl"]
DOBS = ["1987-04-12", "12/04/1987", "19870412"]


def _frame(n: int = 6) -> pd.DataFrame:
    """n valid records of two entities (A, B) with pseudonymous keys."""
    return pd.DataFrame({
        "entity_id": ["A", "B"] * (n // 2) + ["A"] * (n % 2),
        "source_record_id": [f"r{i}" for i in range(n)],
        "person_key": [f"{i % 4:064x}" for i in range(n)],
        "identification_date": ["2024-03-01"] * n,
        "identification_status": ["PRESUMED"] * n,
        "country_of_identification": ["NLD"] * n,
        "sex": ["F", "M"] * (n // 2) + ["F"] * (n % 2),
        "age_at_identification": [30] * n,
        "citizenship": ["ROU"] * n,
        "exploitation": ["SEX"] * n,
    })


def _read(src, **kw):
    kw.setdefault("today", TODAY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        return read_records(src, kw.pop("mapping", {"A": "LA", "B": "LB"}), **kw)


def _messages(exc: BaseException | None = None, recs=None, caught=()) -> str:
    """Every message a user could see: the error, its problems, warnings, accounting, report
    (not :attr:`Records.frame`, which holds the agencies' own record ids as data)."""
    out = []
    if exc is not None:
        out.append(str(exc))
        out += [f"{p.column}|{p.row}|{p.value}|{p.expected}" for p in getattr(exc, "problems", [])]
    if recs is not None:
        out += [recs.accounting(by_source=True).to_csv(), str(recs.report), repr(recs)]
    out += [str(w.message) for w in caught]
    return "\n".join(out)


@pytest.mark.parametrize("column", ["sex", "identification_status", "citizenship", "exploitation",
                                    "country_of_identification", "age_at_identification",
                                    "person_key_scheme", "age_group", "age_at_exploitation_start"])
@pytest.mark.parametrize("blank", [np.nan, None, ""])
def test_a_coded_column_blank_on_every_row_reads_as_unknown(column, blank):
    """pandas 3: an all-blank column is float64; mapping it to '_U' used to raise TypeError."""
    df = _frame()
    df[column] = blank
    recs = _read(df, include_status=["PRESUMED", "_U"])
    f = recs.frame
    assert len(f) == 6
    if column in ("sex", "identification_status", "citizenship"):
        assert (f[column] == "_U").all()
    if column == "exploitation":
        assert (f["exploitation_stratum"] == "_U").all()
    if column == "country_of_identification":
        assert (f[column] == "_U").all()


def test_misspelt_columns_stop_the_read_with_file_column_and_suggestion(tmp_path):
    df = _frame().rename(columns={"exploitation": "exploitaton", "sex": "gender",
                                  "age_at_identification": "age"})
    path = tmp_path / "police.csv"
    df.to_csv(path, index=False)
    with pytest.raises(InputError) as exc:
        _read([path])
    text = str(exc.value)
    assert "police.csv" in text and "nothing was read" in text
    got = {p.column: p.expected for p in exc.value.problems}
    assert set(got) == {"exploitaton", "gender", "age"}
    assert "did you mean 'exploitation'" in got["exploitaton"]
    assert "did you mean 'sex'" in got["gender"]
    assert "did you mean 'age_at_identification'" in got["age"]
    # explicitly allowed: read, and the ignored columns are in the accounting
    recs = _read([path], extra_columns="ignore")
    acc = recs.accounting().set_index("item")["records"]
    assert acc["read"] == acc["used"] == 6
    assert acc["ignored column: gender"] == 6 and acc["ignored column: exploitaton"] == 6
    assert (recs.frame["sex"] == "_U").all()
    with pytest.raises(InputError, match="extra_columns"):
        _read([path], extra_columns="warn")


def test_missing_required_column_is_reported_once_not_once_per_row(tmp_path):
    df = _frame(159).drop(columns=["identification_date"])
    df.to_csv(tmp_path / "ngo.csv", index=False)
    _frame(4).to_csv(tmp_path / "pol.csv", index=False)
    with pytest.raises(InputError) as exc:
        _read([tmp_path / "ngo.csv", tmp_path / "pol.csv"])
    probs = exc.value.problems
    assert len(probs) == 1
    assert probs[0].column == "identification_date" and "ngo.csv" in probs[0].expected
    assert "nan" not in str(exc.value)
    # a required column present but blank on every row: also once
    df = _frame(20)
    df["source_record_id"] = ""
    with pytest.raises(InputError) as exc:
        _read(df.drop(columns=[]))
    assert [p.column for p in exc.value.problems] == ["source_record_id"]


def test_record_id_in_one_file_and_source_record_id_in_another(tmp_path):
    a = _frame(4)
    a = a[a.entity_id == "A"]
    b = _frame(4)
    b = b[b.entity_id == "B"].rename(columns={"source_record_id": "record_id"})
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    recs = _read([tmp_path / "a.csv", tmp_path / "b.csv"])
    f = recs.frame
    assert f.loc[f.entity_id == "A", "record_id"].tolist() == ["A:r0", "A:r2"]
    assert f.loc[f.entity_id == "B", "record_id"].tolist() == ["r1", "r3"]
    assert recs.accounting().set_index("item")["records"]["used"] == 4
    # a row with neither id: one rule-2 problem for that row (the id is never shown)
    c = _frame(4)
    c.loc[2, "source_record_id"] = None
    with pytest.raises(InputError) as exc:
        _read(c)
    assert [(p.column, p.row) for p in exc.value.problems] == [("source_record_id", 2)]


def test_empty_and_header_only_files(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.csv is empty"):
        _read([tmp_path / "empty.csv"])
    _frame(0).to_csv(tmp_path / "none.csv", index=False)
    _frame(6).to_csv(tmp_path / "six.csv", index=False)
    with pytest.raises(InputError, match="no records"):
        _read([tmp_path / "none.csv"])
    recs = _read([tmp_path / "none.csv", tmp_path / "six.csv"])  # an agency with no records
    acc = recs.accounting(by_source=True).set_index("item")
    assert acc.loc["read", "none.csv"] == 0 and acc.loc["read", "six.csv"] == 6


def test_ods_and_excel_files_and_missing_readers(tmp_path, monkeypatch):
    pytest.importorskip("odf")
    df = _frame(6)
    df.to_excel(tmp_path / "a.ods", index=False, engine="odf")
    df.to_excel(tmp_path / "a.xlsx", index=False)
    a, b, c = (_read(src) for src in (df, [tmp_path / "a.ods"], [tmp_path / "a.xlsx"]))
    cols = ["record_id", "person_key", "sex", "age_group", "identification_date"]
    for other in (b, c):
        pd.testing.assert_frame_equal(a.frame[cols].reset_index(drop=True),
                                      other.frame[cols].reset_index(drop=True))
    import sys

    monkeypatch.setitem(sys.modules, "openpyxl", None)  # as if openpyxl were not installed
    monkeypatch.setitem(sys.modules, "odf", None)
    with pytest.raises(InputError, match=r"openpyxl.*tipstat\[ictip\]"):
        _read([tmp_path / "a.xlsx"])
    with pytest.raises(InputError, match="odfpy"):
        _read([tmp_path / "a.ods"])


def test_unreadable_files_are_input_errors(tmp_path):
    rng = np.random.default_rng(1)
    cases = {
        "garbage.csv": bytes(rng.integers(0, 256, 4000, dtype=np.uint8)),
        "latin1.csv": "entity_id,source_record_id\nA,Jos\xe9\n".encode("latin-1"),
        "book.csv": (b"PK\x03\x04" + bytes(200)),
        "broken.xlsx": b"this is not a workbook",
        "utf16.csv": "entity_id,source_record_id\n".encode("utf-16"),
        "ragged.csv": b"entity_id,source_record_id\nA,1,extra,fields\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError) as exc:
            _read([tmp_path / name])
        assert name in str(exc.value), name
        assert "Jos" not in str(exc.value)


def test_duplicated_column_names_are_named(tmp_path):
    df = _frame()
    df.insert(3, "sex ", "F")  # the same name once stripped
    with pytest.raises(InputError) as exc:
        _read(df)
    assert [p.column for p in exc.value.problems] == ["sex"]
    (tmp_path / "d.csv").write_text(_frame().to_csv(index=False).replace("citizenship", "sex"))
    with pytest.raises(InputError) as exc:
        _read([tmp_path / "d.csv"])
    assert [p.column for p in exc.value.problems] == ["sex"] and "d.csv" in str(exc.value)


def _to_htcds(df: pd.DataFrame) -> pd.DataFrame:
    """Records of the simulated country in the HTCDS v2.0 layout (system names)."""
    return pd.DataFrame({
        "prs_FirstName": df["given_name"], "prs_SecondName": df["family_name"],
        "prs_Birthdate": df["birth_date"],
        "prs_Gender": df["sex"].map({"F": "Feminine", "M": "Masculine"}),
        "prs_Citizenship": df["citizenship"],
        "vic_TraffickingStatus": df["identification_status"].map({
            "PRESUMED": "PossibleVictimOfTrafficking", "IDENTIFIED": "ActualVictimOfTrafficking",
            "NOT_VICTIM": "NotAVictimOfTrafficking"}),
        "vic_TypeOfExploitation": df["exploitation"],
        "cas_IncomingReferralDate": df["identification_date"],
        "country_of_identification": df["country_of_identification"]})


def test_mixed_htcds_and_ictip_agencies_lose_no_record(tmp_path):
    c = simulate.country(400, seed=3)
    clear = c.clear_records
    paths = {}
    for e, g in clear.groupby("entity_id"):
        paths[e] = tmp_path / f"{e}.csv"
        (_to_htcds(g) if e == "POL_NORTH" else g).to_csv(paths[e], index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        ref = c.read(clear=True)
        mixed = read_records(paths, c.list_definition, secret=c.secret, ref_area=c.ref_area,
                             today=TODAY)
        # as a list of files, the HTCDS export needs an entity_id column (the template has none)
        _to_htcds(clear[clear.entity_id == "POL_NORTH"]).assign(entity_id="POL_NORTH").to_csv(
            paths["POL_NORTH"], index=False)
        by_name = read_records(list(paths.values()), c.list_definition, secret=c.secret,
                               ref_area=c.ref_area, today=TODAY, format={"POL_NORTH.csv": "htcds"})
    assert mixed.meta["format"]["POL_NORTH.csv"] == "htcds"
    acc = mixed.accounting(by_source=True).set_index("item")
    n_pol = int((clear.entity_id == "POL_NORTH").sum())
    assert acc.loc["read", "POL_NORTH.csv"] == n_pol > 0
    # the police records are used like everyone else's (none excluded for their format)
    ra = ref.accounting().set_index("item")["records"]
    assert acc.loc["used", "records"] == ra["used"]
    pol_used = (ref.used.entity_id == "POL_NORTH").sum()
    assert acc.loc["used", "POL_NORTH.csv"] == pol_used
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        assert capture_histories(persons(mixed), by=["sex"]).n_observed == \
            capture_histories(persons(ref), by=["sex"]).n_observed
    assert by_name.accounting().equals(mixed.accounting())
    # a mapping per source; forcing IC-TIP on the HTCDS file says what to do
    g = clear[clear.entity_id == "POL_NORTH"]
    _to_htcds(g).to_csv(tmp_path / "police.txt", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        recs = read_records({"POL_NORTH": tmp_path / "police.txt"}, c.list_definition,
                            secret=c.secret, format={"POL_NORTH": "htcds"}, today=TODAY)
    assert recs.n_read == n_pol
    with pytest.raises(InputError, match="format='htcds'"):
        read_records({"POL_NORTH": tmp_path / "police.txt"}, c.list_definition,
                     secret=c.secret, format="ictip", today=TODAY)
    with pytest.raises(InputError, match="format="):
        read_records({"POL_NORTH": tmp_path / "police.txt"}, c.list_definition, format="csv")
    with pytest.raises(InputError, match="not among the sources"):
        read_records({"POL_NORTH": tmp_path / "police.txt"}, c.list_definition,
                     format={"police.csv": "htcds"})


def test_an_exclusion_names_its_source(tmp_path):
    """A source without a status column: its records are excluded, and the warning says so."""
    _frame(6).to_csv(tmp_path / "ngo.csv", index=False)
    pol = _frame(4).drop(columns=["identification_status"])
    pol["source_record_id"] = ["p1", "p2", "p3", "p4"]
    pol.to_csv(tmp_path / "pol.csv", index=False)
    with pytest.warns(TipstatWarning) as caught:
        recs = read_records([tmp_path / "ngo.csv", tmp_path / "pol.csv"], {"A": "LA", "B": "LB"},
                            today=TODAY)
    text = " ".join(str(w.message) for w in caught)
    assert "pol.csv has no identification_status column" in text and "pol.csv: 4 of 4" in text
    acc = recs.accounting(by_source=True).set_index("item")
    assert acc.filter(like="excluded", axis=0)["pol.csv"].sum() == 4
    assert acc.loc["used", "ngo.csv"] == 6
    assert (acc.loc["read"].iloc[1:].sum() == acc.loc["read", "records"])


# ------------------------------------------------------------------------------ property tests
_INJECTED = ["Kamira Dorlen", "Zoltavia Brunn", "Ann-Marie O'Neil", "Ødegård Liv"]
_COLUMNS = ["entity_id", "source_record_id", "record_id", "person_key", "person_key_scheme",
            "identification_date", "identification_status", "country_of_identification", "sex",
            "age_at_identification", "age_group", "age_at_exploitation_start", "citizenship",
            "exploitation", "is_deleted", "family_name", "given_name", "birth_date",
            "prs_Gender", "vic_TraffickingStatus", "remarks"]
_cells = st.one_of(
    st.sampled_from(_INJECTED), st.sampled_from(["1987-04-12", "12/04/1987", "2024", "2024-03-01"]),
    st.sampled_from(["A", "B", "F", "M", "_U", "PRESUMED", "NLD", "SEX;LAB", "a" * 64, "", " "]),
    st.none(), st.just(np.nan), st.booleans(), st.integers(-10, 10 ** 12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.just(pd.Timestamp("2024-05-01", tz="UTC")), st.just(b"\x00\xff"))


@st.composite
def _junk_frames(draw):
    """Mostly valid records (IC-TIP with keys, or clear identifiers) with junk cells typed in;
    sometimes a column dropped, added or of random names."""
    n = draw(st.integers(1, 6))
    df = _frame(n).astype(object)
    if draw(st.booleans()):  # clear identifiers instead of keys
        df = df.drop(columns=["person_key"]).assign(
            family_name=[f"Fam{i % 3}" for i in range(n)],
            given_name=[f"Giv{i % 3}" for i in range(n)],
            birth_date=[f"19{70 + i}-01-02" for i in range(n)]).astype(object)
    if draw(st.integers(0, 9)) == 0:
        cols = draw(st.lists(st.sampled_from(_COLUMNS), min_size=1, max_size=9, unique=True))
        df = pd.DataFrame({c: [draw(_cells) for _ in range(n)] for c in cols}, dtype=object)
    for _ in range(draw(st.integers(0, 4))):
        col = draw(st.sampled_from([*_COLUMNS, *df.columns]))
        if col not in df.columns:
            df[col] = pd.Series([None] * n, dtype=object)
        df.loc[draw(st.integers(0, n - 1)), col] = draw(_cells)
    if draw(st.integers(0, 5)) == 0 and len(df.columns) > 1:
        df = df.drop(columns=[draw(st.sampled_from(list(df.columns)))])
    return df


def _no_injected_text(text: str) -> bool:
    return not any(s in text for s in (*_INJECTED, "Kamira", "Dorlen", "1987"))


@settings(max_examples=50, deadline=None)
@given(_junk_frames(), st.sampled_from(["auto", "ictip", "htcds"]),
       st.sampled_from([None, generate_secret()]), st.booleans())
def test_junk_frames_raise_only_input_errors_and_never_show_a_name(df, fmt, secret, ignore):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            recs = read_records(df, {"A": "LA", "B": "LB"}, format=fmt, secret=secret,
                                extra_columns="ignore" if ignore else "error", today=TODAY)
            text = _messages(None, recs)
        except InputError as exc:
            text = _messages(exc)
    assert all(issubclass(w.category, TipstatWarning) for w in caught), \
        [f"{w.category.__name__}: {w.message}" for w in caught]
    text += "\n".join(str(w.message) for w in caught)
    assert _no_injected_text(text), text


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)),
       st.sampled_from([".csv", ".xlsx", ".ods", ".txt"]))
def test_junk_files_raise_only_input_errors(content, suffix):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"agency{suffix}"
        if isinstance(content, str):
            path.write_text(f"entity_id,source_record_id,sex\nA,{_INJECTED[0]},{_INJECTED[1]}\n"
                            + content, encoding="utf-8")
        else:
            path.write_bytes(content)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                read_records([path], {"A": "LA"}, today=TODAY)
                text = ""
            except InputError as exc:
                text = _messages(exc)
        assert all(issubclass(w.category, TipstatWarning) for w in caught)
        assert _no_injected_text(text), text


def test_a_column_named_by_a_date_or_an_address_is_not_echoed():
    df = _frame().assign(**{"1987-04-12": "x", "kamira@example.org": 1})
    with pytest.raises(InputError) as exc:
        _read(df)
    assert [p.column for p in exc.value.problems] == ["#11", "#12"]
    assert "1987" not in str(exc.value) and "kamira" not in str(exc.value)
