"""SDG 16.2.2 table: detected persons, estimates, rates, denominators, suppression, exports."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import tipstat
from tipstat import InputError, TipstatWarning, simulate
from tipstat.ictip import capture_histories
from tipstat.indicator import COLUMNS, sdg_16_2_2
from tipstat.models.stratified import fit_stratified

FOUR = {k: v for k, v in simulate.DEFAULT_LISTS.items() if k in "PKIO"}


@pytest.fixture(scope="module")
def pipeline():
    """Records -> validation -> linkage -> strata -> estimate, for one synthetic country."""
    c = simulate.country(4000, seed=42, lists=FOUR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        recs = c.read(period=c.year)
        h = capture_histories(recs, by=["sex", "age_group", "exploitation"])
        est = fit_stratified(h, bootstrap=150, seed=1, missing="em")
    return c, recs, h, est


def _table(est, c, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        return sdg_16_2_2(est, c.population, ref_area=c.ref_area, time_period=c.year, **kw)


def test_detected_is_distinct_persons_not_the_sum_of_list_sizes(pipeline):
    c, _, h, est = pipeline
    t = _table(est, c).table
    tot = t[(t.sex == "_T") & (t.age == "_T") & (t.exploitation == "_T")].iloc[0]
    assert tot.detected == c.n_detected == h.n_observed
    assert h.list_sizes().sum() > tot.detected
    assert list(t.columns) == COLUMNS


def test_end_to_end_total_and_rate_cover_the_truth(pipeline):
    c, _, _, est = pipeline
    t = _table(est, c).table.set_index(["sex", "age", "exploitation"])
    tot = t.loc[("_T", "_T", "_T")]
    assert tot.total_lcl <= c.n_victims <= tot.total_ucl
    true_rate = 1e5 * c.n_victims / c.population.set_index(["sex", "age_group"]).population[("_T", "_T")]
    assert tot.rate_lcl <= true_rate <= tot.rate_ucl
    assert tot.undetected_est == pytest.approx(tot.total_est - tot.detected)


def test_margins_add_up_within_each_dimension(pipeline):
    c, _, _, est = pipeline
    t = _table(est, c, suppress=False).table
    for col in ("detected", "total_est"):
        by_sex = t[(t.age == "_T") & (t.exploitation == "_T")].set_index("sex")[col]
        assert by_sex["F"] + by_sex["M"] == pytest.approx(by_sex["_T"])
        by_form = t[(t.sex == "_T") & (t.age == "_T")].set_index("exploitation")[col]
        assert by_form.drop("_T").sum() == pytest.approx(by_form["_T"])
        cells = t[(t.sex != "_T") & (t.age != "_T") & (t.exploitation != "_T")][col]
        assert cells.sum() == pytest.approx(by_form["_T"])


def test_rates_and_denominators(pipeline):
    c, _, _, est = pipeline
    pop = c.population.set_index(["sex", "age_group"])["population"]
    g = _table(est, c, denominator="group").table.set_index(["sex", "age", "exploitation"])
    tt = _table(est, c, denominator="total").table.set_index(["sex", "age", "exploitation"])
    row = g.loc[("F", "Y0T17", "SEX")]
    assert row.population == pop[("F", "Y0T17")]
    assert row.rate_per_100k == pytest.approx(1e5 * row.total_est / pop[("F", "Y0T17")])
    assert row.detected_rate == pytest.approx(1e5 * row.detected / pop[("F", "Y0T17")])
    assert tt.loc[("F", "Y0T17", "SEX")].population == pop[("_T", "_T")]
    assert (tt.denominator_type == "total").all() and (g.denominator_type == "group").all()
    # forms never narrow the denominator
    assert g.loc[("M", "_T", "LAB")].population == pop[("M", "_T")]


def test_series_codes_and_mixed_exploitation(pipeline):
    c, _, _, est = pipeline
    sep = _table(est, c, suppress=False).table
    forms = sep[(sep.sex == "_T") & (sep.age == "_T")].set_index("exploitation")
    assert forms.loc["_T", "series_code"] == "VC_HTF_DETV"
    assert forms.loc["SEX", "series_code"] == "VC_HTF_DETVSX"
    assert forms.loc["LAB", "rate_series_code"] == "VC_HTF_DETVFLR"
    assert pd.isna(forms.loc["MIX", "series_code"])
    oth = _table(est, c, suppress=False, mix="OTH").table
    f2 = oth[(oth.sex == "_T") & (oth.age == "_T")].set_index("exploitation")
    assert "MIX" not in f2.index
    assert f2.loc["OTH", "detected"] == pytest.approx(forms.loc["OTH", "detected"]
                                                      + forms.loc["MIX", "detected"])
    both = _table(est, c, suppress=False, mix="both").table
    f3 = both[(both.sex == "_T") & (both.age == "_T")].set_index("exploitation")
    assert f3.loc["SEX", "detected"] == pytest.approx(forms.loc["SEX", "detected"]
                                                      + forms.loc["MIX", "detected"])
    assert f3.loc["_T", "detected"] == forms.loc["_T", "detected"]  # persons counted once
    with pytest.raises(InputError):
        _table(est, c, mix="half")


def test_suppression_and_glotip_export(pipeline, tmp_path):
    c, _, _, est = pipeline
    with pytest.warns(TipstatWarning, match="W7"):
        t = sdg_16_2_2(est, c.population, ref_area=c.ref_area, time_period=c.year, threshold=40)
    sup = t.table[t.table.obs_status == "suppressed"]
    assert len(sup) == t.n_suppressed > 0
    assert sup[["detected", "total_est", "rate_per_100k"]].isna().all().all()
    g = t.to_glotip(country="Synthetica")
    assert list(g.columns) == ["Iso3_code", "Country", "Region", "Subregion", "Indicator",
                               "Dimension", "Category", "Sex", "Age", "Year",
                               "Unit of measurement", "txtVALUE", "Source"]
    assert set(g.Sex) <= {"Female", "Male", "Total", "Unknown", "Other"}
    assert set(g.Age) <= {"0 to 17 years", "18 years or over", "Total", "Unknown"}
    assert set(g.Dimension) == {"Total", "by form of exploitation"}
    assert "<5" in set(g.txtVALUE)
    total = g[(g.Sex == "Total") & (g.Age == "Total") & (g.Dimension == "Total")
              & (g.Indicator == "Detected trafficking victims") & (g["Unit of measurement"] == "Counts")]
    assert total.txtVALUE.iloc[0] == f"{c.n_detected:,}"
    t.to_csv(tmp_path / "sdg.csv")
    t.to_csv(tmp_path / "glotip.csv", glotip=True)
    t.to_excel(tmp_path / "sdg.xlsx")
    back = pd.read_csv(tmp_path / "sdg.csv")
    assert len(back) == len(t.table)
    xl = pd.read_excel(tmp_path / "sdg.xlsx", sheet_name=None)
    assert set(xl) == {"sdg_16_2_2", "glotip"}


def test_unknown_groups_have_no_group_rate():
    c = simulate.country(1500, seed=8, lists=FOUR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        h = capture_histories(c.read(period=c.year), by=["age_group"])
        est = fit_stratified(h, bootstrap=0)
    t = _table(est, c, suppress=False).table.set_index("age")
    assert "_U" in t.index and np.isnan(t.loc["_U", "rate_per_100k"])
    assert "no population" in t.loc["_U", "notes"]
    assert np.isfinite(t.loc["_T", "rate_per_100k"])


def test_unstratified_estimate_gives_one_total_row():
    h = tipstat.datasets.load("UK_5")
    est = tipstat.fit_loglinear(h, "independence")
    pop = pd.DataFrame({"sex": ["_T"], "age_group": ["_T"], "population": [64_000_000]})
    t = sdg_16_2_2(est, pop, ref_area="GBR", time_period=2013).table
    assert len(t) == 1
    assert t.total_est[0] == pytest.approx(est.n_hat)
    assert (t.total_lcl[0], t.total_ucl[0]) == pytest.approx(est.ci)
    assert t.rate_per_100k[0] == pytest.approx(1e5 * est.n_hat / 64e6)


def test_finer_age_bands_need_their_own_denominators():
    c = simulate.country(1500, seed=9, lists=FOUR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        h = capture_histories(c.read(period=c.year), by=["age_group_l2"])
        est = fit_stratified(h, bootstrap=0)
        with pytest.raises(InputError, match="rule 9"):
            sdg_16_2_2(est, c.population)  # level-1 population only
        bands = sorted(set(h.strata_index["age_group_l2"]) - {"_U"})
        pop = pd.concat([c.population, pd.DataFrame({"sex": "_T", "age_group": bands,
                                                     "population": 1_000_000})])
        t = sdg_16_2_2(est, pop, suppress=False).table.set_index("age")
    assert set(bands) <= set(t.index)
    b = bands[0]
    assert t.loc[b, "rate_per_100k"] == pytest.approx(1e5 * t.loc[b, "total_est"] / 1e6)
