"""One test per validation rule of ICTIP.md §6.3 (errors 1-9, warnings W1-W7)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tipstat import InputError, TipstatWarning
from tipstat.ictip import capture_histories, read_records, validate_capture_table
from tipstat.ictip.codelists import _checked
from tipstat.ictip.keys import generate_secret
from tipstat.ictip.records import problems_of
from tipstat.indicator import sdg_16_2_2
from tipstat.linkage import persons
from tipstat.models.stratified import fit_stratified

KEY = "0123456789abcdef" * 4
MAP = {"POL": "P", "NGO": "N", "LAB": "L"}
TODAY = "2025-06-30"


def base() -> pd.DataFrame:
    """Six valid records of three entities."""
    keys = [f"{i:064x}" for i in (1, 2, 3, 1, 2, 4)]
    return pd.DataFrame({
        "entity_id": ["POL", "POL", "NGO", "NGO", "LAB", "LAB"],
        "source_record_id": ["1", "2", "1", "2", "1", "2"],
        "person_key": keys,
        "person_key_scheme": ["HMAC_SHA256"] * 6,
        "identification_date": ["2024-01-10", "2024-02-10", "2024-03-10", "2024-04-10",
                                "2024-05-10", "2024-06-10"],
        "identification_status": ["PRESUMED", "IDENTIFIED", "PRESUMED", "PRESUMED",
                                  "IDENTIFIED", "PRESUMED"],
        "country_of_identification": ["NLD"] * 6,
        "sex": ["F", "M", "F", "F", "M", "M"],
        "age_at_identification": [16, 30, 25, 16, 30, 40],
        "citizenship": ["ROU", "NLD", "NGA", "ROU", "NLD", "XXA"],
        "exploitation": ["SEX.PROS", "LAB", "SEX;LAB", "SEX", "LAB.DOM", "OTH.BEG"],
    })


def read(df: pd.DataFrame, **kw):
    kw.setdefault("today", TODAY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        return read_records(df, kw.pop("mapping", MAP), **kw)


def rejected(df: pd.DataFrame, rule: int, **kw) -> list:
    with pytest.raises(InputError) as exc:
        read(df, **kw)
    probs = problems_of(exc.value, rule)
    assert probs, f"no problem of rule {rule} in: {exc.value}"
    return probs


def test_valid_input_passes():
    recs = read(base())
    assert len(recs.used) == 6


# ---------------------------------------------------------------------------- rule 1
def test_rule1_unknown_code_named_by_column_row_value():
    df = base()
    df.loc[3, "sex"] = "Q"
    df.loc[4, "exploitation"] = "LAB;XYZ"
    df.loc[5, "identification_status"] = "maybe"
    probs = rejected(df, 1)
    found = {(p.column, p.row, p.value) for p in probs}
    assert ("sex", 3, "Q") in found
    assert ("exploitation", 4, "XYZ") in found
    # "maybe" has neither a code's shape nor is it a known spelling: it could be a name typed
    # into the column, so it is described, not shown (the identifier rule, tipstat.ictip.redact)
    assert ("identification_status", 5, None) in found
    status = next(p for p in probs if p.column == "identification_status")
    assert "text of 5 characters" in status.expected


def test_rule1_aliases_and_crosswalks_are_not_errors():
    df = base()
    df["sex"] = ["female", "Male", "F", "woman", "M", "unknown"]
    recs = read(df)
    assert recs.frame["sex"].tolist() == ["F", "M", "F", "F", "M", "_U"]


def test_rule1_invalid_iso3():
    df = base()
    df.loc[1, "citizenship"] = "XYZ"
    df.loc[2, "country_of_identification"] = "NETH"
    probs = rejected(df, 1)
    assert {p.column for p in probs} == {"citizenship", "country_of_identification"}


# ---------------------------------------------------------------------------- rule 2
def test_rule2_duplicate_source_record_id_and_record_id():
    df = base()
    df.loc[1, "source_record_id"] = "1"  # POL/1 twice
    probs = rejected(df, 2)
    assert sorted(p.row for p in probs) == [0, 1]
    df = base()
    df["record_id"] = ["a", "b", "c", "d", "e", "a"]
    probs = rejected(df, 2)
    assert sorted(p.row for p in probs) == [0, 5]


# ---------------------------------------------------------------------------- rule 3
def test_rule3_entity_not_in_reporting_entity_table():
    entities = pd.DataFrame({"entity_id": ["POL", "NGO"], "entity_type": ["LE_POL", "NGO"]})
    probs = rejected(base(), 3, entities=entities)
    assert sorted(p.row for p in probs) == [4, 5]


def test_rule3_entity_not_mapped_or_mapped_twice():
    probs = rejected(base(), 3, mapping={"POL": "P", "NGO": "N"})
    assert {p.value for p in probs} == {"LAB"}
    ldef = pd.DataFrame({"entity_id": ["POL", "NGO", "LAB", "LAB"], "list_id": ["P", "N", "L", "P"]})
    probs = rejected(base(), 3, mapping=ldef)
    assert any(p.value == "LAB" for p in probs)


# ---------------------------------------------------------------------------- rule 4
@pytest.mark.parametrize("column,value,what", [
    ("identification_date", "2031-01-01", "future"),
    ("identification_date", "not a date", "unreadable"),
    ("age_at_identification", 111, "range"),
    ("age_at_identification", -1, "range"),
    ("age_group", "Y_GE18", "inconsistent with age 16"),
    ("age_at_exploitation_start", 20, "after age at identification 16"),
])
def test_rule4_dates_and_ages(column, value, what):
    df = base()
    df[column] = df[column] if column in df else np.nan
    df[column] = df[column].astype(object)
    df.loc[0, column] = value
    probs = rejected(df, 4)
    assert [(p.column, p.row) for p in probs] == [(column, 0)], what


def test_rule4_birth_date_after_identification_and_values_not_shown():
    df = base().drop(columns=["person_key", "person_key_scheme", "age_at_identification"])
    df["family_name"] = ["Kamira", "Sal", "Dor", "Kamira", "Sal", "Vi"]
    df["given_name"] = ["Ann", "Bo", "Cy", "Ann", "Bo", "Di"]
    df["birth_date"] = ["2008-01-01", "1994-01-01", "2025-01-01", "2008-01-01", "1994-01-01",
                        "1980-05-05"]
    with pytest.raises(InputError) as exc:
        read(df, secret=generate_secret())
    probs = problems_of(exc.value, 4)
    assert [(p.column, p.row, p.value) for p in probs] == [("birth_date", 2, None)]
    assert "2025-01-01" not in str(exc.value)


def test_rule4_age_inconsistent_with_birth_date_secure_mode():
    df = base()
    df["birth_date"] = ["2007-06-01"] * 6  # 16 in early 2024; 30 / 25 / 40 are inconsistent
    probs = rejected(df, 4, secure=True)
    assert sorted(p.row for p in probs if p.column == "age_at_identification") == [1, 2, 4, 5]


# ---------------------------------------------------------------------------- rule 5
def test_rule5_unknown_with_substantive_codes():
    df = base()
    df.loc[2, "exploitation"] = "_U;SEX"
    probs = rejected(df, 5)
    assert [(p.column, p.row) for p in probs] == [("exploitation", 2)]


def test_rule5_code_list_with_inconsistent_parent():
    bad = pd.DataFrame({"code": ["A", "A.1", "B.1"], "parent_code": ["", "A", "C"],
                        "level": ["1", "2", "2"], "label": ["a", "a1", "b1"], "iccs_code": "",
                        "sdg_series": "", "valid_from": "", "valid_to": "", "source": ""})
    with pytest.raises(InputError) as exc:
        _checked(bad, "test@v")
    assert [(p.column, p.value) for p in exc.value.problems] == [("parent_code", "C")]
    bad.loc[1, "level"] = "3"
    with pytest.raises(InputError):
        _checked(bad.iloc[:2], "test@v")


def test_rule5_htcds_subtype_without_its_parent():
    df = pd.DataFrame({"prs_Gender": ["Feminine", "Masculine"],
                       "vic_TraffickingStatus": ["PossibleVictimOfTrafficking"] * 2,
                       "vic_TypeOfExploitation": ["SexualExploitation", "ForcedLabour"],
                       "vic_TypeOfSexExploitation": ["Prostitution", "Pornography"],
                       "cas_IncomingReferralDate": ["2024-01-01", "2024-02-01"],
                       "prs_FirstName": ["A", "B"], "prs_SecondName": ["X", "Y"],
                       "prs_Birthdate": ["1990-01-01", "1991-01-01"]})
    with pytest.raises(InputError) as exc:
        read({"POL": df}, format="htcds", secret=generate_secret())
    probs = problems_of(exc.value, 5)
    assert [(p.column, p.value) for p in probs] == [("sex_exploitation", "Pornography")]


# ---------------------------------------------------------------------------- rule 6
def test_rule6_person_key_missing_scheme_unknown_or_malformed():
    df = base()
    df.loc[0, "person_key"] = None
    df.loc[1, "person_key_scheme"] = "MD5"
    df.loc[2, "person_key"] = "deadbeef"  # not 64 hex characters
    df.loc[3, "person_key_scheme"] = "REGISTER_ID"
    df.loc[3, "person_key"] = "Maria Lopez"  # looks like a name
    df.loc[4, "person_key_scheme"] = "REGISTER_ID"
    df.loc[4, "person_key"] = "12/03/1990"  # looks like a date
    probs = rejected(df, 6)
    assert sorted({p.row for p in probs}) == [0, 1, 2, 3, 4]
    assert all(p.value is None for p in probs if p.column == "person_key")
    with pytest.raises(InputError) as exc:
        read(df)
    text = str(exc.value)
    assert "Maria" not in text and "12/03/1990" not in text


def test_rule6_no_key_and_no_secret():
    with pytest.raises(InputError, match="rule 6"):
        read(base().drop(columns=["person_key", "person_key_scheme"]))


# ---------------------------------------------------------------------------- rule 7
def test_rule7_clear_identifiers_refused_outside_secure_mode():
    df = base()
    df["surname"] = ["Kamira", "Sal", "Dor", "Kamira", "Sal", "Vi"]
    with pytest.raises(InputError) as exc:
        read(df)
    assert [p.column for p in exc.value.problems] == ["surname"]
    assert "Kamira" not in str(exc.value)
    recs = read(df, secure=True)
    assert "surname" not in recs.frame.columns  # even in secure mode, not in analysis tables


# ---------------------------------------------------------------------------- rule 8
def test_rule8_capture_table():
    good = pd.DataFrame({"sex": ["F", "M"], "A": [1, 0], "B": [0, 1], "count": [3, 4]})
    assert validate_capture_table(good, ["A", "B"], strata=["sex"]).n_observed == 7
    bad_code = good.assign(sex=["F", "X"])
    with pytest.raises(InputError) as exc:
        validate_capture_table(bad_code, ["A", "B"], strata=["sex"])
    assert [(p.column, p.row, p.value) for p in exc.value.problems] == [("sex", 1, "X")]
    for bad in (good.assign(A=[2, 0]), good.assign(count=[-1, 4]), good.assign(count=[1.5, 4]),
                good.assign(A=[0, 0], B=[0, 1])):
        with pytest.raises(InputError):
            validate_capture_table(bad, ["A", "B"], strata=["sex"])
    with pytest.raises(InputError):
        validate_capture_table(good[["A", "count"]], ["A"])


# ---------------------------------------------------------------------------- rule 9
def test_rule9_population():
    df = pd.DataFrame({"sex": ["F"] * 3 + ["M"] * 3, "A": [1, 0, 1] * 2, "B": [0, 1, 1] * 2,
                       "C": [1, 1, 0] * 2, "count": [60, 50, 20, 40, 30, 10]})
    from tipstat import CaptureHistories

    est = fit_stratified(CaptureHistories.from_frame(df, strata="sex"), n_boot=0)
    pop = pd.DataFrame({"sex": ["F", "M", "_T"], "age_group": ["_T"] * 3,
                        "population": [100, 0, 200]})
    with pytest.raises(InputError, match="rule 9") as exc:
        sdg_16_2_2(est, pop)
    assert [(p.row, p.value) for p in exc.value.problems] == [(1, 0)]
    with pytest.raises(InputError, match=r"missing denominator|rule 9, no row for sex=M"):
        sdg_16_2_2(est, pop[pop.sex != "M"])


# ---------------------------------------------------------------------------- warnings
def _rules(record) -> set[str]:
    return {str(w.message)[1:3] for w in record if issubclass(w.category, TipstatWarning)}


def test_w5_status_and_w6_period_country_exclusions_are_counted():
    df = base()
    df.loc[0, "identification_status"] = "NOT_VICTIM"
    df.loc[1, "identification_status"] = "_U"
    df.loc[2, "identification_date"] = "2023-12-31"
    df.loc[3, "country_of_identification"] = "BEL"
    with pytest.warns(TipstatWarning) as rec:
        recs = read_records(df, MAP, period=2024, ref_area="NLD", today=TODAY)
    assert {"W5", "W6"} <= _rules(rec)
    acc = recs.accounting().set_index("item")["records"]
    assert acc["read"] == 6 and acc["used"] == 2
    assert acc["read"] == acc["used"] + acc.filter(like="excluded").sum()
    assert recs.frame.loc[0, "excluded"] == "NOT_VICTIM"


def test_w6_list_periods_differ():
    ldef = pd.DataFrame({"entity_id": ["POL", "NGO", "LAB"], "list_id": ["P", "N", "L"],
                         "period_start": ["2024-01-01", "2024-01-01", "2024-07-01"],
                         "period_end": ["2024-12-31"] * 3})
    with pytest.warns(TipstatWarning, match="coverage periods differ"):
        read_records(base(), ldef, period=2024, today=TODAY)


def test_w1_w2_w4_from_capture_histories():
    df = base()
    df["sex"] = ["F", "F", "M", "F", "M", "M"]  # person 1: F (POL) vs F (NGO); person 2: F vs M
    recs = read(df)
    with pytest.warns(TipstatWarning) as rec:
        capture_histories(persons(recs), by=["sex"])
    got = _rules(rec)
    assert {"W1", "W4"} <= got
    two = read(base(), mapping={"POL": "P", "NGO": "N", "LAB": "N"})
    with pytest.warns(TipstatWarning, match="only 2 lists"):
        capture_histories(persons(two), by=[])
    # list L shares nobody with another list in this table: W2
    df = base()
    df.loc[4:5, "person_key"] = [f"{i:064x}" for i in (7, 8)]
    with pytest.warns(TipstatWarning, match="W2"):
        capture_histories(persons(read(df)), by=[])


def test_w3_duplicate_patterns_aggregated():
    df = pd.DataFrame({"A": [1, 1, 0], "B": [0, 0, 1], "count": [2, 57, 4]})
    from tipstat.ictip.validation import ValidationReport

    rep = ValidationReport()
    with pytest.warns(TipstatWarning, match="W3"):
        h = validate_capture_table(df, ["A", "B"], report=rep)
    assert h.counts.tolist() == [59, 4, 0]
    assert rep.rules() == {"W3"}


def test_w7_small_cells_suppressed():
    from tipstat import CaptureHistories

    df = pd.DataFrame({"sex": ["F"] * 3 + ["M"] * 3, "A": [1, 0, 1] * 2, "B": [0, 1, 1] * 2,
                       "C": [1, 1, 0] * 2, "count": [60, 50, 20, 1, 1, 1]})
    est = fit_stratified(CaptureHistories.from_frame(df, strata="sex"), n_boot=0)
    pop = pd.DataFrame({"sex": ["F", "M", "_T"], "age_group": ["_T"] * 3,
                        "population": [100_000, 100_000, 200_000]})
    with pytest.warns(TipstatWarning, match="W7"):
        t = sdg_16_2_2(est, pop)
    m = t.table.set_index("sex")
    assert m.loc["M", "obs_status"] == "suppressed" and np.isnan(m.loc["M", "detected"])
    assert m.loc["_T", "detected"] == 133


def test_w8_ctdc_input_is_descriptive_only():
    from tipstat.ictip import read_ctdc

    kanon = pd.DataFrame({"yearOfRegistration": [2016, 2017, 2017],
                          "gender": ["Female", "Male", "-99"],
                          "majorityStatus": ["Minor", "Adult", "-99"],
                          "citizenship": ["UA", "-99", "PH"],
                          "isSexualExploit": [1, 0, 1], "isForcedLabour": [0, 1, 1],
                          "CountryOfExploition": ["US", "US", "US"]})
    with pytest.warns(TipstatWarning, match="W8"):
        recs = read_ctdc(kanon)
    f = recs.frame
    assert f["sex"].tolist() == ["F", "M", "_U"]
    assert f["age_group_l1"].tolist() == ["Y0T17", "Y_GE18", "_U"]
    assert f["citizenship"].tolist() == ["UKR", "_U", "PHL"]
    assert f["exploitation_stratum"].tolist() == ["SEX", "LAB", "MIX"]
    with pytest.raises(InputError, match="W8"):
        capture_histories(persons(recs), by=["sex"])
    with pytest.raises(InputError) as exc:
        read_ctdc(kanon.assign(gender=["Female", "Alien", "Male"]))
    # "Alien" is no CTDC spelling and has no code's shape: described, not shown
    assert [(p.column, p.value) for p in problems_of(exc.value, 1)] == [("gender", None)]
    assert "Alien" not in str(exc.value) and "text of 5 characters" in str(exc.value)
    with pytest.raises(InputError) as exc:
        read_ctdc(kanon.assign(gender=["Female", "X", "Male"]))
    assert [(p.column, p.value) for p in problems_of(exc.value, 1)] == [("gender", "X")]


# ---------------------------------------------------------------------------- identifiers
# Invented people. The identifier rule: none of these may appear in an error, a Problem, a
# warning or the accounting, whatever column they were typed into.
NAME, NAME2 = "Kamira Dorlen", "Zoltavia"
DOB, DOB2, DOB_INT = "1987-04-12", "12/04/1987", 19870412
SECRETS = (NAME, NAME2, "Kamira", "Dorlen", DOB, DOB2, str(DOB_INT), "1987")


def _everything(exc=None, recs=None, caught=()) -> str:
    out = [] if exc is None else [str(exc)] + [
        f"{p.column}|{p.row}|{p.value}|{p.expected}" for p in exc.problems]
    if recs is not None:
        out += [recs.accounting(by_source=True).to_csv(), str(recs.report), repr(recs)]
    out += [str(w.message) for w in caught]
    return "\n".join(out)


def _outcome(df, **kw) -> str:
    kw.setdefault("today", TODAY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            recs = read_records(df, kw.pop("mapping", MAP), **kw)
        except InputError as exc:
            return _everything(exc, None, caught)
    return _everything(None, recs, caught)


IDENTIFIER_CASES = [
    (col, val)
    for col in ("sex", "citizenship", "exploitation", "identification_status",
                "country_of_identification", "entity_id", "person_key_scheme", "age_group",
                "is_deleted", "identification_date", "person_key")
    for val in (NAME, NAME2, DOB, DOB2)
] + [("age_at_identification", v) for v in (DOB, DOB2, DOB_INT, NAME)] + [
    ("age_at_exploitation_start", v) for v in (DOB, DOB_INT)] + [
    ("source_record_id", f"{NAME} {DOB}"), ("record_id", f"{NAME2}-{DOB_INT}")]


@pytest.mark.parametrize("column,value", IDENTIFIER_CASES)
def test_identifier_typed_into_any_column_is_never_shown(column, value):
    df = base()
    df[column] = (df[column] if column in df else np.nan)
    df[column] = df[column].astype(object)
    if column in ("source_record_id", "record_id"):
        df[column] = [f"{i}" for i in range(6)]
        df.loc[[1, 2], column] = value  # a duplicate, so that an error cites these rows
    else:
        df.loc[2, column] = value
    text = _outcome(df)
    assert text, "nothing was reported"
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, (column, value, text)
    if "problem" in text:  # the row is still cited, and the value described
        assert "row 2" in text or "|2|" in text


def test_identifiers_in_htcds_sub_type_ignored_columns_and_a_headerless_file(tmp_path):
    df = pd.DataFrame({"prs_Gender": ["Feminine"], "vic_TraffickingStatus": [NAME],
                       "vic_TypeOfExploitation": ["SexualExploitation"],
                       "vic_TypeOfSexExploitation": [NAME2],
                       "cas_IncomingReferralDate": [DOB2],
                       "prs_FirstName": ["Kamira"], "prs_SecondName": ["Dorlen"],
                       "prs_Birthdate": [DOB]})
    texts = [_outcome({"POL": df}, secret=generate_secret())]
    extra = base().assign(remarks=NAME, dob_note=DOB)
    texts.append(_outcome(extra, extra_columns="ignore"))
    texts.append(_outcome(extra))
    headerless = base().to_csv(index=False).split("\n", 1)[1]  # the header line is missing
    path = tmp_path / "pol.csv"
    path.write_text(f"POL,1,{NAME},{DOB},F\n" + headerless)
    texts.append(_outcome([path]))
    named = base().set_index(pd.Index([NAME, NAME2, DOB, DOB2, "a", "b"]))
    named.loc[DOB, "sex"] = "??"
    texts.append(_outcome(named))  # row labels that are not numbers are replaced by positions
    text = "\n".join(texts)
    assert "ignored column: remarks" in text and "no identification_status" not in text
    assert not [s for s in SECRETS if s in text], text


def test_capture_table_refuses_record_files_and_never_echoes_text():
    records = pd.DataFrame({"prs_FirstName": ["Kamira", "Ivo"], "family_name": ["Dorlen", "X"],
                            "birth_date": [DOB, DOB], "A": [1, 0], "B": [0, 1],
                            "count": [1, 1]})
    for cols in (["prs_FirstName", "A", "B", "count"], ["family_name", "A", "B", "count"],
                 ["birth_date", "A", "B", "count"]):
        with pytest.raises(InputError) as exc:
            validate_capture_table(records[cols])
        assert [p.column for p in exc.value.problems] == [cols[0]]
        assert "victim records" in str(exc.value)
        assert not [s for s in SECRETS if s in _everything(exc.value)]
    for name in ("name", "dob", "DOB", "person_key", "entity_id", "Given Name"):
        with pytest.raises(InputError, match="victim records"):
            validate_capture_table(pd.DataFrame({name: ["x"], "A": [1], "B": [0], "count": [1]}))
    table = pd.DataFrame({"sex": ["F", "M", NAME], "A": [1, NAME2, 1], "B": [0, 1, 7],
                          "count": [3, DOB, 5.5]})
    with pytest.raises(InputError) as exc:
        validate_capture_table(table, ["A", "B"], strata=["sex"])
    got = {(p.column, p.row): p.value for p in exc.value.problems}
    assert got == {("A", 1): None, ("B", 2): 7, ("count", 1): None, ("count", 2): 5.5,
                   ("sex", 2): None}
    assert not [s for s in SECRETS if s in _everything(exc.value)]
    headerless = pd.DataFrame([[1, 0, 3]], columns=["POL", DOB, "Kamira Dorlen"])
    with pytest.raises(InputError, match="looks like a record") as exc:
        validate_capture_table(headerless)
    assert not [s for s in SECRETS if s in _everything(exc.value)]
    with pytest.raises(InputError, match="at most 20"):
        validate_capture_table(pd.DataFrame({**{f"L{j}": [1] for j in range(30)}, "count": [1]}))
    with pytest.raises(InputError, match="2\\^53") as exc:
        validate_capture_table(pd.DataFrame({"A": [1], "B": [1], "count": [2 ** 63]}))
    assert exc.value.problems[0].value is None  # a number of 19 digits: described


# ---------------------------------------------------------------------------- accounting holes
def _clear(n: int = 6) -> pd.DataFrame:
    df = base().drop(columns=["person_key", "person_key_scheme", "age_at_identification"])
    df["family_name"] = ["Ab", "Cd", "Ef", "Ab", "Cd", "Gh"]
    df["given_name"] = ["Ann", "Bo", "Cy", "Ann", "Bo", "Di"]
    df["birth_date"] = ["2008-01-01", "1994-01-01", "1990-05-05", "2008-01-01", "1994-01-01",
                        "1980-05-05"]
    return df


SECRET = generate_secret()


@pytest.mark.parametrize("dob,what", [("1890-01-01", "age of 0-110"),
                                      ("0001-01-01", "outside the years"),
                                      ("1990", "partial date"),
                                      ("31/12/1990", "not a date"),
                                      ("1990-02-30", "not a calendar date")])
def test_implausible_or_partial_birth_dates_are_one_specific_problem(dob, what):
    df = _clear()
    df.loc[2, "birth_date"] = dob
    probs = rejected(df, 4, secret=SECRET)
    assert [(p.column, p.row, p.value) for p in probs] == [("birth_date", 2, None)]
    assert what in probs[0].expected
    with pytest.raises(InputError) as exc:
        read(df, secret=SECRET)
    assert len(exc.value.problems) == 1  # no "missing person key" for that row or any other


def test_one_bad_birth_date_among_many_is_one_error_not_hundreds():
    from tipstat import simulate

    c = simulate.country(600, seed=5)
    clear = c.clear_records.copy()
    clear.loc[clear.index[10], "birth_date"] = "31/31/1990"
    with pytest.raises(InputError) as exc:
        read_records(clear, c.list_definition, secret=c.secret, today="2025-12-31")
    assert [(p.column, p.row) for p in exc.value.problems] == [("birth_date", clear.index[10])]


def test_partial_identification_date_is_not_read_as_the_first_of_january():
    df = base()
    df.loc[1, "identification_date"] = "2024"
    df.loc[3, "identification_date"] = "2024-05"
    probs = rejected(df, 4)
    assert [(p.row, "partial date" in p.expected) for p in probs] == [(1, True), (3, True)]


def test_integer_birth_date_gives_the_same_key_and_age_as_the_text():
    text = _clear()
    as_int = text.copy()
    as_int["birth_date"] = [int(d.replace("-", "")) for d in text["birth_date"]]
    a, b = read(text, secret=SECRET), read(as_int, secret=SECRET)
    assert a.frame["person_key"].tolist() == b.frame["person_key"].tolist()
    assert a.frame["age_at_identification"].tolist() == b.frame["age_at_identification"].tolist()
    assert a.frame["age_at_identification"].tolist()[:2] == [16, 30]


def test_a_refused_secret_is_the_first_and_only_error():
    df = _clear()
    df.loc[0, "sex"] = "Q"
    df.loc[1, "birth_date"] = "not a date"
    df["gender"] = "F"  # and an unknown column
    with pytest.raises(InputError) as exc:
        read(df, secret="short")
    assert exc.value.problems == [] and "secret" in str(exc.value)
    assert "gender" not in str(exc.value) and "rule" not in str(exc.value)


def test_timezone_aware_dates_keep_their_own_calendar_day():
    df = base()
    df["identification_date"] = pd.to_datetime(
        ["2024-12-31 23:30", "2024-01-01 00:10"] + ["2024-06-01 12:00"] * 4,
        format="%Y-%m-%d %H:%M").tz_localize("America/New_York")
    recs = read(df, period=2024)
    assert len(recs.used) == 6
    assert recs.frame["identification_date"].dt.strftime("%Y-%m-%d").tolist()[:2] == \
        ["2024-12-31", "2024-01-01"]
    text = base().assign(identification_date="2024-12-31T23:30:00-05:00")
    assert read(text, period=2024).frame["identification_date"].dt.year.eq(2024).all()


def test_a_file_mixing_keys_and_identifiers_hashes_only_the_rows_without_a_key():
    df = _clear()
    keyed = read(df, secret=SECRET).frame["person_key"]
    mixed = df.assign(person_key=[keyed[0], None, None, keyed[3], None, None])
    mixed.loc[0, ["family_name", "given_name", "birth_date"]] = None
    out = read(mixed, secret=SECRET).frame["person_key"]
    assert out.tolist() == keyed.tolist()


def test_rule7_names_every_identifier_column_of_the_layout_too():
    with pytest.raises(InputError) as exc:
        read(_clear())
    assert sorted(p.column for p in problems_of(exc.value, 7)) == \
        ["birth_date", "family_name", "given_name"]
    assert not problems_of(exc.value, 6)  # the refusal is rule 7 alone


_CELLS = st.one_of(st.sampled_from([NAME, NAME2, DOB, DOB2, "F", "M", "X", "", " "]),
                   st.none(), st.just(np.nan), st.booleans(), st.integers(-5, 2 ** 70),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["A", "B", "C", "count", "sex", "age_group", "region"]),
                min_size=1, max_size=6, unique=True), st.integers(0, 5), st.data())
def test_junk_count_tables_raise_only_input_errors_and_never_show_a_name(cols, n, data):
    df = pd.DataFrame({c: data.draw(st.lists(_CELLS, min_size=n, max_size=n)) for c in cols},
                      dtype=object)
    strata = [c for c in ("sex", "age_group", "region") if c in cols]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            validate_capture_table(df, strata=strata)
            text = ""
        except InputError as exc:
            text = _everything(exc)
    assert all(issubclass(w.category, TipstatWarning) for w in caught)
    text += "\n".join(str(w.message) for w in caught)
    assert not [s for s in SECRETS if s in text], text
