"""How an estimate is shown: its figure by status, and its caveats (code and message).

One place decides what every surface (``tipstat compare``'s HTML, the command line, the HTML
report) prints for an estimate, so that no surface shows a bare number the data do not carry:

=============================  =================================================================
status                         shown as
=============================  =================================================================
``ok``, ``extended``           the number and its interval
``lower_bound``                ``"at least L"``, ``L`` the lower end of the interval (the point
                               estimate when the interval has no finite lower end); no upper end
``does_not_exist``             ``"does not exist"`` (no number, whatever ``n_hat`` holds)
``not_identifiable``           ``"not identifiable"``
``not_converged``, ``failed``  ``"not converged"``, ``"failed"``
=============================  =================================================================

The numbers themselves stay in the results (``Estimate.to_dict()``, the JSON of the CLI and of
the report), next to their ``status``; only what is printed for a reader changes.

Examples
--------
>>> from tipstat.report.display import figure, interval
>>> figure("ok", 1234.4, 1100.0, 1400.0), interval("ok", 1100.0, 1400.0)
('1,234', '[1,100, 1,400]')
>>> figure("lower_bound", 1234.4, 1100.0, float("inf")), interval("lower_bound", 1100.0, 9e9)
('at least 1,100', '[1,100, no upper bound]')
>>> figure("does_not_exist", 5e6, 0.0, 1e9), interval("does_not_exist", 0.0, 1e9)
('does not exist', '-')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .._format import number
from ..estimate import Caveat

__all__ = ["ESTIMATED", "NO_ESTIMATE", "RATINGS", "bound", "caveat_dicts", "caveat_line", "codes",
           "estimate_lines", "figure", "interval", "is_estimate", "reliability_lines",
           "reliability_record"]

#: Statuses whose ``n_hat`` is an estimate (printed as a number).
ESTIMATED = ("ok", "extended")
#: Statuses that print words instead of a number.
NO_ESTIMATE = {"does_not_exist": "does not exist", "not_identifiable": "not identifiable",
               "not_converged": "not converged", "failed": "failed"}


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def is_estimate(status: Any, n_hat: Any) -> bool:
    """True when ``n_hat`` may be printed as an estimate: status ok/extended and finite."""
    return str(status) in ESTIMATED and _finite(n_hat)


def bound(status: Any, n_hat: Any, lower: Any) -> float | None:
    """The lower bound shown for status ``lower_bound``: the interval's lower end when finite,
    else ``n_hat`` when finite, else None."""
    if str(status) != "lower_bound":
        return None
    for v in (lower, n_hat):
        if _finite(v):
            return float(v)
    return None


def figure(status: Any, n_hat: Any, lower: Any = math.nan, upper: Any = math.nan, *,
           digits: int = 0, html: bool = False) -> str:
    """The estimate as a reader sees it (see the module's table)."""
    status = str(status)
    if status == "lower_bound":
        b = bound(status, n_hat, lower)
        return "no bound" if b is None else f"at least {number(b, digits, html=html)}"
    if status in ESTIMATED:
        return number(n_hat, digits, html=html) if _finite(n_hat) else \
            ("does not exist" if math.isinf(float(n_hat)) else "not identifiable")
    return NO_ESTIMATE.get(status, status.replace("_", " "))


def interval(status: Any, lower: Any, upper: Any, *, digits: int = 0, html: bool = False,
             brackets: bool = True, sep: str = ", ") -> str:
    """The interval as a reader sees it: ``"[L, U]"``; for ``lower_bound`` ``"[L, no upper
    bound]"``; a dash where there is no estimate or no interval."""
    status = str(status)
    dash = number(None, html=html)
    if status not in ESTIMATED and status != "lower_bound":
        return dash
    if not (_finite(lower) or _finite(upper)) or (status == "lower_bound" and not _finite(lower)):
        return dash
    lo = number(lower, digits, html=html)
    hi = "no upper bound" if status == "lower_bound" else number(upper, digits, html=html)
    text = f"{lo}{sep}{hi}"
    return f"[{text}]" if brackets else text


def codes(warnings: Iterable[Any]) -> list[str]:
    """The caveat codes of ``warnings`` (plain strings count as ``"note"``), in order."""
    return [Caveat.of(w).code for w in warnings or ()]


def caveat_line(warning: Any) -> str:
    """``"[code] message"``: one caveat as one line of text."""
    c = Caveat.of(warning) if not isinstance(warning, Mapping) else \
        Caveat(str(warning.get("code", "note")), str(warning.get("message", "")),
               warning.get("values") or {})
    return f"[{c.code}] {c.message}"


def caveat_dicts(warnings: Iterable[Any]) -> list[dict[str, Any]]:
    """``[{"code", "message", "values"}, ...]`` for JSON (plain strings become ``"note"``)."""
    out = []
    for w in warnings or ():
        if isinstance(w, Mapping):
            out.append({"code": str(w.get("code", "note")), "message": str(w.get("message", "")),
                        "values": dict(w.get("values") or {})})
        else:
            out.append(Caveat.of(w).to_dict())
    return out


def estimate_lines(est: Any) -> list[str]:
    """A readable summary of an :class:`~tipstat.Estimate` whose figure follows its status
    (:func:`figure`, :func:`interval`) and which ends with what the data cannot support: every
    caveat as ``"[code] message"``.

    Examples
    --------
    >>> from tipstat import Estimate
    >>> from tipstat.estimate import Caveat
    >>> est = Estimate(n_hat=1500.0, ci=(1200.0, 2100.0), level=0.95, n_observed=900.0,
    ...                method="demo", model="[A][B][C]",
    ...                warnings=(Caveat("lower_bound_only", "only a lower bound"),)).as_lower_bound()
    >>> print("\\n".join(estimate_lines(est)))  # doctest: +ELLIPSIS
    demo: [A][B][C]
      status      lower_bound - the data support only a lower bound on N ...
      observed    900
      N           at least 1,200   (95% lower end; the data support no upper bound)
      what the data cannot support:
        [lower_bound_only] only a lower bound
    """
    from ..estimate import STATUSES

    pct = f"{100 * est.level:g}%"
    lines = [f"{est.method}: {est.model}",
             f"  status      {est.status} - {STATUSES.get(est.status, '')}",
             f"  observed    {number(float(est.n_observed))}"]
    if is_estimate(est.status, est.n_hat):
        lines.append(f"  N-hat       {number(est.n_hat, 1)}   (undetected "
                     f"{number(est.undetected, 1)})")
        lines.append(f"  {pct} CI     {interval(est.status, est.ci[0], est.ci[1], digits=1)} "
                     f"({est.ci_method})")
        if _finite(est.se):
            lines.append(f"  SE          {number(est.se, 1)}")
    elif est.status == "lower_bound":
        lines.append(f"  N           {figure(est.status, est.n_hat, est.ci[0])}   ({pct} lower end; "
                     "the data support no upper bound)")
    else:
        lines.append(f"  N           {figure(est.status, est.n_hat)} (no estimate)")
    if _finite(est.deviance):
        lines.append(f"  deviance    {est.deviance:.4f} on {est.df:g} df;  AIC {est.aic:.4f}  "
                     f"BIC {est.bic:.4f}")
    reason = est.diagnostics.get("reason")
    if reason and est.status != "ok" and str(reason) not in est.warnings:
        lines.append(f"  note        {reason}")
    if est.warnings:
        lines.append("  what the data cannot support:")
        lines += [f"    {caveat_line(w)}" for w in est.warnings]
    else:
        lines.append("  what the data cannot support: no check raised a caveat")
    return lines


#: What a reliability rating means, in a reader's words.
RATINGS = {
    "consistent": "the method recovers the known list sizes (|mean log relative bias| <= 0.10 "
                  "and at least half of the intervals cover)",
    "questionable": "the method misses the known list sizes by 10-25% on average",
    "inconsistent": "the method misses the known list sizes by more than 25% on average, or "
                    "fewer than half of its intervals cover them",
    "not_assessed": "no list could be estimated from the others",
}


def reliability_record(ic: Any, seconds: float | None = None) -> dict[str, Any]:
    """The reliability check (:func:`tipstat.validate.internal_consistency`) as plain values:
    ``method``, ``rating``, ``mean_log_rel_bias``, ``coverage``, ``lists``, ``evaluated``,
    ``excluded`` (lists with fewer than ``min_seen`` members on the others: ``too_few_seen``),
    ``failed``, ``min_seen``, ``note``, ``seconds`` and one row per list (``list``,
    ``n_true``, ``n_seen``, ``n_hat``, ``lower``, ``upper``, ``log_rel_bias``, ``covered``,
    ``status``)."""
    s, ind = ic.summary, ic.indicator
    rows = []
    for r in ic.table.to_dict("records"):
        covered = r.get("covered")
        rows.append({"list": str(r["list"]), "n_true": float(r["n_true"]),
                     "n_seen": float(r["n_seen"]), "n_hat": float(r["n_hat"]),
                     "lower": float(r["lower"]), "upper": float(r["upper"]),
                     "log_rel_bias": float(r["log_rel_bias"]),
                     "covered": None if covered is None or covered != covered else bool(covered),
                     "status": str(r["status"])})
    return {"method": str(ic.method), "rating": ind["rating"],
            "meaning": RATINGS.get(ind["rating"], ""),
            "mean_log_rel_bias": float(s["mean_log_rel_bias"]),
            "coverage": float(s["coverage"]), "level": float(ic.level),
            "lists": int(s["lists"]), "evaluated": int(s["evaluated"]),
            "excluded": int(s["excluded"]), "failed": int(s["failed"]),
            "bounds": int(s["bounds"]), "bounds_hold": int(s["bounds_hold"]),
            "min_seen": int(ic.min_seen), "note": ind["note"],
            "seconds": None if seconds is None else round(float(seconds), 2), "per_list": rows}


def reliability_lines(ic: Any, seconds: float | None = None) -> list[str]:
    """The reliability check as text: one line per list and the rating (see
    :func:`reliability_record`)."""
    rec = reliability_record(ic, seconds)
    pct = f"{100 * rec['level']:g}%"
    took = f"; {rec['seconds']:.1f} s" if rec["seconds"] is not None else ""
    lines = [f"reliability check: how {rec['method']} does on your own lists (each list in turn "
             "is a population of known size, estimated from the others; Binette & Steorts "
             f"2022{took})",
             f"  {'list':<12} {'on list':>9} {'elsewhere':>9} {'estimate':>10} "
             f"{pct + ' interval':>22} {'log bias':>8}  {'covers':<6} status"]
    for r in rec["per_list"]:
        shown = is_estimate(r["status"], r["n_hat"]) or r["status"] == "lower_bound"
        est = figure(r["status"], r["n_hat"], r["lower"]) if shown else "-"
        ci = interval(r["status"], r["lower"], r["upper"]) if shown else "-"
        bias = f"{r['log_rel_bias']:+.2f}" if _finite(r["log_rel_bias"]) else "-"
        cov = "-" if r["covered"] is None else ("yes" if r["covered"] else "no")
        lines.append(f"  {r['list'][:12]:<12} {number(r['n_true']):>9} {number(r['n_seen']):>9} "
                     f"{est:>10} {ci:>22} {bias:>8}  {cov:<6} {r['status']}")
    if rec["rating"] == "not_assessed":
        summary = "not assessed"
    else:
        summary = (f"mean log relative bias {rec['mean_log_rel_bias']:+.2f}, coverage "
                   f"{100 * rec['coverage']:.0f}% over {rec['evaluated']} of {rec['lists']} lists")
    lines.append(f"  rating: {rec['rating']} ({summary}): {rec['meaning']}")
    if rec["excluded"]:
        lines.append(f"  {rec['excluded']} list(s) excluded as too_few_seen (fewer than "
                     f"{rec['min_seen']} members on the other lists)")
    if rec.get("bounds"):
        lines.append(f"  {rec['bounds']} list(s) got only a lower bound (no bias to measure); "
                     f"the bound holds for {rec['bounds_hold']} of them")
    if rec["failed"]:
        lines.append(f"  {rec['failed']} list(s) without an estimate (see status)")
    return lines
