"""SDG 16.2.2 table: detected persons, estimates, rates, denominators, suppression, exports."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import tipstat
from tipstat import InputError, TipstatWarning, simulate
from tipstat.estimate import StratumCells
from tipstat.ictip import capture_histories
from tipstat.indicator import COLUMNS, sdg_16_2_2
from tipstat.linkage import persons
from tipstat.models.stratified import fit_stratified

FOUR = {k: v for k, v in simulate.DEFAULT_LISTS.items() if k in "PKIO"}


@pytest.fixture(scope="module")
def pipeline():
    """Records -> validation -> linkage -> strata -> estimate, for one synthetic country."""
    c = simulate.country(4000, seed=42, lists=FOUR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        recs = c.read(period=c.year)
        h = capture_histories(persons(recs), by=["sex", "age_group", "exploitation"])
        est = fit_stratified(h, n_boot=150, seed=1, missing="em")
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
    # one status for every withheld row: marking complements apart would say they hold >= 5
    sup = t.table[t.table.obs_status == "suppressed"]
    assert len(sup) == t.n_suppressed > t.n_suppressed_primary > 0
    assert t.n_suppressed == t.n_suppressed_primary + t.n_suppressed_secondary
    assert not (t.table.obs_status == "suppressed (secondary)").any()
    assert sup[["detected", "total_est", "rate_per_100k"]].isna().all().all()
    g = t.to_glotip(country="Synthetica")
    assert list(g.columns) == ["Iso3_code", "Country", "Region", "Subregion", "Indicator",
                               "Dimension", "Category", "Sex", "Age", "Year",
                               "Unit of measurement", "txtVALUE", "Source"]
    assert set(g.Sex) <= {"Female", "Male", "Total", "Unknown", "Other"}
    assert set(g.Age) <= {"0 to 17 years", "18 years or over", "Total", "Unknown"}
    assert set(g.Dimension) == {"Total", "by form of exploitation"}
    assert "x" in set(g.txtVALUE) and "<5" not in set(g.txtVALUE)
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
        h = capture_histories(persons(c.read(period=c.year)), by=["age_group"])
        est = fit_stratified(h, n_boot=0)
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
        h = capture_histories(persons(c.read(period=c.year)), by=["age_group_l2"])
        est = fit_stratified(h, n_boot=0)
        with pytest.raises(InputError, match="rule 9"):
            sdg_16_2_2(est, c.population)  # level-1 population only
        bands = sorted(set(h.strata_index["age_group_l2"]) - {"_U"})
        pop = pd.concat([c.population, pd.DataFrame({"sex": "_T", "age_group": bands,
                                                     "population": 1_000_000})])
        t = sdg_16_2_2(est, pop, suppress=False).table.set_index("age")
    assert set(bands) <= set(t.index)
    b = bands[0]
    assert t.loc[b, "rate_per_100k"] == pytest.approx(1e5 * t.loc[b, "total_est"] / 1e6)


def _sums(t: pd.DataFrame):
    """Every relation margin = sum of cells along one dimension, found from the table alone:
    (parent row label, child row labels). Written independently of tipstat.indicator."""
    out = []
    for d in ("sex", "age", "exploitation"):
        others = [k for k in ("sex", "age", "exploitation") if k != d]
        for _, g in t.groupby(others):
            parent = g.index[g[d] == "_T"]
            children = g.index[g[d] != "_T"]
            if len(parent) == 1 and len(children):
                out.append((parent[0], list(children)))
    return out


@pytest.mark.parametrize("threshold", [5, 40])
def test_no_suppressed_value_is_recoverable(pipeline, threshold):
    """Secondary suppression: the attacker's linear program over every published row (EM
    shares make the counts fractional, so the integer program does not apply) leaves every
    small row the whole range 1 .. threshold-1 its marker allows, unless the table itself
    forbids it (then it is reported in ``suppression.limited``), and every other suppressed row
    a range at least 2 wide. Without secondary suppression a value is recovered exactly by one
    subtraction (so the check can fail)."""
    from tipstat.disclosure import audit

    c, _, _, est = pipeline
    full = _table(est, c, suppress=False).table
    rel = _sums(full)
    assert len(rel) > 20
    for p, ch in rel:  # the relations are real: detected and estimated totals add up
        # (EM shares detected persons out fractionally; each row is rounded to 1e-6)
        for col in ("detected", "total_est"):
            assert full.loc[p, col] == pytest.approx(full.loc[ch, col].sum(), abs=1e-4)
    t = _table(est, c, threshold=threshold)
    tab = t.table
    assert (tab[["sex", "age", "exploitation"]] == full[["sex", "age", "exploitation"]]).all().all()
    hidden = tab.obs_status.str.startswith("suppressed")
    assert t.n_suppressed_secondary > 0 and hidden.sum() == t.n_suppressed
    assert tab.loc[hidden, ["detected", "total_est", "undetected_est", "total_lcl",
                            "rate_per_100k", "detected_rate"]].isna().all().all()
    a = audit(tab, threshold=threshold, sensitive=t.suppression.primary)
    assert not a.integer and a.protected, a.summary()
    cells = a.to_frame()
    limited = {r for _, r in t.suppression.limited}
    prim = cells[cells.sensitive & ~cells.row.isin(limited)]
    assert len(prim)
    assert (prim.lp_min <= 1 + 1e-6).all() and (prim.lp_max >= threshold - 1 - 1e-6).all()
    assert (cells.width >= 2 - 1e-6).all()
    # primary suppression alone leaks: a small cell equals its margin minus published siblings
    only = _table(est, c, threshold=threshold, secondary=False).table
    gone = only.obs_status == "suppressed"
    leaks = [(p, ch) for p, ch in rel if gone[[p, *ch]].sum() == 1 and gone[ch].sum() == 1]
    assert leaks
    p, ch = leaks[0]
    x = next(i for i in ch if gone[i])
    recovered = only.loc[p, "detected"] - only.loc[[i for i in ch if i != x], "detected"].sum()
    assert recovered == pytest.approx(full.loc[x, "detected"], abs=1e-4)
    assert 0 < recovered < threshold
    assert audit(only, threshold=threshold).n_exact > 0


@pytest.mark.parametrize("mix", ["separate", "both", "OTH"])
def test_secondary_suppression_under_every_mix_rule(pipeline, mix):
    """Whatever the mixed-exploitation rule (with "both" forms do not add up to the total; the
    disclosure layer is told which codes hold mixed cases), the audit of the published table
    finds no small row narrowed, and the grand total stays published."""
    from tipstat.disclosure import audit
    from tipstat.indicator import _hierarchies

    c, _, _, est = pipeline
    t = _table(est, c, threshold=20, mix=mix)
    assert t.n_suppressed_primary > 0 and t.n_suppressed_secondary > 0
    assert t.mix == mix
    assert audit(t.table, threshold=20, hierarchies=_hierarchies(mix, None)).protected
    total = t.table[(t.table.sex == "_T") & (t.table.age == "_T") & (t.table.exploitation == "_T")]
    assert total.obs_status.tolist() == ["estimated"]


def test_secondary_suppression_protects_a_cube_and_is_switchable():
    """One small interior cell (3) of a 2 x 2 x 2 table with every margin published: one
    subtraction must not give it back, nor the integer program over all margins; the attacker
    is left with every value 1-4. secondary=False leaves only the primary cell, which the
    audit recovers exactly."""
    from tipstat.disclosure import audit
    from tipstat.indicator import secondary_suppression

    rows = []
    cells = {("F", "Y0T17", "SEX"): 3, ("F", "Y0T17", "LAB"): 30, ("F", "Y_GE18", "SEX"): 50,
             ("F", "Y_GE18", "LAB"): 70, ("M", "Y0T17", "SEX"): 20, ("M", "Y0T17", "LAB"): 40,
             ("M", "Y_GE18", "SEX"): 60, ("M", "Y_GE18", "LAB"): 80}
    levels = {"sex": ["F", "M", "_T"], "age": ["Y0T17", "Y_GE18", "_T"],
              "exploitation": ["SEX", "LAB", "_T"]}
    for sx in levels["sex"]:
        for ag in levels["age"]:
            for fm in levels["exploitation"]:
                det = sum(v for (a, b, f), v in cells.items()
                          if sx in (a, "_T") and ag in (b, "_T") and fm in (f, "_T"))
                rows.append({"sex": sx, "age": ag, "exploitation": fm, "detected": float(det)})
    t = pd.DataFrame(rows)
    primary = t.detected.lt(5).to_numpy()
    extra = secondary_suppression(t, primary)
    assert primary.sum() == 1 and extra.sum() >= 3
    for p, ch in _sums(t):
        assert (primary | extra)[[p, *ch]].sum() != 1
    pub = t.assign(obs_status=np.where(primary | extra, "suppressed", ""))
    pub.loc[primary | extra, "detected"] = np.nan
    a = audit(pub, sensitive=primary)
    assert a.protected
    small = a.cells[a.cells.sensitive].iloc[0]
    assert small.int_min == 1 and small.int_max >= 4
    # rows not yet marked are returned too (the small one included)
    assert (secondary_suppression(t, np.zeros(len(t), bool)) == (primary | extra)).all()
    only = pub.copy()
    only.loc[extra, "detected"] = t.detected[extra]
    only.loc[extra, "obs_status"] = ""
    assert audit(only).n_exact == 1


def test_glotip_marks_every_withheld_row_alike(pipeline):
    c, _, _, est = pipeline
    t = _table(est, c, threshold=40)
    g = t.to_glotip()
    assert "<5" not in set(g.txtVALUE)  # one marker: small cells look like their complements
    assert t.n_suppressed_secondary and (g.txtVALUE == "x").sum() == 6 * t.n_suppressed  # 6 measures
    assert _table(est, c, threshold=40, suppress=False).n_suppressed == 0


def _no_estimate_checks(t, tmp_path):
    tab = t.table
    bad = tab[tab.obs_status == "not estimable"]
    assert len(bad)
    assert bad[["undetected_est", "total_est", "total_lcl", "total_ucl", "rate_per_100k",
                "rate_lcl", "rate_ucl"]].isna().all().all()
    assert bad.detected.notna().all() and bad.detected_rate.notna().all()
    assert bad.notes.str.startswith("not estimable").all()
    assert not np.isinf(tab.select_dtypes("number").to_numpy(dtype=float)).any()
    g = t.to_glotip()
    assert not g.txtVALUE.isin(["0", "0.00", "inf", "nan"]).any()
    assert (g.txtVALUE == "not estimable").sum() == 4 * len(bad)  # 4 estimate measures per row
    t.to_csv(tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert (back.loc[bad.index, "total_est"] == "").all()
    t.to_excel(tmp_path / "t.xlsx")
    xl = pd.read_excel(tmp_path / "t.xlsx", sheet_name="sdg_16_2_2")
    assert xl.loc[bad.index, "total_est"].isna().all()
    assert (xl.loc[bad.index, "obs_status"] == "not estimable").all()
    return bad


@pytest.mark.parametrize("terms,status", [("all2", "does_not_exist"), ("A:B:C", "not_identifiable")])
def test_an_estimate_that_does_not_exist_publishes_no_number(terms, status, load_table, tmp_path):
    """Korea_3 with all two-way terms: the MLE does not exist (N-hat infinite); the saturated
    model on 3 lists: N is not identifiable (N-hat NaN, which a pandas sum used to publish as
    0.0 "estimated"). Either way the row has its detected count, blank estimates, its own
    status and the reason, in the table, the CSV, the Excel sheet and GLOTIP."""
    if terms == "all2":
        h = load_table("Korea_3")
    else:
        h = tipstat.CaptureHistories.from_frame(pd.DataFrame({
            "A": [1, 0, 1, 0, 1, 0, 1], "B": [0, 1, 1, 0, 0, 1, 1], "C": [0, 0, 0, 1, 1, 1, 1],
            "count": [40, 30, 6, 20, 7, 5, 2]}))
    est = tipstat.fit_loglinear(h, terms)
    assert est.status == status
    pop = pd.DataFrame({"sex": ["_T"], "age_group": ["_T"], "population": [5e7]})
    with pytest.warns(TipstatWarning, match="not estimable"):
        t = sdg_16_2_2(est, pop)
    bad = _no_estimate_checks(t, tmp_path)
    assert len(bad) == 1 and bad.detected.iloc[0] == h.n_observed
    assert status.replace("_", " ").split()[0] in bad.notes.iloc[0].lower() or "MLE" in bad.notes.iloc[0]


def test_a_stratum_without_estimate_blanks_every_margin_containing_it(tmp_path):
    """Separate fits by sex where the women's lists never overlap (no recapture: the MLE does
    not exist): F and the total are not estimable, M is estimated as usual, and the total says
    which strata are missing."""
    df = pd.DataFrame({"sex": ["F"] * 7 + ["M"] * 7, "A": [1, 0, 1, 0, 1, 0, 1] * 2,
                       "B": [0, 1, 1, 0, 0, 1, 1] * 2, "C": [0, 0, 0, 1, 1, 1, 1] * 2,
                       "count": [30, 25, 0, 20, 0, 0, 0, 80, 60, 20, 50, 15, 12, 4]})
    h = tipstat.CaptureHistories.from_frame(df, strata="sex")
    est = fit_stratified(h, pooling="separate", n_boot=20, seed=1)
    pop = pd.DataFrame({"sex": ["F", "M", "_T"], "age_group": "_T", "population": [5e6, 5e6, 1e7]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        t = sdg_16_2_2(est, pop)
    bad = _no_estimate_checks(t, tmp_path).set_index("sex")
    assert set(bad.index) == {"F", "_T"}
    assert "contains 1 of 2 strata" in bad.loc["_T", "notes"]
    assert bad.loc["_T", "detected"] == 316
    m = t.table.set_index("sex").loc["M"]
    assert m.obs_status == "estimated" and np.isfinite(m.total_est) and m.total_lcl <= m.total_est


def test_a_hand_made_stratified_result_with_a_not_identifiable_cell():
    """Any stratified Estimate: a NaN cell is not estimable and so is every margin with it."""
    cells = pd.DataFrame({"sex": ["F", "F", "M", "M"], "exploitation": ["SEX", "LAB"] * 2,
                          "observed": [40.0, 30.0, 50.0, 60.0],
                          "n_hat": [80.0, np.nan, 90.0, 100.0],
                          "status": ["ok", "not_identifiable", "ok", "ok"]})
    est = tipstat.Estimate(n_hat=np.nan, ci=(np.nan, np.nan), level=0.95, n_observed=180.0,
                           method="stratified_separate", model="m", status="not_identifiable",
                           cells=StratumCells(cells, strata=["sex", "exploitation"]))
    pop = pd.DataFrame({"sex": ["F", "M", "_T"], "age_group": "_T", "population": [5e6, 5e6, 1e7]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        t = sdg_16_2_2(est, pop).table.set_index(["sex", "exploitation"])
    gone = {k for k, r in t.iterrows() if r.obs_status == "not estimable"}
    assert gone == {("F", "LAB"), ("F", "_T"), ("_T", "LAB"), ("_T", "_T")}
    assert t.loc[("M", "_T"), "total_est"] == 190.0 and t.loc[("_T", "SEX"), "total_est"] == 170.0
    assert "N is not identifiable" in t.loc[("F", "LAB"), "notes"]


def test_exports_of_an_unsuppressed_table_are_protected(pipeline, tmp_path):
    """A table built with suppress=False is for internal use: its CSV, Excel and GLOTIP exports
    still go through the disclosure layer (with a W7 warning) unless protect=False."""
    c, _, _, est = pipeline
    raw = _table(est, c, suppress=False)
    small = (raw.table.detected > 0) & (raw.table.detected < 5)
    assert small.any()
    with pytest.warns(TipstatWarning, match="suppress=False"):
        g = raw.to_glotip()
    assert "x" in set(g.txtVALUE)
    with pytest.warns(TipstatWarning, match="suppress=False"):
        back = pd.read_csv(raw.to_csv(tmp_path / "t.csv"))
    assert back.loc[small.to_numpy(), "detected"].isna().all()
    with pytest.warns(TipstatWarning, match="suppress=False"):
        xl = pd.read_excel(raw.to_excel(tmp_path / "t.xlsx"), sheet_name=None)
    assert xl["sdg_16_2_2"].loc[small.to_numpy(), "detected"].isna().all()
    assert "x" not in set(raw.to_glotip(protect=False).txtVALUE)
    assert raw.table.detected.notna().all()  # the table itself is left as it was


def test_indicator_docstring_examples_run():
    import doctest

    import tipstat.indicator as mod

    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
