"""Estimators. Each takes :class:`~tipstat.CaptureHistories` and returns an
:class:`~tipstat.Estimate`. This package knows nothing of files, IC-TIP or plots."""

from .design import Design, loglinear_design, parse_terms
from .loglinear import fit_design, fit_loglinear

__all__ = ["Design", "fit_design", "fit_loglinear", "loglinear_design", "parse_terms"]
