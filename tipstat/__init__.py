"""tipstat: Multiple Systems Estimation of trafficking in persons, from IC-TIP coded victim
records to the SDG 16.2.2 indicator.

Quick start
-----------
>>> import tipstat
>>> h = tipstat.datasets.load("UK_5")
>>> est = tipstat.fit_loglinear(h, "independence")
>>> round(est.n_hat)
13444

Heavy dependencies (PyMC, ArviZ, matplotlib) are imported only by the functions that need them,
so ``import tipstat`` is fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import EstimationError, InputError, TipstatError, TipstatWarning
from .estimate import Caveat, Estimate, EstimateTable, StratumCells
from .histories import CaptureHistories

__version__ = "0.1.0"

# public name -> module that defines it (imported on first use)
_LAZY = {
    "estimate_population": "tipstat.models.default",
    "fit_loglinear": "tipstat.models.loglinear",
    "fit_design": "tipstat.models.loglinear",
    "fit_latent_class": "tipstat.models.latent_class",
    "loglinear_design": "tipstat.models.design",
    "Design": "tipstat.models.design",
    "simulate_populations": "tipstat.simulate_populations",
    "internal_consistency": "tipstat.validate",
    "check_assumptions": "tipstat.validate",
    "select_loglinear": "tipstat.models.selection",
    "bootstrap": "tipstat.models.bootstrap",
    "closedp": "tipstat.models.heterogeneity",
    "fit_closedp_model": "tipstat.models.heterogeneity",
    "heterogeneity_design": "tipstat.models.heterogeneity",
    "closedp_design": "tipstat.models.heterogeneity",
    "fit_graphical": "tipstat.models.graphical",
    "fit_bayes_loglinear": "tipstat.models.bayes_loglinear",
    "fit_loglinear_bma": "tipstat.models.bma",
    "compare": "tipstat.comparison",
    "sdg_16_2_2": "tipstat.indicator",
    "fit_stratified": "tipstat.models.stratified",
    "read_records": "tipstat.ictip.records",
    "run_indicator": "tipstat.pipeline",
    "IndicatorRun": "tipstat.pipeline",
    "DEFAULT_SEED": "tipstat.pipeline",
    "normalise_population": "tipstat.indicator",
    "write_sdmx_csv": "tipstat.sdmx",
}
_SUBMODULES = {"datasets", "models", "parallel", "ictip", "linkage", "simulate", "disclosure",
               "pipeline", "redact", "survey"}

__all__ = [
    "CaptureHistories",
    "Caveat",
    "Estimate",
    "EstimateTable",
    "EstimationError",
    "InputError",
    "StratumCells",
    "TipstatError",
    "TipstatWarning",
    "__version__",
    *_LAZY,
    *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = import_module(f"tipstat.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tipstat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
