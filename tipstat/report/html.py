"""One self-contained HTML report of an MSE analysis.

The report is a single file: styles inline, plots embedded as base64 PNG, no executable script
and no link to the network (a Content-Security-Policy forbids loading anything), so it can be
mailed, archived and opened offline. Sections: data summary and accounting, list overlaps,
estimates by method, sensitivity and warnings, diagnostics, and the SDG 16.2.2 table with small
cells suppressed. The numbers are also embedded as JSON
(``<script type="application/json" id="tipstat-results">``) for scripts that read reports.

Needs matplotlib and Jinja2 (``pip install "tipstat[report]"``). The template is
``tipstat/report/templates/report.html`` (package data).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..estimate import Estimate
from ..histories import CaptureHistories

__all__ = ["build_report", "suppress_small_cells", "write_report"]

#: Cells with fewer persons than this are shown as "<5" in published tables (GLOTIP practice).
SUPPRESS_BELOW = 5

_COUNT_COLUMNS = ("detected", "undetected_est", "undetected_lcl", "undetected_ucl", "total_est",
                  "total_lcl", "total_ucl", "rate_per_100k", "rate_lcl", "rate_ucl")


def suppress_small_cells(table: pd.DataFrame, *, threshold: int = SUPPRESS_BELOW,
                         count: str = "detected",
                         columns: Sequence[str] = _COUNT_COLUMNS) -> pd.DataFrame:
    """Suppress rows of a published table whose detected count is below ``threshold``.

    The count becomes the string ``"<5"`` (GLOTIP's convention) and every derived figure of the
    row (estimates, intervals, rates) becomes ``"suppressed"``, so that a small cell cannot be
    recovered from its estimate. Rows are never removed.

    Parameters
    ----------
    table : DataFrame
        An SDG 16.2.2 table (``tipstat.sdg_16_2_2`` layout: ``detected``, ``total_est``, ...).
    threshold : int
        Smallest count shown (default 5).
    count : str
        The column of distinct detected persons.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"sex": ["F", "M"], "detected": [40, 3], "total_est": [120.0, 9.0]})
    >>> suppress_small_cells(t).values.tolist()
    [['F', '40', '120.0'], ['M', '<5', 'suppressed']]
    """
    if count not in table:
        raise InputError(f"suppress_small_cells: the table has no {count!r} column; it has "
                         f"{list(table.columns)}")
    if threshold < 1:
        raise InputError(f"suppress_small_cells: threshold={threshold!r}; expected >= 1")
    out = table.copy()
    detected = pd.to_numeric(out[count], errors="coerce")
    small = detected.notna() & (detected < threshold)
    cols = [c for c in columns if c in out]
    for c in cols:
        out[c] = out[c].astype(object).map(lambda v: "" if v is None or (
            isinstance(v, float) and math.isnan(v)) else str(v))
        out.loc[small, c] = "suppressed"
    out.loc[small, count] = f"<{threshold}"
    return out


# ---------------------------------------------------------------------------- helpers
_SDG_SHOWN = ("ref_area", "time_period", "sex", "age", "exploitation", "detected",
              "undetected_est", "total_est", "total_lcl", "total_ucl", "population",
              "rate_per_100k", "rate_lcl", "rate_ucl", "series_code", "obs_status")


def _suppression_masks(table: pd.DataFrame, threshold: int) -> tuple[pd.Series, pd.Series]:
    """Rows suppressed because they are small (primary) and to protect them (secondary).

    Primary: fewer than ``threshold`` detected, or marked ``obs_status == "suppressed"``.
    Secondary: marked ``"suppressed (secondary)"`` by :func:`tipstat.sdg_16_2_2`; a table with
    no ``obs_status`` (an unsuppressed one) gets :func:`tipstat.indicator.secondary_suppression`
    here, so that no small cell can be recovered from a published margin by subtraction.
    """
    small = pd.Series(False, index=table.index)
    secondary = pd.Series(False, index=table.index)
    if "detected" in table:
        detected = pd.to_numeric(table["detected"], errors="coerce")
        small |= detected.notna() & (detected < threshold)
    if "obs_status" in table:
        status = table["obs_status"].astype(str)
        secondary |= status == "suppressed (secondary)"
        small |= (status == "suppressed") & ~secondary
    elif small.any() and {"sex", "age", "exploitation", "detected"} <= set(table.columns):
        from ..indicator import secondary_suppression

        extra = secondary_suppression(table.reset_index(drop=True), small.to_numpy())
        secondary |= pd.Series(np.asarray(extra, dtype=bool), index=table.index)
    return small, secondary & ~small


def _sdg_display(table: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """The SDG table as shown in the report: main columns, readable numbers, small cells
    suppressed and, with them, the cells that would let one recover them by subtraction
    (:func:`_suppression_masks`)."""
    cols = [c for c in _SDG_SHOWN if c in table] or list(table.columns)
    out = table[cols].copy()
    primary, secondary = _suppression_masks(table, threshold)
    small = primary | secondary

    def fmt(v: Any, digits: int) -> str:
        v = pd.to_numeric(v, errors="coerce")
        return "" if pd.isna(v) else f"{v:,.{digits}f}"

    for c in out.columns:
        if c in _COUNT_COLUMNS or c == "population":
            digits = 2 if c.startswith("rate") else 0
            out[c] = out[c].map(lambda v, d=digits: fmt(v, d))
            if c != "population":
                out.loc[small, c] = "suppressed"
    if "detected" in out:
        out.loc[primary, "detected"] = f"<{threshold}"
        out.loc[secondary, "detected"] = "suppressed"
    return out
def _png(ax: Any) -> str:
    from .plots import figure_png

    data = base64.b64encode(figure_png(ax)).decode("ascii")
    return f"data:image/png;base64,{data}"


def _fmt(x: Any, digits: int = 0) -> str:
    if x is None:
        return "–"
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(f):
        return "–"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    return f"{f:,.{digits}f}"


def _scalar_diagnostics(est: Estimate) -> list[tuple[str, str]]:
    out = []
    for key, value in (est.diagnostics or {}).items():
        if key in ("coefficients", "fitted", "terms"):
            continue
        if isinstance(value, bool | int | float | str | np.integer | np.floating):
            text = _fmt(value, 4) if isinstance(value, float | np.floating) else str(value)
            out.append((key, text))
    return out


def _accounting_rows(accounting: Any) -> list[tuple[str, str]]:
    if accounting is None:
        return []
    if isinstance(accounting, pd.DataFrame):
        if accounting.shape[1] == 2:
            return [(str(a), _fmt(b) if isinstance(b, int | float | np.number) else str(b))
                    for a, b in accounting.itertuples(index=False, name=None)]
        return [(str(i), ", ".join(f"{c}: {v}" for c, v in r.items()))
                for i, r in accounting.iterrows()]
    if hasattr(accounting, "to_frame"):
        return _accounting_rows(accounting.to_frame())
    if isinstance(accounting, Mapping):
        return [(str(k), _fmt(v) if isinstance(v, int | float | np.number) else str(v))
                for k, v in accounting.items()]
    return [("accounting", str(accounting))]


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("tipstat.report", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["num"] = _fmt
    return env


# ---------------------------------------------------------------------------- the report
def build_report(
    h: CaptureHistories,
    *,
    comparison: pd.DataFrame | None = None,
    methods: str | Sequence[str] = "default",
    estimates: Sequence[Estimate] = (),
    accounting: Any = None,
    sdg_table: pd.DataFrame | None = None,
    published: float | None = None,
    sensitivity_methods: Sequence[str] | None = ("independence",),
    reliability: Any = None,
    title: str = "Multiple Systems Estimation report",
    source: str = "",
    level: float = 0.95,
    seed: int | None = None,
    suppress_below: int = SUPPRESS_BELOW,
) -> str:
    """Build the HTML report of an MSE analysis as one self-contained string.

    Parameters
    ----------
    h : CaptureHistories
        The capture histories analysed (pooled over strata for the estimates).
    comparison : ComparisonTable, optional
        A result of :func:`tipstat.compare`; computed with ``methods`` when not given.
    methods : "default", "all" or list of str
        Methods for :func:`tipstat.compare` when ``comparison`` is not given.
    estimates : sequence of Estimate
        Further estimates to show in the diagnostics section (e.g. a Bayesian fit).
    accounting : mapping, DataFrame or object with ``to_frame()``, optional
        Records read / used / excluded per reason (from reading IC-TIP records).
    sdg_table : DataFrame, optional
        An SDG 16.2.2 table; rows with fewer than ``suppress_below`` detected persons are
        suppressed in the report (:func:`suppress_small_cells`).
    published : float, optional
        A published figure to mark on the forest plot.
    sensitivity_methods : list of str or None
        Methods refitted with each list left out; ``None`` skips that section.
    reliability : DataFrame, optional
        A reliability check table (e.g. ``tipstat.validate.internal_consistency``) to show.
    title, source : str
        Heading and a line naming the data source.
    level : float
        Interval coverage.
    seed : int, optional
        Seed of every random step (recorded in the report).
    suppress_below : int
        Small-cell threshold for the SDG table.

    Returns
    -------
    str
        The HTML document.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.report.html import build_report
    >>> page = build_report(tipstat.datasets.load("Korea_3"), methods=["independence"])
    >>> page.startswith("<!DOCTYPE html>"), 'id="n-observed">123<' in page
    (True, True)
    """
    from .plots import plot_forest, plot_overlap_heatmap, plot_overlaps

    if not isinstance(h, CaptureHistories):
        raise InputError(f"build_report: expected tipstat.CaptureHistories, got {type(h).__name__}")
    import tipstat

    pooled = h.pooled() if h.n_strata > 1 else h
    if comparison is None:
        comparison = tipstat.compare(pooled, methods, level=level, seed=seed)
    table_estimates = list(getattr(comparison, "estimates", []) or [])
    all_estimates = table_estimates + list(estimates)

    sizes = pooled.list_sizes()
    data = {
        "lists": [{"name": n, "size": float(sizes[n])} for n in pooled.lists],
        "n_observed": float(pooled.n_observed),
        "k": pooled.k,
        "n_patterns": 2**pooled.k - 1,
        "n_zero": int((np.asarray(pooled.counts) == 0).sum()),
        "strata": list(h.strata),
        "n_strata": h.n_strata,
    }
    strata_table = None
    if h.n_strata > 1:
        idx = h.strata_index
        idx["observed"] = np.asarray(h.stratum_counts).sum(axis=1)
        strata_table = idx.to_dict("records")

    overlaps_png = _png(plot_overlaps(pooled))
    heatmap_png = _png(plot_overlap_heatmap(pooled))
    forest_png = _png(plot_forest(comparison, published=published)) if len(comparison) else None

    rows = []
    for i, r in comparison.reset_index(drop=True).iterrows():
        rows.append({k: r[k] for k in comparison.columns} | {"row": i})

    sens_rows, sens_notes = [], []
    if sensitivity_methods:
        if pooled.k >= 3:
            from ..comparison import leave_one_list_out

            sens = leave_one_list_out(pooled, list(sensitivity_methods), level=level, seed=seed)
            sens_rows = sens.to_dict("records")
            sens_notes = [f"{r.lost:,.0f} person(s) seen only on {r.left_out} are not observed "
                          "without it" for r in sens.drop_duplicates("left_out").itertuples()]
        else:
            sens_notes = ["leaving one list out needs at least three lists"]

    warn_list = []
    for est in all_estimates:
        for w in est.warnings:
            warn_list.append(f"{est.method} ({est.model}): {w}")
    warn_list = list(dict.fromkeys(warn_list))

    diag = []
    for est in all_estimates:
        item: dict[str, Any] = {"title": f"{est.method}: {est.model}", "status": est.status,
                                "scalars": _scalar_diagnostics(est), "images": []}
        coef = est.coefficients
        if coef is not None:
            item["coefficients"] = [
                {"term": t, "estimate": _fmt(c.estimate, 4), "se": _fmt(c.se, 4),
                 "p": _fmt(c.p, 4)} for t, c in coef.iterrows()]
        has_draws = (est.draws is not None and len(est.draws)) or est.idata is not None
        if has_draws:
            from .plots import plot_bootstrap, plot_posterior

            kind = str(est.ci_method).lower()
            plot = plot_posterior if (est.idata is not None or "posterior" in kind
                                      or "hpd" in kind) else plot_bootstrap
            try:
                item["images"].append(_png(plot(est)))
            except InputError:
                pass
        d = est.diagnostics or {}
        if any(isinstance(d.get(k), pd.DataFrame) for k in ("path", "search_path", "candidates")):
            from .plots import plot_model_search

            try:
                item["images"].append(_png(plot_model_search(est)))
            except InputError:
                pass
        diag.append(item)

    sdg = None
    if sdg_table is not None:
        from .plots import plot_sdg_rates

        shown = _sdg_display(sdg_table, suppress_below)
        primary, secondary = _suppression_masks(sdg_table, suppress_below)
        n_suppressed = int(primary.sum() + secondary.sum())
        image = None
        if {"rate_per_100k", "rate_lcl", "rate_ucl"} <= set(sdg_table.columns):
            plotted = sdg_table.copy()
            dims = [c for c in ("sex", "age", "exploitation") if c in plotted]
            if len(plotted) > 30 and dims:
                # the margins (total, by sex, by age, by form), not every cross-classified cell
                n_split = sum((plotted[c].astype(str) != "_T").astype(int) for c in dims)
                plotted = plotted[n_split <= 1]
            hidden = (primary | secondary).reindex(plotted.index, fill_value=False)
            plotted.loc[hidden, ["rate_per_100k", "rate_lcl", "rate_ucl"]] = np.nan
            image = _png(plot_sdg_rates(plotted))
        sdg = {"html": shown.to_html(index=False, classes="num", border=0, na_rep="–"),
               "n_suppressed": n_suppressed, "image": image, "threshold": suppress_below}

    reliability_html = None
    reliability_note = None
    if reliability is not None:
        indicator = getattr(reliability, "indicator", None)
        if isinstance(indicator, dict):
            reliability_note = indicator.get("note")
        frame = reliability.to_frame() if hasattr(reliability, "to_frame") else reliability
        if isinstance(frame, pd.DataFrame):
            reliability_html = frame.to_html(index=False, border=0, float_format=lambda v: f"{v:.3f}")

    results = {
        "schema": "tipstat-report/1",
        "tipstat_version": tipstat.__version__,
        "n_observed": float(pooled.n_observed),
        "lists": list(pooled.lists),
        "seed": seed,
        "estimates": comparison.to_records() if hasattr(comparison, "to_records") else [],
    }
    env = _environment()
    return env.get_template("report.html").render(
        title=title, source=source, version=tipstat.__version__,
        created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), seed=seed,
        level=level, data=data, strata_table=strata_table, accounting=_accounting_rows(accounting),
        overlaps_png=overlaps_png, heatmap_png=heatmap_png, forest_png=forest_png, rows=rows,
        skipped=comparison.attrs.get("skipped", []), published=published,
        sensitivity=sens_rows, sensitivity_notes=sens_notes,
        sensitivity_methods=list(sensitivity_methods or []), warnings=warn_list, diagnostics=diag,
        show_reliability=any(r.get("reliability") for r in rows),
        sdg=sdg, reliability_html=reliability_html, reliability_note=reliability_note,
        results_json=json.dumps(results, allow_nan=False).replace("</", "<\\/"),
    )


def write_report(path: str | Path, h: CaptureHistories, **kwargs: Any) -> Path:
    """Write :func:`build_report`'s HTML to ``path`` (parent folders are created).

    Returns the path written. Keyword arguments are those of :func:`build_report`.

    Examples
    --------
    >>> import tempfile, pathlib, tipstat
    >>> from tipstat.report.html import write_report
    >>> out = write_report(pathlib.Path(tempfile.mkdtemp()) / "korea.html",
    ...                    tipstat.datasets.load("Korea_3"), methods=["independence"])
    >>> out.stat().st_size > 10_000
    True
    """
    path = Path(path)
    page = build_report(h, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
