"""SDMX-CSV export of the SDG 16.2.2 table in the layout of the SDG global database.

The SDG global database publishes through the dataflow ``IAEG-SDGs:DF_SDG_GLH`` (SDG harmonised
global dataflow), whose key has 15 positions::

    FREQ.REPORTING_TYPE.SERIES.REF_AREA.SEX.AGE.URBANISATION.INCOME_WEALTH_QUANTILE.
    EDUCATION_LEV.OCCUPATION.CUST_BREAKDOWN.COMPOSITE_BREAKDOWN.DISABILITY_STATUS.ACTIVITY.PRODUCT

plus ``TIME_PERIOD``. Indicator 16.2.2's official series are the detected victims
``VC_HTF_DETV`` (total), ``VC_HTF_DETVSX`` (sexual exploitation), ``VC_HTF_DETVFL`` (forced
labour), ``VC_HTF_DETVOG`` (organ removal), ``VC_HTF_DETVOP`` (other purposes) and their rates per
100,000 population (suffix ``R``).

:func:`write_sdmx_csv` writes one observation per table row and measure in SDMX-CSV 2.0 (columns
``STRUCTURE, STRUCTURE_ID, ACTION``, the dimensions, ``OBS_VALUE`` and the attributes
``UNIT_MEASURE, UNIT_MULT, OBS_STATUS, NATURE, LOWER_BOUND, UPPER_BOUND, COMMENT_OBS``):

- detected persons under the official series (``NATURE = C``, country data;
  ``OBS_STATUS = A``);
- with ``estimates=True`` (default), the MSE estimate of all victims, detected and undetected,
  with its interval in ``LOWER_BOUND`` / ``UPPER_BOUND``, under tipstat's own series codes
  ``TIPSTAT_VC_HTF_ESTV*`` (``NATURE = M``, modelled; ``OBS_STATUS = E``): there is no official
  SDG series for it, so it is never written under an official code;
- suppressed rows have an empty ``OBS_VALUE``, ``OBS_STATUS = Q`` (missing value; suppressed)
  and the reason in ``COMMENT_OBS``; rows with no estimate (not estimable) have
  ``OBS_STATUS = O`` (missing value).

Rows of mixed exploitation (``MIX``, no SDG series) are not written. ``REF_AREA`` is the table's
code as given (ISO 3166-1 alpha-3); the SDG global database uses M49 numeric codes
(``ref_area=`` replaces it). Written by hand rather than with an SDMX library: the file is one
flat CSV with a fixed header, while ``pysdmx`` / ``sdmx1`` bring network and schema
dependencies for features this export does not use.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

__all__ = ["DATAFLOW", "DIMENSIONS", "sdmx_rows", "write_sdmx_csv"]

#: The SDG harmonised global dataflow (agency, id, version).
DATAFLOW = ("IAEG-SDGs", "DF_SDG_GLH", "1.26")
#: Dimensions of the SDG DSD, in key order, then the time dimension.
DIMENSIONS = ("FREQ", "REPORTING_TYPE", "SERIES", "REF_AREA", "SEX", "AGE", "URBANISATION",
              "INCOME_WEALTH_QUANTILE", "EDUCATION_LEV", "OCCUPATION", "CUST_BREAKDOWN",
              "COMPOSITE_BREAKDOWN", "DISABILITY_STATUS", "ACTIVITY", "PRODUCT", "TIME_PERIOD")
ATTRIBUTES = ("UNIT_MEASURE", "UNIT_MULT", "OBS_STATUS", "NATURE", "LOWER_BOUND", "UPPER_BOUND",
              "COMMENT_OBS")
HEADER = ("STRUCTURE", "STRUCTURE_ID", "ACTION", *DIMENSIONS, "OBS_VALUE", *ATTRIBUTES)
#: Prefix of tipstat's own (non-official) series of MSE estimates.
ESTIMATE_PREFIX = "TIPSTAT_"


def _num(v: Any) -> str:
    if v is None:
        return ""
    f = float(v)
    if not math.isfinite(f):
        return ""
    return f"{f:.4f}".rstrip("0").rstrip(".")


def sdmx_rows(sdg: Any, *, ref_area: str | None = None, estimates: bool = True,
              version: str = DATAFLOW[2]) -> list[dict[str, str]]:
    """The observations of an SDG table (``SDGTable`` or its DataFrame) as SDMX-CSV rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from tipstat.indicator import SDGTable, COLUMNS
    >>> t = pd.DataFrame([dict.fromkeys(COLUMNS)])
    >>> t.loc[0, ["ref_area", "time_period", "sex", "age", "exploitation", "series_code",
    ...           "rate_series_code", "obs_status"]] = ["BEL", 2024, "_T", "_T", "_T",
    ...           "VC_HTF_DETV", "VC_HTF_DETVR", "estimated"]
    >>> t.loc[0, ["detected", "total_est", "total_lcl", "total_ucl", "detected_rate",
    ...           "rate_per_100k", "rate_lcl", "rate_ucl"]] = [120, 300.5, 250, 380, 1.2, 3.0, 2.5, 3.8]
    >>> rows = sdmx_rows(SDGTable(t, 0.95, True))
    >>> [(r["SERIES"], r["OBS_VALUE"], r["NATURE"]) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    [('VC_HTF_DETV', '120', 'C'), ('VC_HTF_DETVR', '1.2', 'C'),
     ('TIPSTAT_VC_HTF_ESTV', '300.5', 'M'), ('TIPSTAT_VC_HTF_ESTVR', '3', 'M')]
    """
    from .indicator import SUPPRESSED, SUPPRESSED_SECONDARY

    table = getattr(sdg, "table", sdg)
    level = getattr(sdg, "level", None)
    structure_id = f"{DATAFLOW[0]}:{DATAFLOW[1]}({version})"
    out: list[dict[str, str]] = []
    for r in table.itertuples(index=False):
        series = r.series_code
        if not isinstance(series, str) or not series:
            continue  # mixed exploitation: no SDG series
        status = str(r.obs_status)
        measures = [(series, "NUMBER", r.detected, None, None, "C"),
                    (r.rate_series_code, "PER_100000_POP", r.detected_rate, None, None, "C")]
        if estimates:
            est = ESTIMATE_PREFIX + series.replace("DETV", "ESTV")
            measures += [(est, "NUMBER", r.total_est, r.total_lcl, r.total_ucl, "M"),
                         (est + "R", "PER_100000_POP", r.rate_per_100k, r.rate_lcl, r.rate_ucl,
                          "M")]
        for code, unit, value, lo, hi, nature in measures:
            comment = ""
            if status == SUPPRESSED:
                obs, value, lo, hi = "Q", None, None, None
                comment = "suppressed: fewer than 5 detected persons"
            elif status == SUPPRESSED_SECONDARY:
                obs, value, lo, hi = "Q", None, None, None
                comment = "suppressed (secondary): withheld so that a small cell cannot be recovered"
            elif _num(value) == "":
                if unit == "PER_100000_POP" and nature == "C" and _num(r.detected) != "":
                    continue  # no population at risk (unknown sex or age): no rate to publish
                obs = "O"
                comment = "not estimable" if nature == "M" else "no value"
            else:
                obs = "A" if nature == "C" else "E"
                if nature == "M" and level is not None:
                    comment = (f"MSE estimate of all victims, detected and undetected; bounds: "
                               f"{100 * level:g}% bootstrap interval")
            out.append({
                "STRUCTURE": "dataflow", "STRUCTURE_ID": structure_id, "ACTION": "I",
                "FREQ": "A", "REPORTING_TYPE": "N", "SERIES": str(code),
                "REF_AREA": str(ref_area or r.ref_area or ""), "SEX": str(r.sex),
                "AGE": str(r.age), "URBANISATION": "_T", "INCOME_WEALTH_QUANTILE": "_T",
                "EDUCATION_LEV": "_T", "OCCUPATION": "_T", "CUST_BREAKDOWN": "_T",
                "COMPOSITE_BREAKDOWN": "_T", "DISABILITY_STATUS": "_T", "ACTIVITY": "_T",
                "PRODUCT": "_T", "TIME_PERIOD": "" if r.time_period is None else str(r.time_period),
                "OBS_VALUE": _num(value), "UNIT_MEASURE": unit, "UNIT_MULT": "0",
                "OBS_STATUS": obs, "NATURE": nature, "LOWER_BOUND": _num(lo),
                "UPPER_BOUND": _num(hi), "COMMENT_OBS": comment})
    return out


def write_sdmx_csv(sdg: Any, path: str | Path, *, ref_area: str | None = None,
                   estimates: bool = True, version: str = DATAFLOW[2]) -> Path:
    """Write :func:`sdmx_rows` as an SDMX-CSV 2.0 file (UTF-8, ``\\n`` line ends, fixed column
    order: the same table gives the same bytes). Returns the path."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HEADER, lineterminator="\n")
    w.writeheader()
    w.writerows(sdmx_rows(sdg, ref_area=ref_area, estimates=estimates, version=version))
    path = Path(path)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return path
