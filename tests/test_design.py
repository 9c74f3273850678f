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
