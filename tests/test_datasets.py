"""Bundled published tables equal the team's shared copies and carry their citations."""

from __future__ import annotations

import pandas as pd
import pytest

import tipstat
from tipstat import InputError, datasets

REQUIRED = ["UK_6", "UK_5", "UK_4", "Netherlands_6", "Netherlands_5", "NewOrleans_8",
            "NewOrleans_5", "Western_5", "Korea_3", "Australia_4", "Kosovo_4"]


def test_required_tables_are_bundled():
    assert set(REQUIRED) <= set(datasets.names())


@pytest.mark.parametrize("name", datasets.names())
def test_bundled_table_equals_shared_copy(name, load_shared, shared_dir):
    index = pd.read_csv(shared_dir / "datasets" / "datasets.csv")
    if name not in set(index.dataset):
        pytest.fail(f"{name} is bundled but not in shared/datasets")
    bundled = datasets.load(name)
    assert bundled.equals(load_shared(name))
    meta = datasets.info(name)
    assert meta["n_observed"] == bundled.n_observed
    assert list(meta["lists"]) == list(bundled.lists)
    assert len(meta["citation"]) > 20 and all(meta["lists"].values())


def test_unknown_dataset():
    with pytest.raises(InputError, match="unknown dataset 'UK_7'"):
        datasets.load("UK_7")


def test_strata_can_be_pooled():
    assert datasets.load("Spina_3", strata=False).strata == ()
    assert tipstat.datasets.citation("Korea_3").startswith("Ball")
