"""Survey prevalence beside MSE: what each row counts, rates from the right populations, and
no figure the data do not support."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import tipstat
from tipstat import InputError
from tipstat.survey import publish_prevalence, side_by_side


def _row(domain=None, *, p=0.004, n_cases=90, status="ok", indicator="forced_labour"):
    return SimpleNamespace(indicator=indicator, domain=domain or {}, n_sample=9000,
                           n_cases=n_cases, proportion=p, se=0.0005, ci=(0.8 * p, 1.25 * p),
                           level=0.95, ci_method="logit", rate=1e5 * p,
                           rate_ci=(0.8e5 * p, 1.25e5 * p), total=1e7 * p,
                           total_se=1.0, total_ci=(0.8e7 * p, 1.25e7 * p), deff=1.4,
                           n_effective=6400.0, status=status, warnings=())


SURVEY = [_row(), _row({"sex": "F"}, p=0.003, n_cases=40), _row({"sex": "M"}, p=0.005,
                                                                n_cases=50)]
MSE = tipstat.Estimate(n_hat=2500.0, ci=(1500.0, 6000.0), level=0.95, n_observed=900,
                       method="default", model="BIC average", ci_method="profile")


def test_each_row_says_what_it_counts_and_rates_use_their_own_population():
    t = side_by_side(SURVEY, MSE, population=12_000_000, survey_period="the past 12 months",
                     mse_period="2024")
    assert list(t["source"]) == ["household survey", "multiple systems estimation"]
    s, m = t.iloc[0], t.iloc[1]
    assert "stock" in s["counts"] and "outside households" in s["counts"]
    assert "victims of trafficking" in m["counts"] and "in need of identification" in m["counts"]
    assert s["reference_period"] == "the past 12 months" and m["reference_period"] == "2024"
    # survey rate: 100,000 x the weighted proportion; MSE: 100,000 x N-hat / population
    assert s["rate_per_100k"] == pytest.approx(400.0)
    assert (s["rate_lower"], s["rate_upper"]) == pytest.approx((320.0, 500.0))
    assert s["estimate"] == pytest.approx(40_000.0)
    assert m["rate_per_100k"] == pytest.approx(2500 / 12e6 * 1e5)
    assert (m["rate_lower"], m["rate_upper"]) == pytest.approx((12.5, 50.0))
    assert m["shown"] == "2,500" and m["interval_shown"] == "[1,500, 6,000]"
    # different quantities: said on every row, and no column combines them
    assert (t["note"].str.contains("different quantities")).all()
    assert t.attrs["different_quantities"] is True
    assert not [c for c in t.columns if "ratio" in c or "diff" in c or "share" in c]


def test_domains_all_gives_every_survey_domain():
    t = side_by_side(SURVEY, MSE, population=12_000_000, domains="all")
    assert list(t["domain"]) == ["total", "sex=F", "sex=M", "total"]


def test_a_lower_bound_is_shown_in_words_never_as_a_number():
    bound = MSE.as_lower_bound()
    t = side_by_side(SURVEY, bound, population=12_000_000)
    m = t.iloc[1]
    assert m["status"] == "lower_bound"
    assert math.isnan(m["estimate"]) and math.isnan(m["upper"]) and m["lower"] == 1500.0
    assert m["shown"] == "at least 1,500" and m["interval_shown"] == "[1,500, no upper bound]"
    assert m["rate_shown"] == "at least 12.5" and math.isnan(m["rate_upper"])


@pytest.mark.parametrize("status", ["ok", "lower_bound", "does_not_exist", "not_identifiable",
                                    "not_converged", "failed"])
def test_figures_follow_the_report_display_rules(status):
    """The survey package may not import the report: its words must be the report's words."""
    from tipstat.report.display import figure, interval

    n_hat = math.nan if status == "lower_bound" else 2500.0
    upper = math.inf if status == "lower_bound" else 6000.0
    est = tipstat.Estimate(n_hat=n_hat, ci=(1500.0, upper), level=0.95, n_observed=900,
                           method="m", model="x", status=status)
    m = side_by_side(SURVEY, est, population=1e6).iloc[1]
    assert m["shown"] == figure(status, n_hat, 1500.0, upper)
    assert m["interval_shown"] == interval(status, 1500.0, upper)
    if status not in ("ok", "lower_bound"):
        assert m[["estimate", "lower", "upper", "rate_per_100k"]].isna().all()


def test_survey_statuses_and_suppressed_domains_are_words():
    rows = [_row(), _row({"sex": "F"}, n_cases=3, p=0.0003), _row({"sex": "M"}, n_cases=87),
            _row({"region": "R9"}, status="not_estimable", p=math.nan, n_cases=0),
            _row({"region": "R8"}, status="small_domain", n_cases=12)]
    pub = publish_prevalence(rows)
    t = side_by_side(pub.table, MSE, population=1e7, domains="all").set_index("domain")
    assert t.loc["sex=F", "shown"] == "suppressed" and t.loc["sex=M", "shown"] == "suppressed"
    assert math.isnan(t.loc["sex=F", "rate_per_100k"])
    assert t.loc["region=R9", "shown"] == "not estimable"
    assert t.loc["region=R8", "shown"].endswith("(small domain: unreliable)")


def _sdg_table() -> pd.DataFrame:
    rows = []
    for sex in ("F", "M", "_T"):
        for form in ("SEX", "LAB", "_T"):
            n = {"F": 600, "M": 400, "_T": 1000}[sex] * {"SEX": 0.6, "LAB": 0.4, "_T": 1}[form]
            rows.append({"ref_area": "XXX", "time_period": 2024, "sex": sex, "age": "_T",
                         "exploitation": form, "detected": n / 3, "total_est": n,
                         "total_lcl": 0.7 * n, "total_ucl": 1.6 * n,
                         "rate_per_100k": n / 80, "rate_lcl": 0.7 * n / 80,
                         "rate_ucl": 1.6 * n / 80, "obs_status": "estimated"})
    return pd.DataFrame(rows)


def test_an_sdg_table_gives_its_total_or_a_chosen_row():
    sdg = _sdg_table()
    t = side_by_side(SURVEY, sdg, population=8e6)
    m = t.iloc[1]
    assert m["estimate"] == 1000 and m["rate_per_100k"] == pytest.approx(12.5)
    assert m["reference_period"] == "the lists' year (2024)" and m["domain"] == "total"
    lab = side_by_side(SURVEY, sdg, population=8e6, mse_domain={"exploitation": "LAB"}).iloc[1]
    assert lab["estimate"] == 400 and lab["domain"] == "exploitation=LAB"
    sdg.loc[(sdg.sex == "_T") & (sdg.exploitation == "_T"), "obs_status"] = "not estimable"
    ne = side_by_side(SURVEY, sdg, population=8e6).iloc[1]
    assert ne["shown"] == "not estimable" and np.isnan(ne["estimate"])
    with pytest.raises(InputError, match="mse_domain"):
        side_by_side(SURVEY, sdg, population=8e6, mse_domain={"region": "X"})


def test_a_scale_up_estimate_gets_its_own_row():
    nsum = tipstat.Estimate(n_hat=30_000.0, ci=(20_000.0, 45_000.0), level=0.95,
                            n_observed=math.nan, method="nsum", model="Killworth scale-up",
                            ci_method="percentile")
    t = side_by_side(SURVEY, MSE, population=1e7, nsum=nsum)
    row = t.iloc[-1]
    assert row["source"] == "network scale-up (survey)" and row["rate_per_100k"] == 300.0
    assert "networks" in row["counts"]


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match="population"):
        side_by_side(SURVEY, MSE, population=0)
    with pytest.raises(InputError, match="mse="):
        side_by_side(SURVEY, 2500, population=1e6)
    with pytest.raises(InputError, match="indicator"):
        side_by_side(SURVEY, MSE, population=1e6, indicators=["nope"])
    with pytest.raises(InputError, match="domains"):
        side_by_side(SURVEY, MSE, population=1e6, domains="some")


def test_the_mse_report_shows_the_survey_sections():
    """The MSE report with survey estimates: both sections, what each counts, a lower bound in
    words, withheld survey cells as x (the report renders; it computes nothing)."""
    pytest.importorskip("jinja2")
    pytest.importorskip("matplotlib")
    from tipstat import datasets
    from tipstat.report.html import build_report
    from tipstat.survey import run_survey

    sv = datasets.load_survey()
    run = run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"], by=["sex"],
                     source="synthetic_country_survey.csv")
    h = datasets.load("Korea_3")
    table = tipstat.compare(h, ["independence"])
    side = side_by_side(run.published.table, MSE.as_lower_bound(), population=116_536,
                        survey_period=run.definition["reference_period"])
    page = build_report(h, comparison=table, survey=run, survey_side=side, seed=1)
    for marker in ("<h2>Survey prevalence</h2>", "<h2>Side by side with MSE</h2>",
                   'href="#survey-prevalence"', "Different quantities.",
                   "at least 1,500", "the 12 months before the interview",
                   "in need of identification", ">x<"):
        assert marker in page, marker
    # every published survey figure is in the page as the table has it
    fl = run.published.table.iloc[0]
    assert f"{1e5 * fl['proportion']:,.1f}" in page
    assert "Survey prevalence" not in build_report(h, comparison=table, seed=1)
