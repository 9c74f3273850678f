"""CaptureHistories: constructors, round trips, transformations and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tipstat
from tipstat import CaptureHistories, InputError, TipstatWarning
from tipstat.histories import MAX_COUNT, MAX_LISTS, pattern_matrix

ARTIFICIAL = pd.DataFrame({"A": [1, 0, 1, 0], "B": [0, 1, 1, 0], "C": [0, 0, 0, 1],
                           "count": [40, 30, 6, 20]})


# ---------------------------------------------------------------- basic facts
def test_cell_order_first_list_is_least_significant_bit():
    assert pattern_matrix(3).tolist() == [
        [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]]
    h = CaptureHistories.from_frame(ARTIFICIAL)
    assert h.counts.tolist() == [40, 30, 6, 20, 0, 0, 0]
    assert h.pattern_labels() == ["A", "B", "A+B", "C", "A+C", "B+C", "A+B+C"]


def test_facts_of_a_published_table(load_table):
    h = load_table("UK_5")
    assert h.lists == ("LA", "NG", "PFNCA", "GO", "GP")
    assert h.k == 5 and h.n_observed == 2744 and h.strata == ()
    assert len(h.counts) == 31 and h.n_zero_cells == 13
    sizes = h.list_sizes()
    assert sizes.to_dict() == {"LA": 94, "NG": 567, "PFNCA": 1169, "GO": 807, "GP": 336}
    ov = h.overlap_matrix()
    assert (np.diag(ov) == sizes.to_numpy()).all()
    assert ov.loc["LA", "GP"] == 0 and (ov.to_numpy() == ov.to_numpy().T).all()
    assert "LA&GP" in h.summary()
    assert "<table" in h._repr_html_()


def test_merge_lists_reproduces_uk5_from_uk6(load_table):
    uk6, uk5 = load_table("UK_6"), load_table("UK_5")
    assert uk6.merge_lists({"PFNCA": ["PF", "NCA"]}).equals(uk5)


def test_drop_lists_reproduces_uk4_and_reports_lost_persons(load_table):
    with pytest.warns(TipstatWarning, match="316 person"):
        uk4 = load_table("UK_5").drop_lists(["GP"])
    assert uk4.equals(load_table("UK_4"))


def test_merge_and_drop_errors(load_table):
    h = load_table("UK_5")
    with pytest.raises(InputError, match="unknown list"):
        h.merge_lists({"X": ["LA", "nope"]})
    with pytest.raises(InputError, match="two groups"):
        h.merge_lists({"X": ["LA", "NG"], "Y": ["NG", "GO"]})
    with pytest.raises(InputError, match="fewer than two"):
        h.drop_lists(["LA", "NG", "PFNCA", "GO"])


def test_strata_selection_and_iteration(load_table):
    h = load_table("Spina_3")
    assert h.strata == ("eth",) and h.n_strata == 3
    total = sum(hs.n_observed for _, hs in h.by_stratum())
    assert total == h.n_observed == 621
    one = h.select(eth="caucasian")
    assert one.n_strata == 1 and one.n_observed < 621
    assert h.pooled().strata == ()
    with pytest.raises(InputError, match="unknown stratum"):
        h.select(sex="F")
    with pytest.raises(InputError, match="no stratum"):
        h.select(eth="martian")
    with pytest.raises(InputError, match="strata"):
        tipstat.fit_loglinear(h)


def test_from_individuals_and_memberships_agree():
    people = pd.DataFrame({"police": [1, 1, 0, 1, 0], "ngo": [0, 1, 1, 1, 1],
                           "shelter": [0, 0, 1, 1, 0], "sex": ["F", "F", "M", "F", "M"]})
    h1 = CaptureHistories.from_individuals(people, lists=["police", "ngo", "shelter"],
                                           strata="sex")
    pairs = []
    for pid, row in people.iterrows():
        for name in ["police", "ngo", "shelter"]:
            if row[name]:
                pairs.append({"person": f"p{pid}", "list": name, "sex": row["sex"]})
    pairs.append(dict(pairs[0]))  # a repeated pair counts once
    h2 = CaptureHistories.from_memberships(pd.DataFrame(pairs), strata="sex",
                                           lists=["police", "ngo", "shelter"])
    assert h1.equals(h2)
    assert h1.n_observed == 5


def test_memberships_errors_never_show_person_keys():
    pairs = pd.DataFrame({"person": ["SECRET-KEY-1", "SECRET-KEY-1", "k2", "k3"],
                          "list": ["a", "b", "a", "b"], "sex": ["F", "M", "F", "M"]})
    with pytest.raises(InputError) as err:
        CaptureHistories.from_memberships(pairs, strata="sex")
    assert "conflicting" in str(err.value) and "SECRET" not in str(err.value)
    with pytest.raises(InputError, match="not among"):
        CaptureHistories.from_memberships(pairs.drop(columns="sex"), lists=["a", "c"])


def test_repeated_patterns_are_summed_with_a_warning():
    df = pd.concat([ARTIFICIAL, ARTIFICIAL.iloc[[0]]], ignore_index=True)
    with pytest.warns(TipstatWarning, match="1 repeated"):
        h = CaptureHistories.from_frame(df)
    assert h.counts[0] == 80 and h.n_observed == 136


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.assign(A=[1, 2, 1, 0]), r"column 'A', row 1: value 2 \(expected 0 or 1\)"),
        (lambda d: d.assign(B=[0, 1, None, 0]), r"column 'B', row 2"),
        (lambda d: d.assign(count=[40, -3, 6, 20]), r"column 'count', row 1: value -3"),
        (lambda d: d.assign(count=[40, 3.5, 6, 20]), r"row 1: value 3.5"),
        (lambda d: d.assign(count=[40, None, 6, 20]), r"column 'count', row 1"),
        (lambda d: d.assign(count=["40", "x", 6, 20]), r"row 1: value <text of 1 character>"),
        (lambda d: pd.concat([d, pd.DataFrame({"A": [0], "B": [0], "C": [0], "count": [5]})],
                             ignore_index=True), r"(?s)all-zero pattern.*row 4"),
        (lambda d: d[["A", "count"]], r"at least two list columns"),
        (lambda d: d.iloc[0:0], r"empty"),
        (lambda d: d.drop(columns="count"), r"\['count'\] not found"),
    ],
)
def test_bad_pattern_tables_name_column_row_and_value(change, message):
    with pytest.raises(InputError, match=message):
        CaptureHistories.from_frame(change(ARTIFICIAL.copy()))


def test_missing_stratum_value_is_an_error():
    df = ARTIFICIAL.assign(sex=["F", None, "M", "F"])
    with pytest.raises(InputError, match=r"column 'sex', row 1"):
        CaptureHistories.from_frame(df, strata="sex")


def test_every_bad_value_is_reported_not_only_the_first():
    df = ARTIFICIAL.assign(A=[7, 8, 9, 0])
    with pytest.raises(InputError) as err:
        CaptureHistories.from_frame(df)
    assert len(err.value.problems) == 3


def test_person_rows_on_no_list_are_an_error():
    with pytest.raises(InputError, match="on no list"):
        CaptureHistories.from_individuals(pd.DataFrame({"a": [1, 0], "b": [0, 0]}))


def test_not_a_dataframe():
    with pytest.raises(InputError, match="DataFrame"):
        CaptureHistories.from_frame([[1, 0, 3]])


# ---------------------------------------------------------------- properties
@st.composite
def tables(draw):
    k = draw(st.integers(2, 5))
    counts = draw(st.lists(st.integers(0, 50), min_size=2**k - 1, max_size=2**k - 1))
    if sum(counts) == 0:
        counts[0] = 1
    n_strata = draw(st.integers(1, 3))
    return k, counts, n_strata


@given(tables())
@settings(max_examples=60, deadline=None)
def test_round_trip_through_frame(table):
    k, counts, n_strata = table
    lists = [f"L{j}" for j in range(k)]
    rows = []
    for s in range(n_strata):
        frame = pd.DataFrame(pattern_matrix(k), columns=lists)
        frame["stratum"] = f"s{s}"
        frame["count"] = np.roll(counts, s)
        rows.append(frame)
    df = pd.concat(rows, ignore_index=True).sample(frac=1.0, random_state=1)
    h = CaptureHistories.from_frame(df, strata="stratum")
    back = CaptureHistories.from_frame(h.to_frame(), strata="stratum")
    assert back.equals(h)
    assert h.n_observed == n_strata * sum(counts)
    pooled = h.pooled()
    assert np.array_equal(pooled.counts, h.counts)
    # list sizes are the margins of the counts
    assert h.list_sizes().sum() == int((pattern_matrix(k).sum(axis=1) * h.counts).sum())


@given(tables())
@settings(max_examples=40, deadline=None)
def test_individual_rows_round_trip(table):
    k, counts, _ = table
    lists = [f"L{j}" for j in range(k)]
    pat = pattern_matrix(k)
    people = pd.DataFrame(np.repeat(pat, counts, axis=0), columns=lists)
    h = CaptureHistories.from_individuals(people)
    assert h.counts.tolist() == counts


@given(st.integers(2, 5), st.data())
@settings(max_examples=40, deadline=None)
def test_any_non_binary_list_value_is_rejected_with_its_row(k, data):
    lists = [f"L{j}" for j in range(k)]
    df = pd.DataFrame(pattern_matrix(k), columns=lists)
    df["count"] = 1
    row = data.draw(st.integers(0, len(df) - 1))
    col = data.draw(st.sampled_from(lists))
    bad = data.draw(st.one_of(st.integers(2, 9), st.integers(-9, -1), st.just(0.5),
                              st.just("yes")))
    df[col] = df[col].astype(object)
    df.loc[row, col] = bad
    with pytest.raises(InputError) as err:
        CaptureHistories.from_frame(df)
    assert f"column {col!r}, row {row}" in str(err.value)


@given(st.lists(st.integers(0, 30), min_size=7, max_size=7))
@settings(max_examples=30, deadline=None)
def test_merge_then_sizes_are_unions(counts):
    if sum(counts) == 0:
        counts[0] = 1
    h = CaptureHistories(np.array(counts), ["A", "B", "C"])
    m = h.merge_lists({"AB": ["A", "B"]})
    assert m.lists == ("AB", "C")
    assert m.n_observed == h.n_observed
    ov = h.overlap_matrix()
    assert m.list_sizes()["AB"] == ov.loc["A", "A"] + ov.loc["B", "B"] - ov.loc["A", "B"]


def test_no_silent_drop_in_drop_lists():
    h = CaptureHistories(np.array([5, 0, 0, 3, 0, 0, 0]), ["A", "B", "C"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = h.drop_lists(["A"])
    assert out.n_observed == 3
    assert any("5 person" in str(w.message) for w in caught)


# ---------------------------------------------------------------- hostile input (issue 14)
def test_counts_beyond_two_to_the_63_are_an_error_not_a_crash():
    for big in (2**63, 2**64 + 1, 10**30, 1e300, "9223372036854775808"):
        df = ARTIFICIAL.astype({"count": object})
        df.loc[2, "count"] = big
        with pytest.raises(InputError, match=r"column 'count', row 2: value .*at most 9007199254740991"):
            CaptureHistories.from_frame(df)


def test_no_silent_int64_wrap_of_the_total():
    # each count fits in int64 and below MAX_COUNT, but their sum does not fit in 2**53 - 1:
    # before, 4 x 2**62 wrapped to n_observed = 0 or -4.6e18
    df = ARTIFICIAL.assign(count=[2**51] * 3 + [2**51 + 1])
    with pytest.raises(InputError, match="add up to 9007199254740993, more than"):
        CaptureHistories.from_frame(df)
    ok = ARTIFICIAL.assign(count=[2**51, 2**51, 2**51, 2**51 - 1])  # exactly MAX_COUNT
    assert CaptureHistories.from_frame(ok).n_observed == MAX_COUNT
    for counts in ([2**62] * 7, np.array([2**63] * 7, dtype=np.uint64), [2**52] * 7):
        with pytest.raises(InputError, match=r"2\*\*53"):
            CaptureHistories(counts, ["A", "B", "C"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -1, 0.5, True, "3 persons", None])
def test_every_non_count_is_an_input_error_naming_the_cell(bad):
    df = ARTIFICIAL.astype({"count": object})
    df.loc[1, "count"] = bad
    with pytest.raises(InputError, match=r"column 'count', row 1"):
        CaptureHistories.from_frame(df)
    if bad != 0.5:  # the private constructor takes fractional (expected) counts
        with pytest.raises(InputError, match=r"cell 2|numbers"):
            CaptureHistories(np.array([1, bad, 2, 3, 4, 5, 6], dtype=object), ["A", "B", "C"])


def test_thirty_lists_are_refused_before_any_two_to_the_k_allocation():
    for k in (MAX_LISTS + 1, 30, 64, 70):
        df = pd.DataFrame(np.eye(k, dtype=int), columns=[f"L{j}" for j in range(k)])
        df["count"] = 1
        with pytest.raises(InputError, match=f"at most {MAX_LISTS} lists.*got {k}"):
            CaptureHistories.from_frame(df)
        with pytest.raises(InputError, match=f"at most {MAX_LISTS} lists"):
            CaptureHistories.from_individuals(df.drop(columns="count"))
        pairs = pd.DataFrame({"person": range(k), "list": [f"L{j}" for j in range(k)]})
        with pytest.raises(InputError, match=f"at most {MAX_LISTS} lists"):
            CaptureHistories.from_memberships(pairs)


def test_mixed_kind_strata_are_an_error_naming_the_odd_rows():
    with pytest.raises(InputError, match=r"(?s)'s' must hold one kind.*numbers, text.*row 1"):
        CaptureHistories.from_frame(ARTIFICIAL.assign(s=[1, "1", 2, 2]), strata="s")
    with pytest.raises(InputError, match="one kind"):
        CaptureHistories.from_individuals(
            pd.DataFrame({"a": [1, 0, 1], "b": [0, 1, 1], "s": ["F", 2, True]}), strata="s")
    with pytest.raises(InputError, match="one kind"):
        CaptureHistories.from_frame(ARTIFICIAL.assign(s=[[1], [1], [2], [2]]), strata="s")
    tz = [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02")] * 2
    with pytest.raises(InputError, match="cannot be ordered"):
        CaptureHistories.from_frame(ARTIFICIAL.assign(s=tz), strata="s")
    # one kind is fine: 1 and 1.0 are the same number, hence one stratum
    h = CaptureHistories.from_frame(ARTIFICIAL.assign(s=[1, 1.0, 2, 2]), strata="s")
    assert h.n_strata == 2 and h.select(s=1).n_observed == 70


def test_list_names_are_normalised_and_duplicates_refused():
    with pytest.raises(InputError, match=r"\['A', 'A '\] are all 'A'"):
        CaptureHistories.from_frame(ARTIFICIAL.rename(columns={"C": "A "}))
    h = CaptureHistories.from_frame(ARTIFICIAL.rename(columns={"C": " C\u00a0"}))
    assert h.lists == ("A", "B", "C")
    with pytest.raises(InputError, match="are all 'a'"):
        CaptureHistories(np.ones(3), ["a", "a "])
    with pytest.raises(InputError, match="blank"):
        CaptureHistories(np.ones(3), ["a", " "])
    pairs = pd.DataFrame({"person": ["k1", "k1", "k2"], "list": ["A", "A ", "B"]})
    m = CaptureHistories.from_memberships(pairs)  # values are normalised: one list 'A'
    assert m.lists == ("A", "B") and m.counts.tolist() == [1, 1, 0]


def test_duplicated_column_names_and_roles_are_errors():
    df = ARTIFICIAL.copy()
    df.columns = ["A", "B", "A", "count"]
    for build in (CaptureHistories.from_frame, CaptureHistories.from_individuals):
        with pytest.raises(InputError, match=r"duplicated column names \['A'\]"):
            build(df)
    with pytest.raises(InputError, match="both as count and as lists"):
        CaptureHistories.from_frame(ARTIFICIAL, lists=["A", "B", "count"])
    with pytest.raises(InputError, match="both as strata and as lists"):
        CaptureHistories.from_frame(ARTIFICIAL, strata="C", lists=["A", "B", "C"])


def test_text_cells_are_described_never_shown():
    name, dob = "Maria Lopez", "1990-01-01"
    df = ARTIFICIAL.astype({"A": object, "count": object})
    df.loc[0, "A"] = name
    with pytest.raises(InputError) as err:
        CaptureHistories.from_frame(df)
    assert name not in str(err.value) and "<text of 11 characters>" in str(err.value)
    df = ARTIFICIAL.astype({"count": object})
    df.loc[3, "count"] = dob
    with pytest.raises(InputError) as err:
        CaptureHistories.from_frame(df)
    assert dob not in str(err.value) and "row 3: value <a date>" in str(err.value)
    assert all(dob != p.value for p in err.value.problems)


# junk frames: every constructor either builds valid histories or raises InputError, and no
# text cell ever reaches a message
_SENTINEL = "Zelda Quux 1984-02-29"
_cells = st.one_of(
    st.integers(-3, 3), st.integers(2**53 - 2, 2**64 + 5), st.integers(-(2**64), -(2**62)),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.sampled_from(["0", "1", " 1", "x", "", _SENTINEL, "1e400", "nan"]),
    st.just(pd.NA), st.just(pd.Timestamp("2024-01-01")), st.just([1]),
)
_names = st.sampled_from(["A", "A ", "B", "C", " C", "count", "s", 0, 1, "\u00c5", "A\u030a"])


@st.composite
def junk_frames(draw):
    n_cols = draw(st.integers(0, 7))
    n_rows = draw(st.integers(0, 5))
    cols = draw(st.lists(_names, min_size=n_cols, max_size=n_cols))
    data = [[draw(_cells) for _ in cols] for _ in range(n_rows)]
    df = pd.DataFrame(data, columns=pd.Index(cols, dtype=object), dtype=object)
    if draw(st.booleans()):  # a mostly sane frame, to reach the deeper checks
        k = draw(st.integers(2, 4))
        df = pd.DataFrame(pattern_matrix(k), columns=["A", "B", "C", "D"][:k]).astype(object)
        df["count"] = draw(st.lists(_cells, min_size=len(df), max_size=len(df)))
        df["s"] = draw(st.lists(_cells, min_size=len(df), max_size=len(df)))
    strata = draw(st.sampled_from([None, "s", ["s", "C"], "missing"]))
    lists = draw(st.sampled_from([None, ["A", "B"], ["A", "A "], ["A", "B", "count"]]))
    return df, strata, lists


def _only_input_errors(build):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TipstatWarning)
        try:
            h = build()
        except InputError as err:
            assert _SENTINEL not in str(err)
            return
    assert 2 <= h.k <= MAX_LISTS and len(set(h.lists)) == h.k
    assert 0 <= h.n_observed <= MAX_COUNT and np.isfinite(h.n_observed)
    assert h.stratum_counts.shape == (h.n_strata, 2**h.k - 1)


@given(junk_frames())
@settings(max_examples=50, deadline=None)
def test_junk_frames_raise_only_input_errors(case):
    df, strata, lists = case
    _only_input_errors(lambda: CaptureHistories.from_frame(df, strata=strata, lists=lists))
    _only_input_errors(lambda: CaptureHistories.from_individuals(df, lists=lists, strata=strata))
    if len(df.columns) >= 2:
        pairs = df.iloc[:, :2].set_axis(["person", "list"], axis=1)
        _only_input_errors(lambda: CaptureHistories.from_memberships(pairs))


@given(st.lists(_cells, min_size=1, max_size=9), st.lists(_names, min_size=0, max_size=4))
@settings(max_examples=50, deadline=None)
def test_junk_cell_arrays_raise_only_input_errors(cells, lists):
    _only_input_errors(lambda: CaptureHistories(np.array(cells, dtype=object), lists))
