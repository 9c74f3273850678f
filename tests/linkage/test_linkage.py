"""Pseudonymous keys, exact linkage, de-duplication, covariate conflicts and privacy."""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tipstat import InputError, TipstatWarning, simulate
from tipstat.ictip import capture_histories, read_records
from tipstat.ictip.keys import (
    check_no_identifiers,
    generate_secret,
    normalise_date,
    normalise_name,
)
from tipstat.indicator import sdg_16_2_2
from tipstat.linkage import Secret, link_exact, person_keys, persons, pseudonymise
from tipstat.models.stratified import fit_stratified

SECRET = generate_secret()  # a literal in a test would be a published (known) secret


# ------------------------------------------------------------------------------ keys
def test_key_is_hmac_sha256_of_normalised_fields():
    df = pd.DataFrame({"family_name": ["  Müller-Łódź "], "given_name": ["Zoë"],
                       "birth_date": ["1990-03-07"], "sex": ["F"]})
    key = person_keys(df, SECRET)[0]
    expected = hmac.new(SECRET.encode(), b"MULLERLODZ|ZOE|19900307|F", hashlib.sha256).hexdigest()
    assert key == expected


def test_key_depends_on_secret_and_plain_hash_differs():
    df = pd.DataFrame({"family_name": ["Doe"], "given_name": ["Ann"],
                       "birth_date": ["1990-01-02"], "sex": ["F"]})
    k1 = person_keys(df, SECRET)[0]
    k2 = person_keys(df, SECRET + "x")[0]
    plain = hashlib.sha256(b"DOE|ANN|19900102|F").hexdigest()
    assert k1 != k2 and plain not in (k1, k2)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_normalisation_is_idempotent_and_case_blind(a, b):
    n = normalise_name(a)
    assert normalise_name(n) == n
    assert normalise_name(a.upper()) == normalise_name(a.lower()) or not a.isascii()
    assert set(n) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    # spacing and hyphens never change the key
    assert normalise_name(f" {a}-{b} ") == normalise_name(a + b)


def test_date_normalisation_and_short_secret():
    assert normalise_date(pd.Timestamp("2001-02-03")) == "20010203"
    assert normalise_date(None) == ""
    with pytest.raises(InputError, match="16 bytes"):
        Secret("short")


def test_secret_never_shown_or_pickled():
    s = Secret(SECRET)
    assert SECRET not in repr(s) and SECRET not in str(s) and SECRET not in f"{s}"
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_pseudonymise_drops_every_identifier_column():
    df = pd.DataFrame({"family_name": ["Doe"], "given_name": ["Ann"], "birth_date": ["1990-01-02"],
                       "sex": ["F"], "email": ["a@b.c"], "notes": ["free text"],
                       "identification_date": ["2024-01-02"]})
    out = pseudonymise(df, SECRET, reference_date="identification_date")
    assert set(out.columns) == {"sex", "identification_date", "person_key", "person_key_scheme",
                                "age_at_identification"}
    assert out.age_at_identification[0] == 34
    with pytest.raises(InputError):
        check_no_identifiers(df)
    check_no_identifiers(out)


# ------------------------------------------------------------------------------ exact
def _rec(**cols):
    n = len(cols["person_key"])
    base = {"record_id": [str(i) for i in range(n)], "sex": ["F"] * n,
            "age_group": ["Y25T34"] * n, "age_group_l1": ["Y_GE18"] * n,
            "citizenship_group": ["FOR"] * n, "exploitation": ["SEX"] * n,
            "identification_date": pd.to_datetime(["2024-01-01"] * n)}
    base.update(cols)
    return pd.DataFrame(base)


def test_exact_linkage_dedups_within_lists_and_counts():
    rec = _rec(person_key=["a", "a", "a", "b", "c", "c"], list_id=["P", "P", "N", "N", "P", "Z"])
    p = link_exact(rec)
    assert p.n_persons == 3
    assert p.frame[["P", "N", "Z"]].values.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    acc = p.accounting.set_index("item")["count"]
    assert acc["duplicate records merged within lists"] == 1
    assert acc["captures (person, list) after de-duplication"] == 5
    assert acc["persons on 2 list(s)"] == 2


def test_conflicts_resolved_by_stated_rules_and_flagged():
    rec = _rec(person_key=["a", "a", "a", "b", "b"], list_id=["P", "N", "Z", "P", "N"],
               sex=["F", "M", "M", "F", "M"], exploitation=["SEX", "LAB.DOM", "_U", "OTH", "ORG"])
    with pytest.warns(TipstatWarning, match=r"\[W4\] 2 person\(s\) have conflicting sex"):
        mode = link_exact(rec, priority=["P", "N", "Z"]).frame
    assert mode["sex"].tolist() == ["M", "F"]  # a: majority M; b: tie -> priority P
    assert mode["conflict_sex"].tolist() == [True, True]
    assert mode["exploitation_stratum"].tolist() == ["MIX", "ORG"]
    with pytest.warns(TipstatWarning, match="rule 'priority'"):
        prio = link_exact(rec, rules={"sex": "priority"}, priority=["P", "N", "Z"]).frame
    assert prio["sex"].tolist() == ["F", "F"]
    with pytest.raises(InputError):
        link_exact(rec, rules={"sex": "oldest"})


def test_linkage_input_with_clear_identifiers_is_refused_unless_secure():
    rec = _rec(person_key=["a", "b"], list_id=["P", "N"], given_name=["Ann", "Bea"])
    with pytest.raises(InputError, match="clear personal identifiers") as exc:
        link_exact(rec)
    assert "Ann" not in str(exc.value)
    p = link_exact(rec, secure=True)
    assert "given_name" not in p.frame.columns and p.n_persons == 2


def test_person_map_replaces_the_key():
    rec = _rec(person_key=["a", "b", "c"], list_id=["P", "N", "Z"])
    p = link_exact(rec, person_map={"0": 1, "1": 1, "2": 2})
    assert p.n_persons == 2
    with pytest.raises(InputError):
        link_exact(rec, person_map={"0": 1})


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.sampled_from("PNZ")), min_size=1, max_size=60))
def test_linkage_properties(pairs):
    """Persons = distinct keys; captures = distinct (key, list) pairs; list sizes add up."""
    rec = _rec(person_key=[f"k{k}" for k, _ in pairs], list_id=[lst for _, lst in pairs])
    p = link_exact(rec)
    assert p.n_persons == len({k for k, _ in pairs})
    lists = list(p.lists)
    assert int(p.frame[lists].to_numpy().sum()) == len(set(pairs))
    assert (p.frame[lists].sum(axis=1) >= 1).all()


def test_typos_split_persons_as_expected():
    """A typo in a family name is a missed link: the detected count grows by exactly the number
    of extra distinct keys per true victim (known from the simulation)."""
    c = simulate.country(1500, seed=11, typo_rate=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        h = capture_histories(persons(c.read(period=c.year)), by=[])
    rv = c.params["record_victim"]
    keys = pd.DataFrame({"victim": rv, "key": c.records["person_key"].to_numpy()})
    keys = keys[keys.victim >= 0]
    extra = int((keys.groupby("victim")["key"].nunique() - 1).sum())
    assert extra > 0
    assert h.n_observed == c.n_detected + extra


# ------------------------------------------------------------------------------ privacy
def test_no_clear_identifier_in_any_output_log_or_error(tmp_path, caplog):
    c = simulate.country(800, seed=21, lists={k: v for k, v in simulate.DEFAULT_LISTS.items()
                                              if k in "PKIO"})
    clear = c.clear_records
    secrets = set(clear.family_name) | set(clear.given_name) | set(clear.birth_date)
    secrets = {s for s in secrets if len(s) >= 5}
    caplog.set_level(logging.DEBUG)
    texts = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        recs = c.read(clear=True, period=c.year)
        p = persons(recs)
        h = capture_histories(p, by=["sex", "age_group"])
        est = fit_stratified(h, n_boot=20, seed=1)
        table = sdg_16_2_2(est, c.population, ref_area=c.ref_area, time_period=c.year)
    texts += [str(x.message) for x in w]
    buf = io.StringIO()
    for frame in (recs.frame, recs.accounting(), p.frame, p.accounting, h.to_frame(),
                  est.cells.table, table.table, table.to_glotip()):
        frame.to_csv(buf)
    texts += [buf.getvalue(), repr(recs), repr(p), est.summary(), repr(est), h.summary()]
    table.to_excel(tmp_path / "t.xlsx")
    table.to_csv(tmp_path / "t.csv")
    texts.append((tmp_path / "t.csv").read_text())
    texts.append(caplog.text)
    # errors: a bad birth date and a name-like key must not echo the values
    bad = clear.copy()
    bad.loc[bad.index[0], "birth_date"] = "31/31/1990"
    try:
        read_records(bad, c.list_definition, secret=c.secret, today="2025-12-31")
    except InputError as exc:
        texts.append(str(exc))
    bad = c.records.copy()
    bad.loc[0, "person_key_scheme"] = "REGISTER_ID"
    bad.loc[0, "person_key"] = "Kamira Dorlen"
    try:
        read_records(bad, c.list_definition, today="2025-12-31")
    except InputError as exc:
        texts.append(str(exc))
    with pytest.raises(InputError) as exc_info:
        read_records(clear, c.list_definition)
    texts.append(str(exc_info.value))
    blob = "\n".join(texts)
    leaked = [s for s in secrets if s in blob]
    assert not leaked, f"{len(leaked)} clear identifier(s) leaked"
    assert "Kamira Dorlen" not in blob and "31/31/1990" not in blob
    assert c.secret._value.decode() not in blob
    assert not set(recs.frame.columns) & {"family_name", "given_name", "birth_date"}


def test_clear_and_pseudonymised_paths_agree():
    c = simulate.country(600, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        a = capture_histories(persons(c.read(period=c.year)), by=["sex"])
        b = capture_histories(persons(c.read(clear=True, period=c.year)), by=["sex"])
    assert a.n_observed == b.n_observed == c.n_detected
    assert np.array_equal(a.counts, b.counts)


# ------------------------------------------------------------------------------ probabilistic
def test_probabilistic_linkage_repairs_typos_and_leaks_nothing():
    pytest.importorskip("splink")
    from tipstat.linkage.probabilistic import link_probabilistic, sensitivity

    c = simulate.country(1500, seed=11, typo_rate=0.05)
    with pytest.raises(InputError, match="secure"):
        link_probabilistic(c.clear_records)
    plink = link_probabilistic(c.clear_records, secure=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        recs = c.read(period=c.year)
        exact = capture_histories(persons(recs), by=[])
        prob = capture_histories(persons(recs, person_map=plink.person_map()), by=[])
    # typos split persons under exact linkage; the Fellegi-Sunter model (Jaro-Winkler on names)
    # re-links them: within 0.5% of the true detected count (false links are rare at p >= 0.9)
    assert exact.n_observed > c.n_detected
    assert abs(prob.n_observed - c.n_detected) <= 0.005 * c.n_detected
    table = sensitivity(plink, recs, lambda h: fit_stratified(h, n_boot=0),
                        thresholds=(0.5, 0.9, 0.999))
    assert table.persons.is_monotonic_increasing  # stricter threshold: fewer links, more persons
    blob = plink.pairs.to_csv() + plink.review.to_csv() + table.to_csv()
    names = {s for s in set(c.clear_records.family_name) | set(c.clear_records.given_name)
             if len(s) >= 5}
    assert not [s for s in names if s in blob]
    assert set(plink.pairs.columns) >= {"record_id_l", "record_id_r", "match_probability"}


def test_histories_take_linked_persons_not_records():
    """Records go through linkage first (one-way flow: ictip never links); handing records
    straight to capture_histories, or something else to persons, is an InputError."""
    c = simulate.country(300, seed=4)
    recs = c.read(period=c.year)
    with pytest.raises(InputError, match="link the records first"):
        capture_histories(recs, by=["sex"])
    with pytest.raises(InputError, match=r"expected tipstat\.ictip\.Records"):
        persons(recs.frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        p = persons(recs)
        h = capture_histories(p, by=[])
    assert h.n_observed == p.n_persons == c.n_detected
