"""Known truth for the survey side: the synthetic population and its complex samples."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

import tipstat.simulate
from tipstat import datasets
from tipstat.errors import InputError
from tipstat.survey import classify, draw_survey_sample, simulate_survey_population
from tipstat.survey.simulate import DEFAULT_REGIONS, FLAGS, synthetic_country_files


@pytest.fixture(scope="module")
def pop() -> pd.DataFrame:
    return simulate_survey_population(seed=11)


def test_truth_is_the_definition_applied_to_the_true_items(pop):
    c = classify(pop)
    assert c.excluded == {}
    for f in FLAGS:
        assert c.flags[f].dtype == "boolean"
        assert (c.flags[f] == pop[f"true_{f}"]).all(), f
    # the noise that is not an error is there: non-victims with involuntary items only, or
    # coercion only, or voluntary commercial sex work, or migration through an intermediary
    fl = pop["true_forced_labour"]
    assert (pop["true_involuntary"] & ~fl).sum() > 1000
    assert (pop["true_coercion"] & ~fl).sum() > 500
    assert ((pop["commercial_sex"] == 1) & ~fl).sum() > 50
    assert ((pop["moved_for_work"] == 1) & ~fl).sum() > 1000
    # every flag has cases
    assert all(pop[f"true_{f}"].sum() > 50 for f in FLAGS)


def test_truth_holds_under_other_parameters():
    p = simulate_survey_population(seed=5, prevalence=0.05, child_prevalence=0.1, ea_sd=0.0,
                                   regions={"A": (10, 0.5, 0.0, 0.9), "B": (8, 0.0, 1.0, 0.6)})
    c = classify(p)
    for f in FLAGS:
        assert (c.flags[f] == p[f"true_{f}"]).all(), f


def test_blanked_answers_never_make_a_decided_flag_wrong():
    # three-valued logic is sound: with 20% of the answers blanked, every flag that is still
    # decided equals the truth, and the others are counted as excluded
    p = simulate_survey_population(seed=12, item_missing=0.2)
    c = classify(p)
    for f in FLAGS:
        decided = c.flags[f].notna()
        assert (c.flags[f][decided] == p[f"true_{f}"][decided]).all(), f
        assert (~decided).sum() == c.excluded.get(f"{f}: not decidable from the answered items", 0)
    assert c.flags["forced_labour"].isna().sum() > 100


def test_reproducible_with_seeds(pop):
    again = simulate_survey_population(seed=11)
    assert pop.equals(again)  # values and dtypes (assert_frame_equal takes 18 s on this size)
    assert list(pop.columns) == list(again.columns)
    other = simulate_survey_population(seed=12)
    assert not pop["true_forced_labour"].equals(other["true_forced_labour"])
    s1 = draw_survey_sample(pop, seed=3)
    pd.testing.assert_frame_equal(s1, draw_survey_sample(pop, seed=3))
    assert not s1["household"].equals(draw_survey_sample(pop, seed=4)["household"])


def test_population_structure(pop):
    assert set(pop["region"].unique()) == set(DEFAULT_REGIONS)
    assert pop.groupby("region", observed=True)["ea"].nunique().to_dict() == {
        r: spec[0] for r, spec in DEFAULT_REGIONS.items()}
    # persons of a household share EA, region and citizenship
    per_hh = pop.groupby("household")[["ea", "region", "citizenship"]].nunique()
    assert (per_hh == 1).all().all()
    assert pop["age_years"].between(5, 90).all()
    children = pop["age_group"] == "5-17"
    assert (pop.loc[children, "age_years"] < 18).all()
    # non-workers were not asked the work items; they are never in forced labour
    nw = pop["worked_in_period"] == 0
    assert (pop.loc[nw, "sector"] == "not_working").all()
    assert pop.loc[nw, "deceived_nature"].isna().all()
    assert not pop.loc[nw, "true_forced_labour"].any()


def test_prevalence_varies_by_domain_and_clusters_in_eas(pop):
    workers = pop[pop["worked_in_period"] == 1]
    by_sector = workers.groupby("sector", observed=True)["true_forced_labour"].mean()
    # SECTOR_EFFECT: domestic work +0.9, services -0.4 on the log-odds scale
    assert by_sector["domestic_work"] > 2 * by_sector["services"]
    by_cit = workers.groupby("citizenship", observed=True)["true_forced_labour"].mean()
    assert by_cit["foreign"] > 1.5 * by_cit["national"]
    # clustering: the variance of the EA proportions exceeds the binomial variance p(1-p)/n_e
    g = workers.groupby("ea")["true_forced_labour"]
    p_e, n_e = g.mean(), g.size()
    p = workers["true_forced_labour"].mean()
    assert p_e.var() > 2 * (p * (1 - p) / n_e).mean()
    flat = simulate_survey_population(seed=11, ea_sd=0.0)
    fw = flat[flat["worked_in_period"] == 1]
    g0 = fw.groupby("ea")["true_forced_labour"]
    assert g0.mean().var() < p_e.var() / 2


def test_sample_design_columns_and_stage_one(pop):
    s = draw_survey_sample(pop, seed=1, n_psu=10, n_households=12)
    for col in ("stratum", "psu", "weight", "fpc_psu", "fpc_ssu", "base_weight", "pi_psu"):
        assert col in s.columns
    n_ea = pop.groupby("region", observed=True)["ea"].nunique()
    assert s.groupby("stratum")["fpc_psu"].first().to_dict() == n_ea.rename(index=str).to_dict()
    assert (s.groupby("stratum")["psu"].nunique() == 10).all()
    # a PSU lies in one stratum; at most 12 households per PSU
    assert (s.groupby("psu")["stratum"].nunique() == 1).all()
    assert s.groupby("psu")["household"].nunique().max() <= 12
    # weights are unequal (strata of different sizes share equal allocations)
    assert s["weight"].max() / s["weight"].min() > 1.5
    srs = draw_survey_sample(pop, seed=1, n_psu=10, psu_selection="srs")
    assert np.allclose(srs["pi_psu"], 10 / srs["fpc_psu"])


def test_household_weights_sum_to_the_stratum_household_counts(pop):
    # PPS on households with m households per EA: sum of base weights over the sampled
    # households is exactly M_h (no certainty unit here), and the weighting-class adjustment
    # keeps each class's sum, so the respondents' weights also sum to M_h.
    s = draw_survey_sample(pop, seed=7)
    assert (s["pi_psu"] < 1).all()
    hh_pop = pop.groupby("region", observed=True)["household"].nunique().rename(index=str)
    hh = s.drop_duplicates("household")
    assert np.allclose(hh.groupby("stratum")["weight"].sum(), hh_pop.loc[sorted(hh_pop.index)],
                       rtol=1e-9)
    # non-response happened and was adjusted: weight / base weight > 1 in every class
    info = s.attrs["sample"]
    assert info["households_responding"] < info["households_sampled"]
    assert (hh["weight"] / hh["base_weight"] > 1).all()
    adj = (hh["weight"] / hh["base_weight"]).groupby(hh["nr_class"]).first()
    assert adj.filter(like="Capital").min() > adj.filter(like="North").max()  # .70 vs .90


def test_person_weights_sum_to_the_population_size(pop):
    # persons per household vary, so the persons' weight total is unbiased for N with
    # relative SE ~ CV(household size) / sqrt(responding households); tolerance 4 SE
    s = draw_survey_sample(pop, seed=8)
    hh_size = pop.groupby("household").size()
    n_hh = s["household"].nunique()
    se = hh_size.std() / hh_size.mean() / np.sqrt(n_hh)
    assert abs(s["weight"].sum() / len(pop) - 1) < 4 * se
    # and over 10 samples the mean is within 4 SE / sqrt(10)
    totals = [draw_survey_sample(pop, seed=k)["weight"].sum() for k in range(10)]
    assert abs(np.mean(totals) / len(pop) - 1) < 4 * se / np.sqrt(10)


def test_sample_input_errors(pop):
    with pytest.raises(InputError, match="n_psu=500"):
        draw_survey_sample(pop, n_psu=500)
    with pytest.raises(InputError, match="psu_selection"):
        draw_survey_sample(pop, psu_selection="cluster")
    with pytest.raises(InputError, match="lacks columns"):
        draw_survey_sample(pop.drop(columns=["ea"]))
    with pytest.raises(InputError, match="seed"):
        simulate_survey_population(seed=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="prevalence"):
        simulate_survey_population(prevalence=0)


def test_reexported_from_tipstat_simulate():
    assert tipstat.simulate.simulate_survey_population is simulate_survey_population
    assert tipstat.simulate.draw_survey_sample is draw_survey_sample


def test_bundled_survey_is_rebuilt_by_its_stated_provenance():
    sv = datasets.load_survey("synthetic_country")
    files = synthetic_country_files()
    with open(sv["paths"]["data"], encoding="utf-8") as f:
        shipped = f.read()
    buf = io.StringIO()
    files["data"].to_csv(buf, index=False)
    assert buf.getvalue() == shipped
    pd.testing.assert_frame_equal(files["truth"], sv["truth"])
    assert sv["mapping"].variables == {k: v["variable"] for k, v in files["mapping"].items()}
    assert sv["info"]["population"] == int(sv["truth"].loc[0, "population"])
    assert sv["design"] == {"weights": "weight", "strata": "stratum", "psu": "psu"}
    with pytest.raises(InputError, match="unknown survey 'atlantis'; available: synthetic_country"):
        datasets.load_survey("atlantis")


def test_a_class_without_respondents_is_merged_within_its_stratum(pop):
    # foreign households in North respond with probability .90 - .85 = .05: their class is
    # often empty, and is then merged with the nationals of North (weights still sum to M_h)
    s = draw_survey_sample(pop, seed=21, n_psu=3, n_households=5, foreign_response_effect=-0.85)
    hh = s.drop_duplicates("household")
    hh_pop = pop.groupby("region", observed=True)["household"].nunique().rename(index=str)
    merged = set(hh["nr_class"]) & set(DEFAULT_REGIONS)
    assert merged  # at least one stratum merged its classes
    for region in merged:
        assert (hh.loc[hh["stratum"] == region, "nr_class"] == region).all()
    assert np.allclose(hh.groupby("stratum")["weight"].sum(),
                       hh_pop.loc[sorted(hh_pop.index)], rtol=1e-9)
