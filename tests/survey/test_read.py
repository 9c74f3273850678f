"""read_survey: every supported format gives the same frame; value labels become categories with
every labelled level; unreadable files are an InputError that shows no content."""

from __future__ import annotations

import pandas as pd
import pytest

from tipstat.errors import InputError
from tipstat.survey import read_survey

FRAME = pd.DataFrame({"stratum": [1, 1, 2, 2], "psu": [1, 2, 3, 4],
                      "weight": [10.5, 11.0, 20.25, 19.0], "flag": [0, 1, 0, 0]})


def test_csv_and_tsv_round_trip(tmp_path):
    p = tmp_path / "s.csv"
    FRAME.to_csv(p, index=False)
    got = read_survey(p)
    pd.testing.assert_frame_equal(got, FRAME)
    assert isinstance(got.index, pd.RangeIndex)
    t = tmp_path / "s.tsv"
    FRAME.to_csv(t, index=False, sep="\t")
    pd.testing.assert_frame_equal(read_survey(str(t)), FRAME)


@pytest.mark.parametrize("sep", [";", "|", "\t"])
def test_delimiter_read_from_the_header(tmp_path, sep):
    p = tmp_path / "s.csv"
    FRAME.to_csv(p, index=False, sep=sep)
    pd.testing.assert_frame_equal(read_survey(p), FRAME)


def test_excel_sheet_by_name_and_position(tmp_path):
    pytest.importorskip("openpyxl")
    p = tmp_path / "s.xlsx"
    other = FRAME.assign(weight=FRAME["weight"] * 2)
    with pd.ExcelWriter(p, engine="openpyxl") as xl:
        FRAME.to_excel(xl, sheet_name="first", index=False)
        other.to_excel(xl, sheet_name="second", index=False)
    pd.testing.assert_frame_equal(read_survey(p), FRAME)
    pd.testing.assert_frame_equal(read_survey(p, sheet="second"), other)
    pd.testing.assert_frame_equal(read_survey(p, sheet=1), other)


@pytest.mark.parametrize("suffix", [".sav", ".dta"])
def test_spss_and_stata_value_labels_are_categories_with_every_level(tmp_path, suffix):
    pyreadstat = pytest.importorskip("pyreadstat")
    df = pd.DataFrame({"sex": [1.0, 1.0, 2.0], "weight": [1.5, 2.0, 3.0]})
    labels = {"sex": {1: "female", 2: "male", 3: "other"}}
    p = tmp_path / f"s{suffix}"
    writer = pyreadstat.write_sav if suffix == ".sav" else pyreadstat.write_dta
    writer(df, str(p), variable_value_labels=labels)
    got = read_survey(p)
    assert isinstance(got["sex"].dtype, pd.CategoricalDtype)
    # the level nobody chose is kept, so a domain "other" is reported empty, not forgotten
    assert list(got["sex"].cat.categories) == ["female", "male", "other"]
    assert got["sex"].tolist() == ["female", "female", "male"]
    assert got["weight"].tolist() == [1.5, 2.0, 3.0]


def test_unlabelled_values_keep_their_own_category(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    df = pd.DataFrame({"region": [1.0, 2.0, 9.0]})
    p = tmp_path / "s.sav"
    pyreadstat.write_sav(df, str(p), variable_value_labels={"region": {1: "north", 2: "south"}})
    got = read_survey(p)
    assert got["region"].notna().all()
    assert {"north", "south"} <= set(got["region"].cat.categories)


def test_sas_transport(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    p = tmp_path / "s.xpt"
    pyreadstat.write_xport(FRAME.astype(float), str(p))
    got = read_survey(p)
    assert got.shape == FRAME.shape
    assert got["weight"].tolist() == FRAME["weight"].tolist()


def test_missing_file_unknown_suffix_and_sheet_on_csv(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_survey(tmp_path / "nope.csv")
    p = tmp_path / "s.json"
    p.write_text("{}")
    with pytest.raises(InputError, match=r"unknown file type '\.json'"):
        read_survey(p)
    c = tmp_path / "s.csv"
    FRAME.to_csv(c, index=False)
    with pytest.raises(InputError, match="Excel workbooks only"):
        read_survey(c, sheet="x")


def test_unreadable_statistical_file_names_the_file_not_its_content(tmp_path):
    pytest.importorskip("pyreadstat")
    p = tmp_path / "broken.sav"
    p.write_bytes(b"SECRET-RESPONDENT-ANSWER " * 20)
    with pytest.raises(InputError) as err:
        read_survey(p)
    assert "broken.sav" in str(err.value)
    assert "SECRET" not in str(err.value)
