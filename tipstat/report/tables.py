"""The comparison table as HTML and as JSON records (rendering only: the numbers come from
:func:`tipstat.compare`).

Examples
--------
>>> import tipstat
>>> from tipstat.report.tables import comparison_html, comparison_records
>>> table = tipstat.compare(tipstat.datasets.load("Korea_3"), ["independence", "all2"])
>>> [r["status"] for r in comparison_records(table)], comparison_records(table)[1]["n_hat"]
(['ok', 'does_not_exist'], None)
>>> "tipstat-comparison" in comparison_html(table)
True
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from .._json import jsonable
from ..comparison import COLUMNS
from .display import caveat_dicts, figure, interval

__all__ = ["comparison_html", "comparison_records"]


def comparison_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a comparison table as plain Python values for JSON.

    The keys are :data:`tipstat.comparison.COLUMNS`; non-finite numbers become ``None``;
    ``warnings`` is a list of ``{"code", "message", "values"}`` (as ``Estimate.to_dict()``;
    a plain-text warning has code ``"note"``) and ``warning_codes`` a list of their codes.
    ``n_hat`` stays the estimator's number: its meaning is given by ``status``
    (``lower_bound``: only a lower bound is supported; ``does_not_exist`` /
    ``not_identifiable``: no estimate).
    """
    out = []
    for _, row in table.iterrows():
        rec = {col: row[col] for col in COLUMNS if col in row}
        rec["warnings"] = caveat_dicts(row.get("warnings") or ())
        rec["warning_codes"] = [w["code"] for w in rec["warnings"]]
        out.append(jsonable(rec))
    return out


def _num(x: Any, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "&ndash;"
    if isinstance(x, float) and math.isinf(x):
        return "&infin;"
    return f"{x:,.{digits}f}"


def comparison_html(table: pd.DataFrame) -> str:
    """A compact HTML table of a comparison (method, model, status, N-hat, interval, kind,
    AIC, BIC, diagnostics, caveats with their codes), every text escaped; rows whose estimate
    is not usable in red. A row that is not an estimate shows its status in words instead of a
    number, and a lower bound as "at least L" (:mod:`tipstat.report.display`).

    In a notebook: ``IPython.display.HTML(comparison_html(table))``.
    """
    level = table.attrs.get("level", 0.95)
    head = ("<tr><th>method</th><th>model</th><th>status</th><th>N-hat</th>"
            f"<th>{100 * level:g}% interval</th><th>kind</th><th>AIC</th><th>BIC</th>"
            "<th>diagnostics</th><th>caveats</th></tr>")
    rows = []
    for _, r in table.iterrows():
        style = "" if r["status"] in ("ok", "extended") else " style='color:#a00'"
        caveats = "".join(
            f"<li><code>{html.escape(c['code'])}</code> {html.escape(c['message'])}</li>"
            for c in caveat_dicts(r.get("warnings") or ()))
        rows.append(
            f"<tr{style}><td>{html.escape(str(r['method']))}</td>"
            f"<td>{html.escape(str(r['model']))}</td><td>{html.escape(str(r['status']))}</td>"
            f"<td style='text-align:right'>"
            f"{html.escape(figure(r['status'], r['n_hat'], r['lower'], r['upper']))}</td>"
            f"<td style='text-align:right'>"
            f"{html.escape(interval(r['status'], r['lower'], r['upper']))}</td>"
            f"<td>{html.escape(str(r['ci_method']))}</td>"
            f"<td style='text-align:right'>{_num(r['aic'], 2)}</td>"
            f"<td style='text-align:right'>{_num(r['bic'], 2)}</td>"
            f"<td>{html.escape(str(r['diagnostics']))}</td>"
            f"<td>{'<ul>' + caveats + '</ul>' if caveats else 'none'}</td></tr>"
        )
    n_obs = table.attrs.get("n_observed")
    caption = (f"<caption>tipstat comparison: {len(table)} rows"
               + (f"; {_num(float(n_obs))} persons observed" if n_obs is not None else "")
               + "</caption>")
    skipped = table.attrs.get("skipped") or []
    note = (f"<p style='color:#666'>not available in this installation: "
            f"{html.escape(', '.join(skipped))}</p>" if skipped else "")
    return (f"<div class='tipstat-comparison'><table>{caption}<thead>{head}</thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{note}</div>")
