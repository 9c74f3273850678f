"""Shared fixtures: the team's datasets and R reference numbers live in ../shared (one place)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import tipstat

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the tests read the team's shared folder at ../shared "
            "(next to the repository checkout)"
        )
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def load_shared(shared_dir):
    """Read a table of ../shared/datasets as CaptureHistories (strata kept)."""
    index = pd.read_csv(shared_dir / "datasets" / "datasets.csv")

    def load(name: str) -> tipstat.CaptureHistories:
        row = index[index.dataset == name].iloc[0]
        df = pd.read_csv(shared_dir / "datasets" / row.file)
        lists = row.lists.split(";")
        strata = [c for c in df.columns if c not in lists and c != "count"]
        return tipstat.CaptureHistories.from_frame(df, strata=strata or None, lists=lists)

    return load


@pytest.fixture(scope="session")
def r_reference(shared_dir) -> pd.DataFrame:
    return pd.read_csv(_require(shared_dir / "reference" / "r_reference.csv"))


@pytest.fixture(scope="session")
def published(shared_dir) -> pd.DataFrame:
    return pd.read_csv(_require(shared_dir / "reference" / "published.csv"))


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
