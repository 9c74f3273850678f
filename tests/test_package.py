"""Package-level promises: fast import without heavy libraries, one error hierarchy."""

from __future__ import annotations

import subprocess
import sys

import tipstat


def test_import_does_not_load_heavy_libraries():
    code = ("import sys, tipstat; heavy = [m for m in ('pymc', 'arviz', 'pytensor', 'matplotlib', "
            "'splink', 'dask', 'duckdb', 'jinja2', 'statsmodels') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_error_hierarchy():
    assert issubclass(tipstat.InputError, tipstat.TipstatError)
    assert issubclass(tipstat.InputError, ValueError)
    assert issubclass(tipstat.EstimationError, tipstat.TipstatError)


def test_public_names_resolve():
    for name in tipstat.__all__:
        assert getattr(tipstat, name) is not None, name
