"""Survey tables through the disclosure layer: small unweighted cells withheld, and the
attacker's audit cannot give them back from the total and the other domains."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tipstat import InputError, disclosure
from tipstat.survey import prevalence_frame, publish_prevalence


def _microdata(seed: int = 3, n: int = 4000) -> pd.DataFrame:
    """Respondents with unequal weights, sex, an age group (some missing) and a region; forced
    labour rare, and rarer still among the young and in region R5 (small cells)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "sex": rng.choice(["F", "M"], n),
        "age_group": rng.choice(["15-17", "18-29", "30-49", "50+"], n, p=[0.08, 0.3, 0.4, 0.22]),
        "region": rng.choice(["R1", "R2", "R3", "R4", "R5"], n, p=[0.3, 0.3, 0.2, 0.17, 0.03]),
        "weight": rng.uniform(200, 900, n)})
    p = np.where(df.age_group == "15-17", 0.004, 0.02) * np.where(df.region == "R5", 0.3, 1.0)
    df["forced_labour"] = rng.random(n) < p
    df.loc[rng.random(n) < 0.01, "age_group"] = None          # not stated
    return df


def _prevalence(df: pd.DataFrame, by: list[str], indicator: str = "forced_labour") -> list:
    """Prevalence rows as survey_prevalence gives them (fields only; the estimates are the
    weighted ratio and total): the total, then each `by` variable's domains."""
    def row(part: pd.DataFrame, domain: dict) -> SimpleNamespace:
        w, y = part["weight"], part[indicator]
        p = float((w * y).sum() / w.sum()) if len(part) else math.nan
        return SimpleNamespace(indicator=indicator, domain=domain, n_sample=len(part),
                               n_cases=int(y.sum()), proportion=p, se=0.1 * p,
                               ci=(0.8 * p, 1.2 * p), level=0.95, ci_method="logit",
                               rate=1e5 * p, rate_ci=(0.8e5 * p, 1.2e5 * p),
                               total=float((w * y).sum()), total_se=1.0,
                               total_ci=(0.8 * (w * y).sum(), 1.2 * (w * y).sum()),
                               deff=1.3, n_effective=len(part) / 1.3,
                               status="small_domain" if y.sum() < 10 else "ok", warnings=())
    rows = [row(df, {})]
    for b in by:
        for level, part in df.groupby(b, dropna=True):
            rows.append(row(part, {b: level}))
    return rows


@pytest.fixture(scope="module")
def published():
    df = _microdata()
    table = _prevalence(df, ["sex", "age_group", "region"])
    return df, table, publish_prevalence(table)


def test_small_domains_and_their_complements_are_withheld(published):
    _, table, pub = published
    t = pub.table
    frame = prevalence_frame(table)
    small = (frame["n_cases"] > 0) & (frame["n_cases"] < 5)
    assert small.sum() >= 2                                   # the test has small cells to hide
    sup = pub.suppressions["forced_labour"]
    assert sup.n_primary == small.sum() and sup.n_secondary >= 1
    withheld = t["obs_status"] == "suppressed"
    assert withheld.sum() == sup.n_primary + sup.n_secondary
    # every value of a withheld row is blank, its status too; its respondents stay
    from tipstat.survey.publish import VALUES
    assert t.loc[withheld, VALUES].isna().all().all()
    assert (t.loc[withheld, "status"] == "").all()
    assert t.loc[withheld, "n_sample"].notna().all()
    # published rows keep their numbers unchanged
    kept = t[t["obs_status"] == "estimated"]
    merged = kept.merge(frame, on=["indicator", "sex", "age_group", "region"],
                        suffixes=("", "_raw"))
    assert np.allclose(merged["total"], merged["total_raw"])
    assert (kept["n_cases"] >= 5).all() | (kept["n_cases"] == 0).all()


def test_missing_domain_values_make_a_not_stated_row(published):
    df, _, pub = published
    t = pub.table
    ns = t[(t["age_group"] == "_U")]
    assert len(ns) == 1 and ns["obs_status"].iloc[0] in ("not stated", "suppressed")
    assert ns["n_sample"].iloc[0] == df["age_group"].isna().sum()


def test_the_attacker_cannot_recover_a_small_cell(published):
    _, _, pub = published
    audit = pub.audit()["forced_labour"]
    assert audit.integer and audit.protected
    small = audit.cells[audit.cells["sensitive"]]
    # the protection rule: a small cell's range reaches 1 and threshold - 1 = 4
    assert (small["int_min"] <= 1).all() and (small["int_max"] >= 4).all()
    # the weighted totals are additive too: withheld totals are not recovered exactly either
    totals = pub.audit("total")["forced_labour"]
    assert totals.n_exact == 0
    assert (totals.cells["width"] > 1000).all()   # weights 200-900: several persons' worth


def test_primary_suppression_alone_is_not_enough(published):
    """The test can fail: withholding only the small cells lets the attacker subtract."""
    _, table, _ = published
    frame = prevalence_frame(table)
    naive = frame.copy()
    small = (naive["n_cases"] > 0) & (naive["n_cases"] < 5)
    naive.loc[small, ["n_cases", "total"]] = np.nan
    naive.loc[small, "obs_status"] = "suppressed"
    a = disclosure.audit(naive, value="n_cases", dims=["sex", "age_group", "region"],
                         sensitive=small.to_numpy())
    assert a.n_exact >= 1


def test_zero_cells_are_published_and_indicators_are_protected_apart():
    df = _microdata(seed=8, n=1500)
    df["child_forced_labour"] = df["forced_labour"] & (df["age_group"] == "15-17")
    rows = _prevalence(df, ["age_group"]) + _prevalence(df, ["age_group"],
                                                        "child_forced_labour")
    pub = publish_prevalence(rows)
    child = pub.rows("child_forced_labour")
    adults = child[child["age_group"].isin(["18-29", "30-49", "50+"])]
    assert (adults["n_cases"] == 0).all() and (adults["obs_status"] == "estimated").all()
    assert set(pub.suppressions) == {"forced_labour", "child_forced_labour"}
    for a in pub.audit().values():
        assert a.protected


def test_a_row_without_a_case_count_is_refused():
    rows = [SimpleNamespace(indicator="fl", domain={}, n_cases=math.nan, proportion=0.1,
                            status="ok")]
    with pytest.raises(InputError, match="unweighted case count"):
        publish_prevalence(rows)
    with pytest.raises(InputError, match="threshold"):
        publish_prevalence(rows, threshold=0)
    bad = [SimpleNamespace(indicator="fl", domain={"sex": "_T"}, n_cases=3, proportion=0.1,
                           status="ok")]
    with pytest.raises(InputError, match="reserves"):
        publish_prevalence(bad)


@pytest.fixture(scope="module")
def bundled():
    from tipstat import datasets
    from tipstat.survey import classify, declare_design, survey_prevalence

    sv = datasets.load_survey()
    flags = classify(sv["data"], mapping=sv["mapping"]).flags
    design = declare_design(sv["data"], **sv["design"])
    names = ["forced_labour", "trafficking_forced_labour", "child_forced_labour"]
    return survey_prevalence(design, flags[names], by=["sex", "age_group", "region"])


def test_rows_holding_the_same_persons_are_withheld_together(bundled):
    """On the bundled country, children in forced labour are forced labour among the 5-17 year
    olds: the same persons in two tables. Withheld in one, they are withheld in the other (else
    the other table gives them back), and each table still passes its own audit."""
    from tipstat.survey.publish import _same_persons, prevalence_frame

    frame = prevalence_frame(bundled)
    fl = frame[(frame.indicator == "forced_labour") & (frame.age_group == "5-17")]
    cfl = frame[(frame.indicator == "child_forced_labour") & (frame.age_group == "_T")
                & (frame.sex == "_T") & (frame.region == "_T")]
    assert fl["n_cases"].iloc[0] == cfl["n_cases"].iloc[0] > 0        # the test has the case
    pub = publish_prevalence(bundled)
    parts = {ind: pub.table[pub.table.indicator == ind].reset_index(drop=True)
             for ind in pub.suppressions}
    raw = {ind: frame[frame.indicator == ind].reset_index(drop=True) for ind in parts}
    for ind in raw:   # the "not stated" rows, as publish adds them, for positions to match
        raw[ind] = raw[ind].reindex(range(len(parts[ind])))
        raw[ind]["n_cases"] = raw[ind]["n_cases"].fillna(parts[ind]["n_cases"])
    groups = _same_persons(raw)
    assert groups
    for g in groups:
        states = {parts[ind]["obs_status"].iloc[i] == "suppressed" for ind, i in g}
        assert len(states) == 1, g
    for a in pub.audit().values():
        assert a.protected


def test_a_crossing_with_missing_values_keeps_its_sums():
    """sex x age_group cells of respondents with a known sex and age do not add up to the
    total: a 'not stated' row carries the rest, and the table is protected."""
    df = _microdata(seed=5)
    rows = _prevalence(df, [])
    for (sex, age), part in df.groupby(["sex", "age_group"]):
        rows += [r for r in _prevalence(part, []) if r.domain == {}]
        rows[-1].domain = {"sex": sex, "age_group": age}
    pub = publish_prevalence(rows)
    ns = pub.table[pub.table["age_group"] == "_U"]
    assert len(ns) == 1 and ns["n_sample"].iloc[0] == df["age_group"].isna().sum()
    assert pub.audit()["forced_labour"].protected


def test_the_attacker_who_knows_the_definitions(bundled):
    """All indicators in one integer program, rows holding the same persons equal: every small
    cell keeps the range 1 to 4 (publish_prevalence ran the linked audit and repaired what it
    found; on the bundled country by sex, age group and region)."""
    pub = publish_prevalence(bundled)
    assert pub.linked_checked
    linked = pub.audit_linked()
    assert len(linked) == sum(s.n_primary for s in pub.suppressions.values())
    assert linked["protected"].all()
    assert (linked["int_min"] <= 1).all() and (linked["int_max"] >= 4).all()
    # it is at least as strong an attacker as the audit of each table alone
    for ind, a in pub.audit().items():
        alone = a.cells[a.cells.sensitive].set_index("row")
        both = linked[linked.indicator == ind].set_index("row")
        assert (both["int_max"] <= alone.loc[both.index, "int_max"] + 1e-9).all()
