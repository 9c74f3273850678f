"""Outputs pinned before the one-engine refactor (issue 15) stay what they were.

The cases and how they were produced are in ``tests/reference/pinned.py``. Numbers are compared at
relative tolerance 1e-9 (the refactor must not change the mathematics; 1e-9 allows the last-bit
differences of another BLAS or summation order, and is six orders of magnitude below the rounding
of any published estimate); statuses and model labels must be equal.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.reference import pinned

PINNED = json.loads(pinned.PATH.read_text())


def _same(got, want, where: str) -> None:
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for key in want:
            _same(got[key], want[key], f"{where}/{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not math.isinf(want):
        assert g_is_num(got), where
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), where
    else:
        assert got == want, where


def g_is_num(x) -> bool:
    return isinstance(x, float | int) and not isinstance(x, bool)


def test_every_case_is_pinned():
    assert set(pinned.case_names()) == set(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned(name):
    _same(pinned.compute([name])[name], PINNED[name], name)
