"""Bundled published tables are byte for byte the published ones and carry their citations."""

from __future__ import annotations

import hashlib
import io
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

import tipstat
from tipstat import InputError, datasets

REQUIRED = ["UK_6", "UK_5", "UK_4", "Netherlands_6", "Netherlands_5", "NewOrleans_8",
            "NewOrleans_5", "Western_5", "Korea_3", "Australia_4", "Kosovo_4"]


def test_required_tables_are_bundled():
    assert set(REQUIRED) <= set(datasets.names())


def _manifest() -> dict[str, str]:
    """``file -> sha256`` of the published tables as checked against the originals
    (``tests/reference/datasets.sha256``, provenance in that folder's README)."""
    lines = (Path(__file__).parent / "reference" / "datasets.sha256").read_text().split("\n")
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def test_every_bundled_table_is_in_the_manifest():
    assert sorted(_manifest()) == sorted(f"{n}.csv" for n in datasets.names())


@pytest.mark.parametrize("name", datasets.names())
def test_bundled_table_is_the_published_one(name):
    raw = resources.files("tipstat.datasets").joinpath("data", f"{name}.csv").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == _manifest()[f"{name}.csv"]
    bundled = datasets.load(name)
    meta = datasets.info(name)
    assert meta["n_observed"] == bundled.n_observed
    assert list(meta["lists"]) == list(bundled.lists)
    assert len(meta["citation"]) > 20 and all(meta["lists"].values())
    # the file's own rows: list columns of 0/1, positive counts, as read
    df = pd.read_csv(io.BytesIO(raw))
    assert int(df["count"].sum()) == bundled.n_observed
    assert (df["count"] > 0).all()


def test_unknown_dataset():
    with pytest.raises(InputError, match="unknown dataset 'UK_7'"):
        datasets.load("UK_7")


def test_strata_can_be_pooled():
    assert datasets.load("Spina_3", strata=False).strata == ()
    assert tipstat.datasets.citation("Korea_3").startswith("Ball")
