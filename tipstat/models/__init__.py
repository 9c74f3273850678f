"""Estimators. Each takes :class:`~tipstat.CaptureHistories` and returns an
:class:`~tipstat.Estimate`. This package knows nothing of files, IC-TIP or plots."""

from .._checks import DEFAULT_SEED
from .design import Design, loglinear_design, parse_terms
from .loglinear import fit_design, fit_loglinear

__all__ = ["DEFAULT_SEED", "Design", "fit_design", "fit_loglinear", "loglinear_design", "parse_terms"]
