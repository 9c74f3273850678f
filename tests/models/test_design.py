"""Model specifications: parsing, hierarchical closure, design columns."""

from __future__ import annotations

import numpy as np
import pytest

import tipstat
from tipstat import InputError
from tipstat.models.design import closure, loglinear_design, parse_terms, term_label

LISTS = ["LA", "NG", "PF", "GO"]


def labels(spec):
    return [term_label(m, LISTS) for m in parse_terms(spec, LISTS)]


def test_spellings_of_the_same_model_agree():
    assert labels("LA:NG + PF:GO") == labels(["LA:NG", "PF:GO"]) == labels([("NG", "LA"),
                                                                             ("GO", "PF")])
    assert labels("LA:NG + PF:GO") == ["LA:NG", "PF:GO"]


def test_star_and_higher_orders_are_closed_hierarchically():
    assert labels("LA*NG") == ["LA:NG"]
    assert labels("LA:NG:PF") == ["LA:NG", "LA:PF", "NG:PF", "LA:NG:PF"]
    assert labels("LA*NG*PF") == labels("LA:NG:PF")
    assert labels("all2") == ["LA:NG", "LA:PF", "NG:PF", "LA:GO", "NG:GO", "PF:GO"]
    assert len(labels("all3")) == 6 + 4
    assert labels("independence") == [] and labels([]) == []


def test_closure_is_idempotent():
    masks = closure([0b0111, 0b1010])
    assert closure(masks) == masks


def test_design_columns_are_products_of_indicators():
    d = loglinear_design(["A", "B", "C"], "A:B + B:C")
    assert d.columns == ("(Intercept)", "A", "B", "C", "A:B", "B:C")
    m = d.matrix
    assert m.shape == (8, 6)
    assert (m[0] == [1, 0, 0, 0, 0, 0]).all()  # the unobserved cell has only the intercept
    assert (m[7] == 1).all()  # A+B+C has every term
    assert (m[:, 4] == (m[:, 1] * m[:, 2])).all()
    assert d.rank == 6


@pytest.mark.parametrize(
    ("spec", "message"),
    [("LA:XX", r"unknown list name\(s\) \['XX'\]"), ("LA:LA", "repeated"),
     ("LA:NG + ", "empty term"), ("LA*NG:PF", "mix of")],
)
def test_bad_specifications(spec, message):
    with pytest.raises(InputError, match=message):
        parse_terms(spec, LISTS)


def test_model_name_reads_like_the_terms():
    h = tipstat.datasets.load("UK_5")
    est = tipstat.fit_loglinear(h, "NG:GP + LA:NG", ci="none")
    assert est.model == "[LA:NG, NG:GP]"
    assert list(est.coefficients.index[-2:]) == ["LA:NG", "NG:GP"]
    assert np.isfinite(est.coefficients["se"]).all()


# --------------------------------------------------------------------------- terms and spaces
def test_one_term_parser_everywhere():
    """design re-exports the one parser of tipstat.models.terms; bma's maximal model uses it."""
    from tipstat.models import terms
    from tipstat.models.bma import bma_model_space

    assert parse_terms is terms.parse_terms and closure is terms.closure
    assert terms.term_lists("A*B + C:D") == [["A", "B"], ["C", "D"]]
    s = bma_model_space(tipstat.datasets.load("HIV_Rome_4"), max_model="c1*c2 + c3:c4")
    assert [s.label(t) for t in s.optional] == ["c1:c2", "c3:c4"]


def test_term_space_of_twenty_lists():
    """20 lists: 190 two-way terms, 2^190 hierarchical models (an exact integer, far beyond a
    64-bit model mask), 190 neighbours of the independence model; the 1.7 GiB dense design is
    refused with an InputError before it is allocated."""
    from tipstat.models.terms import TermSpace

    lists = [f"L{j}" for j in range(20)]
    space = TermSpace(lists, 2)
    assert len(space.terms) == 190 and space.count_models() == 2**190
    nb = space.neighbours(())
    assert len(nb) == 190 and space.label(nb[-1]) == "[L18:L19]"
    two = space.neighbours(nb[0])   # from [L0:L1]: drop it, or add one of the other 189
    assert len(two) == 190 and () in two
    with pytest.raises(tipstat.InputError, match="GiB"):
        space.X  # noqa: B018


def test_term_space_hierarchy():
    """Three-way terms need their three two-way sub-terms: with four lists and terms up to order
    3 there are 113 hierarchical models (64 without three-way terms + 49 with)."""
    from tipstat.models.terms import TermSpace, hierarchical

    space = TermSpace("ABCD", 3)
    models = list(space.enumerate())
    assert len(models) == space.count_models() == 113
    assert all(hierarchical(m) for m in models)
    abc = parse_terms("A:B:C", "ABCD")
    assert space.label(abc) == "[A:B, A:C, B:C, A:B:C]"
    # from [A:B, A:C, B:C, A:B:C] A:B may not be dropped (A:B:C needs it); A:B:C may
    drops = [m for m in space.neighbours(abc) if len(m) < len(abc)]
    assert drops == [parse_terms("A:B + A:C + B:C", "ABCD")]


def test_search_driver_with_rule_callbacks():
    """The one search driver: a rule given as callbacks (propose, fit, choose), here a toy
    hill climb on integers, reaches the minimum and records its path."""
    from tipstat.models.search import Decision, climb, exhaustive

    def choose(m, f, cands, scores):
        j = min(range(len(cands)), key=scores.__getitem__)
        if scores[j] < f:
            return Decision(cands[j], scores[j], [{"to": cands[j]}])
        return Decision.end()

    out = climb(0, 25, lambda m, f: [m - 1, m + 1],
                lambda c, m, f: [(x - 5) ** 2 for x in c], choose)
    assert (out.model, out.fit, out.steps, out.path[-1]) == (5, 0, 5, {"to": 5})
    # sequential: candidates judged one at a time, the first accepted is taken
    seq = climb(0, None, lambda m, f: [m + 2, m + 1] if m < 4 else [],
                lambda c, m, f: c[0], lambda m, f, c, x: Decision(x, x) if x % 2 == 0
                else Decision.skip({"skipped": x}), sequential=True)
    assert seq.model == 4 and seq.steps == 2
    j, _, scores = exhaustive([3, 1, 2], lambda ms: ms, lambda f: np.asarray(f))
    assert j == 1 and list(scores) == [3, 1, 2]


def test_design_too_large_for_memory_is_refused():
    """All two-way terms of 20 lists: 2^20 patterns x 211 columns = 1.6 GiB, refused with an
    InputError before the matrix is built; independence of 20 lists (21 columns) is built."""
    lists = [f"L{j}" for j in range(20)]
    with pytest.raises(InputError, match="GiB"):
        loglinear_design(lists, "all2")
    assert loglinear_design(lists, "independence").matrix.shape == (2**20, 21)
