"""The report sections of the survey side: "Survey prevalence" (the published domain tables,
exclusions and caveats) and "Side by side with MSE" (what each source counts).

They render results (:func:`tipstat.survey.run_survey`, :func:`tipstat.survey.side_by_side`);
they compute nothing. Withheld cells (:func:`tipstat.survey.publish_prevalence`) are shown as
``x``; a figure the data do not support is shown in words. :func:`build_survey_report` makes a
self-contained page of the two sections (the page template ``base.html`` that the MSE report
extends too: the same head and styles; no executable script, no network);
:func:`tipstat.report.html.build_report` includes them in the MSE report (``survey=``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .._format import number
from ..errors import InputError
from .environment import environment

__all__ = ["build_survey_report", "survey_sections", "write_survey_report"]

WITHHELD = "x"
_STATUS = {"ok": "estimated", "small_domain": "small domain: read the interval",
           "empty_domain": "no respondents", "not_estimable": "not estimable",
           "not_estimated": "not stated"}
TITLES = {"forced_labour": "Forced labour",
          "trafficking_forced_labour": "Trafficking for forced labour",
          "child_forced_labour": "Forced labour of children",
          "forced_commercial_sexual_exploitation": "Forced commercial sexual exploitation of "
                                                   "adults and children",
          "adult_forced_labour": "Forced labour of adults"}


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _ci(lo: Any, hi: Any, digits: int) -> str:
    if not (_finite(lo) and _finite(hi)):
        return number(None, html=True)
    return f"{number(lo, digits, html=True)}\u2013{number(hi, digits, html=True)}"


def _rows(part: pd.DataFrame, dims: list[str]) -> list[dict[str, Any]]:
    rows = []
    for r in part.to_dict("records"):
        split = [f"{d} {r[d]}" for d in dims if str(r.get(d, "_T")) != "_T"]
        domain = ", ".join(s.replace(" _U", ": not stated") for s in split) or "Total"
        withheld = str(r.get("obs_status")) == "suppressed"
        status = str(r.get("status") or "")
        shown: dict[str, Any] = {"domain": domain, "total": not split,
                                 "n_sample": number(r.get("n_sample"), html=True)}
        if withheld:
            shown.update({k: WITHHELD for k in ("n_cases", "rate", "rate_ci", "total_est",
                                                "total_ci", "deff")})
            shown["status"] = "withheld"
        else:
            estimated = status in ("ok", "small_domain") and _finite(r.get("proportion"))
            dash = number(None, html=True)
            shown.update({
                "n_cases": number(r.get("n_cases"), html=True),
                "rate": number(1e5 * float(r["proportion"]), 1, html=True) if estimated
                else dash,
                "rate_ci": _ci(1e5 * float(r.get("ci_lower", math.nan)),
                               1e5 * float(r.get("ci_upper", math.nan)), 1) if estimated
                else dash,
                "total_est": number(r.get("total"), 0, html=True) if estimated else dash,
                "total_ci": _ci(r.get("total_lower"), r.get("total_upper"), 0) if estimated
                else dash,
                "deff": number(r.get("deff"), 2, html=True) if estimated else dash,
                "status": _STATUS.get(status, status.replace("_", " "))})
        rows.append(shown)
    return rows


def _context(run: Any, level: float | None) -> dict[str, Any]:
    published = getattr(run, "published", run)
    table = getattr(published, "table", None)
    if not isinstance(table, pd.DataFrame):
        raise InputError("survey report: expected a tipstat.survey.SurveyRun (run_survey) or a "
                         f"PublishedPrevalence (publish_prevalence), got {type(run).__name__}")
    dims = list(getattr(published, "dims", []))
    lvl = level if level is not None else getattr(run, "level", None)
    if lvl is None:
        levels = pd.to_numeric(table.get("level"), errors="coerce").dropna()
        lvl = float(levels.iloc[0]) if len(levels) else 0.95
    design = getattr(run, "design", None)
    methods = sorted({str(m) for m in table.get("ci_method", []) if str(m) not in ("", "nan")})
    excluded = [{"stage": stage, "reason": reason, "n": n}
                for stage, reasons in (getattr(run, "excluded", {}) or {}).items()
                for reason, n in reasons.items()]
    audit_text = ""
    try:
        audits = published.audit()
        ok = all(a.protected for a in audits.values())
        n = sum(a.n_attacked for a in audits.values())
        audit_text = (f"an attacker who knows every published case count and that domains add "
                      f"up to the total attacked {n} withheld cell(s) by integer programming: "
                      + ("none recovered exactly or to two values." if ok else
                         "SOME CELLS ARE NOT PROTECTED."))
    except (AttributeError, InputError):
        pass
    definition = dict(getattr(run, "definition", {}) or {})
    definition.setdefault("name", "-")
    definition.setdefault("version", "")
    definition.setdefault("reference_period", "as the questionnaire states it")
    return {
        "source": getattr(run, "source", ""),
        "respondents": len(design.data) if design is not None else
        float(table["n_sample"].max()),
        "strata": getattr(design, "n_strata", None), "psu": getattr(design, "n_psu", None),
        "variance": getattr(design, "variance", "the design"), "df": getattr(design, "df", None),
        "definition": definition, "pct": f"{100 * lvl:g}%",
        "ci_method": ", ".join(methods) or "-", "excluded": excluded,
        "indicators": [{"name": str(ind), "title": TITLES.get(str(ind), str(ind)),
                        "rows": _rows(table[table["indicator"] == ind], dims)}
                       for ind in dict.fromkeys(table["indicator"])],
        "threshold": getattr(published, "threshold", 5),
        "n_withheld": int((table["obs_status"] == "suppressed").sum()),
        "audit": audit_text,
        "warnings": [{"code": getattr(w, "code", "note"), "message": str(w)}
                     for w in getattr(run, "warnings", [])],
        "nsum": _nsum(run),
    }


def _nsum(run: Any) -> dict[str, Any] | None:
    """The network scale-up section (None without one); a withheld total shows no figure, its
    caveats are always shown."""
    est = getattr(run, "nsum", None)
    if est is None:
        return None
    d = est.diagnostics
    withheld = bool(getattr(run, "nsum_withheld", False))
    population = float(d["population"])
    shown = est.status == "ok" and not withheld and _finite(est.n_hat)
    dash = number(None, html=True)
    words = "withheld" if withheld else est.status.replace("_", " ")
    known = [{"population": r["population"], "size": number(r["size"], html=True),
              "estimate": number(r["estimate"], 0, html=True),
              "ratio": number(r["ratio"], 2, html=True)}
             for r in d["known_populations"].to_dict("records")] if not withheld else []
    return {
        "label": getattr(run, "nsum_label", "") or "the hidden population",
        "population": number(population, html=True), "withheld": withheld,
        "figure": number(est.n_hat, 0, html=True) if shown else words,
        "interval": _ci(*est.ci, 0) if shown else dash,
        "rate": number(1e5 * est.n_hat / population, 1, html=True) if shown else dash,
        "method": f"{est.ci_method} ({d.get('resampled', 'no interval')})",
        "respondents": number(d.get("respondents"), html=True),
        "reporting": number(d.get("respondents_reporting"), html=True) if not withheld
        else f"fewer than {getattr(getattr(run, 'published', None), 'threshold', 5)}",
        "mean_degree": number(d.get("mean_degree"), 0, html=True),
        "known": known,
        "caveats": [{"code": w.code, "message": str(w)} for w in est.warnings],
    }


def _side_rows(side: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    if side is None:
        return None
    if not isinstance(side, pd.DataFrame) or "counts" not in side.columns:
        raise InputError("survey report: side= expects the table of tipstat.survey.side_by_side")
    return side.to_dict("records")


def survey_sections(run: Any, side: pd.DataFrame | None = None, *,
                    level: float | None = None) -> Any:
    """The two sections as HTML (a ``markupsafe.Markup``), for a page of their own or the MSE
    report.

    Parameters
    ----------
    run : SurveyRun or PublishedPrevalence
        :func:`tipstat.survey.run_survey`'s result (exclusions, definition, design shown), or
        a published table alone.
    side : DataFrame, optional
        :func:`tipstat.survey.side_by_side`; without it the second section says that no MSE
        estimate was given.
    level : float, optional
        Interval level (default: the run's).
    """
    from markupsafe import Markup

    env = environment()
    html = env.get_template("survey_sections.html").render(sv=_context(run, level),
                                                            side=_side_rows(side))
    return Markup(html)


def build_survey_report(run: Any, side: pd.DataFrame | None = None, *,
                        title: str = "Forced labour and trafficking: survey estimates",
                        source: str = "", level: float | None = None) -> str:
    """A self-contained HTML page of the survey sections (see :func:`survey_sections`).

    The numbers of the published rows are embedded as JSON (``<script type="application/json"
    id="tipstat-survey-results">``); withheld rows carry no value there either.

    Examples
    --------
    >>> from tipstat import datasets
    >>> from tipstat.survey import run_survey
    >>> sv = datasets.load_survey()
    >>> run = run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"], by=["sex"])
    >>> page = build_survey_report(run)
    >>> page.startswith("<!DOCTYPE html>"), 'id="survey-prevalence"' in page
    (True, True)
    """
    import tipstat

    from .._json import jsonable

    env = environment()
    published = getattr(run, "published", run)
    results = {"schema": "tipstat-survey-report/1",
               "rows": jsonable(published.table.to_dict("records")),
               "side_by_side": None if side is None else jsonable(side.to_dict("records")),
               "nsum": jsonable(run.nsum_published()) if hasattr(run, "nsum_published")
               else None}
    return env.get_template("survey.html").render(
        title=title, source=source or getattr(run, "source", ""), version=tipstat.__version__,
        sections=survey_sections(run, side, level=level),
        nsum=getattr(run, "nsum", None) is not None,
        results_json=_safe_json(results))


def _safe_json(obj: Any) -> Any:
    from markupsafe import Markup

    return Markup(json.dumps(obj, allow_nan=False).replace("</", "<\\/"))


def write_survey_report(path: str | Path, run: Any, side: pd.DataFrame | None = None,
                        **kwargs: Any) -> Path:
    """Write :func:`build_survey_report`'s page to ``path`` (parent folders are created)."""
    path = Path(path)
    page = build_survey_report(run, side, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
