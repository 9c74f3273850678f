"""Survey prevalence and MSE estimates in one table, each row saying what it counts.

A statistical office that has both a household survey and Multiple Systems Estimation of its
identified victims holds two numbers that look alike and are not:

- the **survey** counts a *stock*: people in forced labour at any time during the questionnaire's
  reference period, among the people the survey reaches (residents of private households in the
  age range interviewed), under the ICLS 2018 statistical definition of forced labour;
- **MSE** counts *victims of trafficking* (every form the agencies identify, forced labour
  among them) in the lists' year, detected and undetected: the people who would be in need of
  identification, wherever they live;
- the **network scale-up** counts the members of a hidden population as the scale-up question
  defines it, through the respondents' networks (people outside households included), biased by
  transmission and barrier effects.

:func:`side_by_side` puts them in one table with these definitions, the reference period and the
population each rate is per, and a note on every row that they are different quantities. It has
no ratio or difference column on purpose: the quotient of a forced-labour stock and an annual
count of trafficking victims is not a detection rate. A figure the data do not support is shown
in words (``at least L``, ``not estimable``, ``suppressed``), never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .._format import number
from ..errors import InputError
from ..estimate import Estimate
from .publish import SUPPRESS_BELOW, TOTAL, prevalence_frame

__all__ = ["COLUMNS", "COUNTS", "NOTE", "side_by_side"]

#: What each source counts, as the table states it.
COUNTS = {
    "survey": "people in forced labour at any time during the reference period (a stock), "
              "among the survey's population: residents of private households in the age range "
              "interviewed; people outside households (worksites, camps, institutions, abroad) "
              "are not counted",
    "mse": "victims of trafficking in persons (every form the agencies identify), detected and "
           "undetected, in the lists' year: the people in need of identification; people in "
           "forced labour who are not trafficking victims are not counted",
    "nsum": "members of the hidden population as the scale-up question defines it, seen "
            "through the respondents' networks (people outside households included); biased "
            "when members hide it from their contacts or live apart from the respondents",
}
#: Where each source's rate is per 100,000 of.
DENOMINATOR = {
    "survey": "per 100,000 of the survey's population (household residents in its age range)",
    "mse": "per 100,000 of the population given",
    "nsum": "per 100,000 of the population given",
}
SOURCE = {"survey": "household survey", "mse": "multiple systems estimation",
          "nsum": "network scale-up (survey)"}
#: The note on every row.
NOTE = ("different quantities: each row counts something else (see 'counts'); do not divide or "
        "subtract them")
COLUMNS = ["source", "indicator", "domain", "counts", "reference_period", "status", "estimate",
           "lower", "upper", "shown", "interval_shown", "rate_per_100k", "rate_lower",
           "rate_upper", "rate_shown", "rate_denominator", "level", "interval_method", "caveats",
           "note"]

#: Figures a reader sees for statuses without a number (as tipstat.report.display).
_WORDS = {"does_not_exist": "does not exist", "not_identifiable": "not identifiable",
          "not_converged": "not converged", "failed": "failed",
          "not_estimable": "not estimable", "empty_domain": "no respondents in the domain",
          "suppressed": "suppressed", "not_stated": "not estimated"}
_ESTIMATED = ("ok", "extended", "small_domain")


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _shown(status: str, value: float, lower: float, upper: float,
           digits: int) -> tuple[str, str]:
    """The figure and interval a reader sees (the rules of ``tipstat.report.display``: a lower
    bound is "at least L", no number without an estimate)."""
    if status == "lower_bound":
        if not _finite(lower):
            return "no bound", "-"
        lo = number(lower, digits)
        return f"at least {lo}", f"[{lo}, no upper bound]"
    if status in _ESTIMATED and _finite(value):
        ci = (f"[{number(lower, digits)}, {number(upper, digits)}]"
              if _finite(lower) and _finite(upper) else "-")
        figure = number(value, digits)
        if status == "small_domain":
            figure += " (small domain: unreliable)"
        return figure, ci
    if status in _ESTIMATED:   # an estimate status without a finite number
        return ("does not exist" if value == math.inf else "not estimable"), "-"
    return _WORDS.get(status, status.replace("_", " ")), "-"


def _row(source: str, indicator: str, domain: str, period: str, status: str, est: float,
         lo: float, hi: float, rate: float, rlo: float, rhi: float, level: float,
         method: str, caveats: str) -> dict[str, Any]:
    if status == "lower_bound":   # only the lower end is supported
        est, hi, rate, rhi = math.nan, math.nan, math.nan, math.nan
    elif status not in _ESTIMATED:
        est = lo = hi = rate = rlo = rhi = math.nan
    shown, ci = _shown(status, est, lo, hi, 0)
    rate_shown, _ = _shown(status, rate, rlo, rhi, 1)
    return {"source": SOURCE[source], "indicator": indicator, "domain": domain,
            "counts": COUNTS[source], "reference_period": period, "status": status,
            "estimate": est, "lower": lo, "upper": hi, "shown": shown, "interval_shown": ci,
            "rate_per_100k": rate, "rate_lower": rlo, "rate_upper": rhi,
            "rate_shown": rate_shown, "rate_denominator": DENOMINATOR[source],
            "level": level, "interval_method": method, "caveats": caveats, "note": NOTE}


def _domain_text(rec: Mapping[str, Any], dims: Sequence[str]) -> str:
    parts = [f"{d}={rec[d]}" for d in dims if str(rec.get(d, TOTAL)) != TOTAL]
    return ", ".join(parts) or "total"


def _survey_rows(survey: Any, period: str, domains: str,
                 indicators: Sequence[str] | None) -> list[dict[str, Any]]:
    frame = prevalence_frame(survey)
    dims = list(frame.attrs.get("dims", []))
    if indicators is not None:
        unknown = sorted(set(indicators) - set(frame["indicator"]))
        if unknown:
            raise InputError(f"side_by_side: indicator(s) {unknown} not in the survey table; it "
                             f"has {sorted(set(frame['indicator']))}")
        frame = frame[frame["indicator"].isin(indicators)]
    if domains == "total" and dims:
        frame = frame[(frame[dims] == TOTAL).all(axis=1)]
    rows = []
    for rec in frame.to_dict("records"):
        status = str(rec.get("status") or "")
        obs = str(rec.get("obs_status") or "")
        if obs == "suppressed":
            status = "suppressed"
        elif obs == "not stated":
            status = "not_stated"
        p, lo, hi = (float(rec.get(c, math.nan)) for c in ("proportion", "ci_lower", "ci_upper"))
        total = float(rec.get("total", math.nan))
        tlo, thi = float(rec.get("total_lower", math.nan)), float(rec.get("total_upper", math.nan))
        level = float(rec.get("level", math.nan))
        rows.append(_row("survey", str(rec["indicator"]), _domain_text(rec, dims), period,
                         status, total, tlo, thi, 1e5 * p, 1e5 * lo, 1e5 * hi, level,
                         str(rec.get("ci_method") or ""), str(rec.get("caveats") or "")))
    return rows


def _estimate_row(est: Estimate, source: str, label: str, period: str,
                  population: float, withheld: bool = False) -> dict[str, Any]:
    lo, hi = (float(v) for v in est.ci)
    scale = 1e5 / population
    status = "suppressed" if withheld else est.status
    return _row(source, label, "total", period, status, float(est.n_hat), lo, hi,
                float(est.n_hat) * scale, lo * scale, hi * scale, float(est.level),
                est.ci_method, ";".join(w.code for w in est.warnings))


def _sdg_rows(table: pd.DataFrame, period: str | None, level: float,
              population: float, mse_domain: Mapping[str, str] | None) -> list[dict[str, Any]]:
    dims = [c for c in ("sex", "age", "exploitation") if c in table.columns]
    want = {d: TOTAL for d in dims} | dict(mse_domain or {})
    unknown = sorted(set(want) - set(dims))
    if unknown:
        raise InputError(f"side_by_side: mse_domain names {unknown}; the SDG table has "
                         f"dimensions {dims}")
    sel = table
    for d, v in want.items():
        sel = sel[sel[d].astype(str) == str(v)]
    if len(sel) != 1:
        raise InputError(f"side_by_side: the SDG table has {len(sel)} row(s) for "
                         f"{want}; expected one")
    r = sel.iloc[0]
    obs = str(r.get("obs_status", "estimated"))
    status = {"estimated": "ok", "not estimable": "not_estimable",
              "suppressed": "suppressed"}.get(obs, "lower_bound" if "lower bound" in obs
                                              else obs.replace(" ", "_"))
    n, lo, hi = (float(pd.to_numeric(r.get(c), errors="coerce")) for c in
                 ("total_est", "total_lcl", "total_ucl"))
    rates = [float(pd.to_numeric(r.get(c), errors="coerce")) for c in
             ("rate_per_100k", "rate_lcl", "rate_ucl")]
    if not any(map(_finite, rates)) and population:
        rates = [v * 1e5 / population for v in (n, lo, hi)]
    if period is None:
        tp = r.get("time_period")
        period = f"the lists' year ({tp})" if tp is not None and pd.notna(tp) else "the lists' year"
    label = "victims of trafficking (SDG 16.2.2)"
    extra = {d: v for d, v in want.items() if v != TOTAL}
    domain = ", ".join(f"{d}={v}" for d, v in extra.items()) or "total"
    row = _row("mse", label, "total", period, status, n, lo, hi, *rates, level,
               str(r.get("method") or "bootstrap percentile"), "")
    row["domain"] = domain
    return [row]


def side_by_side(
    survey: Any,
    mse: Estimate | Sequence[Estimate] | pd.DataFrame | Any = None,
    *,
    population: float,
    nsum: Estimate | None = None,
    nsum_label: str = "hidden population (network scale-up)",
    nsum_threshold: int = SUPPRESS_BELOW,
    survey_period: str = "the questionnaire's reference period",
    mse_period: str | None = None,
    domains: str = "total",
    indicators: Sequence[str] | None = None,
    mse_domain: Mapping[str, str] | None = None,
    level: float | None = None,
) -> pd.DataFrame:
    """One table of survey prevalence, MSE and (optionally) network scale-up estimates, each row
    saying what it counts, over which period, and per which population its rate is.

    Rates: survey ``1e5 * proportion`` (per 100,000 of the survey's population); MSE and NSUM
    ``1e5 * N-hat / population``, or the SDG table's own rate. No ratio or difference column:
    the rows are different quantities, and every row says so (``note``).

    Parameters
    ----------
    survey : PrevalenceTable, sequence of Prevalence, or DataFrame
        Survey estimates (:func:`tipstat.survey.survey_prevalence`) or their published form
        (:func:`tipstat.survey.publish_prevalence` ``.table``: withheld rows show
        ``suppressed``).
    mse : Estimate, sequence of Estimate, SDG table (DataFrame or SDGTable), optional
        MSE estimate(s) of the same country and year; an SDG 16.2.2 table gives its total row
        (or the row ``mse_domain``, e.g. ``{"exploitation": "LAB"}``). None: no MSE row (the
        survey and the scale-up side by side).
    population : float
        The population the MSE and NSUM rates are per (the country's population in the year).
    nsum : Estimate, optional
        A network scale-up estimate (:func:`tipstat.survey.fit_nsum`), one row: its total, its
        rate per 100,000 of ``population``, its caveat codes (always ``nsum_bias``). Shown as
        ``suppressed`` when fewer than ``nsum_threshold`` respondents report anyone in the
        hidden population (:func:`tipstat.survey.nsum_withheld`).
    nsum_label : str
        The NSUM row's indicator: what the hidden-population question asks about.
    nsum_threshold : int
        See ``nsum`` (default: the survey tables' small-cell threshold).
    survey_period, mse_period : str
        The reference periods as the table states them (default for MSE: the lists' year, with
        the SDG table's ``time_period`` when it has one).
    domains : ``"total"`` or ``"all"``
        Survey rows: the totals only (default) or every domain.
    indicators : sequence of str, optional
        Survey indicators to show (default: every one in the table).
    mse_domain : mapping, optional
        Row of an SDG table (default: the total).
    level : float, optional
        Interval level of an SDG table (default: its ``meta``/attribute, else 0.95).

    Returns
    -------
    DataFrame
        Columns :data:`COLUMNS`: ``source``, ``indicator``, ``domain``, ``counts`` (what the
        row counts), ``reference_period``, ``status``, ``estimate``/``lower``/``upper`` (nan
        where the status supports no number: a lower bound keeps ``lower`` only), ``shown``
        and ``interval_shown`` (the figure in words where there is no number),
        ``rate_per_100k``/``rate_lower``/``rate_upper``/``rate_shown``, ``rate_denominator``,
        ``level``, ``interval_method``, ``caveats`` (codes), ``note``.
        ``attrs["different_quantities"]`` is True.

    Examples
    --------
    >>> from types import SimpleNamespace as P
    >>> import tipstat
    >>> survey = [P(indicator="forced_labour", domain={}, n_sample=9000, n_cases=90,
    ...             proportion=0.004, ci=(0.003, 0.005), total=40_000.0,
    ...             total_ci=(30_000.0, 50_000.0), level=0.95, ci_method="logit", status="ok")]
    >>> mse = tipstat.Estimate(n_hat=2500.0, ci=(1500.0, 6000.0), level=0.95, n_observed=900,
    ...                        method="default", model="BIC average")
    >>> t = side_by_side(survey, mse.as_lower_bound(), population=12_000_000)
    >>> for r in t[["source", "shown", "rate_shown"]].values.tolist():
    ...     print(r)
    ['household survey', '40,000', '400.0']
    ['multiple systems estimation', 'at least 1,500', 'at least 12.5']
    >>> "ratio" in t.columns, t.attrs["different_quantities"]
    (False, True)
    """
    try:
        pop = float(population)
    except (TypeError, ValueError):
        pop = math.nan
    if not math.isfinite(pop) or pop <= 0:
        raise InputError(f"side_by_side: population={population!r}; expected the population "
                         "(a number > 0) the MSE rate is per")
    if domains not in ("total", "all"):
        raise InputError(f"side_by_side: domains={domains!r}; expected 'total' or 'all'")
    rows = _survey_rows(survey, survey_period, domains, indicators)
    period = mse_period or "the lists' year"
    if isinstance(mse, Estimate):
        mse = [mse]
    if hasattr(mse, "table") and isinstance(mse.table, pd.DataFrame):   # an SDGTable
        lvl = level if level is not None else float(getattr(mse, "level", 0.95))
        rows += _sdg_rows(mse.table, mse_period, lvl, pop, mse_domain)
    elif isinstance(mse, pd.DataFrame):
        rows += _sdg_rows(mse, mse_period, level or 0.95, pop, mse_domain)
    elif mse is None:
        pass
    elif isinstance(mse, Sequence) and all(isinstance(e, Estimate) for e in mse):
        for e in mse:
            rows.append(_estimate_row(e, "mse", f"victims of trafficking ({e.method})", period,
                                      pop))
    else:
        raise InputError(f"side_by_side: mse= expects a tipstat.Estimate, a sequence of them or "
                         f"an SDG 16.2.2 table, got {type(mse).__name__}")
    if nsum is not None:
        if not isinstance(nsum, Estimate):
            raise InputError(f"side_by_side: nsum= expects a tipstat.Estimate (fit_nsum), got "
                             f"{type(nsum).__name__}")
        from .nsum import nsum_withheld

        withheld = ("respondents_reporting" in nsum.diagnostics
                    and nsum_withheld(nsum, threshold=nsum_threshold))
        rows.append(_estimate_row(nsum, "nsum", str(nsum_label), survey_period, pop,
                                  withheld=withheld))
    out = pd.DataFrame(rows, columns=COLUMNS)
    for c in ("estimate", "lower", "upper", "rate_per_100k", "rate_lower", "rate_upper", "level"):
        out[c] = out[c].astype(float)
    out.attrs["different_quantities"] = True
    out.attrs["note"] = NOTE
    return out
