"""The statistical definition as data: the shipped file, its rules, and questionnaire mappings.

Every rule of ``tipstat-prov-1`` is checked on a respondent built to sit on either side of it
(ICLS-2018: forced labour needs involuntariness AND coercion for adults; children need neither
involuntariness nor, under the worst forms or parents in forced labour, coercion; trafficking
needs an act and, for adults, a means).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tipstat.errors import InputError
from tipstat.survey import (
    Definition,
    QuestionnaireMapping,
    available_definitions,
    classify,
    load_definition,
    load_mapping,
)

CONTRACT_FLAGS = ("involuntary", "coercion", "forced_labour",
                  "forced_commercial_sexual_exploitation", "child_forced_labour",
                  "trafficking_forced_labour")


@pytest.fixture(scope="module")
def d() -> Definition:
    return load_definition("tipstat-prov-1")


def person(d: Definition, age: int = 35, worked: int = 1, **yes: int) -> dict:
    """A respondent answering "no" to every item except ``yes``."""
    row = {i: 0 for i, it in d.items.items() if it.answer == "yes_no"}
    row.update(worked_in_period=worked, age_years=age, coercer_third_party=1)
    row.update(yes)
    return row


def flags_of(d: Definition, *rows: dict) -> pd.DataFrame:
    return classify(pd.DataFrame(list(rows)), definition=d).flags


# ---------------------------------------------------------------- the shipped file


def test_the_provisional_definition_is_shipped_and_versioned(d):
    assert "tipstat-prov-1" in available_definitions()
    assert (d.name, d.version, d.status) == ("tipstat-prov-1", "1", "provisional")
    assert d.reference_period == "the 12 months before the interview"
    assert set(CONTRACT_FLAGS) <= set(d.flags)
    assert any("ICLS/20/2018" in s for s in d.sources)
    assert any("Protocol" in s for s in d.sources)
    # every item and every rule says where it comes from
    assert all(it.source for it in d.items.values())
    assert all(x.source for x in (*d.dimensions.values(), *d.flags.values()))
    # the guidelines' indicator lists: 11 involuntary-work circumstances, 6 means of coercion
    assert d.dimensions["involuntary"].rule == "any"
    assert len(d.dimensions["involuntary"].items) == 11
    assert d.dimensions["coercion"].rule == "any"
    assert set(d.dimensions["coercion"].items) == {
        "threats_violence", "restricted_movement", "debt_bondage", "withheld_wages",
        "withheld_documents", "threat_dismissal_deportation"}
    table = d.describe()
    assert list(table.columns) == ["item", "intent", "answer", "required", "dimensions", "source"]
    assert len(table) == len(d.items)
    rules = d.describe_flags().set_index(["kind", "id"])["rule"]
    assert rules["flag", "forced_labour"] == "any(adult_forced_labour, child_forced_labour)"
    assert rules["flag", "trafficking_forced_labour"] == (
        "all(forced_labour, trafficking_act, any(trafficking_means, child))")
    assert len(rules) == len(d.flags) + len(d.dimensions)


def test_unknown_definition_names_the_available_ones():
    with pytest.raises(InputError, match=r"unknown definition 'statip-9'; available: tipstat-prov-1"):
        load_definition("statip-9")


def test_definition_file_schema_errors(tmp_path, d):
    good = """
[definition]
name = "mini"
version = "1"
status = "test"
[scope]
item = "w"
[[items]]
id = "w"
[[items]]
id = "a"
[[items]]
id = "b"
[[dimensions]]
id = "both"
rule = "all"
items = ["a", "b"]
[[flags]]
id = "f"
rule = {any = ["both", {not = "a"}]}
"""
    path = tmp_path / "mini.toml"
    path.write_text(good)
    mini = load_definition(path)
    assert (mini.name, list(mini.flags)) == ("mini", ["f"])
    cases = {
        'items = ["a", "b"]': ('items = ["a", "zz"]', r"unknown items \['zz'\]"),
        'rule = {any = ["both", {not = "a"}]}': ('rule = {any = ["both", "g"]}',
                                                  r"'g' is neither a dimension"),
        'rule = "all"': ('rule = "most"', "rule must be 'any' or 'all'"),
        'item = "w"': ('item = "nope"', r"\[scope\] item must be a yes_no item"),
    }
    for old, (new, message) in cases.items():
        path.write_text(good.replace(old, new))
        with pytest.raises(InputError, match=message):
            load_definition(path)
    path.write_text("not = [toml")
    with pytest.raises(InputError, match="not valid TOML"):
        load_definition(path)


# ---------------------------------------------------------------- the rules


def test_adults_need_involuntariness_and_coercion(d):
    f = flags_of(d,
                 person(d, deceived_conditions=1),                     # involuntary only
                 person(d, withheld_wages=1),                          # coercion only
                 person(d, deceived_conditions=1, withheld_wages=1),   # both
                 person(d),                                            # neither
                 person(d, cannot_leave_job=1, forced_overtime=1, debt_bondage=1))
    assert f["involuntary"].tolist() == [True, False, True, False, True]
    assert f["coercion"].tolist() == [False, True, True, False, True]
    assert f["forced_labour"].tolist() == [False, False, True, False, True]
    assert f["adult_forced_labour"].tolist() == [False, False, True, False, True]
    assert not f["child_forced_labour"].any()


@pytest.mark.parametrize("item", ["work_without_consent", "unfree_recruitment",
                                  "deceived_nature", "deceived_conditions", "forced_overtime",
                                  "hazardous_without_consent", "no_or_very_low_wages",
                                  "degrading_living_conditions", "other_employer",
                                  "longer_than_agreed", "cannot_leave_job"])
def test_each_involuntary_item_counts_with_any_coercion_item(d, item):
    rows = [person(d, **{item: 1, c: 1}) for c in d.dimensions["coercion"].items]
    assert flags_of(d, *rows)["forced_labour"].all()


def test_children_rules(d):
    f = flags_of(
        d,
        person(d, age=12, threats_violence=1),                        # (i) third-party penalty
        person(d, age=12, threats_violence=1, coercer_third_party=0),  # own parents only
        person(d, age=12, parent_in_forced_labour=1),                  # (iii)
        person(d, age=12, slavery_like_practice=1),                    # (iv) 182 art. 3(a)
        person(d, age=12, commercial_sex=1),                           # (iv) 182 art. 3(b)
        person(d, age=12, illicit_activities=1),                       # (iv) 182 art. 3(c)
        person(d, age=12, deceived_conditions=1),                      # involuntary, no penalty
        person(d, age=17, restricted_movement=1),                      # 17 is a child
        person(d, age=18, restricted_movement=1),                      # 18 is not
    )
    assert f["child_forced_labour"].tolist() == [True, False, True, True, True, True, False,
                                                 True, False]
    assert f["forced_labour"].tolist() == f["child_forced_labour"].tolist()
    assert not f["adult_forced_labour"].any()
    assert f["forced_commercial_sexual_exploitation"].tolist() == [
        False, False, False, False, True, False, False, False, False]


def test_forced_commercial_sexual_exploitation(d):
    f = flags_of(d,
                 person(d, commercial_sex=1),                          # no involuntariness
                 person(d, commercial_sex=1, work_without_consent=1, threats_violence=1),
                 person(d, work_without_consent=1, threats_violence=1),
                 person(d, age=15, commercial_sex=1))
    assert f["forced_commercial_sexual_exploitation"].tolist() == [False, True, False, True]
    assert f["forced_labour"].tolist() == [False, True, True, True]


def test_trafficking_needs_forced_labour_an_act_and_for_adults_a_means(d):
    fl = {"deceived_nature": 1, "withheld_documents": 1}
    f = flags_of(d,
                 person(d, **fl, moved_for_work=1, recruit_deceived=1),
                 person(d, **fl, moved_for_work=1),                      # act without means
                 person(d, **fl, recruit_deceived=1),                    # means without act
                 person(d, moved_for_work=1, recruit_deceived=1),        # not forced labour
                 person(d, age=14, parent_in_forced_labour=1, housed_by_employer=1),
                 person(d, age=14, parent_in_forced_labour=1))
    assert f["trafficking_forced_labour"].tolist() == [True, False, False, False, True, False]


def test_not_working_is_out_of_scope_and_not_forced_labour(d):
    c = classify(pd.DataFrame([person(d, worked=0, deceived_conditions=1, withheld_wages=1),
                               person(d, worked=1)]), definition=d)
    assert c.flags.loc[0].tolist() == [False] * len(d.flags)
    assert c.counts == {"respondents": 2, "in_scope": 1, "out_of_scope": 1}
    assert c.excluded == {}  # out_of_scope = "false": kept in the denominator as "no"


# ---------------------------------------------------------------- mappings


def _spec(d: Definition) -> dict:
    spec = {i: {"variable": f"v_{i}"} for i in d.required_items}
    spec["worked_in_period"] = {"variable": "v_work", "yes_values": [1], "no_values": [2],
                                "missing_values": [8, 9]}
    return spec


def test_mapping_formats_agree(tmp_path, d):
    spec = _spec(d)
    from_dict = load_mapping(spec)
    (tmp_path / "m.json").write_text(json.dumps({"definition": "tipstat-prov-1", "items": spec}))
    toml = ['[mapping]', 'definition = "tipstat-prov-1"']
    for item, s in spec.items():
        toml.append(f"[items.{item}]")
        toml += [f"{k} = {json.dumps(v)}" for k, v in s.items()]
    (tmp_path / "m.toml").write_text("\n".join(toml))
    rows = ["item,variable,yes_values,no_values,missing_values"]
    rows += [f"{i},{s['variable']},{';'.join(map(str, s.get('yes_values', [])))},"
             f"{';'.join(map(str, s.get('no_values', [])))},"
             f"{';'.join(map(str, s.get('missing_values', [])))}" for i, s in spec.items()]
    (tmp_path / "m.csv").write_text("\n".join(rows))
    for name in ("m.json", "m.toml", "m.csv"):
        m = load_mapping(tmp_path / name)
        assert isinstance(m, QuestionnaireMapping)
        assert m.items == from_dict.items, name
    assert from_dict.items["worked_in_period"].no_values == ("2",)
    assert from_dict.variables["debt_bondage"] == "v_debt_bondage"


def test_unmapped_required_item_is_named(d):
    spec = _spec(d)
    del spec["threats_violence"], spec["age_years"]
    with pytest.raises(InputError, match=r"required item.*not mapped: age_years, threats_violence"):
        load_mapping(spec)


def test_unknown_item_in_mapping_is_named(d):
    spec = _spec(d) | {"favourite_colour": "q999"}
    with pytest.raises(InputError, match="'favourite_colour' is not an item of definition"):
        load_mapping(spec)


def test_mapping_file_problems(tmp_path):
    (tmp_path / "m.csv").write_text("question,column\na,b\n")
    with pytest.raises(InputError, match="expected columns item, variable"):
        load_mapping(tmp_path / "m.csv")
    (tmp_path / "m.xlsx").write_text("")
    with pytest.raises(InputError, match=r"expected a \.toml, \.json or \.csv"):
        load_mapping(tmp_path / "m.xlsx")
    with pytest.raises(InputError, match=r"no file 'absent\.toml'"):
        load_mapping(tmp_path / "absent.toml")
    with pytest.raises(InputError, match="expected a variable name"):
        load_mapping({"worked_in_period": {"yes_values": [1]}})


def test_mapped_variable_missing_from_data_is_named(d):
    spec = _spec(d)
    data = pd.DataFrame([{s["variable"]: 2 for s in spec.values()}]).drop(columns=["v_debt_bondage"])
    with pytest.raises(InputError, match=r"mapped variable.*not in the data: v_debt_bondage"):
        classify(data, mapping=spec)


def test_mapping_codes_decide_the_answers(d):
    spec = _spec(d)
    row = {s["variable"]: 0 for s in spec.values()}
    row.update(v_work=1, v_age_years=40, v_deceived_nature=1, v_threats_violence=1)
    data = pd.DataFrame([row, row | {"v_work": 2}, row | {"v_work": 9}])
    c = classify(data, mapping=spec)
    assert c.flags["forced_labour"].tolist() == [True, False, pd.NA]
    # the optional items were not mapped (not asked): the forms that need them are undecidable
    # for the person in forced labour, and counted
    assert set(c.not_asked) == {i for i, it in d.items.items() if not it.required}
    assert c.excluded == {
        "scope unknown: worked_in_period not answered": 1,
        "forced_commercial_sexual_exploitation: not decidable from the answered items": 1,
        "trafficking_forced_labour: not decidable from the answered items": 1}
