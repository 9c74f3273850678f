"""survey_prevalence: estimates against closed forms, replicate methods against Taylor where they
must agree exactly, domains over the full design, exclusions counted, empty and small domains,
interval methods at the boundary."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tipstat.errors import InputError
from tipstat.survey import PrevalenceTable, declare_design, survey_prevalence


def _survey(seed: int = 7, n_strata: int = 4, psu_per: int = 6, rows_per: int = 25,
            p: float = 0.15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for h in range(n_strata):
        for j in range(psu_per):
            pj = min(0.9, p * rng.uniform(0.3, 1.7))
            for _ in range(rows_per):
                rows.append({"stratum": h, "psu": j, "weight": rng.uniform(50, 150),
                             "flag": int(rng.uniform() < pj),
                             "sex": rng.choice(["f", "m"]), "region": rng.choice(["a", "b"])})
    return pd.DataFrame(rows)


@pytest.fixture
def design():
    return declare_design(_survey(), weights="weight", strata="stratum", psu="psu")


def test_point_estimates_rate_and_total_are_the_weighted_sums(design):
    df = design.data
    row = survey_prevalence(design, "flag", per=1_000)[0]
    w, y = df["weight"].to_numpy(), df["flag"].to_numpy()
    assert row.proportion == pytest.approx((w * y).sum() / w.sum(), rel=1e-13)
    assert row.rate == pytest.approx(1_000 * row.proportion, rel=1e-13)
    assert row.total == pytest.approx((w * y).sum(), rel=1e-13)
    assert (row.n_sample, row.n_cases) == (len(df), int(y.sum()))
    assert row.domain == {} and row.status == "ok" and row.warnings == ()


def test_se_is_the_textbook_stratified_ratio_variance(design):
    """Independent re-derivation: with-replacement PSU totals of the linearised ratio."""
    df = design.data
    row = survey_prevalence(design, "flag")[0]
    p = row.proportion
    z = df["weight"] * (df["flag"] - p) / df["weight"].sum()
    t = z.groupby([df["stratum"], df["psu"]]).sum()
    v = 0.0
    for _, th in t.groupby(level=0):
        v += len(th) / (len(th) - 1) * ((th - th.mean()) ** 2).sum()
    assert row.se == pytest.approx(math.sqrt(v), rel=1e-12)
    # total: the same with w*y
    tt = (df["weight"] * df["flag"]).groupby([df["stratum"], df["psu"]]).sum()
    vt = sum(len(th) / (len(th) - 1) * ((th - th.mean()) ** 2).sum()
             for _, th in tt.groupby(level=0))
    assert row.total_se == pytest.approx(math.sqrt(vt), rel=1e-12)


def test_deff_is_one_for_simple_random_sampling_without_replacement():
    """SRS of n from N with weights N/n and fpc N: design variance = SRS variance."""
    rng = np.random.default_rng(2)
    n, big_n = 400, 10_000
    df = pd.DataFrame({"w": big_n / n, "N": big_n, "y": (rng.uniform(size=n) < 0.2).astype(int)})
    row = survey_prevalence(declare_design(df, weights="w", fpc="N"), "y")[0]
    assert row.deff == pytest.approx(1.0, rel=1e-12)
    assert row.n_effective == pytest.approx(n - 1, rel=1e-9 * n) or row.n_effective > 0


def test_domain_variance_uses_the_full_design_not_a_subset(design):
    """A domain is estimated with its non-members at zero, so a PSU without a member still
    counts (a zero total in its stratum); re-declaring on the subset (which loses those PSUs)
    gives a different SE."""
    df = design.data.copy()
    df.loc[(df["stratum"] == 0) & (df["psu"] < 3), "sex"] = "m"   # no woman in 3 PSUs
    full = declare_design(df, weights="weight", strata="stratum", psu="psu")
    dom = survey_prevalence(full, "flag", by="sex")
    women = next(r for r in dom if r.domain == {"sex": "f"})
    sub = df[df["sex"] == "f"]
    naive = survey_prevalence(declare_design(sub, weights="weight", strata="stratum", psu="psu"),
                              "flag")[0]
    assert women.proportion == pytest.approx(naive.proportion, rel=1e-12)
    # the influence values: w d (y - p)/N_d, zero off the domain, over every PSU of the design
    d = (df["sex"] == "f").to_numpy()
    z = np.where(d, df["weight"] * (df["flag"] - women.proportion), 0) / df["weight"][d].sum()
    t = pd.Series(z).groupby([df["stratum"], df["psu"]]).sum()
    v = sum(len(th) / (len(th) - 1) * ((th - th.mean()) ** 2).sum()
            for _, th in t.groupby(level=0))
    assert women.se == pytest.approx(math.sqrt(v), rel=1e-12)
    assert women.se != pytest.approx(naive.se, rel=1e-3)


def test_by_each_column_then_crossing_and_the_total_first(design):
    t = survey_prevalence(design, "flag", by=["sex", ("sex", "region")])
    assert [r.domain for r in t][:3] == [{}, {"sex": "f"}, {"sex": "m"}]
    assert {"sex": "m", "region": "b"} in [r.domain for r in t]
    assert len(t) == 1 + 2 + 4
    # domains of one column partition the total
    tot = sum(r.total for r in t if set(r.domain) == {"sex"})
    assert tot == pytest.approx(t[0].total, rel=1e-12)


def test_exclusions_are_counted_by_reason():
    df = _survey()
    df["flag"] = df["flag"].astype("Float64")
    df.loc[[1, 5, 9], "flag"] = pd.NA
    df.loc[[2, 3], "sex"] = None
    df.loc[[4], "weight"] = 0.0
    d = declare_design(df, weights="weight", strata="stratum", psu="psu")
    t = survey_prevalence(d, "flag", by="sex")
    assert dict(t.excluded) == {"zero_weight": 1, "missing_indicator:flag": 3,
                                "missing_domain:sex": 2}
    assert t[0].n_sample == len(df) - 3 - 1
    assert sum(r.n_sample for r in t[1:]) == len(df) - 3 - 1 - 2


def test_empty_domain_has_a_status_and_no_number():
    df = _survey()
    df["sex"] = pd.Categorical(df["sex"], categories=["f", "m", "x"])
    t = survey_prevalence(declare_design(df, weights="weight", strata="stratum", psu="psu"),
                          "flag", by="sex")
    empty = t[3]
    assert empty.domain == {"sex": "x"} and empty.status == "empty_domain"
    assert empty.n_sample == 0 and math.isnan(empty.proportion) and math.isnan(empty.ci[0])


def test_small_domain_gets_status_and_caveat():
    df = _survey()
    df["rare"] = "no"
    df.loc[df.index[::50], "rare"] = "yes"    # 12 respondents spread over PSUs
    t = survey_prevalence(declare_design(df, weights="weight", strata="stratum", psu="psu"),
                          "flag", by="rare")
    small = next(r for r in t if r.domain == {"rare": "yes"})
    assert small.status == "small_domain" and small.n_effective < 30
    cav = [w for w in small.warnings if w.code == "small_domain"]
    assert cav and cav[0].values["n_sample"] == 12
    assert t[0].status == "ok"


def test_no_degrees_of_freedom_is_not_estimable():
    df = pd.DataFrame({"h": [1, 1, 2, 2], "c": [1, 1, 1, 1], "w": [1.0] * 4, "y": [0, 1, 0, 1]})
    d = declare_design(df, weights="w", strata="h", psu="c", single_psu="certainty")
    row = survey_prevalence(d, "y")[0]
    assert d.df == 0 and row.df == 0 and row.status == "not_estimable"
    assert row.se == 0.0 and math.isnan(row.ci[0]) and math.isnan(row.total_ci[1])


def _zero_case_design(n: int = 200) -> object:
    df = pd.DataFrame({"c": np.repeat(np.arange(20), n // 20), "w": 5.0, "y": 0})
    df.loc[:3, "y"] = 1
    return declare_design(df, weights="w", psu="c")


@pytest.mark.parametrize("ci", ["logit", "korn_graubard", "wald"])
def test_intervals_contain_the_point_and_stay_in_unit_interval(design, ci):
    for r in survey_prevalence(design, "flag", by="sex", ci=ci, level=0.9):
        assert 0 <= r.ci[0] <= r.proportion <= r.ci[1] <= 1
        assert r.ci_method == ci and r.level == 0.9
        assert r.rate_ci == pytest.approx((r.ci[0] * 100_000, r.ci[1] * 100_000))


def test_logit_interval_is_asymmetric_and_inside_zero_one_for_a_rare_proportion():
    row = survey_prevalence(_zero_case_design(), "y", ci="logit")[0]
    assert 0 < row.ci[0] < row.proportion < row.ci[1] < 1
    assert row.proportion - row.ci[0] < row.ci[1] - row.proportion
    wald = survey_prevalence(_zero_case_design(), "y", ci="wald")[0]
    assert wald.ci[0] == 0.0   # p - t se < 0, clipped


def test_korn_graubard_is_clopper_pearson_on_the_df_adjusted_effective_n():
    d = _zero_case_design()
    row = survey_prevalence(d, "y", ci="korn_graubard")[0]
    p, n = row.proportion, row.n_sample
    n_star = p * (1 - p) / row.se ** 2 * (stats.t.ppf(0.025, n - 1) / stats.t.ppf(0.025, d.df)) ** 2
    x = p * n_star
    assert row.ci[0] == pytest.approx(stats.beta.ppf(0.025, x, n_star - x + 1), rel=1e-10)
    assert row.ci[1] == pytest.approx(stats.beta.ppf(0.975, x + 1, n_star - x), rel=1e-10)


def test_no_case_korn_graubard_upper_end_is_positive_and_logit_falls_back():
    df = pd.DataFrame({"c": np.repeat(np.arange(10), 30), "w": 3.0, "y": 0})
    d = declare_design(df, weights="w", psu="c")
    kg = survey_prevalence(d, "y", ci="korn_graubard")[0]
    assert kg.proportion == 0 and kg.ci[0] == 0 and kg.ci[1] > 0
    n_star = 300 * (stats.t.ppf(0.025, 299) / stats.t.ppf(0.025, 9)) ** 2
    assert kg.ci[1] == pytest.approx(1 - 0.025 ** (1 / n_star), rel=1e-10)
    lg = survey_prevalence(d, "y", ci="logit")[0]
    assert lg.ci_method == "korn_graubard" and lg.ci == kg.ci
    assert any("logit interval is undefined" in w for w in lg.warnings)


def _two_psu_strata() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = []
    for h in range(4):
        for j in range(2):
            for _ in range(15):
                rows.append({"h": h, "c": j, "w": rng.uniform(1, 3),
                             "y": int(rng.uniform() < 0.3)})
    return pd.DataFrame(rows)


def test_brr_and_fay_equal_taylor_with_replacement_for_a_total():
    """With a fully balanced (Hadamard) set of half-samples, the BRR and Fay variances of a
    linear statistic equal the with-replacement Taylor variance exactly."""
    df = _two_psu_strata()
    h2 = np.array([[1, 1], [1, -1]])
    had = np.kron(np.kron(h2, h2), h2)[1:5]   # 4 strata x 8 replicates, rows sum to 0
    taylor = survey_prevalence(declare_design(df, weights="w", strata="h", psu="c"), "y")[0]
    for method, rho in (("brr", None), ("fay", 0.3)):
        k = 0.0 if rho is None else rho
        for r in range(8):
            sel = had[df["h"], r] == np.where(df["c"] == 0, 1, -1)
            df[f"r{r}"] = df["w"] * np.where(sel, 2 - k, k)
        d = declare_design(df, weights="w", replicate_weights=[f"r{r}" for r in range(8)],
                           replicate_method=method, rho=rho)
        row = survey_prevalence(d, "y")[0]
        assert row.total_se == pytest.approx(taylor.total_se, rel=1e-12), method
        assert row.total == pytest.approx(taylor.total, rel=1e-14)


def test_jkn_equals_taylor_with_replacement_for_a_total():
    df = _survey(n_strata=3, psu_per=4, rows_per=10)
    taylor = survey_prevalence(declare_design(df, weights="weight", strata="stratum",
                                              psu="psu"), "flag")[0]
    cols = []
    for h in range(3):
        for j in range(4):
            name = f"jk_{h}_{j}"
            in_h = df["stratum"] == h
            df[name] = np.where(in_h & (df["psu"] == j), 0.0,
                                np.where(in_h, df["weight"] * 4 / 3, df["weight"]))
            cols.append(name)
    d = declare_design(df, weights="weight", strata="stratum", psu="psu",
                       replicate_weights=cols, replicate_method="jkn")
    row = survey_prevalence(d, "flag")[0]
    assert row.total_se == pytest.approx(taylor.total_se, rel=1e-12)
    assert d.df == 9   # rank of the 12 replicates (10) - 1 = PSUs - strata


def test_bootstrap_variance_formula():
    df = pd.DataFrame({"w": [1.0, 1.0, 1.0, 1.0], "y": [1, 0, 1, 0],
                       "b1": [2.0, 0.0, 1.0, 1.0], "b2": [0.0, 2.0, 1.0, 1.0],
                       "b3": [1.0, 1.0, 2.0, 0.0]})
    d = declare_design(df, weights="w", replicate_weights=["b1", "b2", "b3"],
                       replicate_method="bootstrap")
    row = survey_prevalence(d, "y")[0]
    pr = np.array([3 / 4, 1 / 4, 3 / 4])   # replicate proportions
    assert row.se == pytest.approx(math.sqrt(((pr - pr.mean()) ** 2).sum() / 2), rel=1e-12)


def test_indicator_as_mapping_or_dataframe_and_several_at_once(design):
    flags = pd.DataFrame({"a": design.data["flag"].astype(bool),
                          "b": design.data["flag"] == 0}, index=design.data.index)
    t = survey_prevalence(design, flags)
    assert [r.indicator for r in t] == ["a", "b"]
    assert t[0].proportion + t[1].proportion == pytest.approx(1.0, rel=1e-12)
    assert survey_prevalence(design, {"a": flags["a"]})[0].proportion == t[0].proportion
    assert len(survey_prevalence(design, ["flag", "flag"])) == 1


def test_bad_indicator_named_by_column_and_row_never_value(design):
    df = design.data.copy()
    df["flag"] = df["flag"].astype(object)
    df.loc[3, "flag"] = "SECRET-TEXT"
    df.loc[8, "flag"] = 2
    d = declare_design(df, weights="weight", strata="stratum", psu="psu")
    with pytest.raises(InputError) as err:
        survey_prevalence(d, "flag")
    msg = str(err.value)
    assert "column 'flag', row 4, 9 (expected 0, 1, true or false" in msg
    assert "SECRET" not in msg
    with pytest.raises(InputError, match="not in the design's data"):
        survey_prevalence(d, "nope")
    with pytest.raises(InputError, match="by column 'nope'"):
        survey_prevalence(design, "flag", by="nope")
    with pytest.raises(InputError, match="ci='exact'"):
        survey_prevalence(design, "flag", ci="exact")
    with pytest.raises(InputError, match="per=0"):
        survey_prevalence(design, "flag", per=0)


def test_to_frame_and_to_dict(design):
    t = survey_prevalence(design, "flag", by=["sex", "region"])
    assert isinstance(t, PrevalenceTable) and t.df == design.df and t.variance == "taylor"
    f = t.to_frame()
    assert len(f) == len(t) == 5
    for col in ("indicator", "domain_sex", "domain_region", "n_sample", "proportion", "se",
                "ci_lower", "ci_upper", "rate_ci_upper", "total_ci_lower", "deff",
                "n_effective", "status", "warnings"):
        assert col in f.columns
    assert f["domain_sex"].isna().sum() == 3   # the total and the two regions
    d = json.loads(json.dumps(t.to_dict()))
    assert d["rows"][1]["domain"] == {"sex": "f"} and d["df"] == design.df


def test_domain_inside_one_psu_is_not_estimable():
    """All of a domain's respondents in one PSU: its linearised values sum to zero there, the
    computed variance is 0, and a zero SE would be a false certainty."""
    df = _survey()
    df["inside"] = np.where((df["stratum"] == 1) & (df["psu"] == 2), "yes", "no")
    t = survey_prevalence(declare_design(df, weights="weight", strata="stratum", psu="psu"),
                          "flag", by="inside")
    one = next(r for r in t if r.domain == {"inside": "yes"})
    assert one.status == "not_estimable" and math.isnan(one.se) and 0 < one.proportion < 1
    assert "one PSU" in one.warnings[0]


def test_nullable_boolean_flags_with_missing_answers(design):
    flags = design.data["flag"].astype("boolean")
    flags.iloc[:7] = pd.NA
    t = survey_prevalence(design, {"fl": flags})
    assert t.excluded["missing_indicator:fl"] == 7 and t[0].n_sample == len(flags) - 7


def test_total_interval_is_the_prevalence_interval_times_the_domain_size():
    df = pd.DataFrame({"c": np.repeat(np.arange(10), 30), "w": 3.0, "y": 0,
                       "sex": ["f", "m"] * 150})
    df.loc[[0, 44, 100], "y"] = 1   # three women, no man
    t = survey_prevalence(declare_design(df, weights="w", psu="c"), "y", by="sex",
                          ci="korn_graubard")
    for r in t:
        n_hat = 3.0 * r.n_sample
        assert r.total == pytest.approx(r.proportion * n_hat, rel=1e-13)
        assert r.total_ci == pytest.approx((r.ci[0] * n_hat, r.ci[1] * n_hat), rel=1e-13)
    men = t[2]
    assert men.n_cases == 0 and men.total == 0 and men.total_ci[1] > 0
