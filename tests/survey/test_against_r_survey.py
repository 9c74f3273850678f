"""The variance machinery against published R ``survey`` results on R's public example data.

Data and numbers: ``tests/reference/survey/`` (see its PROVENANCE.md). Each R number is matched
to half a unit of its last printed digit, and never tighter than 1e-9 relative: R's own saved
outputs print 5 significant digits (``svymean``) or 7 (``svyby``); the numbers quoted at 17
digits are matched to 1e-9 relative (well inside the 1e-6 asked).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tipstat.survey import declare_design, survey_prevalence
from tipstat.survey.design import replicate_variance, taylor_variance

REF = Path(__file__).resolve().parents[1] / "reference" / "survey"


def _load(name: str) -> pd.DataFrame:
    return pd.read_csv(REF / f"{name}.csv", dtype={"cds": str})


@pytest.fixture(scope="module")
def r_results() -> pd.DataFrame:
    return pd.read_csv(REF / "r_survey_results.csv", dtype={"value": str}, keep_default_na=False)


def _tol(printed: str) -> float:
    """Half a unit of the last printed digit, at least 1e-9 relative."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return max(0.5 * 10.0 ** -decimals, 1e-9 * abs(float(printed)))


def _designs() -> dict:
    st, c1, c2 = _load("apistrat"), _load("apiclus1"), _load("apiclus2")
    return {
        "strat": declare_design(st, weights="pw", strata="stype", fpc="fpc"),
        "clus1": declare_design(c1, weights="pw", psu="dnum", fpc="fpc"),
        "clus2": declare_design(c2, weights="pw", psu=["dnum", "snum"], fpc=["fpc1", "fpc2"]),
        "clus2wr": declare_design(c2, weights="pw", psu=["dnum", "snum"]),
        "jk1": _jk1(c1),
        "strat_dnum_certainty": declare_design(c1, weights="pw", strata="dnum",
                                               single_psu="certainty"),
        "strat_dnum_centre": declare_design(c1, weights="pw", strata="dnum", single_psu="centre"),
        "fpc": declare_design(_load("fpc"), weights="weight", strata="stratid", psu="psuid"),
    }


def _jk1(c1: pd.DataFrame):
    """JK1 replicate weights as R's ``as.svrepdesign`` builds them: replicate j drops PSU j and
    multiplies the other weights by n/(n-1)."""
    c1 = c1.copy()
    psus = sorted(c1["dnum"].unique())
    n = len(psus)
    for j, p in enumerate(psus, start=1):
        c1[f"rep{j}"] = np.where(c1["dnum"] == p, 0.0, c1["pw"] * n / (n - 1))
    return declare_design(c1, weights="pw", psu="dnum", fpc="fpc",
                          replicate_weights=[f"rep{j}" for j in range(1, n + 1)],
                          replicate_method="jk1")


@pytest.fixture(scope="module")
def designs() -> dict:
    return _designs()


def _estimate(design, statistic: str, variable: str, domain: str) -> dict[str, float]:
    """Mean or total of ``variable`` over ``domain`` and its design SE, rows with a missing value
    left out of the estimate (R's ``na.rm=TRUE``) but kept in the design."""
    data = design.data
    y = pd.to_numeric(data[variable]).to_numpy(dtype=float)
    d = ~np.isnan(y)
    if domain == "x<=4":
        d &= data["x"].to_numpy() <= 4
    elif domain == "x>4":
        d &= data["x"].to_numpy() > 4
    elif domain.startswith("stype="):
        d &= (data["stype"] == domain.split("=")[1]).to_numpy()
    y0 = np.where(d, y, 0.0)
    w = data[design.weights].to_numpy(dtype=float) * d
    n_hat, t_hat = w.sum(), (w * y0).sum()
    mean = t_hat / n_hat
    if design.replicate_weights:
        wr = data[list(design.replicate_weights)].to_numpy(dtype=float) * d[:, None]
        tr = wr.T @ y0
        var_m = replicate_variance(design, mean, (tr / wr.sum(axis=0))[:, None])[0]
        var_t = replicate_variance(design, t_hat, tr[:, None])[0]
    else:
        var_m, var_t = taylor_variance(design, np.column_stack([w * (y0 - mean) / n_hat,
                                                                w * y0]))
    est = mean if statistic == "mean" else t_hat
    se = float(np.sqrt(var_m if statistic == "mean" else var_t))
    q = stats.t.ppf(0.975, design.df)
    return {"estimate": est, "se": se, "ci_lower_t": est - q * se, "ci_upper_t": est + q * se}


def _cases(kind: str) -> list:
    table = pd.read_csv(REF / "r_survey_results.csv", dtype={"value": str},
                        keep_default_na=False)
    rows = table[table["statistic"].isin(["mean", "total"]) if kind == "linear"
                 else table["statistic"] == "proportion"]
    return [pytest.param(r._asdict(), id=f"{r.id}-{r.quantity}")
            for r in rows.itertuples(index=False)]


@pytest.mark.parametrize("case", _cases("linear"))
def test_means_totals_and_ses_match_r(designs, case):
    """Stratified (apistrat), one-stage cluster (apiclus1), two-stage with and without fpc
    (apiclus2), JK1 replicates, single-PSU strata (certainty, centre) and domains (fpc data,
    apiclus1 by stype): estimate, SE and t interval at the design's df, against R."""
    got = _estimate(designs[case["design"]], case["statistic"], case["variable"],
                    case["domain"])[case["quantity"]]
    assert got == pytest.approx(float(case["value"]), abs=_tol(case["value"]))


@pytest.mark.parametrize("case", _cases("proportion"))
def test_proportions_deff_and_logit_interval_match_r(designs, case):
    """survey_prevalence on apiclus1: proportions of each school type, their design effects
    (R's deff=TRUE) and svyciprop's logit interval at degf = 14, to 1e-9 relative
    (R's own logit point differs from svymean's at 1e-13)."""
    design = designs["clus1"]
    level = case["variable"].split("==")[1]
    flag = (design.data["stype"] == level).astype(int)
    row = survey_prevalence(design, {f"is_{level}": flag}, ci="logit")[0]
    got = {"estimate": row.proportion, "deff": row.deff, "ci_lower_logit": row.ci[0],
           "ci_upper_logit": row.ci[1]}[case["quantity"]]
    assert got == pytest.approx(float(case["value"]), rel=1e-9)


def test_degrees_of_freedom_match_r(designs):
    """degf(): PSUs - strata (197 stratified, 14 one-stage, 39 two-stage), rank - 1 for JK1."""
    assert designs["strat"].df == 197
    assert designs["clus1"].df == 14
    assert designs["clus2"].df == 39
    assert designs["jk1"].df == 14


def test_domain_degrees_of_freedom_match_r(designs):
    """svyby / subset on apiclus1 by school type: degf 14, 7, 11 (the PSUs holding the domain
    minus the strata holding it; R survey 4.5, quoted in spicy's tests)."""
    design = designs["clus1"]
    design.data["one"] = 1
    t = survey_prevalence(design, "one", by="stype")
    assert [(r.domain.get("stype"), r.df) for r in t] == [(None, 14), ("E", 14), ("H", 7),
                                                          ("M", 11)]


def test_two_stage_fpc_term_matters(designs):
    """The second-stage term is there: without the fpc (with replacement) the SE is R's 30.712,
    with it R's 30.099; a first-stage-only formula with the stage-1 fpc would give neither."""
    c2 = designs["clus2"].data
    one_stage = declare_design(c2, weights="pw", psu="dnum", fpc="fpc1")
    se = _estimate(one_stage, "mean", "api00", "")["se"]
    assert abs(se - 30.099) > 0.1 and abs(se - 30.712) > 0.1


@pytest.fixture(scope="module")
def svy_results() -> dict:
    """svy 0.35.0's numbers, stored once (``tests/reference/survey/make_svy_reference.py``)."""
    return json.loads((REF / "svy_results.json").read_text())


def test_matches_svy(designs, svy_results):
    """An independent implementation (svy, itself checked against R) on the two-stage design with
    fpc at both stages, where R printed only 5 digits: agreement to 1e-9 relative."""
    ref = svy_results["clus2_fpc"]
    ours_m = _estimate(designs["clus2"], "mean", "api00", "")
    ours_t = _estimate(designs["clus2"], "total", "enroll", "")
    assert ours_m["se"] == pytest.approx(ref["mean_api00_se"], rel=1e-9)
    assert ours_t["se"] == pytest.approx(ref["total_enroll_se"], rel=1e-9)


def _sch_wide(designs):
    design = designs["clus1"]
    df = design.data.assign(yes=(design.data["sch.wide"] == "Yes").astype(int))
    return df, declare_design(df, weights="pw", psu="dnum", fpc="fpc")


def test_domain_logit_intervals_match_svy(designs, svy_results):
    """Proportions of schools meeting their target (sch.wide) by school type, apiclus1: SEs and
    logit intervals of each domain, with its own df, against svy (no printed R numbers exist
    for these; svy matches R's svyciprop where they do)."""
    _, design = _sch_wide(designs)
    ours = survey_prevalence(design, "yes", by="stype", ci="logit")
    theirs = svy_results["sch_wide_logit_by_stype"]
    assert len(ours) == 1 + len(theirs)
    for row in ours[1:]:
        r = theirs[row.domain["stype"]]
        assert row.proportion == pytest.approx(r["est"], rel=1e-12)
        assert row.se == pytest.approx(r["se"], rel=1e-9)
        assert row.df == r["df"]
        assert row.ci[0] == pytest.approx(r["lci"], rel=1e-9)
        assert row.ci[1] == pytest.approx(r["uci"], rel=1e-9)


def test_korn_graubard_matches_svy_beta(designs, svy_results):
    """Korn-Graubard on the whole sample and by school type, against svy's "beta" method,
    which reproduces R's svyciprop(method="beta"): n* = p(1-p)/se^2 (t_{n-1}/t_df)^2, n the
    domain's rows (nrow of R's subset design, which drops the other rows), df its degf. (svy's
    "korn-graubard" is the NCHS variant that also truncates n* at n.)"""
    _, design = _sch_wide(designs)
    ours = survey_prevalence(design, "yes", by="stype", ci="korn_graubard")
    whole = svy_results["sch_wide_beta"]
    assert ours[0].ci == pytest.approx((whole["lci"], whole["uci"]), rel=1e-9)
    by = svy_results["sch_wide_beta_by_stype"]
    assert len(ours) == 1 + len(by)
    for row in ours[1:]:
        r = by[row.domain["stype"]]
        assert row.ci == pytest.approx((r["lci"], r["uci"]), rel=1e-9)
