"""Fixtures: the published tables as ``tipstat.datasets`` ships them and the reference numbers in
``tests/reference/`` (copies of the team's R and published figures, with provenance in its
README). Nothing here reads outside the repository: a fresh clone runs the whole suite."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

import tipstat

# Property tests are deterministic by default (the same examples on every run and machine, so CI
# cannot turn red by chance); explore with `pytest --hypothesis-profile=explore` or
# `--hypothesis-seed=N`, and turn what that finds into a deterministic test.
settings.register_profile("deterministic", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=500)
settings.load_profile("deterministic")

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference"
DATA = HERE / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Test input files kept in the repository (``tests/data``: the HTCDS templates...)."""
    return DATA


@pytest.fixture(scope="session")
def load_table():
    """A published table as :class:`tipstat.CaptureHistories` (strata kept), as the package
    ships it (``tipstat.datasets.load``; ``tests/test_datasets.py`` checks that each bundled file
    is byte for byte the published one)."""

    def load(name: str) -> tipstat.CaptureHistories:
        return tipstat.datasets.load(name)

    return load


@pytest.fixture(scope="session")
def r_reference() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "r_reference.csv")


@pytest.fixture(scope="session")
def published() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "published.csv")


def rcapture_terms(model: str, lists: list[str]) -> list[str] | str:
    """Terms of a reference row's model label: 'best-BIC [12,13,4]' -> ['A:B', 'A:C']
    (1-based list digits, single digits are main effects); 'Mt + c1:c2' -> ['c1:c2']."""
    if model.startswith("Mt + all two-way") or model.startswith("all two-way"):
        return "all2"
    if model in ("Mt",) or model.startswith("independence") or model.startswith("main effects"):
        return "independence"
    m = re.search(r"\[([0-9,]+)\]", model)
    if m:
        out = []
        for token in m.group(1).split(","):
            if len(token) > 1:
                out.append(":".join(lists[int(d) - 1] for d in token))
        return out
    if model.startswith("Mt + "):
        return [model[len("Mt + "):]]
    raise ValueError(model)
