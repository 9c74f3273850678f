"""The network scale-up estimator against hand computations and simulated networks with known
truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tipstat import InputError
from tipstat.survey import declare_design, fit_nsum

KNOWN = {"k1": 600, "k2": 1200, "k3": 1800, "k4": 2400, "k5": 1500}


def _population(seed: int, *, segregated: bool, N: int = 300_000, n_hidden: int = 1500,
                b_share: float = 0.2) -> dict:
    """A population of ``N`` persons in two communities (A, share ``1 - b_share``; B) with a
    hidden group and known groups. Group members are drawn at random from everybody; with
    ``segregated`` the hidden group and ``k5`` live 95% in community B."""
    rng = np.random.default_rng(seed)
    community_b = rng.random(N) < b_share
    groups = {}
    idx_a, idx_b = np.flatnonzero(~community_b), np.flatnonzero(community_b)
    for name, size in {"hidden": n_hidden, **KNOWN}.items():
        if segregated and name in ("hidden", "k5"):    # 95% in community B
            n_b = round(0.95 * size)
            members = np.concatenate([rng.choice(idx_b, n_b, replace=False),
                                      rng.choice(idx_a, size - n_b, replace=False)])
        else:
            members = rng.choice(N, size, replace=False)
        flag = np.zeros(N, dtype=bool)
        flag[members] = True
        groups[name] = flag
    return {"N": N, "b": community_b, "groups": groups}


def _survey(pop: dict, seed: int, *, n: int = 2000, barrier: float = 0.0,
            n_clusters: int = 0) -> pd.DataFrame:
    """Respondents drawn at random from community A; each has a gamma-distributed number of
    ties to random alters. With ``barrier`` q, a share q of a respondent's ties stay in their own
    community (A), the rest go anywhere (random mixing when q = 0). ``n_clusters``: respondents
    come in clusters (villages), and 80% of their ties go to their village's 500 neighbours,
    a random part of the population: villages differ in how many hidden members their
    respondents know (intraclass correlation), on average they see the population's rate."""
    rng = np.random.default_rng(seed)
    N, in_b = pop["N"], pop["b"]
    idx_a = np.flatnonzero(~in_b)
    cluster = np.arange(n)
    if n_clusters:
        cluster = rng.integers(0, n_clusters, n)
    degree = np.maximum(1, rng.gamma(3.0, 100.0, n)).astype(int)
    total = int(degree.sum())
    owner = np.repeat(np.arange(n), degree)
    anywhere = rng.integers(0, N, total)
    own = idx_a[rng.integers(0, len(idx_a), total)]
    alter = np.where(rng.random(total) < barrier, own, anywhere)
    if n_clusters:
        village = rng.integers(0, N, (n_clusters, 500))
        local = village[cluster[owner], rng.integers(0, 500, total)]
        alter = np.where(rng.random(total) < 0.8, local, alter)
    out = {name: np.bincount(owner, weights=flag[alter], minlength=n).astype(int)
           for name, flag in pop["groups"].items()}
    df = pd.DataFrame(out)
    df["cluster"] = cluster
    return df


@pytest.fixture(scope="module")
def mixing():
    """Groups spread at random over both communities; respondents are drawn from A (the frame)
    and, without barriers, their ties reach everybody: the whole population's hidden group is
    the truth."""
    return _population(5, segregated=False)


def test_the_estimator_is_killworths_ratio_by_hand():
    df = pd.DataFrame({"h": [1, 0, 2], "a": [2, 1, 0], "b": [1, 3, 2], "w": [1.0, 2.0, 3.0]})
    est = fit_nsum(df, "h", known={"a": 100, "b": 300}, population=10_000, weights="w", ci="none")
    # N_H = (100 + 300) * sum w y_H / sum w (y_a + y_b) = 400 * (1 + 6) / (3 + 8 + 6)
    assert est.n_hat == pytest.approx(400 * 7 / 17, rel=1e-12)
    assert est.method == "nsum" and est.status == "ok" and math.isnan(est.n_observed)
    # degree_i = N * (y_a + y_b) / 400; weighted mean (3*1 + 4*2 + 2*3) / 6 * 10000 / 400
    assert est.diagnostics["mean_degree"] == pytest.approx(17 / 6 * 25, rel=1e-12)
    kp = est.diagnostics["known_populations"].set_index("population")
    # a from b alone: 300 * sum w y_a / sum w y_b = 300 * (2 + 2) / (1 + 6 + 6)
    assert kp.loc["a", "estimate"] == pytest.approx(300 * 4 / 13, rel=1e-12)
    assert kp.loc["b", "ratio"] == pytest.approx(100 * 13 / 4 / 300, rel=1e-12)
    # N cancels from the point estimate (the known-population degree is N-proportional)
    other = fit_nsum(df, "h", known={"a": 100, "b": 300}, population=50_000, weights="w",
                     ci="none")
    assert other.n_hat == pytest.approx(est.n_hat, rel=1e-12)


def test_recovers_the_hidden_population_under_random_mixing(mixing):
    df = _survey(mixing, seed=1)
    truth = int(mixing["groups"]["hidden"].sum())
    est = fit_nsum(df, "hidden", known=KNOWN, population=mixing["N"], n_boot=400, seed=2)
    # 2,000 respondents x ~300 ties x 0.5% = ~3,000 reports of hidden members: relative SE
    # ~2-3%; the estimate within 3 bootstrap SE of the truth, and the SE itself that small
    assert abs(est.n_hat - truth) < 3 * est.se
    assert est.se / truth < 0.05
    assert est.ci[0] < truth < est.ci[1]
    # every known population is below 1% of the population: only the standing caveat
    assert [w.code for w in est.warnings] == ["nsum_bias"]
    assert est.diagnostics["mean_degree"] == pytest.approx(300, rel=0.05)   # gamma(3, 100)


def test_interval_covers_the_truth_over_repeated_samples():
    """Coverage over 150 samples of 60 villages x 10 respondents whose ties are mostly local
    (intraclass correlation): the Rao-Wu bootstrap of the villages covers (measured 0.925 over
    200 samples; 0.95 nominal, a percentile interval on 60 clusters runs a little short), the
    bootstrap of respondents, which ignores the clusters, does not (measured 0.665). Binomial
    SD at 150 samples ~2%: bounds 0.88 and 0.80 are 2-3 SD from the measured values and 7 SD
    apart."""
    pop = _population(7, segregated=False)
    truth = int(pop["groups"]["hidden"].sum())
    by_cluster, by_respondent = [], []
    for r in range(150):
        df = _survey(pop, seed=100 + r, n=600, n_clusters=60)
        design = declare_design(df.assign(w=1.0), weights="w", psu="cluster")
        est = fit_nsum(design, "hidden", known=KNOWN, population=pop["N"], n_boot=200, seed=r)
        naive = fit_nsum(df, "hidden", known=KNOWN, population=pop["N"], n_boot=200, seed=r)
        by_cluster.append(est.ci[0] <= truth <= est.ci[1])
        by_respondent.append(naive.ci[0] <= truth <= naive.ci[1])
    assert np.mean(by_cluster) >= 0.88
    assert np.mean(by_respondent) <= 0.80


def test_barrier_effects_bias_the_estimate_and_the_check_says_so():
    pop = _population(5, segregated=True)
    truth = int(pop["groups"]["hidden"].sum())
    df = _survey(pop, seed=3, barrier=0.8)
    est = fit_nsum(df, "hidden", known=KNOWN, population=pop["N"], n_boot=300, seed=4)
    # respondents in A see the hidden group (95% in B) at about (0.2 + 0.8 * 0.05/0.8) = 1/4 of
    # the random-mixing rate: the estimate is biased far below the truth, its interval misses it
    assert est.n_hat < 0.5 * truth and est.ci[1] < truth
    codes = [w.code for w in est.warnings]
    assert "nsum_bias" in codes and "internal_inconsistency" in codes
    bad = next(w for w in est.warnings if w.code == "internal_inconsistency")
    assert bad.values["n_off"] >= 1 and bad.values["worst_ratio"] < 1 / 1.5
    kp = est.diagnostics["known_populations"].set_index("population")
    assert kp.loc["k5", "ratio"] < 0.5           # the segregated known group is the one missed
    assert kp.drop("k5")["ratio"].between(1 / 1.5, 1.5).all()


def test_without_barriers_the_consistency_check_is_quiet(mixing):
    df = _survey(mixing, seed=3, barrier=0.0)
    est = fit_nsum(df, "hidden", known=KNOWN, population=mixing["N"], ci="none")
    assert "internal_inconsistency" not in [w.code for w in est.warnings]


def test_rao_wu_variance_matches_linearisation():
    """Stratified cluster design with a finite-population correction: the bootstrap SE of the
    ratio agrees with the Taylor-linearised SE (with-replacement formula times (1 - f_h)). With
    2,000 replicates the SE is estimated to about 1.6% (1/sqrt(2 B)); tolerance 8%."""
    rng = np.random.default_rng(11)
    rows = []
    for h in range(6):
        n_h = 5 + 3 * h
        for c in range(n_h):
            size = rng.integers(5, 15)
            social = rng.gamma(3.0, 1 / 3)
            d = rng.gamma(3.0, 100 * social, size)
            rows.append(pd.DataFrame({
                "stratum": h, "psu": c, "fpc": 4 * n_h, "w": 10.0 + h,
                "hidden": rng.poisson(d * 0.004), "a": rng.poisson(d * 0.003),
                "b": rng.poisson(d * 0.006)}))
    df = pd.concat(rows, ignore_index=True)
    known = {"a": 3000, "b": 6000}
    design = declare_design(df, weights="w", strata="stratum", psu="psu", fpc="fpc")
    est = fit_nsum(design, "hidden", known=known, population=1e6, n_boot=2000, seed=5)
    s = df["a"] + df["b"]
    num, den = (df.w * df.hidden).sum(), (df.w * s).sum()
    R = num / den
    var = 0.0
    for _, g in df.groupby("stratum"):
        z = (g.w * (g.hidden - R * s)).groupby(g.psu).sum()
        n_h = len(z)
        f = n_h / g.fpc.iloc[0]
        var += (1 - f) * n_h / (n_h - 1) * ((z - z.mean()) ** 2).sum()
    se_lin = 9000 * math.sqrt(var) / den
    assert est.n_hat == pytest.approx(9000 * R, rel=1e-12)
    assert est.se == pytest.approx(se_lin, rel=0.08)
    assert est.diagnostics["resampled"].startswith("rao_wu: first-stage PSUs")
    # the same seed gives the same interval
    again = fit_nsum(design, "hidden", known=known, population=1e6, n_boot=2000, seed=5)
    assert again.ci == est.ci


def test_missing_answers_are_counted_and_left_out():
    df = pd.DataFrame({"h": [1, None, 2, 0], "a": [2, 1, None, 1], "b": [1, 3, 2, 2]})
    est = fit_nsum(df, "h", known={"a": 100, "b": 300}, population=10_000, ci="none")
    assert est.diagnostics["excluded_respondents"] == {"missing answer": 2}
    assert est.diagnostics["respondents"] == 2
    assert est.n_hat == pytest.approx(400 * 1 / 6, rel=1e-12)
    assert any(w.code == "note" and w.values.get("excluded") == 2 for w in est.warnings)


@pytest.mark.parametrize("bad", ["Qzxw Name", -987654])
def test_bad_values_are_named_by_column_and_row_never_echoed(bad):
    df = pd.DataFrame({"h": [1, 0, 2], "a": [2, 1, 0], "b": [1, 3, 2]}, dtype=object)
    df.loc[1, "a"] = bad
    with pytest.raises(InputError) as err:
        fit_nsum(df, "h", known={"a": 100, "b": 300}, population=10_000)
    text = str(err.value)
    assert "'a'" in text and "row 2" in text      # 1-based, as declare_design names rows
    assert "Qzxw" not in text and "987654" not in text


def test_bad_arguments_say_what_was_expected():
    df = pd.DataFrame({"h": [1, 0], "a": [2, 1]})
    with pytest.raises(InputError, match="not in the data"):
        fit_nsum(df, "h", known={"zz": 100}, population=1000)
    with pytest.raises(InputError, match="below the population"):
        fit_nsum(df, "h", known={"a": 5000}, population=1000)
    with pytest.raises(InputError, match="level"):
        fit_nsum(df, "h", known={"a": 100}, population=1000, level=95)
    with pytest.raises(InputError, match="ci="):
        fit_nsum(df, "h", known={"a": 100}, population=1000, ci="wald")


def test_no_reports_of_known_populations_is_not_identifiable():
    df = pd.DataFrame({"h": [1, 0], "a": [0, 0], "b": [0, 0]})
    est = fit_nsum(df, "h", known={"a": 100, "b": 200}, population=1000)
    assert est.status == "not_identifiable" and math.isnan(est.n_hat)
    assert "network sizes are zero" in est.diagnostics["reason"]


def _two_stage(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for h in range(4):
        for c in range(6):
            d = rng.gamma(3.0, 100, 12)
            rows.append(pd.DataFrame({"stratum": h, "psu": 10 * h + c, "hh": np.arange(12),
                                      "fpc": 30, "w": 50.0 + h,
                                      "hidden": rng.poisson(d * 0.004),
                                      "a": rng.poisson(d * 0.003),
                                      "b": rng.poisson(d * 0.006)}))
    return pd.concat(rows, ignore_index=True)


def test_a_declared_survey_design_is_used_whole():
    """fit_nsum reads the first stage of the SurveyDesign (declare_design): strata, PSUs and
    their fpc. A two-stage declaration has the same first stage, hence the same replicates;
    without the fpc the interval widens by about 1/sqrt(1 - f) (f = 6/30: 1.118)."""
    df = _two_stage()
    known = {"a": 3000, "b": 6000}
    design = declare_design(df, weights="w", strata="stratum", psu="psu", fpc="fpc")
    est = fit_nsum(design, "hidden", known=known, population=1e6, n_boot=300, seed=9)
    two = declare_design(df, weights="w", strata="stratum", psu=["psu", "hh"], fpc="fpc")
    same = fit_nsum(two, "hidden", known=known, population=1e6, n_boot=300, seed=9)
    assert est.n_hat == same.n_hat and est.ci == same.ci and est.se == same.se
    assert est.diagnostics["resampled"].startswith("rao_wu: first-stage PSUs")
    # the same multinomial draws, rescaled by lambda = sqrt(1 - f) with the fpc, 1 without:
    # the totals' deviations scale by exactly 1/lambda, the ratio's to first order (measured
    # 1.1190 against 1.1180; 1% leaves room for the second-order term, 1 - f would be 1.25)
    wr = fit_nsum(declare_design(df, weights="w", strata="stratum", psu="psu"), "hidden",
                  known=known, population=1e6, n_boot=300, seed=9)
    assert wr.se / est.se == pytest.approx(1 / math.sqrt(1 - 6 / 30), rel=0.01)


def test_the_lonely_psu_rule_is_the_designs():
    """A stratum with one PSU: under 'certainty' it adds no variance (factor 1), under
    'centre' the lonely PSUs are pooled into one pseudo-stratum, exactly as if they had been
    declared as one stratum (put last, so the random draws line up)."""
    df = _two_stage()
    lonely = df[df["psu"].isin([0, 10])].assign(stratum=lambda t: 90 + t["stratum"])
    data = pd.concat([df[~df["psu"].isin([0, 10])], lonely], ignore_index=True)
    known = {"a": 3000, "b": 6000}
    with pytest.raises(InputError, match="single sampled unit"):
        declare_design(data, weights="w", strata="stratum", psu="psu")
    cert = fit_nsum(declare_design(data, weights="w", strata="stratum", psu="psu",
                                   single_psu="certainty"), "hidden", known=known,
                    population=1e6, n_boot=300, seed=2)
    centre = fit_nsum(declare_design(data, weights="w", strata="stratum", psu="psu",
                                     single_psu="centre"), "hidden", known=known,
                      population=1e6, n_boot=300, seed=2)
    merged = data.assign(stratum=data["stratum"].where(data["stratum"] < 90, 99))
    pooled = fit_nsum(declare_design(merged, weights="w", strata="stratum", psu="psu"),
                      "hidden", known=known, population=1e6, n_boot=300, seed=2)
    assert centre.ci == pooled.ci and centre.se == pooled.se
    assert cert.n_hat == centre.n_hat and cert.se != centre.se


def test_every_input_goes_through_declare_design():
    """A DataFrame is a simple random sample declared by declare_design: its weight checks
    and error texts (column, 1-based rows, expectation; never the value) are declare_design's;
    an object that is not a SurveyDesign is refused."""
    df = pd.DataFrame({"h": [1, 0, 2], "a": [2, 1, 0], "b": [1, 3, 2],
                       "w": [1.0, -7531.0, 2.0]})
    with pytest.raises(InputError) as err:
        fit_nsum(df, "h", known={"a": 100, "b": 300}, population=10_000, weights="w")
    text = str(err.value)
    assert text.startswith("declare_design") and "'w'" in text and "row 2" in text
    assert "7531" not in text
    with pytest.raises(InputError, match="not in the data"):
        fit_nsum(df, "h", known={"a": 100, "b": 300}, population=10_000, weights="zz")
    design = declare_design(df.assign(w=1.0), weights="w")
    with pytest.raises(InputError, match="has its own weights"):
        fit_nsum(design, "h", known={"a": 100, "b": 300}, population=10_000, weights="w")
    duck = type("Design", (), {"data": df, "weights": "w", "strata": None, "psu": None})()
    with pytest.raises(InputError, match="declare_design"):
        fit_nsum(duck, "h", known={"a": 100, "b": 300}, population=10_000)
    # equal weights and a column of ones declare the same sample
    ones = fit_nsum(df.assign(w=1.0), "h", known={"a": 100, "b": 300}, population=10_000,
                    weights="w", n_boot=50)
    equal = fit_nsum(df.drop(columns="w"), "h", known={"a": 100, "b": 300},
                     population=10_000, n_boot=50)
    assert ones.n_hat == equal.n_hat and ones.ci == equal.ci


def test_replicate_weights_of_the_design_give_the_interval():
    """A design with bootstrap replicate weights: the SE is the design's replicate SE of the
    ratio (computed here by hand), the interval log-normal around the point."""
    from tipstat.survey import declare_design

    rng = np.random.default_rng(4)
    n, R = 400, 60
    d = rng.gamma(3.0, 100, n)
    df = pd.DataFrame({"w": 25.0, "hidden": rng.poisson(d * 0.004),
                       "a": rng.poisson(d * 0.003), "b": rng.poisson(d * 0.006)})
    mult = rng.multinomial(n, np.full(n, 1 / n), size=R).T        # respondents x replicates
    for r in range(R):
        df[f"rep{r}"] = 25.0 * mult[:, r]
    design = declare_design(df, weights="w", replicate_weights=[f"rep{r}" for r in range(R)],
                            replicate_method="bootstrap")
    est = fit_nsum(design, "hidden", known={"a": 3000, "b": 6000}, population=1e6)
    s = df["a"] + df["b"]
    theta = np.array([9000 * (df[f"rep{r}"] * df.hidden).sum() / (df[f"rep{r}"] * s).sum()
                      for r in range(R)])
    se = math.sqrt(((theta - theta.mean()) ** 2).sum() / (R - 1))
    assert est.se == pytest.approx(se, rel=1e-9)
    assert est.ci_method == "lognormal" and est.ci[0] < est.n_hat < est.ci[1]
    assert est.ci[0] * est.ci[1] == pytest.approx(est.n_hat ** 2, rel=1e-9)
    assert "replicate weights (bootstrap)" in est.diagnostics["resampled"]


def test_a_total_on_few_reports_is_withheld_where_published():
    """nsum_withheld: 1 to threshold-1 respondents reporting anyone -> withheld; 0 reports (an
    estimate of 0) and threshold or more -> published. side_by_side shows it in words."""
    from tipstat.survey import nsum_withheld, side_by_side

    df = pd.DataFrame({"h": [0] * 8, "a": [2, 1, 3, 1, 0, 2, 1, 1], "b": [1, 3, 2, 2, 1, 0, 2, 1],
                       "w": [1.0, 2.0, 1.0, 3.0, 1.0, 1.0, 2.0, 1.0]})
    known = {"a": 100, "b": 300}
    counts = {}
    for k in (0, 1, 4, 5):
        d = df.copy()
        d.loc[: k - 1, "h"] = 2
        est = fit_nsum(d, "h", known=known, population=10_000, weights="w", ci="none")
        counts[k] = (est.diagnostics["respondents_reporting"], nsum_withheld(est))
    assert counts == {0: (0, False), 1: (1, True), 4: (4, True), 5: (5, False)}
    # a zero-weight respondent's report counts for nothing (it is not in the figure)
    d = df.assign(h=[2, 0, 0, 0, 0, 0, 0, 0], w=[0.0, 2, 1, 3, 1, 1, 2, 1])
    assert fit_nsum(d, "h", known=known, population=10_000, weights="w",
                    ci="none").diagnostics["respondents_reporting"] == 0
    few = fit_nsum(df.assign(h=[2, 1, 0, 0, 0, 0, 0, 0]), "h", known=known, population=10_000,
                   weights="w", ci="none")
    survey = [type("P", (), dict(indicator="forced_labour", domain={}, n_sample=8, n_cases=0,
                                 proportion=0.0, ci=(0.0, 0.1), total=0.0, total_ci=(0.0, 9.0),
                                 level=0.95, ci_method="logit", status="ok"))()]
    t = side_by_side(survey, None, population=10_000, nsum=few, nsum_label="people in debt")
    row = t.iloc[-1]
    assert list(t["source"]) == ["household survey", "network scale-up (survey)"]
    assert row["indicator"] == "people in debt" and row["shown"] == "suppressed"
    assert math.isnan(row["estimate"]) and "nsum_bias" in row["caveats"]
    shown = side_by_side(survey, None, population=10_000, nsum=few, nsum_threshold=2).iloc[-1]
    assert shown["estimate"] == pytest.approx(few.n_hat, rel=1e-12)
    with pytest.raises(InputError, match="fit_nsum"):
        nsum_withheld(tipstat_estimate())


def tipstat_estimate():
    import tipstat

    return tipstat.Estimate(n_hat=1.0, ci=(0.5, 2.0), level=0.95, n_observed=math.nan,
                            method="nsum", model="m")


def test_run_survey_fits_the_scale_up_on_its_design():
    """run_survey(nsum=...) is fit_nsum on the declared design (same numbers), with the design
    file's spelling checked (a missing key is an InputError naming it)."""
    from tipstat import datasets
    from tipstat.survey import read_design_spec, run_survey

    sv = datasets.load_survey()
    spec = read_design_spec(sv["paths"]["design"])["nsum"]
    from tipstat.survey.simulate import SYNTHETIC_NSUM
    assert spec["hidden"] == SYNTHETIC_NSUM["hidden"]
    assert spec["known"] == {k: float(v) for k, v in SYNTHETIC_NSUM["known"].items()}
    run = run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"], nsum=spec,
                     seed=7, level=0.9)
    est = fit_nsum(declare_design(sv["data"], **sv["design"]), spec["hidden"],
                   known=spec["known"], population=spec["population"], seed=7, level=0.9)
    assert run.nsum.n_hat == est.n_hat and run.nsum.ci == est.ci and run.nsum.level == 0.9
    assert run.nsum_label == spec["label"] and not run.nsum_withheld
    assert run.to_dict()["nsum"]["n_hat"] == est.n_hat
    with pytest.raises(InputError, match="population"):
        run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"],
                   nsum={"hidden": spec["hidden"], "known": spec["known"]})
