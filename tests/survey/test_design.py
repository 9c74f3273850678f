"""declare_design: what it accepts, and every problem named by column and 1-based row, never by a
respondent's value."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tipstat.errors import InputError
from tipstat.survey import SurveyDesign, declare_design

SECRET = "SECRET-ANSWER-7"


def _frame(n_strata: int = 3, psu_per: int = 3, rows_per: int = 4) -> pd.DataFrame:
    rows = []
    for h in range(n_strata):
        for j in range(psu_per):
            for _ in range(rows_per):
                rows.append({"h": f"s{h}", "c": j + 1, "w": 10.0 + h, "N": 20 + h,
                             "y": int(len(rows) % 5 == 0)})
    return pd.DataFrame(rows)


def test_counts_df_and_describe():
    d = declare_design(_frame(), weights="w", strata="h", psu="c", fpc="N")
    assert isinstance(d, SurveyDesign)
    # PSU codes are read within their stratum: 3 strata x 3 PSUs, not 3 PSUs
    assert (d.n_strata, d.n_psu, d.df) == (3, 9, 6)
    desc = d.describe().set_index("item")["value"]
    assert desc["rows"] == 36 and desc["stage 1 units"] == 9
    assert desc["variance"] == "taylor"
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.weights = "y"  # type: ignore[misc]


def test_no_strata_no_psu_is_one_stratum_of_rows():
    d = declare_design(_frame(), weights="w")
    assert (d.n_strata, d.n_psu, d.df) == (1, 36, 35)


def test_absent_columns_are_named():
    with pytest.raises(InputError, match=r"weights column 'wt'.*psu column 'cluster'"):
        declare_design(_frame(), weights="wt", psu="cluster")


def test_bad_weights_named_by_column_and_row_never_value():
    df = _frame()
    df["w"] = df["w"].astype(object)
    df.loc[2, "w"] = SECRET      # row 3
    df.loc[5, "w"] = None        # row 6
    df.loc[7, "w"] = -4.0        # row 8
    with pytest.raises(InputError) as err:
        declare_design(df, weights="w", strata="h", psu="c")
    msg = str(err.value)
    assert "column 'w', row 3 (expected a number" in msg
    assert "column 'w', row 6 (expected a value (the cell is empty)" in msg
    assert "column 'w', row 8 (expected a weight >= 0" in msg
    assert SECRET not in msg and "-4" not in msg
    assert len(err.value.problems) == 3


def test_many_bad_rows_show_a_few_then_how_many_more():
    df = _frame()
    df.loc[:11, "h"] = None
    with pytest.raises(InputError) as err:
        declare_design(df, weights="w", strata="h", psu="c")
    assert "column 'h', row 1, 2, 3, 4, 5 and 7 more" in str(err.value)
    assert "12 row(s)" in str(err.value)


def test_zero_weights_are_kept_in_the_design_and_counted():
    df = _frame()
    df.loc[[0, 1], "w"] = 0.0
    d = declare_design(df, weights="w", strata="h", psu="c")
    assert dict(d.excluded) == {"zero_weight": 2}
    assert d.n_psu == 9   # their PSU still counts


def test_fpc_must_be_constant_within_stratum_and_not_below_the_sample():
    df = _frame()
    df.loc[4, "N"] = 999  # row 5, stratum s0
    with pytest.raises(InputError) as err:
        declare_design(df, weights="w", strata="h", psu="c", fpc="N")
    msg = str(err.value)
    assert "column 'N'" in msg and "one finite-population correction per stratum" in msg
    assert "999" not in msg
    df = _frame()
    df["N"] = 2  # 3 PSUs sampled of 2
    with pytest.raises(InputError, match="at least the number of units sampled"):
        declare_design(df, weights="w", strata="h", psu="c", fpc="N")


def test_fpc_as_fraction_equals_fpc_as_size():
    df = _frame()
    df["f"] = 3 / df["N"]
    a = declare_design(df, weights="w", strata="h", psu="c", fpc="N")
    b = declare_design(df, weights="w", strata="h", psu="c", fpc="f")
    z = np.random.default_rng(1).normal(size=len(df))
    from tipstat.survey.design import taylor_variance
    assert taylor_variance(a, z) == pytest.approx(taylor_variance(b, z), rel=1e-12)


def test_single_psu_fail_names_the_stratum_index_not_its_code():
    df = _frame()
    df = df[~((df["h"] == "s1") & (df["c"] > 1))]   # stratum s1 keeps one PSU
    with pytest.raises(InputError) as err:
        declare_design(df, weights="w", strata="h", psu="c")
    msg = str(err.value)
    assert "stratum number 2" in msg and "stage 1" in msg and "'s1'" not in msg
    assert declare_design(df, weights="w", strata="h", psu="c", single_psu="certainty").df == 4
    assert declare_design(df, weights="w", strata="h", psu="c", single_psu="centre").df == 4


def test_single_psu_sampled_with_certainty_is_not_a_problem():
    df = _frame()
    df = df[~((df["h"] == "s1") & (df["c"] > 1))]
    df.loc[df["h"] == "s1", "N"] = 1   # the stratum's only PSU, taken with certainty
    declare_design(df, weights="w", strata="h", psu="c", fpc="N")


def test_second_stage_single_unit_matters_only_with_a_first_stage_fpc():
    df = pd.DataFrame({"c": [1, 1, 2, 3, 3], "s": [1, 2, 1, 1, 2], "w": [5.0] * 5,
                       "N1": [10] * 5, "N2": [4, 4, 3, 5, 5]})
    declare_design(df, weights="w", psu=["c", "s"])        # with replacement: stage 2 unused
    with pytest.raises(InputError, match=r"stage 2 \(column .s.; stage-1 unit number 2"):
        declare_design(df, weights="w", psu=["c", "s"], fpc=["N1", "N2"])


def test_more_fpc_than_stages_and_bad_single_psu_option():
    with pytest.raises(InputError, match="at most one fpc column per stage"):
        declare_design(_frame(), weights="w", psu="c", fpc=["N", "N"])
    with pytest.raises(InputError, match="single_psu='average'"):
        declare_design(_frame(), weights="w", single_psu="average")


def _with_replicates(df: pd.DataFrame, r: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    for k in range(1, r + 1):
        df[f"rw{k}"] = df["w"] * rng.uniform(0.5, 1.5, len(df))
    return df


def test_replicate_weights_by_prefix_and_their_checks():
    df = _with_replicates(_frame())
    d = declare_design(df, weights="w", replicate_weights="rw", replicate_method="bootstrap")
    assert d.replicate_weights == ("rw1", "rw2", "rw3", "rw4") and d.variance == "bootstrap"
    assert d.df == 3   # rank 4 - 1
    with pytest.raises(InputError, match="replicate_method=None"):
        declare_design(df, weights="w", replicate_weights="rw")
    with pytest.raises(InputError, match="rho=None; Fay"):
        declare_design(df, weights="w", replicate_weights="rw", replicate_method="fay")
    with pytest.raises(InputError, match="'jkn' needs strata and psu"):
        declare_design(df, weights="w", replicate_weights="rw", replicate_method="jkn")
    with pytest.raises(InputError, match="no column starts with"):
        declare_design(df, weights="w", replicate_weights="zz", replicate_method="brr")
    with pytest.raises(InputError, match="without replicate_weights"):
        declare_design(df, weights="w", replicate_method="brr")
    with pytest.raises(InputError, match="jackknife replicates only"):
        declare_design(df, weights="w", fpc="N", replicate_weights="rw", replicate_method="brr")
    df.loc[9, "rw2"] = -1.0
    with pytest.raises(InputError, match=r"column 'rw2', row 10 \(expected a replicate weight"):
        declare_design(df, weights="w", replicate_weights="rw", replicate_method="bootstrap")


def test_jkn_replicate_must_delete_one_stratum():
    df = _with_replicates(_frame(), r=2)
    df.loc[df["h"] == "s0", "rw1"] = 0.0
    df.loc[df["h"] == "s1", "rw1"] = 0.0
    with pytest.raises(InputError, match="column number 1 deletes rows of 2 strata"):
        declare_design(df, weights="w", strata="h", psu="c", replicate_weights=["rw1", "rw2"],
                       replicate_method="jkn")


def test_import_stays_light():
    """Declaring a design and estimating import neither svy, polars nor pyreadstat."""
    code = ("import sys, pandas as pd; import tipstat.survey as s; "
            "d = s.declare_design(pd.DataFrame({'w': [1.0, 2.0], 'y': [0, 1]}), weights='w'); "
            "s.survey_prevalence(d, 'y'); "
            "print(sorted(m for m in ('svy', 'polars', 'pyreadstat') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_categorical_codes_with_unused_levels_are_the_same_design():
    """Strata and PSUs read from labelled files are categoricals, often with unused levels; they
    must give the same design as plain codes (no empty stratum, no NaN variance)."""
    from tipstat.survey.design import taylor_variance

    df = _frame()
    cat = df.assign(h=pd.Categorical(df["h"], categories=["s0", "s1", "s2", "unused"]),
                    c=pd.Categorical(df["c"], categories=[1, 2, 3, 4]))
    a = declare_design(df, weights="w", strata="h", psu="c")
    b = declare_design(cat, weights="w", strata="h", psu="c")
    assert (b.n_strata, b.n_psu, b.df) == (a.n_strata, a.n_psu, a.df)
    z = np.arange(len(df), dtype=float)
    assert taylor_variance(b, z) == pytest.approx(taylor_variance(a, z), rel=1e-13)
