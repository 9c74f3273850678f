"""One self-contained HTML report of an MSE analysis, fit to publish.

The report is a single file: styles inline, plots embedded as base64 PNG, no executable script
and no link to the network (a Content-Security-Policy forbids loading anything), so it can be
mailed, archived and opened offline. It opens with one headline figure and its interval (the
SDG 16.2.2 total when an SDG table is given) and says which method produced it; then the SDG
table, the lists and the agencies behind each, the data and its accounting, every warning the
run raised, list overlaps, estimates by method, sensitivity, and diagnostics. The numbers are
also embedded as JSON (``<script type="application/json" id="tipstat-results">``) for scripts
that read reports.

Disclosure control: no section shows a count of 1 to 4 persons. Tables with margins (the SDG
table, persons by stratum) go through :func:`_suppression_masks`, the one place that decides
cell suppression (primary and complementary); capture patterns are pooled by
:func:`_pattern_pool`; other small counts are shown as ``"<5"``. The report renders the results
it is given and computes nothing beyond their presentation; no clock is read, so the same
inputs give the same bytes.

Needs matplotlib and Jinja2 (``pip install "tipstat[report]"``). The template is
``tipstat/report/templates/report.html`` (package data).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._format import count as published_count
from .._format import number as format_number
from ..errors import InputError
from ..estimate import Estimate
from ..histories import CaptureHistories
from .display import (
    NO_ESTIMATE,
    RATINGS,
    bound,
    caveat_dicts,
    figure,
    interval,
    is_estimate,
)
from .environment import environment

__all__ = ["build_report", "suppress_small_cells", "write_report"]

#: Marker of a withheld row of a suppressed table: small cells and their complements alike
#: (GLOTIP's ``x``), so that the reader cannot tell which rows are the small ones.
WITHHELD = "x"
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


# ---------------------------------------------------------------------------- disclosure
def _suppression_masks(table: pd.DataFrame, threshold: int) -> tuple[pd.Series, pd.Series]:
    """Rows suppressed because they are small (primary) and to protect them (secondary).

    This is the report's one call to cell suppression (swap it here for another method): the
    SDG table and the table of persons by stratum both go through it.

    Primary: fewer than ``threshold`` detected, or marked ``obs_status == "suppressed"``.
    Secondary: marked ``"suppressed (secondary)"`` by :func:`tipstat.sdg_16_2_2`; a table with
    no ``obs_status`` (an unsuppressed one) gets :func:`tipstat.indicator.secondary_suppression`
    here, so that no small cell can be recovered from a published margin by subtraction.
    """
    small = pd.Series(False, index=table.index)
    secondary = pd.Series(False, index=table.index)
    if "detected" in table:
        detected = pd.to_numeric(table["detected"], errors="coerce")
        small |= detected.notna() & (detected > 0) & (detected < threshold)
    if "obs_status" in table:
        status = table["obs_status"].astype(str)
        secondary |= status == "suppressed (secondary)"
        small |= (status == "suppressed") & ~secondary
    elif small.any() and {"sex", "age", "exploitation", "detected"} <= set(table.columns):
        from ..indicator import secondary_suppression

        extra = secondary_suppression(table.reset_index(drop=True), small.to_numpy())
        secondary |= pd.Series(np.asarray(extra, dtype=bool), index=table.index)
    return small, secondary & ~small


def _pattern_pool(h: CaptureHistories, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Capture patterns pooled into one "other patterns" bar, and overlaps not published.

    Patterns with 1 to ``threshold - 1`` persons are pooled, and then, until no published sum
    reveals a pooled pattern, more: the report publishes the number observed (the sum of all
    patterns), each list size (the patterns on that list) and each pairwise overlap of
    ``threshold`` or more (the patterns on both lists). Within each such sum, the pooled
    non-empty patterns must be none, or at least two together holding ``threshold`` persons or
    more; otherwise the smallest published pattern of that sum is pooled too (the sibling rule
    of :func:`tipstat.indicator.secondary_suppression`, applied to these sums), or, when it has
    none left, the sum itself (a list size or an overlap) is not published.

    Returns
    -------
    pool : array of bool, one per observable pattern (cell ``c`` at ``c - 1``)
    hide : K x K array of bool
        Overlaps (diagonal: list sizes) not to publish.
    """
    counts = np.asarray(h.counts, dtype=float)
    pats = np.asarray(h.patterns, dtype=bool)
    pool = (counts > 0) & (counts < threshold)
    hide = np.zeros((h.k, h.k), dtype=bool)
    sums: list[tuple[np.ndarray, tuple[int, int] | None]] = [(np.ones(len(counts), bool), None)]
    for i in range(h.k):
        for j in range(i, h.k):
            both = pats[:, i] & pats[:, j]
            if counts[both].sum() >= threshold:
                sums.append((both, (i, j)))
    changed = True
    while changed:
        changed = False
        for member, cell in sums:
            if cell is not None and hide[cell]:
                continue
            hidden = member & pool & (counts > 0)
            if not hidden.any() or (hidden.sum() >= 2 and counts[hidden].sum() >= threshold):
                continue
            free = np.flatnonzero(member & ~pool & (counts > 0))
            if len(free):
                pool[free[np.argmin(counts[free])]] = True
            elif cell is not None:
                hide[cell] = hide[cell[::-1]] = True
            else:
                continue
            changed = True
    return pool, hide


def _count(value: Any, threshold: int) -> str:
    """A count of persons as published: 1 to ``threshold - 1`` is ``"<5"``
    (:func:`tipstat._format.count`)."""
    return published_count(value, threshold, html=True)


_SMALL_IN_TEXT = r"(?<![\w.,])(\d+)(?![\w.,])(?=\s+(?:persons?|records?|victims?|cases?)\b)"


def _mask_small_numbers(text: str, threshold: int) -> str:
    """``"1 person(s) ..."`` -> ``"<5 person(s) ..."`` in a warning's text."""
    import re

    def sub(m: Any) -> str:
        v = int(m.group(1))
        before = text[max(0, m.start() - 12):m.start()].lower()
        if before.rstrip().endswith(("than", "least", "most", "under", "below")):
            return m.group(1)               # a threshold ("fewer than 3 persons"), not a count
        return f"<{threshold}" if 0 < v < threshold else m.group(1)

    return re.sub(_SMALL_IN_TEXT, sub, text)


# ---------------------------------------------------------------------------- formatting
_STATUS = {"ok": "estimated", "extended": "estimated (extended MLE)",
           "does_not_exist": "does not exist", "not_identifiable": "not identifiable",
           "lower_bound": "lower bound only", "not_converged": "not converged",
           "too_few_seen": "too few seen"}
_CI_METHOD = {"profile": "profile likelihood", "profile_rcapture": "profile likelihood",
              "wald": "Wald", "lognormal": "log-normal", "percentile": "bootstrap percentile",
              "bca": "bootstrap BCa", "none": "none", "hpd": "posterior HPD",
              "posterior": "posterior"}
_CODELISTS = {"sex": "sex", "age": "age_group", "age_group": "age_group",
              "exploitation": "exploitation_stratum"}
_DIM_NAMES = {"sex": "sex", "age": "age", "age_group": "age",
              "exploitation": "form of exploitation"}


def _words(name: Any) -> str:
    """A readable heading for a column or key: ``"zero_fitted_cells"`` -> ``"Zero fitted
    cells"``."""
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _text(v: Any, digits: int = 4) -> str:
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        return _fmt(v, digits)
    if isinstance(v, int | np.integer):
        return _fmt(v)
    return "–" if v is None else str(v)


#: Short labels of the SDG dimensions' codes (the code lists' labels are long for a table).
_SHORT = {"age": {"Y0T17": "Child\u00a0(0\u201117)", "Y_GE18": "Adult\u00a0(18+)"},
          "exploitation": {"SEX": "Sexual exploitation", "LAB": "Forced labour",
                           "MIX": "Sexual exploitation and forced labour",
                           "ORG": "Organ removal", "OTH": "Other purposes"}}


def _code_label(dim: str, code: Any) -> str:
    code = str(code)
    if code == "_T":
        return "All"
    short = _SHORT.get(_DIM_NAMES.get(dim, dim).split()[-1], {}).get(code)
    if short:
        return short
    name = _CODELISTS.get(dim)
    if name is None:
        return code
    from ..ictip import codelists

    try:
        return codelists.load(name).label(code)
    except Exception:  # a code outside the list is shown as it is
        return code


def _join_words(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _interval(lo: Any, hi: Any, digits: int = 0, sep: str = "\u2013") -> str:
    """``"1,306–1,731"`` (an en dash; a missing interval is a lone ``"–"``)."""
    a, b = _fmt(lo, digits), _fmt(hi, digits)
    return "–" if a == "–" and b == "–" else f"{a}{sep}{b}"


def _png(ax: Any) -> str:
    from .plots import figure_png

    data = base64.b64encode(figure_png(ax)).decode("ascii")
    return f"data:image/png;base64,{data}"


def _fmt(x: Any, digits: int = 0) -> str:
    """A number in the report (:func:`tipstat._format.number`, typographic signs)."""
    return format_number(x, digits, html=True)


def _scalar_diagnostics(est: Estimate) -> list[tuple[str, str]]:
    out = []
    for key, value in (est.diagnostics or {}).items():
        if key in ("coefficients", "fitted", "terms"):
            continue
        if isinstance(value, bool | int | float | str | np.integer | np.floating | np.bool_):
            out.append((_words(key), _text(value)))
    return out


# ---------------------------------------------------------------------------- sections
def _headline(given: Mapping[str, Any] | None, sdg_table: pd.DataFrame | None,
              comparison: pd.DataFrame, level: float) -> dict[str, Any] | None:
    """The one figure the report opens with (see :func:`build_report`)."""
    pooled = _default_row(comparison)
    if given is not None:
        missing = [k for k in ("n_hat", "lower", "upper") if k not in given]
        if missing:
            raise InputError(f"build_report: headline= lacks {missing}; expected a mapping with "
                             "n_hat, lower, upper, level and method")
        out = {"n_hat": given["n_hat"], "lower": given["lower"], "upper": given["upper"],
               "level": float(given.get("level", level)),
               "method": str(given.get("method", "")), "source": "given"}
    elif sdg_table is not None and "total_est" in sdg_table:
        dims = [c for c in ("sex", "age", "exploitation") if c in sdg_table]
        total = sdg_table[(sdg_table[dims].astype(str) == "_T").all(axis=1)] if dims \
            else sdg_table
        if len(total) != 1:
            return None
        r = total.iloc[0]
        split = [d for d in dims if (sdg_table[d].astype(str) != "_T").any()]
        code = str(r.get("method", "MSE_LOGLINEAR"))
        name = {"MSE_LOGLINEAR": "log-linear MSE"}.get(code, code.lower().replace("_", " "))
        lo, hi = r.get("total_lcl"), r.get("total_ucl")
        has_ci = pd.notna(lo) and pd.notna(hi)
        if split:   # tipstat.fit_stratified: parametric bootstrap percentile intervals
            method = (f"stratified {name} by " + _join_words([_DIM_NAMES[d] for d in split])
                      + (f", {100 * level:g}% bootstrap interval" if has_ci else ", no interval"))
        else:
            method = name + (f", {100 * level:g}% interval" if has_ci else ", no interval")
        out = {"n_hat": r["total_est"], "lower": lo, "upper": hi, "level": level,
               "method": method, "source": "sdg", "detected": r.get("detected"),
               "rate": r.get("rate_per_100k"), "rate_lcl": r.get("rate_lcl"),
               "rate_ucl": r.get("rate_ucl"), "status": str(r.get("obs_status", ""))}
    elif pooled is not None:
        out = {"n_hat": pooled["n_hat"], "lower": pooled["lower"], "upper": pooled["upper"],
               "level": float(pooled.get("level", level)),
               "method": f"{pooled['method']}: {pooled['model']}, "
                         f"{100 * float(pooled.get('level', level)):g}% "
                         f"{_CI_METHOD.get(str(pooled['ci_method']), pooled['ci_method'])} "
                         "interval", "source": "comparison", "row": pooled.name,
               "status": str(pooled.get("status", ""))}
    else:
        return None
    values = [pd.to_numeric(out[k], errors="coerce") for k in ("n_hat", "lower", "upper")]
    out["n_hat"], out["lower"], out["upper"] = (float(v) if pd.notna(v) else math.nan
                                                for v in values)
    status = str(out.get("status", "")).lower()
    out["suppressed"] = status.startswith("suppressed")
    out["lower_bound"] = (status == "lower_bound" and not out["suppressed"]
                          and bound(status, out["n_hat"], out["lower"]) is not None)
    if out["lower_bound"]:
        out["bound"] = bound(status, out["n_hat"], out["lower"])
    out["estimable"] = (math.isfinite(out["n_hat"]) and not out["suppressed"]
                        and not status.startswith("not") and status not in NO_ESTIMATE
                        and status != "lower_bound")
    out["pct"] = f"{100 * out['level']:g}%"
    if (out["source"] != "comparison" and pooled is not None
            and is_estimate(pooled.get("status", "ok"), pooled["n_hat"]) and out["estimable"]
            and round(float(pooled["n_hat"])) != round(out["n_hat"])):
        out["pooled"] = {"n_hat": float(pooled["n_hat"]), "lower": float(pooled["lower"]),
                         "upper": float(pooled["upper"]),
                         "method": str(pooled["method"])}
    return out


def _default_row(comparison: pd.DataFrame) -> pd.Series | None:
    if comparison is None or not len(comparison) or "n_hat" not in comparison:
        return None
    t = comparison.reset_index(drop=True)
    default = t[t["method"].astype(str).str.startswith("default")]
    ok = t[t["status"].isin(("ok", "extended"))] if "status" in t else t
    rows = default if len(default) else ok
    return rows.iloc[0] if len(rows) else None


def _list_key(list_key: Any, entities: pd.DataFrame | None,
              lists: Sequence[str]) -> dict[str, dict[str, str]] | None:
    """``list -> {"agencies": ..., "types": ...}`` from the forms :func:`build_report`
    accepts."""
    if list_key is None:
        return None
    if isinstance(list_key, str):
        import tipstat

        list_key = tipstat.datasets.info(list_key)["lists"]
    out: dict[str, dict[str, str]] = {}
    if isinstance(list_key, pd.DataFrame):
        missing = [c for c in ("entity_id", "list_id") if c not in list_key]
        if missing:
            raise InputError(f"build_report: list_key lacks column(s) {missing}; expected the "
                             "list definition (entity_id, list_id, optionally entity_name, "
                             "entity_type)")
        key = list_key.copy()
        if entities is not None:
            if "entity_id" not in entities:
                raise InputError("build_report: entities lacks column 'entity_id'")
            extra = [c for c in ("entity_name", "entity_type") if c in entities
                     and c not in key]
            key = key.merge(entities[["entity_id", *extra]].drop_duplicates("entity_id"),
                            on="entity_id", how="left")
        for lst, part in key.groupby(key["list_id"].astype(str), sort=False):
            names = []
            for _, r in part.drop_duplicates("entity_id").iterrows():
                name = r.get("entity_name")
                names.append(f"{name} ({r['entity_id']})" if pd.notna(name) and str(name)
                             else str(r["entity_id"]))
            types = []
            if "entity_type" in part:
                from ..ictip import codelists

                codes = codelists.load("entity_type")
                for t in dict.fromkeys(part["entity_type"].dropna().astype(str)):
                    types.append(codes.label(t) if t in codes else t)
            out[lst] = {"agencies": "; ".join(names), "types": "; ".join(types)}
    elif isinstance(list_key, Mapping):
        for lst, agencies in list_key.items():
            text = agencies if isinstance(agencies, str) else "; ".join(map(str, agencies))
            out[str(lst)] = {"agencies": text, "types": ""}
    else:
        raise InputError(f"build_report: list_key must be a mapping list -> agencies, the list "
                         f"definition DataFrame or a bundled dataset's name; got "
                         f"{type(list_key).__name__}")
    return {lst: out.get(lst, {"agencies": "not given in the key", "types": ""})
            for lst in lists}


def _accounting_rows(accounting: Any, threshold: int) -> list[tuple[str, str]]:
    """The accounting of records as published: readable labels, no count of 1 to
    ``threshold - 1`` (the persons-on-k-lists series is binned at its top, small exclusion
    reasons are pooled)."""
    import re

    if accounting is None:
        return []
    if hasattr(accounting, "to_frame") and not isinstance(accounting, pd.DataFrame):
        accounting = accounting.to_frame()
    if isinstance(accounting, pd.DataFrame):
        if accounting.shape[1] >= 2:
            items = list(accounting.iloc[:, :2].itertuples(index=False, name=None))
        else:
            items = [(str(i), ", ".join(f"{c}: {v}" for c, v in r.items()))
                     for i, r in accounting.iterrows()]
    elif isinstance(accounting, Mapping):
        items = list(accounting.items())
    else:
        return [("Accounting", str(accounting))]
    rename = {"read": "records read", "used": "records used"}
    rows: list[tuple[str, Any]] = []
    for k, v in items:
        label = rename.get(str(k), str(k))
        if (label, v) not in rows:
            rows.append((label, v))

    def number(v: Any) -> float | None:
        if isinstance(v, bool | np.bool_):
            return None
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    # persons on k lists: the top of the series is binned until it holds >= threshold
    on_k = re.compile(r"persons on (\d+) list\(s\)")
    series = sorted((int(m.group(1)), i) for i, (k, _) in enumerate(rows)
                    if (m := on_k.fullmatch(k)))
    vals = [number(rows[i][1]) or 0.0 for _, i in series]
    merged = 0
    while len(vals) > 1 and 0 < vals[-1] < threshold:
        top = vals.pop()
        vals[-1] += top
        merged += 1
    if merged:
        k_top, i_top = series[len(vals) - 1]
        drop = {i for _, i in series[len(vals):]}
        rows[i_top] = (f"persons on {k_top} or more lists", vals[-1])
        rows = [r for i, r in enumerate(rows) if i not in drop]
    # exclusion reasons: small ones are pooled (with the next smallest if the pool is small)
    excl = [i for i, (k, v) in enumerate(rows) if k.startswith("excluded") and number(v)]
    small = [i for i in excl if (number(rows[i][1]) or 0) < threshold]
    if small:
        pool = sorted(small, key=lambda i: number(rows[i][1]) or 0)
        rest = sorted(set(excl) - set(pool), key=lambda i: number(rows[i][1]) or 0)
        while rest and (len(pool) < 2 or sum(number(rows[i][1]) or 0 for i in pool) < threshold):
            pool.append(rest.pop(0))
        total = sum(number(rows[i][1]) or 0 for i in pool)
        first = min(pool)
        rows = [(f"excluded: {len(pool)} other reasons", total) if i == first else r
                for i, r in enumerate(rows) if i not in pool or i == first]
    return [(_words(k), _count(v, threshold) if number(v) is not None else _text(v))
            for k, v in rows]


def _sdg_rows(table: pd.DataFrame, threshold: int, level: float) -> dict[str, Any]:
    """The SDG table as shown: readable codes and columns, intervals in one cell, small cells
    and their complements suppressed (:func:`_suppression_masks`)."""
    primary, secondary = _suppression_masks(table, threshold)
    dims = [c for c in ("sex", "age", "exploitation") if c in table]
    pct = f"{100 * level:g}%"
    head = [_words(_DIM_NAMES[d]) for d in dims]
    cols = [("detected", "Detected"), ("total_est", "Estimated total"),
            ("total_ci", f"{pct} interval"), ("rate_per_100k", "Rate per 100,000"),
            ("rate_ci", f"{pct} interval of the rate")]
    cols = [(c, name) for c, name in cols
            if c in table or (c == "total_ci" and "total_lcl" in table)
            or (c == "rate_ci" and "rate_lcl" in table)]
    notes: list[str] = []
    rows = []
    for i, r in table.iterrows():
        hidden = bool(primary[i] or secondary[i])
        cells = [(_code_label(d, r[d]), "") for d in dims]
        for c, _ in cols:
            if hidden:  # one marker for small cells and their complements: which is which
                v = WITHHELD  # is not published (tipstat.disclosure)
            elif c == "detected":
                v = _count(r[c], threshold)
            elif c == "total_ci":
                v = _interval(r.get("total_lcl"), r.get("total_ucl"))
            elif c == "rate_ci":
                v = _interval(r.get("rate_lcl"), r.get("rate_ucl"), 2)
            else:
                v = _fmt(r[c], 2 if c.startswith("rate") else 0)
            cls = "num ci" if c.endswith("_ci") else "num"
            cells.append((v, cls + " supp" if v == WITHHELD else cls))
        if hidden:
            status = "withheld"
        elif "total_est" in table and not math.isfinite(
                float(pd.to_numeric(r["total_est"], errors="coerce"))):
            status = "not estimable"
        else:
            status = str(r.get("obs_status", "estimated") or "estimated")
        note = str(r.get("notes", "") or "")
        mark = ""
        if note and note != "nan":
            if note not in notes:
                notes.append(note)
            mark = str(notes.index(note) + 1)
        cells.append((status, "status"))
        total = all(str(r[d]) == "_T" for d in dims)
        rows.append({"cells": cells, "note": mark, "total": total,
                     "margin": any(str(r[d]) == "_T" for d in dims)})
    where = ", ".join(str(v) for c in ("ref_area", "time_period") if c in table
                      for v in dict.fromkeys(table[c].astype(str)))
    return {"head": [(x, "") for x in head] + [(name, "num") for _, name in cols]
            + [("Status", "")], "rows": rows,
            "notes": notes, "where": where, "n_primary": int(primary.sum()),
            "n_secondary": int(secondary.sum()), "threshold": threshold,
            "primary": primary, "secondary": secondary}


def _strata_rows(h: CaptureHistories, threshold: int) -> dict[str, Any]:
    """Persons observed by stratum, with a total, through :func:`_suppression_masks` (each
    stratum is a cell of one dimension whose margin is the total)."""
    idx = h.strata_index.reset_index(drop=True)
    observed = np.asarray(h.stratum_counts, dtype=float).sum(axis=1)
    labels = [" / ".join(str(v) for v in r) for r in idx.itertuples(index=False, name=None)]
    frame = pd.DataFrame({"sex": [*labels, "_T"], "age": "_T", "exploitation": "_T",
                          "detected": [*observed, observed.sum()]})
    primary, secondary = _suppression_masks(frame, threshold)
    rows = []
    for i in range(len(frame)):
        if i < len(idx):
            cells = [_code_label(c, idx.iloc[i][c]) for c in idx.columns]
        else:
            cells = ["All strata"] + [""] * (len(idx.columns) - 1)
        v = WITHHELD if primary[i] or secondary[i] else _count(frame["detected"][i], threshold)
        rows.append({"cells": cells, "value": v, "total": i == len(idx)})
    return {"head": [_words(_DIM_NAMES.get(c, c)) for c in idx.columns], "rows": rows,
            "n_suppressed": int(primary.sum() + secondary.sum())}


def _reliability_rows(frame: pd.DataFrame, threshold: int, hidden_lists: set[str],
                      hidden_sizes: set[str], level: float) -> dict[str, Any]:
    """The reliability check as shown: readable headings, intervals in one cell, notes as
    footnotes, list sizes under the small-count rule."""
    pct = f"{100 * level:g}%"
    names = {"list": "List", "n_true": "Persons on the list",
             "n_seen": "Of whom on another list", "n_hat": "Estimated from the other lists",
             "log_rel_bias": "Log relative bias", "covered": f"{pct} interval covers the list "
             "size", "status": "Status", "model": "Model"}
    numeric = {"n_true", "n_seen", "n_hat", "log_rel_bias"}
    cols = [c for c in frame.columns if c not in ("lower", "upper", "note")]
    head = []
    for c in cols:
        head.append((names.get(c, _words(c)), "num" if c in numeric else ""))
        if c == "n_hat" and {"lower", "upper"} <= set(frame.columns):
            head.append((f"{pct} interval", "num"))
    rows, notes = [], []
    for _, r in frame.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c in ("n_true", "n_seen"):
                lst = str(r.get("list"))
                hidden = lst in hidden_sizes or (c == "n_seen" and lst in hidden_lists)
                cells.append(("suppressed" if hidden else _count(v, threshold), "num"))
            elif c == "n_hat":
                st = str(r.get("status", "ok"))
                shown = is_estimate(st, v) or st == "lower_bound"
                cells.append((figure(st, v, r.get("lower"), html=True) if shown else "–",
                              "num"))
                if {"lower", "upper"} <= set(frame.columns):
                    cells.append((interval(st, r["lower"], r["upper"], html=True,
                                           brackets=False, sep="\u2013") if shown else "–",
                                  "num ci"))
            elif c == "status":
                cells.append((_STATUS.get(str(v), str(v)), ""))
            elif isinstance(v, float | np.floating):
                cells.append((_fmt(v, 3), "num"))
            else:
                cells.append((_breakable(_text(v)) if c == "model" else _text(v), ""))
        note = _mask_small_numbers(str(r.get("note", "") or ""), threshold)
        mark = ""
        if note and note != "nan":
            if note not in notes:
                notes.append(note)
            mark = str(notes.index(note) + 1)
        rows.append({"cells": cells, "note": mark})
    return {"head": head, "rows": rows, "notes": notes}


def _shown(row: dict[str, Any], status: Any, n_hat: Any, lower: Any, upper: Any) -> dict[str, Any]:
    """Add what a reader sees of an estimate to ``row``: ``shown`` (the figure, or
    "at least L", or the status in words), ``ci_shown``, ``is_estimate`` (a number may be
    shown as an estimate) and ``is_bound``. Returns ``row``."""
    row["is_estimate"] = is_estimate(status, n_hat)
    row["is_bound"] = str(status) == "lower_bound"
    row["shown"] = figure(status, n_hat, lower, upper, html=True)
    row["ci_shown"] = interval(status, lower, upper, html=True, brackets=False, sep="\u2013")
    return row


def _environment() -> Any:
    env = environment()
    env.filters["interval"] = _interval
    env.filters["breakable"] = _breakable
    return env


def _breakable(text: Any) -> Any:
    """Escaped text with a line-break opportunity after each ``+`` (long pattern names such as
    ``LA+NG+PFNCA+GP`` wrap instead of widening a table)."""
    from markupsafe import Markup, escape

    return Markup(str(escape(str(text))).replace("+", "+<wbr>"))


# ---------------------------------------------------------------------------- the report
def build_report(
    h: CaptureHistories,
    *,
    comparison: pd.DataFrame | None = None,
    estimates: Sequence[Estimate] = (),
    accounting: Any = None,
    sdg_table: pd.DataFrame | None = None,
    published: float | None = None,
    sensitivity: pd.DataFrame | None = None,
    reliability: Any = None,
    title: str = "Multiple Systems Estimation report",
    source: str = "",
    level: float = 0.95,
    seed: int | None = None,
    suppress_below: int = SUPPRESS_BELOW,
    headline: Mapping[str, Any] | None = None,
    list_key: Mapping[str, str | Sequence[str]] | pd.DataFrame | str | None = None,
    entities: pd.DataFrame | None = None,
    warnings: Sequence[str] = (),
    created: str | None = None,
    disclosure_audit: Any = None,
    survey: Any = None,
    survey_side: pd.DataFrame | None = None,
) -> str:
    """Build the HTML report of an MSE analysis as one self-contained string.

    The report renders results it is given; it computes nothing but their presentation (the
    caller runs :func:`tipstat.compare` and :func:`tipstat.comparison.leave_one_list_out`).
    It opens with one headline figure and its
    interval, keys every list to its agencies, shows every warning of the run, and shows no
    count of 1 to ``suppress_below - 1`` persons anywhere: the SDG table and the persons by
    stratum are suppressed with complementary cells (:func:`_suppression_masks`, the one place
    that decides), small capture patterns are pooled (:func:`_pattern_pool`) and small counts
    elsewhere are shown as ``"<5"``. Same inputs give the same bytes.

    Parameters
    ----------
    h : CaptureHistories
        The capture histories analysed (pooled over strata for the estimates).
    comparison : ComparisonTable
        A result of :func:`tipstat.compare` on the table pooled over strata (required).
    estimates : sequence of Estimate
        Further estimates to show in the diagnostics section (e.g. a Bayesian fit).
    accounting : mapping, DataFrame or object with ``to_frame()``, optional
        Records read / used / excluded per reason (from reading IC-TIP records).
    sdg_table : DataFrame, optional
        An SDG 16.2.2 table; rows with fewer than ``suppress_below`` detected persons are
        suppressed, with their complements. Its total row (every dimension ``_T``) is the
        headline figure.
    published : float, optional
        A published figure to mark on the forest plot.
    sensitivity : DataFrame, optional
        A result of :func:`tipstat.comparison.leave_one_list_out` (each list left out in
        turn); ``None`` (default) leaves that section out.
    reliability : InternalConsistency, DataFrame or str, optional
        The reliability check (:func:`tipstat.validate.internal_consistency` of the default
        method): its rating, per-list log relative bias and coverage, and the lists excluded as
        too few seen. Every report has the section: without a check it says why (pass a
        string to say it, e.g. ``"switched off"``; the default says it was not run).
    title, source : str
        Heading and a line naming the data source.
    level : float
        Interval coverage.
    seed : int, optional
        Seed of every random step (shown in the report).
    suppress_below : int
        Small-cell threshold (default 5).
    headline : mapping, optional
        ``{"n_hat", "lower", "upper", "level", "method"}``: the headline figure, instead of the
        SDG table's total row (or, without an SDG table, the comparison's default row).
    list_key : mapping, DataFrame or str, optional
        What each list is: ``{"P": ["Police North", "Police South"], ...}``, the list
        definition (columns ``entity_id``, ``list_id``, optionally ``entity_name``,
        ``entity_type``), or a bundled dataset's name (its ``tipstat.datasets.info(name)
        ["lists"]``).
    entities : DataFrame, optional
        Reporting entities (``entity_id``, ``entity_name``, ``entity_type``) joined to a list
        definition given as ``list_key``.
    warnings : sequence of str
        Warnings the run raised (reading, validation, linkage, the SDG table), shown with the
        estimators' own warnings.
    disclosure_audit : tipstat.disclosure.Audit or str, optional
        The attacker's audit of the published tables (:func:`tipstat.disclosure.audit`); its
        summary (counts and range widths, never a withheld value) is shown under the SDG table.
    created : str, optional
        A creation date to print; none by default, so the report is reproducible byte for
        byte.
    survey : tipstat.survey.SurveyRun, optional
        Survey estimates (:func:`tipstat.survey.run_survey`): the sections "Survey prevalence"
        and "Side by side with MSE" (:func:`tipstat.report.survey.survey_sections`).
    survey_side : DataFrame, optional
        :func:`tipstat.survey.side_by_side` of the survey and this report's MSE estimate.

    Returns
    -------
    str
        The HTML document.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.report.html import build_report
    >>> h = tipstat.datasets.load("Korea_3")
    >>> page = build_report(h, comparison=tipstat.compare(h, ["independence"]),
    ...                     list_key="Korea_3", seed=1)
    >>> page.startswith("<!DOCTYPE html>"), 'id="n-observed">123<' in page
    (True, True)
    """
    from .plots import plot_forest, plot_overlap_heatmap, plot_overlaps
    from .tables import comparison_records

    if not isinstance(h, CaptureHistories):
        raise InputError(f"build_report: expected tipstat.CaptureHistories, got {type(h).__name__}")
    if isinstance(warnings, str):
        warnings = [warnings]
    import tipstat

    t = suppress_below
    pooled = h.pooled() if h.n_strata > 1 else h
    if not isinstance(comparison, pd.DataFrame):
        raise InputError("build_report: comparison= expects the result of tipstat.compare (the "
                         f"report renders results, it does not compute them), got "
                         f"{type(comparison).__name__}")
    table_estimates = list(getattr(comparison, "estimates", []) or [])
    all_estimates = table_estimates + list(estimates)
    pct = f"{100 * level:g}%"

    pool, hide = _pattern_pool(pooled, t)
    singleton_hidden = {name for j, name in enumerate(pooled.lists) if pool[(1 << j) - 1]}
    size_hidden = {name for j, name in enumerate(pooled.lists) if hide[j, j]}
    sizes = pooled.list_sizes()
    key = _list_key(list_key, entities, list(pooled.lists))
    lists = [{"name": n, "size": "suppressed" if n in size_hidden else _count(sizes[n], t),
              "agencies": key[n]["agencies"] if key else "",
              "types": key[n]["types"] if key else ""} for n in pooled.lists]
    data = {
        "lists": lists, "key": key is not None,
        "key_types": bool(key) and any(v["types"] for v in key.values()),
        "n_observed": _count(pooled.n_observed, t),
        "k": pooled.k,
        "n_patterns": 2**pooled.k - 1,
        "n_zero": int((np.asarray(pooled.counts) == 0).sum()),
        "n_pooled": int(pool.sum()),
        "n_hidden_sums": int(hide.sum()),
        "strata": [_DIM_NAMES.get(s, s) for s in h.strata],
        "n_strata": h.n_strata,
    }
    strata = None
    if h.n_strata > 1:
        in_sdg = sdg_table is not None and set(h.strata) <= {"sex", "age_group", "exploitation"}
        strata = {"in_sdg": True} if in_sdg else _strata_rows(h, t)

    overlaps_png = _png(plot_overlaps(pooled, suppress_below=t, pool=pool,
                                      hide_sizes=np.diag(hide)))
    heatmap_png = _png(plot_overlap_heatmap(pooled, suppress_below=t, hide=hide))
    head = _headline(headline, sdg_table, comparison, level)
    if head is not None:
        detected = head.get("detected")
        head["detected_text"] = (_count(detected, t) if detected is not None
                                 and pd.notna(detected) else "")
    if published is None and head and head["source"] != "comparison" and head["estimable"]:
        published = head["n_hat"]           # the headline figure, marked on the forest plot
    forest_png = _png(plot_forest(comparison, published=published)) if len(comparison) else None
    rows = []
    for i, r in comparison.reset_index(drop=True).iterrows():
        row = {k: r[k] for k in comparison.columns} | {"row": i}
        row["status_text"] = _STATUS.get(str(r.get("status")), str(r.get("status")))
        row["ci_text"] = _CI_METHOD.get(str(r.get("ci_method")), str(r.get("ci_method")))
        row["headline"] = bool(head and head["source"] == "comparison" and head["row"] == i)
        row["notes"] = _mask_small_numbers(str(r.get("diagnostics") or ""), t)
        _shown(row, r.get("status"), r.get("n_hat"), r.get("lower"), r.get("upper"))
        row["caveats"] = [{"code": c["code"], "message": _mask_small_numbers(c["message"], t)}
                          for c in caveat_dicts(r.get("warnings") or ())]
        rows.append(row)
    # what the data cannot support: one block per estimate (the table's rows, then the others)
    cannot = [{"id": f"caveats-{row['row']}", "title": f"{row['method']}: {row['model']}",
               "status": row["status_text"], "shown": row["shown"], "caveats": row["caveats"],
               "is_estimate": row["is_estimate"], "is_bound": row["is_bound"]}
              for row in rows]
    for j, est in enumerate(estimates):
        item = {"id": f"caveats-extra-{j}", "title": f"{est.method}: {est.model}",
                "status": _STATUS.get(est.status, est.status), "caveats": [
                    {"code": c["code"], "message": _mask_small_numbers(c["message"], t)}
                    for c in caveat_dicts(est.warnings)]}
        _shown(item, est.status, est.n_hat, est.ci[0], est.ci[1])
        cannot.append(item)

    sens_rows, sens_notes = [], []
    if sensitivity is not None and len(sensitivity):
        for r in sensitivity.to_dict("records"):
            hide = str(r["left_out"]) in singleton_hidden
            sens_rows.append(_shown(r | {
                "observed_text": "suppressed" if hide else _count(r["observed"], t),
                "status_text": _STATUS.get(str(r["status"]), str(r["status"]))},
                r["status"], r["n_hat"], r["lower"], r["upper"]))
        for r in sensitivity.drop_duplicates("left_out").itertuples():
            lost = ("some" if str(r.left_out) in singleton_hidden
                    else _count(r.lost, t))
            sens_notes.append(f"{lost} person(s) seen only on {r.left_out} are not "
                              "observed without it")

    run_warnings = [_mask_small_numbers(str(w), t) for w in warnings]
    est_warnings = [_mask_small_numbers(f"{est.method} ({est.model}): [{w.code}] {w}", t)
                    for est in all_estimates for w in est.warnings]
    warn_list = list(dict.fromkeys(run_warnings + est_warnings))

    diag = []
    for est in all_estimates:
        item: dict[str, Any] = {"title": f"{est.method}: {est.model}",
                                "status": _STATUS.get(est.status, est.status),
                                "scalars": _scalar_diagnostics(est), "images": []}
        coef = est.coefficients
        if coef is not None:
            item["coefficients"] = [
                {"term": term, "estimate": _fmt(c.estimate, 4), "se": _fmt(c.se, 4),
                 "p": _fmt(c.p, 4)} for term, c in coef.iterrows()]
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
        if isinstance(d.get("path"), pd.DataFrame):
            from .plots import plot_model_search

            try:
                item["images"].append(_png(plot_model_search(est)))
            except InputError:
                pass
        diag.append(item)

    sdg = None
    if sdg_table is not None:
        from .plots import plot_sdg_rates

        sdg_table = sdg_table.reset_index(drop=True)
        sdg = _sdg_rows(sdg_table, t, level)
        image = None
        if {"rate_per_100k", "rate_lcl", "rate_ucl"} <= set(sdg_table.columns):
            plotted = sdg_table.copy()
            dims = [c for c in ("sex", "age", "exploitation") if c in plotted]
            if len(plotted) > 30 and dims:
                # the margins (total, by sex, by age, by form), not every cross-classified cell
                n_split = sum((plotted[c].astype(str) != "_T").astype(int) for c in dims)
                plotted = plotted[n_split <= 1]
            hidden = (sdg.pop("primary") | sdg.pop("secondary")).reindex(plotted.index,
                                                                         fill_value=False)
            plotted.loc[hidden, ["rate_per_100k", "rate_lcl", "rate_ucl"]] = np.nan
            short = {"sex": "Sex", "age": "Age", "exploitation": "Form"}
            labels = [", ".join(f"{short[c]}: {_code_label(c, r[c])}" for c in dims
                                if str(r[c]) != "_T") or "Total"
                      for _, r in plotted.iterrows()]
            image = _png(plot_sdg_rates(plotted, labels=labels))
        sdg.pop("primary", None)
        sdg.pop("secondary", None)
        sdg["image"] = image

    reliability_missing = None
    if reliability is None or isinstance(reliability, str):
        reliability_missing = (str(reliability) if isinstance(reliability, str) else
                               "not run for this report" + (
                                   " (it needs at least 3 lists; this table has "
                                   f"{pooled.k})" if pooled.k < 3 else ""))
        reliability = None

    reliability_table = None
    reliability_note = None
    reliability_rating = None
    if reliability is not None:
        indicator = getattr(reliability, "indicator", None)
        if isinstance(indicator, dict):
            reliability_note = indicator.get("note")
            rating = str(indicator.get("rating", ""))
            reliability_rating = {"rating": rating, "meaning": RATINGS.get(rating, "")}
        frame = reliability.to_frame() if hasattr(reliability, "to_frame") else reliability
        if isinstance(frame, pd.DataFrame):
            reliability_table = _reliability_rows(frame, t, singleton_hidden, size_hidden,
                                                  level)

    def finite(v: Any) -> float | None:
        return float(v) if v is not None and math.isfinite(float(v)) else None

    results = {
        "schema": "tipstat-report/1",
        "tipstat_version": tipstat.__version__,
        "n_observed": float(pooled.n_observed),
        "lists": list(pooled.lists),
        "seed": seed,
        "headline": None if head is None else {
            "n_hat": finite(head["n_hat"]) if head["estimable"] else None,
            "lower": finite(head["lower"]) if head["estimable"] else None,
            "upper": finite(head["upper"]) if head["estimable"] else None,
            "level": head["level"], "method": head["method"],
            **({"status": "lower_bound", "lower_bound": head["bound"]}
               if head.get("lower_bound") else {})},
        # run times are not results: without them the page is the same byte for byte
        "estimates": [{k: v for k, v in r.items() if k != "seconds"}
                      for r in comparison_records(comparison)],
    }
    env = _environment()
    return env.get_template("report.html").render(
        title=title, source=source, version=tipstat.__version__, created=created, seed=seed,
        level=level, pct=pct, data=data, strata=strata,
        accounting=_accounting_rows(accounting, t), threshold=t, headline=head,
        overlaps_png=overlaps_png, heatmap_png=heatmap_png, forest_png=forest_png, rows=rows,
        skipped=comparison.attrs.get("skipped", []), published=published,
        sensitivity=sens_rows, sensitivity_notes=sens_notes,
        sensitivity_methods=([] if sensitivity is None else
                             sensitivity.attrs.get("methods") or
                             sorted(set(sensitivity["method"].astype(str)))),
        warnings=warn_list,
        n_run_warnings=len(run_warnings), diagnostics=diag,
        show_reliability=any(r.get("reliability") for r in rows),
        sdg=sdg, audit_lines=([] if disclosure_audit is None else
                              (disclosure_audit.summary() if hasattr(disclosure_audit, "summary")
                               else str(disclosure_audit)).split("\n")),
        reliability_table=reliability_table, reliability_note=reliability_note,
        reliability_rating=reliability_rating, reliability_missing=reliability_missing,
        cannot_support=cannot,
        survey_html=(None if survey is None else _survey_sections(survey, survey_side)),
        survey_nsum=getattr(survey, "nsum", None) is not None,
        results_json=json.dumps(results, allow_nan=False).replace("</", "<\\/"),
    )


def _survey_sections(survey: Any, side: pd.DataFrame | None) -> Any:
    from .survey import survey_sections

    return survey_sections(survey, side)


def write_report(path: str | Path, h: CaptureHistories, **kwargs: Any) -> Path:
    """Write :func:`build_report`'s HTML to ``path`` (parent folders are created).

    Returns the path written. Keyword arguments are those of :func:`build_report`.

    Examples
    --------
    >>> import tempfile, pathlib, tipstat
    >>> from tipstat.report.html import write_report
    >>> h = tipstat.datasets.load("Korea_3")
    >>> out = write_report(pathlib.Path(tempfile.mkdtemp()) / "korea.html", h,
    ...                    comparison=tipstat.compare(h, ["independence"]))
    >>> out.stat().st_size > 10_000
    True
    """
    path = Path(path)
    page = build_report(h, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
