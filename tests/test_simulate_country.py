"""The record-level synthetic country: known truth, seeds, and the features it must produce."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from tipstat import InputError, TipstatWarning, simulate
from tipstat.ictip import capture_histories
from tipstat.linkage import persons


def test_seeded_and_reproducible():
    a = simulate.country(500, seed=9)
    b = simulate.country(500, seed=9)
    c = simulate.country(500, seed=10)
    pd.testing.assert_frame_equal(a.records, b.records)
    assert not a.records["person_key"].equals(c.records["person_key"])


def test_truth_tables_are_consistent():
    c = simulate.country(2000, seed=1)
    t = c.truth()
    assert t["N"].sum() == 2000
    assert t["detected"].sum() == c.n_detected
    assert set(t["exploitation"]) <= set(simulate.FORMS)
    pop = c.population.set_index(["sex", "age_group"])["population"]
    assert pop[("_T", "_T")] == pop[("F", "_T")] + pop[("M", "_T")]
    assert pop[("F", "_T")] == pop[("F", "Y0T17")] + pop[("F", "Y_GE18")]


def test_capture_probabilities_differ_by_stratum_as_specified():
    """The labour inspectorate (I) sees forced-labour victims more often (form effect +1.0)."""
    c = simulate.country(20000, seed=2)
    v = c.victims
    p_lab = v.loc[v.exploitation == "LAB", "I"].mean()
    p_sex = v.loc[v.exploitation == "SEX", "I"].mean()
    assert p_lab > 1.8 * p_sex  # exp(1.0) = 2.7 on the odds scale, minus sampling noise


def test_list_dependence_is_present():
    """P and K are positively dependent (gamma = 0.8): odds ratio of P x K clearly above 1."""
    c = simulate.country(20000, seed=3)
    t = pd.crosstab(c.victims.P, c.victims.K)
    odds_ratio = t.loc[1, 1] * t.loc[0, 0] / (t.loc[0, 1] * t.loc[1, 0])
    assert 1.6 < odds_ratio < 3.2  # exp(0.8) = 2.23


def test_duplicates_missing_and_out_of_scope_records():
    c = simulate.country(3000, seed=4, dup_rate=0.1)
    rv = c.params["record_victim"]
    in_scope = rv >= 0
    captures = int(c.victims[list(c.lists)].to_numpy().sum())
    assert in_scope.sum() > captures  # within-list duplicates
    lists = c.records["entity_id"].map(dict(zip(c.list_definition.entity_id,
                                                c.list_definition.list_id, strict=True)))
    pairs = pd.DataFrame({"v": rv[in_scope], "l": lists[in_scope].to_numpy()})
    assert len(pairs.drop_duplicates()) == captures
    age_missing = c.records.loc[lists == "Z", "age_at_identification"].isna().mean()
    assert 0.3 < age_missing < 0.5  # Z does not record age 40% of the time
    assert (c.records["identification_status"] == "NOT_VICTIM").sum() == 60
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        h = capture_histories(persons(c.read(period=c.year)), by=[])
    assert h.n_observed == c.n_detected  # detected count exact after linkage and scoping


def test_custom_lists_and_errors():
    lists = {"A": (("A1",), "LE_POL", -1.0), "B": (("B1", "B2"), "NGO", -1.2)}
    c = simulate.country(300, seed=5, lists=lists, dependence={})
    assert c.lists == ("A", "B")
    assert set(c.records.entity_id) == {"A1", "B1", "B2"}
    with pytest.raises(InputError):
        simulate.country(0)
    with pytest.raises(InputError):
        simulate.country(10, lists={"A": lists["A"]})
    r = simulate.records(200, seed=1, clear=True)
    assert {"family_name", "given_name", "birth_date"} <= set(r.columns)
    assert np.all(r["entity_id"].notna())
