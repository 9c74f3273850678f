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


@pytest.fixture
def caveat_method():
    """The name of a comparison method registered for one test, whose three estimates carry
    Caveats and statuses that are not estimates (made here: the CLI and the report show
    whatever the estimators attach): a lower bound ``[321, inf)`` with ``lower_bound_only``
    and ``untestable_weight``; a not-identifiable fit with ``not_identified_mass``; an
    estimate that does not exist, with a plain-text warning (code ``note``). Their odd numbers
    (987 as the lower bound's point, 5,555 and 7,777 with their intervals 4,444-6,666 and
    7,000-8,000) must never be shown as estimates."""
    from tipstat.comparison import METHODS, Method, register_method
    from tipstat.estimate import Caveat, Estimate

    def runner(h, options):
        common = {"level": 0.95, "n_observed": float(h.n_observed), "ci_method": "profile"}
        return [
            Estimate(n_hat=987.0, ci=(321.0, 1900.0), method="default (test)", model="[bound]",
                     **common,
                     warnings=(Caveat("lower_bound_only", "only a lower bound on N is "
                                      "supported", {"bound": 321.0}),
                               Caveat("untestable_weight", "94% of the weight on models with "
                                      "no residual df", {"share": 0.94}))).as_lower_bound(),
            Estimate(n_hat=5555.0, ci=(4444.0, 6666.0), method="test", model="[nid]",
                     status="not_identifiable", **common,
                     warnings=(Caveat("not_identified_mass", "71% of the posterior where N "
                                      "is not identified", {"mass": 0.71}),)),
            Estimate(n_hat=7777.0, ci=(7000.0, 8000.0), method="test", model="[dne]",
                     status="does_not_exist", **common, warnings=("a plain-text warning",)),
        ]

    register_method(Method("caveat_test", "caveat test", "log-linear", "fit_loglinear",
                           runner=runner, default=False))
    yield "caveat_test"
    del METHODS["caveat_test"]


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
