"""The linked disclosure audit (an attacker who knows every published row of every indicator
and which rows hold the same persons) runs on the default path, on blocks of cells, and gives
the ranges of the program on the cross-classification of every variable."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from tipstat import InputError, disclosure
from tipstat.survey import publish_prevalence

FIVE = ["sex", "age_group", "sector", "region", "citizenship"]


# ----------------------------------------------------------------- small random tables
def _microdata(seed: int, n: int) -> pd.DataFrame:
    """Respondents with three domain variables (age sometimes missing: "not stated" rows),
    forced labour rare, children's forced labour = forced labour of the youngest (the same
    persons as a row of the other indicator), trafficking a part of forced labour."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "sex": rng.choice(["F", "M"], n),
        "age": rng.choice(["Y", "A", "O"], n, p=[0.15, 0.5, 0.35]),
        "region": rng.choice(["N", "S", "E"], n, p=[0.5, 0.35, 0.15]),
        "weight": rng.uniform(100, 900, n)})
    df.loc[rng.random(n) < 0.03, "age"] = None
    df["fl"] = rng.random(n) < 0.04
    df["child"] = df["fl"] & (df["age"] == "Y")
    df["tfl"] = df["fl"] & (rng.random(n) < 0.5)
    return df


def _rows(df: pd.DataFrame, by: list, indicator: str) -> list:
    """Prevalence rows (the fields publish_prevalence reads): the total and each `by` entry's
    domains (a tuple is a crossing)."""
    def row(part: pd.DataFrame, domain: dict) -> SimpleNamespace:
        w, y = part["weight"], part[indicator]
        return SimpleNamespace(indicator=indicator, domain=domain, n_sample=len(part),
                               n_cases=int(y.sum()), proportion=float((w * y).sum() / w.sum()),
                               total=float((w * y).sum()), status="ok")
    out = [row(df, {})]
    for spec in by:
        cols = list(spec) if isinstance(spec, tuple) else [spec]
        for key, part in df.groupby(cols, dropna=True):
            key = key if isinstance(key, tuple) else (key,)
            out.append(row(part, dict(zip(cols, key, strict=True))))
    return out


def _full_ranges(pub) -> pd.DataFrame:
    """Reference attacker on the full atoms: every indicator x the cross-classification of
    every domain variable (tipstat.disclosure._link, as the linked audit was built before
    blocks), one integer program per bound, no LP shortcut."""
    inds = list(pub.suppressions)
    frames = [pub.rows(i).assign(_indicator=i) for i in inds]
    link = disclosure._link(frames, [*pub.dims, "_indicator"], None)
    A = link.A
    val = np.full(A.shape[0], np.nan)
    for ti, f in enumerate(frames):
        for r, j in enumerate(link.group[ti]):
            if math.isfinite(f["n_cases"].iloc[r]):
                val[j] = f["n_cases"].iloc[r]
    known = np.isfinite(val)
    ceiling = 10.0 * float(np.nanmax(val)) + 1000.0
    rows, lo, hi = [A], [np.where(known, val, 1.0)], [np.where(known, val, ceiling)]
    for eq in pub.equalities:
        rows.append(sum(c * A[link.group[inds.index(ind)][r]] for c, (ind, r) in eq)[None, :])
        lo.append(np.zeros(1))
        hi.append(np.zeros(1))
    cons = LinearConstraint(np.vstack(rows), np.concatenate(lo), np.concatenate(hi))
    out = []
    for ti, ind in enumerate(inds):
        for r in np.flatnonzero(pub.suppressions[ind].primary[0]):
            c = A[link.group[ti][r]]
            bounds = []
            for sense in (1.0, -1.0):
                res = milp(sense * c, constraints=cons, integrality=np.ones(A.shape[1]),
                           bounds=Bounds(0, np.inf))
                assert res.status == 0
                bounds.append(round(sense * res.fun))
            out.append({"indicator": ind, "row": int(r), "int_min": float(bounds[0]),
                        "int_max": math.inf if bounds[1] >= ceiling - 0.5 else float(bounds[1])})
    return pd.DataFrame(out)


CASES = [  # (seed, respondents, domains, threshold)
    (1, 700, ["sex", "age", "region"], 5),
    (2, 500, ["sex", "age", "region"], 8),
    (3, 900, [("sex", "age"), "region"], 5),          # a crossing beside a variable
    (4, 600, [("sex", "age"), ("age", "region")], 5),  # crossings sharing a variable
    (5, 400, ["age", ("sex", "region")], 6),
    (6, 800, ["sex", "age", "region"], 4),
    (7, 700, [("sex", "age"), ("age", "region"), ("region", "sex")], 5),   # a cycle
    (8, 900, ["sex", "age", ("sex", "age"), "region"], 5),   # a crossing and its margins
]


@pytest.mark.parametrize("seed,n,by,threshold", CASES)
def test_blocks_give_the_ranges_of_the_full_cross_classification(seed, n, by, threshold):
    """audit_linked (blocks of cells) against the integer programs on every indicator x the
    cross-classification of every variable: the same int_min and int_max for every small
    cell, exactly. linked=False publishes each table's own pattern, so several cells are
    narrowed by the linked attacker (the comparison covers unprotected ranges too)."""
    cycle = seed == 7
    df = _microdata(seed, n)
    if cycle:   # "not stated" rows of crossings in a cycle do not add up (publish refuses)
        df = df.dropna(subset=["age"])
    rows = [r for ind in ("fl", "child", "tfl") for r in _rows(df, by, ind)]
    pub = publish_prevalence(rows, threshold=threshold, linked=False)
    # children's forced labour is forced labour of the youngest: equalities between indicators
    assert pub.equalities or not df["child"].any()
    assert cycle or (pub.table["age"] == "_U").any()     # a "not stated" row
    got = pub.audit_linked()
    ref = _full_ranges(pub)
    assert len(got) == len(ref) >= 2
    pd.testing.assert_frame_equal(got[["indicator", "row", "int_min", "int_max"]]
                                  .reset_index(drop=True), ref, check_dtype=False)
    full = disclosure._link([pub.table.assign(_i=pub.table["indicator"])],
                            [*pub.dims, "_i"], None).n_atoms
    # blocks in a cycle: one block of their union (here every variable); else fewer cells
    assert got.attrs["atoms"] == full if cycle else got.attrs["atoms"] < full


def test_the_block_program_sums_alike():
    """Blocks of one indicator are tied to the same number of persons: the disjoint-margins
    program without its ties would let the attacker move a sex cell freely against an age
    cell; with them the ranges are those above (checked against the full atoms)."""
    t = pd.DataFrame({"sex": ["_T", "F", "M", "_T", "_T"], "age": ["_T", "_T", "_T", "Y", "O"],
                      "n": [10, 4, 6, 3, 7]})
    link = disclosure._link_blocks([t], ["sex", "age"])
    assert link.n_atoms == 4 and link.n_ties == 1
    assert link.A[-1].tolist() == [1, 1, -1, -1]


# ----------------------------------------------------------------- the default path
@pytest.fixture(scope="module")
def survey_five():
    from tipstat import datasets
    from tipstat.survey import run_survey

    sv = datasets.load_survey()
    return run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"], by=FIVE)


def test_the_bundled_country_with_five_domains_is_protected_by_default(survey_five):
    """Every small cell of every indicator, under the attacker who combines every published
    row and knows which rows hold the same persons, keeps a range reaching 1 and
    threshold - 1 (= 4). Without the linked audit on this path (its default before), 3 of
    the 33 small cells were narrowed to 1-3."""
    pub = survey_five.published
    assert pub.linked_checked and not pub.warnings
    assert pub.same_persons                       # the attack has equalities to use
    audit = pub.audit_linked()
    assert len(audit) == sum(s.n_primary for s in pub.suppressions.values()) >= 20
    assert (audit["int_min"] <= 1).all() and (audit["int_max"] >= pub.threshold - 1).all()
    assert not any("audit_linked" in w for w in survey_five.warnings)
    # each indicator's own table passes its own audit too
    assert all(a.protected for a in pub.audit().values())


def test_today_s_table_by_table_pattern_is_narrowed(survey_five):
    """The test above can fail: the same table protected table by table only
    (linked=False) leaves small cells the linked attacker narrows below 4."""
    per_table = publish_prevalence(survey_five.table, linked=False)
    audit = per_table.audit_linked()
    assert (~audit["protected"]).sum() >= 1
    assert (audit.loc[~audit["protected"], "int_max"] < per_table.threshold - 1).all()


def test_the_opt_out_is_recorded():
    df = _microdata(1, 700)
    rows = [r for ind in ("fl", "child") for r in _rows(df, ["sex", "age"], ind)]
    on = publish_prevalence(rows)
    assert on.linked_checked and on.linked_atoms > 0 and on.warnings == ()
    off = publish_prevalence(rows, linked=False)
    assert not off.linked_checked and off.linked_atoms == 0
    (w,) = off.warnings
    assert w.code == "note" and "linked=False" in w and w.values["linked_checked"] is False
    with pytest.raises(InputError, match="linked=None"):
        publish_prevalence(rows, linked=None)        # the former "auto" is no opt-out


def test_a_program_too_large_stops_with_a_clear_error(monkeypatch):
    """Crossings sharing a variable are audited on their union's cells; past
    LINKED_MAX_ATOMS publish_prevalence says so (never skips the audit silently), and
    linked=False still publishes, recorded."""
    import tipstat.survey.publish as publish
    from tipstat import InputError

    df = _microdata(4, 600)
    rows = [r for ind in ("fl", "child") for r in _rows(df, [("sex", "age"), ("age", "region")],
                                                         ind)]
    monkeypatch.setattr(publish, "LINKED_MAX_ATOMS", 20)
    with pytest.raises(InputError, match=r"linked audit needs \d+ cells.*linked=False"):
        publish_prevalence(rows)
    off = publish_prevalence(rows, linked=False)
    assert not off.linked_checked and off.warnings


# ----------------------------------------------------------------- crossings and definitions
@pytest.fixture(scope="module")
def bundled():
    from tipstat import datasets

    return datasets.load_survey()


def _definitional_ranges(run, sv) -> pd.DataFrame:
    """An attacker built here from the definition and the microdata, independently of
    publish_prevalence's equalities: for a table by one crossing (sex x age group), the
    persons of each indicator in each cell of the crossing are whole numbers >= 0, every
    published row is known (a withheld one holds 1 or more), the total is the sum of the
    cells, and, as tipstat-prov-1 says, children in forced labour ARE the forced labour of the
    age groups whose respondents are all under 18 (item age_years) and 0 in the age groups of
    adults. One integer program per bound."""
    pub = run.published
    age = pd.to_numeric(sv["data"][sv["mapping"].items["age_years"].variable])
    child_levels = {str(g) for g, a in age.groupby(sv["data"]["age_group"]) if (a < 18).all()}
    adult_levels = {str(g) for g, a in age.groupby(sv["data"]["age_group"]) if (a >= 18).all()}
    assert child_levels == {"5-17"} and len(adult_levels) == 4
    inds = list(pub.suppressions)
    frames = {i: pub.rows(i) for i in inds}
    cells = [(i, r) for i in inds for r in range(len(frames[i]))
             if (frames[i][["sex", "age_group"]] != "_T").all(axis=1).iloc[r]]
    col = {c: k for k, c in enumerate(cells)}
    rows, lo, hi = [], [], []

    def fix(coef: dict, a: float, b: float) -> None:
        v = np.zeros(len(cells))
        for c, x in coef.items():
            v[col[c]] += x
        rows.append(v)
        lo.append(a)
        hi.append(b)

    for i, f in frames.items():
        total = f.index[(f[["sex", "age_group"]] == "_T").all(axis=1)][0]
        mine = {c: 1.0 for c in cells if c[0] == i}
        t = f["n_cases"].iloc[total]
        assert math.isfinite(t)                       # the totals are published here
        fix(mine, t, t)
        for c in mine:
            n = f["n_cases"].iloc[c[1]]
            fix({c: 1.0}, *((n, n) if math.isfinite(n) else (1, np.inf)))
    key = {(i, tuple(frames[i].iloc[r][["sex", "age_group"]])): (i, r) for i, r in cells}
    for i, r in cells:
        if i != "child_forced_labour":
            continue
        sex, grp = frames[i].iloc[r][["sex", "age_group"]]
        if grp in child_levels:
            fix({(i, r): 1.0, key[("forced_labour", (sex, grp))]: -1.0}, 0, 0)
        else:
            fix({(i, r): 1.0}, 0, 0)
    cons = LinearConstraint(np.vstack(rows), np.array(lo, float), np.array(hi, float))
    out = []
    for i in inds:
        for r in np.flatnonzero(pub.suppressions[i].primary[0]):
            c = np.zeros(len(cells))
            c[col[(i, int(r))]] = 1.0
            b = []
            for sense in (1.0, -1.0):
                res = milp(sense * c, constraints=cons, integrality=np.ones(len(cells)),
                           bounds=Bounds(0, 10_000))
                assert res.status == 0
                b.append(round(sense * res.fun))
            out.append({"indicator": i, "row": int(r), "int_min": b[0], "int_max": b[1]})
    return pd.DataFrame(out)


def test_a_crossing_of_the_bundled_country_is_protected_against_the_definitions(bundled):
    """Sex x age group: every small cell keeps a range reaching 1 and 4 against the attacker
    who knows the definition (children's forced labour = forced labour of the 5-17 year
    olds), checked by the program above built from the microdata, not from the equalities
    publish_prevalence uses; the two attacks give the same ranges. Coincidences (the cases
    of forced labour of a cell all trafficking cases) are not among the attack's equalities,
    while the rows stay withheld together."""
    from tipstat.survey import run_survey

    sv = bundled
    run = run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"],
                     by=[("sex", "age_group")])
    pub = run.published
    assert pub.linked_checked and not pub.warnings
    ref = _definitional_ranges(run, sv)
    assert len(ref) >= 10
    assert (ref["int_min"] <= 1).all() and (ref["int_max"] >= pub.threshold - 1).all()
    got = pub.audit_linked()
    pd.testing.assert_frame_equal(
        got[["indicator", "row", "int_min", "int_max"]].reset_index(drop=True),
        ref.assign(int_max=ref["int_max"].where(ref["int_max"] < 10_000, math.inf)),
        check_dtype=False)
    used = {i for eq in pub.equalities for _, (i, _r) in eq}
    assert used == {"forced_labour", "child_forced_labour"}


def test_crossings_sharing_a_variable_that_cannot_be_protected_publish_nothing(bundled):
    """Sex x age group and age group x region: forced labour of women aged 65+ (3 cases) is
    the sum of two withheld regions of the 65+ (the other regions and the men aged 65+ are
    published zeros), so it holds 2 or more whatever else is withheld: publish_prevalence
    publishes nothing and says what to do (before, the table was published with a caveat)."""
    from tipstat.survey import classify, run_survey

    sv = bundled
    with pytest.raises(InputError, match=r"nothing was published.*fewer crossings"):
        run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"],
                   by=[("sex", "age_group"), ("age_group", "region")])
    # the error is needed, whatever the definitions: from the microdata, the men aged 65+
    # and some regions of the 65+ hold no case (published zeros), the women aged 65+ a small
    # number, and two or more regions of the 65+ a small number (withheld, 1 or more each)
    data = sv["data"]
    fl = classify(data, mapping=sv["mapping"]).flags["forced_labour"].fillna(False).astype(int)
    old = data["age_group"] == "65+"
    by_sex = fl[old].groupby(data.loc[old, "sex"]).sum()
    by_region = fl[old].groupby(data.loc[old, "region"]).sum()
    assert by_sex["M"] == 0 and 1 <= by_sex["F"] <= 4
    small = by_region[by_region > 0]
    assert ((small >= 1) & (small <= 4)).all() and len(small) >= 2   # F 65+ >= len(small)


def _coincidence_rows() -> list:
    """Forced labour (fl) by sex and age (Y = the children): children's forced labour (child)
    is fl of the Y; trafficking (tfl) is a part of fl that happens to hold every fl case of
    women aged O (3 = 3) and differs elsewhere."""
    cells = {  # (sex, age): (fl, tfl, respondents)
        ("F", "Y"): (2, 1, 80), ("F", "A"): (9, 4, 200), ("F", "O"): (3, 3, 120),
        ("M", "Y"): (6, 2, 90), ("M", "A"): (12, 5, 210), ("M", "O"): (8, 0, 100)}
    out = []
    for ind in ("fl", "tfl", "child"):
        def n(cell, ind=ind):
            fl, tfl, _ = cells[cell]
            return {"fl": fl, "tfl": tfl, "child": fl if cell[1] == "Y" else 0}[ind]

        def row(domain, members, ind=ind):
            c = sum(n(m) for m in members)
            resp = sum(cells[m][2] for m in members)
            return SimpleNamespace(indicator=ind, domain=domain, n_sample=resp, n_cases=c,
                                   proportion=c / resp, total=100.0 * c, status="ok")
        out.append(row({}, list(cells)))
        for sex in "FM":
            out.append(row({"sex": sex}, [k for k in cells if k[0] == sex]))
        for age in "YAO":
            out.append(row({"age": age}, [k for k in cells if k[1] == age]))
        for k in cells:
            out.append(row({"sex": k[0], "age": k[1]}, [k]))
    return out


def test_a_coincidence_is_not_known_to_the_attacker_a_definition_is():
    """tfl[F, O] = fl[F, O] by coincidence (a part of forced labour equal to it in one cell):
    withheld together (same_persons) but not an equality of the attack; child = fl of the
    children is one (rows split by age Y, the total as the sum of the children's cells)."""
    pub = publish_prevalence(_coincidence_rows(), linked=False)
    frames = {i: pub.rows(i) for i in pub.suppressions}

    def at(i, sex, age):
        f = frames[i]
        return (i, int(f.index[(f["sex"] == sex) & (f["age"] == age)][0]))

    eqs = [{k: c for c, k in e} for e in pub.equalities]
    assert any({at("fl", "F", "O"), at("tfl", "F", "O")} <= set(g) for g in pub.same_persons)
    assert not any(k[0] == "tfl" for e in eqs for k in e)
    assert {at("child", "F", "Y"): 1.0, at("fl", "F", "Y"): -1.0} in eqs
    assert {at("child", "_T", "Y"): 1.0, at("fl", "_T", "Y"): -1.0} in eqs
    assert {at("child", "_T", "_T"): 1.0, at("fl", "_T", "Y"): -1.0} in eqs
    assert {at("child", "F", "_T"): 1.0, at("fl", "F", "Y"): -1.0} in eqs
    # the coincidence, were it known, would pin trafficking of women aged O to forced labour
    # there: the ranges differ, so leaving it out is a choice the audit shows
    told = pub.audit_linked().set_index(["indicator", "row"])
    pub.equalities = [*pub.equalities, [(1.0, at("fl", "F", "O")), (-1.0, at("tfl", "F", "O"))]]
    coincidence = pub.audit_linked().set_index(["indicator", "row"])
    assert not told[["int_min", "int_max"]].equals(coincidence[["int_min", "int_max"]])


def test_a_partition_of_indicators_is_an_equality_on_every_row():
    """Forced labour = adults' + children's on every row when both parts are published
    (tipstat-prov-1: adult_forced_labour and child_forced_labour are disjoint and make up
    forced_labour)."""
    df = _microdata(3, 900)
    df["adult"] = df["fl"] & (df["age"] != "Y") & df["age"].notna()
    df["fl2"] = df["fl"] & df["age"].notna()
    rows = [r for ind in ("fl2", "child", "adult") for r in _rows(df, ["sex", "region"], ind)]
    pub = publish_prevalence(rows, linked=False)
    sums = [e for e in pub.equalities if len(e) == 3
            and sorted(i for _, (i, _r) in e) == ["adult", "child", "fl2"]]
    assert len(sums) == len(pub.rows("fl2"))
