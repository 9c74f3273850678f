"""SDG indicator 16.2.2: victims of trafficking per 100,000 population, by sex, age and form.

From a stratified MSE result (:func:`tipstat.models.stratified.fit_stratified`) and a population
table, :func:`sdg_16_2_2` builds one row per (sex, age, form) cell and margin (``_T`` = total):

.. math::

    \\text{detected} = n_{cell}, \\quad
    \\text{total} = \\hat N_{cell} = n_{cell} + \\hat\\mu_{cell,0}, \\quad
    \\text{rate} = 10^5 \\, \\hat N_{cell} / \\text{population},

where ``n`` is the number of distinct linked persons (never the sum of list sizes), margins are
sums of cells and intervals are percentiles of the same bootstrap replicates summed the same
way. The population is that of the row's sex x age group (``denominator="group"``, default;
form of exploitation has no population at risk, so it never narrows the denominator) or the
whole population (``"total"``). Rows for unknown sex or age (``_U``) have no group population and
no group rate.

The detected-only rates (the official series ``VC_HTF_DETV``, ``…SX`` sexual exploitation,
``…FL`` forced labour, ``…OG`` organ removal, ``…OP`` other purposes, and the ``…R`` rate
variants) are in the same rows: ``detected`` and ``detected_rate`` with ``series_code`` /
``rate_series_code``.

Published output passes through :mod:`tipstat.disclosure`: rows with 1-4 detected persons are
withheld (primary suppression), and complementary rows (secondary suppression) are chosen by
integer programming so that an attacker who solves the linear or integer program over every
published value, margin and table published with it (:func:`protect_together`) can still not
tell a small cell from any value 1-4 (see ``docs/disclosure.md``). Every withheld row has
``obs_status = "suppressed"`` and GLOTIP ``x``: marking the complements apart would tell that
they hold 5 or more, which narrows the small cells. Every value of a withheld row is withheld
(counts, rates, estimates and intervals), because each of them gives the detected count back
with the other published values.

A row whose estimate does not exist or is not identifiable (a stratum with estimate status
``does_not_exist``, ``not_identifiable`` or ``not_converged``, or a non-finite estimate), and
every margin containing such a stratum, is published as not estimable: detected persons and
detected rate as usual, blank estimates, intervals and rates, ``obs_status = "not estimable"``
and the reason in ``notes`` (GLOTIP ``not estimable``), never ``0`` or ``inf``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import disclosure
from .errors import InputError, Problem, TipstatWarning
from .estimate import Estimate
from .models.intervals import equal_tailed

__all__ = ["SDGTable", "normalise_population", "protect_together", "sdg_16_2_2",
           "secondary_suppression"]

#: ``obs_status`` of every withheld row (small cells and their complements alike).
SUPPRESSED = disclosure.PRIMARY
#: ``obs_status`` of complements in tables of tipstat <= 0.1 (still read, never written).
SUPPRESSED_SECONDARY = disclosure.SECONDARY
#: ``obs_status`` of a row whose estimate does not exist or is not identifiable.
NOT_ESTIMABLE = "not estimable"
#: Why a stratum has no estimate, by estimate status.
_NO_ESTIMATE = {"does_not_exist": "the MLE does not exist (N-hat infinite)",
                "not_identifiable": "N is not identifiable under the model",
                "not_converged": "the fit did not converge",
                "failed": "the fit failed"}
_ESTIMATES = ["undetected_est", "undetected_lcl", "undetected_ucl", "total_est", "total_lcl",
              "total_ucl", "rate_per_100k", "rate_lcl", "rate_ucl"]

DIMS = ("sex", "age_group", "age_group_l2", "exploitation")
SERIES = {"_T": "VC_HTF_DETV", "SEX": "VC_HTF_DETVSX", "LAB": "VC_HTF_DETVFL",
          "ORG": "VC_HTF_DETVOG", "OTH": "VC_HTF_DETVOP"}
GLOTIP_SEX = {"F": "Female", "M": "Male", "_T": "Total", "_U": "Unknown", "_O": "Other"}
GLOTIP_AGE = {"Y0T17": "0 to 17 years", "Y_GE18": "18 years or over", "_T": "Total", "_U": "Unknown"}
GLOTIP_FORM = {"SEX": "Sexual exploitation", "LAB": "Forced labour", "ORG": "Removal of organs",
               "OTH": "Other purposes", "MIX": "Mixed exploitation (sexual and forced labour)",
               "_U": "Unknown", "_T": "Total"}
COLUMNS = ["ref_area", "time_period", "sex", "age", "exploitation", "detected", "undetected_est",
           "undetected_lcl", "undetected_ucl", "total_est", "total_lcl", "total_ucl", "population",
           "denominator_type", "rate_per_100k", "rate_lcl", "rate_ucl", "detected_rate",
           "method", "model_formula", "n_lists", "series_code", "rate_series_code", "obs_status",
           "notes"]
_NUMERIC = ["detected", "undetected_est", "undetected_lcl", "undetected_ucl", "total_est",
            "total_lcl", "total_ucl", "rate_per_100k", "rate_lcl", "rate_ucl", "detected_rate"]


@dataclass
class SDGTable:
    """The SDG 16.2.2 table and its exports.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns :data:`COLUMNS` (ICTIP.md §6.1 output ``sdg_16_2_2``); small cells suppressed
        when ``suppressed`` is True.
    level : float
        Interval level.
    suppressed : bool
        Whether small cells were suppressed.
    n_suppressed : int
        Rows whose values were suppressed (primary + secondary).
    n_suppressed_primary : int
        Rows with 1 to ``threshold - 1`` detected persons.
    n_suppressed_secondary : int
        Complementary rows withheld so that no small row can be narrowed from the others.
        Both kinds have ``obs_status = "suppressed"`` (GLOTIP ``x``): which row is which is
        not published.
    seed : int or None
        Seed of the bootstrap behind the intervals (set by :func:`tipstat.pipeline.run_indicator`).
    meta : dict
        Metadata written with the table (seed, method, headline; the Excel sheet ``metadata``).
    suppression : tipstat.disclosure.Suppression or None
        The pattern (``primary`` / ``secondary`` masks in the table's row order) and how it was
        found; pass ``suppression.primary`` to :func:`tipstat.disclosure.audit` as
        ``sensitive`` to audit your own output.
    mix : str
        The mixed-exploitation rule the table was built with.
    """

    table: pd.DataFrame
    level: float
    suppressed: bool
    n_suppressed: int = 0
    warnings: list[str] = field(default_factory=list)
    n_suppressed_primary: int = 0
    n_suppressed_secondary: int = 0
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    suppression: disclosure.Suppression | None = None  # the pattern and how it was found
    mix: str = "separate"

    def published(self, protect: bool = True) -> SDGTable:
        """The table as it may be published: an unsuppressed table with small cells goes
        through :func:`protect_together` first (threshold 5; TipstatWarning W7), unless
        ``protect=False`` (internal use only). Every export calls this."""
        if self.suppressed or not protect:
            return self
        det = pd.to_numeric(self.table["detected"], errors="coerce")
        if not ((det > 0) & (det < 5)).any():
            return self
        warnings.warn("[W7] exporting a table built with suppress=False: small cells and their "
                      "complements are suppressed first (protect=False exports it as is, for "
                      "internal use only)", TipstatWarning, stacklevel=3)
        return protect_together([self])[0]

    def to_glotip(self, country: str | None = None, source: str = "tipstat MSE (synthetic or "
                  "national data)", protect: bool = True) -> pd.DataFrame:
        """GLOTIP / UNODC data-portal long format.

        Columns ``Iso3_code, Country, Region, Subregion, Indicator, Dimension, Category, Sex,
        Age, Year, Unit of measurement, txtVALUE, Source``; withheld values are the string ``x``
        (small cells and the cells withheld to protect them alike: a separate ``<5`` would tell
        that the others hold 5 or more, which narrows the small ones), and the estimates of a
        row whose estimate does not exist or is not identifiable are ``not estimable``. Sum
        only within one ``Dimension``.
        """
        pub = self.published(protect)
        if pub is not self:
            return pub.to_glotip(country, source)
        rows = []
        measures = [("Detected trafficking victims", "Counts", "detected"),
                    ("Estimated trafficking victims (MSE), detected and undetected", "Counts",
                     "total_est"),
                    (f"Estimated trafficking victims (MSE), lower {100 * self.level:g}% bound",
                     "Counts", "total_lcl"),
                    (f"Estimated trafficking victims (MSE), upper {100 * self.level:g}% bound",
                     "Counts", "total_ucl"),
                    ("Detected trafficking victims", "Rate per 100,000 population", "detected_rate"),
                    ("Estimated trafficking victims (MSE), detected and undetected",
                     "Rate per 100,000 population", "rate_per_100k")]
        for r in self.table.itertuples(index=False):
            dim = "Total" if r.exploitation == "_T" else "by form of exploitation"
            for indicator, unit, col in measures:
                v = getattr(r, col)
                if r.obs_status in (SUPPRESSED, SUPPRESSED_SECONDARY):
                    txt = "x"
                elif r.obs_status == NOT_ESTIMABLE and col not in ("detected", "detected_rate"):
                    txt = NOT_ESTIMABLE
                elif v is None or (isinstance(v, float) and not math.isfinite(v)):
                    continue
                else:
                    txt = f"{v:,.0f}" if unit == "Counts" else f"{v:,.2f}"
                rows.append({"Iso3_code": r.ref_area, "Country": country or r.ref_area,
                             "Region": "", "Subregion": "", "Indicator": indicator,
                             "Dimension": dim, "Category": GLOTIP_FORM.get(r.exploitation, r.exploitation),
                             "Sex": GLOTIP_SEX.get(r.sex, r.sex),
                             "Age": GLOTIP_AGE.get(r.age, r.age), "Year": r.time_period,
                             "Unit of measurement": unit, "txtVALUE": txt, "Source": source})
        return pd.DataFrame(rows, columns=["Iso3_code", "Country", "Region", "Subregion",
                                           "Indicator", "Dimension", "Category", "Sex", "Age",
                                           "Year", "Unit of measurement", "txtVALUE", "Source"])

    def to_csv(self, path: str | Path, glotip: bool = False, protect: bool = True) -> Path:
        """Write the table (or its GLOTIP long form) as CSV (through :meth:`published`)."""
        path = Path(path)
        pub = self.published(protect)
        (pub.to_glotip(protect=protect) if glotip else pub.table).to_csv(path, index=False)
        return path

    def to_excel(self, path: str | Path, protect: bool = True) -> Path:
        """Write an Excel workbook with sheets ``sdg_16_2_2`` and ``glotip`` (needs openpyxl;
        through :meth:`published`)."""
        path = Path(path)
        pub = self.published(protect)
        with pd.ExcelWriter(path) as xw:
            pub.table.to_excel(xw, sheet_name="sdg_16_2_2", index=False)
            pub.to_glotip(protect=protect).to_excel(xw, sheet_name="glotip", index=False)
            if self.meta or self.seed is not None:
                meta = {"seed": self.seed, **self.meta}
                pd.DataFrame({"item": list(meta), "value": [str(v) for v in meta.values()]}
                             ).to_excel(xw, sheet_name="metadata", index=False)
        _reproducible_xlsx(path)
        return path


def _reproducible_xlsx(path: Path) -> None:
    """Make a written workbook the same bytes for the same content: the creation and
    modification times that openpyxl stamps (document properties and every zip entry) are
    replaced by a fixed time, so the same command twice gives the same file."""
    import re
    import zipfile

    fixed = "2000-01-01T00:00:00Z"
    with zipfile.ZipFile(path) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                              rb"\g<1>" + fixed.encode() + rb"\g<2>", data)
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)


_POP_TOTAL = ("_t", "t", "total", "all", "both sexes", "all ages", "all sexes", "both")
_POP_COLUMNS = {"sex": "sex", "gender": "sex", "age_group": "age_group", "age": "age_group",
                "population": "population", "ref_area": "ref_area", "year": "year",
                "time_period": "year"}


def _population_aliases() -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    """Case-insensitive value -> code for ``sex`` and ``age_group`` (codes, code-list labels,
    GLOTIP labels, the records' aliases, ``Total``) and each age group's children."""
    from .ictip import codelists

    def table(name: str, glotip: dict[str, str]) -> dict[str, str]:
        cl = codelists.load(name).frame
        out = {str(v).strip().lower(): str(c) for c, v in zip(cl["code"], cl["label"], strict=True)}
        out.update({str(c).lower(): str(c) for c in cl["code"]})
        out.update({v.lower(): k for k, v in glotip.items()})
        xw = codelists.crosswalk("aliases").get(name, {})
        out.update({str(k).strip().lower(): str(v) for k, v in xw.items()})
        for h_name, h_map in codelists.crosswalk("htcds-2.0").items():
            if h_name == name:
                out.update({str(k).strip().lower(): str(v) for k, v in h_map.items()})
        out.update(dict.fromkeys(_POP_TOTAL, "_T"))
        return out

    ages = codelists.load("age_group").frame
    children: dict[str, list[str]] = {"_T": [str(c) for c in ages.loc[ages["level"] == 1, "code"]
                                             if c != "_U"]}
    for parent, group in ages.dropna(subset=["parent_code"]).groupby("parent_code"):
        if str(parent):
            children[str(parent)] = [str(c) for c in group["code"]]
    children = {k: v for k, v in children.items() if v}
    return table("sex", GLOTIP_SEX), table("age_group", GLOTIP_AGE), children


def normalise_population(population: pd.DataFrame, ref_area: str | None = None,
                         time_period: Any = None) -> pd.DataFrame:
    """The population table with codes, filtered to ``ref_area`` / ``time_period``, and the
    ``_T`` totals that are sums of given rows.

    The file has one row per sex x age group: columns ``sex``, ``age_group`` (or ``age``) and
    ``population`` (case-insensitive), optionally ``ref_area`` and ``year`` (then rows of other
    countries or years are ignored). Values may be codes (``F``, ``M``, ``_T``; ``Y0T17``,
    ``Y_GE18``, ``_T`` or finer bands such as ``Y18T24``), or the labels the records and GLOTIP
    use (``Female``, ``Male``, ``Total``; ``Child``, ``0 to 17 years``, ``18 years or over``).
    A total that is missing is derived when all its parts are given: ``(sex, _T)`` from the sex's
    age groups, ``(_T, age)`` from ``F`` and ``M``, an age group from its finer bands. A given
    total that differs from the sum of its parts by more than 0.5% raises a warning.

    Parameters
    ----------
    population : DataFrame
    ref_area, time_period : optional
        Keep only the rows of this country / year (when the table has those columns).

    Returns
    -------
    DataFrame
        ``sex, age_group, population, derived`` (``derived`` True for totals computed here).

    Raises
    ------
    InputError
        A column missing (named), a value that is not a sex or age group (row named; the value
        is shown only when it is short), a population that is not a number > 0, two rows for
        the same sex x age group, or no row left after filtering.

    Examples
    --------
    >>> import pandas as pd
    >>> pop = pd.DataFrame({"sex": ["Female", "Male", "Female", "Male"],
    ...                     "age_group": ["0 to 17 years", "0 to 17 years", "Adult", "Adult"],
    ...                     "population": [10, 11, 40, 39]})
    >>> t = normalise_population(pop).set_index(["sex", "age_group"])["population"]
    >>> float(t["_T", "_T"]), float(t["F", "_T"]), float(t["_T", "Y0T17"])
    (100.0, 50.0, 21.0)
    """
    if not isinstance(population, pd.DataFrame):
        raise InputError(f"population must be a DataFrame, got {type(population).__name__}")
    rename = {}
    for c in population.columns:
        key = str(c).strip().lower()
        if key in _POP_COLUMNS and _POP_COLUMNS[key] not in rename.values():
            rename[c] = _POP_COLUMNS[key]
    pop = population.rename(columns=rename)
    need = [c for c in ("sex", "age_group", "population") if c not in pop.columns]
    if need:
        raise InputError(f"population table: column(s) {need} missing; expected columns sex, "
                         "age_group, population (optionally ref_area, year); the table has "
                         f"{[str(c) for c in population.columns]}")
    if ref_area is not None and "ref_area" in pop.columns:
        areas = pop["ref_area"].astype(str).str.strip()
        if not (areas == str(ref_area)).any():
            raise InputError(f"population table: no row for ref_area {ref_area!r} (it has "
                             f"{sorted(set(areas))[:10]})")
        pop = pop[(areas == str(ref_area)).to_numpy()]
    if time_period is not None and "year" in pop.columns:
        years = pop["year"].astype(str).str.strip().str.replace(r"\.0$", "", regex=True)
        if not (years == str(time_period)).any():
            raise InputError(f"population table: no row for year {time_period} (it has "
                             f"{sorted(set(years))[:10]})")
        pop = pop[(years == str(time_period)).to_numpy()]
    if len(pop) == 0:
        raise InputError("population table: no rows")
    sex_of, age_of, children = _population_aliases()
    problems = []
    codes = {}
    for col, table, what in (("sex", sex_of, "a sex: F, M, _T (or Female, Male, Total)"),
                             ("age_group", age_of, "an age group: Y0T17, Y_GE18, _T (or Child, "
                              "Adult, 0 to 17 years, 18 years or over, Total) or a finer band")):
        raw = pop[col].astype(str).str.strip()
        mapped = raw.str.lower().map(table)
        for i in pop.index[mapped.isna().to_numpy()]:
            v = raw[i]
            problems.append(Problem(col, i, v if len(v) <= 20 else f"<{len(v)} characters>", what))
        codes[col] = mapped
    values = pd.to_numeric(pop["population"], errors="coerce")
    bad = values.isna() | (values <= 0)
    problems += [Problem("population", i, pop.at[i, "population"], "a number > 0")
                 for i in pop.index[bad.to_numpy()]]
    if problems:
        raise InputError("population table: rule 9, every row needs a sex, an age group and a "
                         "population > 0", problems)
    out: dict[tuple[str, str], float] = {}
    for i, s, a, v in zip(pop.index, codes["sex"], codes["age_group"], values, strict=True):
        if (s, a) in out:
            raise InputError(f"population table: two rows for sex={s}, age_group={a} (row {i})"
                             + ("; filter the table by ref_area/year or give --country/--year"
                                if {"ref_area", "year"} & set(pop.columns) else ""))
        out[(s, a)] = float(v)
    given = dict(out)
    sexes = sorted({s for s, _ in out} | {"_T"})
    parts_sex = [s for s in ("F", "M") if any(k[0] == s for k in out)]

    def parts(key: tuple[str, str]) -> list[list[tuple[str, str]]]:
        s, a = key
        ways = []
        if a in children:
            ways.append([(s, c) for c in children[a]])
        if s == "_T" and len(parts_sex) == 2:
            ways.append([(p, a) for p in parts_sex])
        return ways

    ages = sorted({a for _, a in out} | set(children))
    changed = True
    while changed:
        changed = False
        for s in sexes:
            for a in ages:
                if (s, a) in out:
                    continue
                for way in parts((s, a)):
                    if all(k in out for k in way):
                        out[(s, a)] = float(sum(out[k] for k in way))
                        changed = True
                        break
    for key, v in given.items():
        for way in parts(key):
            if all(k in out for k in way):
                total = sum(out[k] for k in way)
                if abs(total - v) > 0.005 * v:
                    warnings.warn(f"population table: sex={key[0]}, age_group={key[1]} is {v:,.0f}"
                                  f" but its parts {[f'{s}/{a}' for s, a in way]} sum to "
                                  f"{total:,.0f}; the given total is used", TipstatWarning,
                                  stacklevel=2)
    return pd.DataFrame([(s, a, v, (s, a) not in given) for (s, a), v in out.items()],
                        columns=["sex", "age_group", "population", "derived"])


def _check_population(population: pd.DataFrame, ref_area: str | None,
                      time_period: Any) -> dict[tuple[str, str], float]:
    pop = normalise_population(population, ref_area, time_period)
    return {(s, a): float(v) for s, a, v in zip(pop["sex"], pop["age_group"], pop["population"],
                                                strict=True)}


def _remap_mix(cells: pd.DataFrame, draws: np.ndarray | None, mix: str):
    if "exploitation" not in cells.columns or mix == "separate":
        return cells, draws, []
    is_mix = (cells["exploitation"] == "MIX").to_numpy()
    if not is_mix.any():
        return cells, draws, []
    if mix == "OTH":
        cells = cells.copy()
        cells.loc[is_mix, "exploitation"] = "OTH"
        return cells, draws, ["mixed exploitation (SEX and LAB) counted under OTH"]
    # "both": multiple response, a mixed case counts in SEX and in LAB
    a = cells[is_mix].assign(exploitation="SEX")
    b = cells[is_mix].assign(exploitation="LAB")
    out = pd.concat([cells[~is_mix], a, b], ignore_index=True)
    if draws is not None:
        draws = np.column_stack([draws[:, ~is_mix], draws[:, is_mix], draws[:, is_mix]])
    return out, draws, ["mixed exploitation counted under both SEX and LAB (multiple response): "
                        "forms do not add up to the total"]


def sdg_16_2_2(
    result: Estimate,
    population: pd.DataFrame,
    *,
    ref_area: str | None = None,
    time_period: Any = None,
    denominator: str = "group",
    suppress: bool = True,
    threshold: int = 5,
    mix: str = "separate",
    dims: Sequence[str] | None = None,
    secondary: bool = True,
) -> SDGTable:
    """The SDG 16.2.2 table from a stratified MSE result.

    Parameters
    ----------
    result : Estimate
        From :func:`tipstat.models.stratified.fit_stratified` (strata among ``sex``,
        ``age_group``, ``exploitation``), or any unstratified :class:`Estimate` (one total row).
    population : DataFrame
        ``sex`` (``F``, ``M``, ``_T``), ``age_group`` (``Y0T17``, ``Y_GE18``, ``_T``, finer
        bands), ``population``, optionally ``ref_area`` and ``year`` (then filtered by
        ``ref_area`` / ``time_period``). Rule 9: every requested denominator present and > 0.
    ref_area, time_period : optional
        Written to the table (and used to filter the population table).
    denominator : ``"group"`` or ``"total"``
        Population of the row's sex x age group, or the total population.
    suppress : bool
        Suppress rows with 1 to ``threshold - 1`` detected persons (default True, W7).
    secondary : bool
        With ``suppress``, also suppress complementary rows so that no suppressed row can be
        narrowed by the linear or integer programming attack on the published rows below the
        range its marker allows (default True; :func:`tipstat.disclosure.suppress`). To protect
        tables published together, build them with ``suppress=False`` and pass them to
        :func:`protect_together`.
    mix : ``"separate"``, ``"both"`` or ``"OTH"``
        Mixed exploitation (SEX and LAB): its own row (default; no SDG series), counted in both
        SEX and LAB (multiple response), or under other purposes.
    dims : sequence of str, optional
        Which strata to cross (default: all of ``sex``, ``age_group``, ``exploitation`` present).

    Returns
    -------
    SDGTable

    Examples
    --------
    >>> import warnings
    >>> from tipstat import simulate
    >>> from tipstat.ictip import capture_histories
    >>> from tipstat.linkage import persons
    >>> from tipstat.models.stratified import fit_stratified
    >>> c = simulate.country(3000, seed=5, lists={k: v for k, v in
    ...     simulate.DEFAULT_LISTS.items() if k in "PKIO"})
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     h = capture_histories(persons(c.read(period=c.year)), by=["sex"])
    ...     t = sdg_16_2_2(fit_stratified(h, n_boot=50, seed=1), c.population)
    >>> t.table[["sex", "age", "detected"]].values.tolist()[-1] == ["_T", "_T", c.n_detected]
    True
    """
    if denominator not in ("group", "total"):
        raise InputError(f"denominator={denominator!r}; expected 'group' or 'total'")
    if mix not in ("separate", "both", "OTH"):
        raise InputError(f"mix={mix!r}; expected 'separate', 'both' or 'OTH'")
    if threshold < 1:
        raise InputError(f"threshold={threshold}; expected a positive whole number")
    if not isinstance(result, Estimate):
        raise InputError(f"result must be a tipstat Estimate, got {type(result).__name__}")
    pops = _check_population(population, ref_area, time_period)
    level = result.level
    if result.cells is not None:
        cells = result.cells.table
        draws = result.cells.replicates
        strata = [s for s in result.cells.strata if s in DIMS]
        other = [s for s in result.cells.strata if s not in DIMS]
        if other:
            raise InputError(f"strata {other} are not SDG 16.2.2 dimensions {list(DIMS)}; "
                             "estimate with by= among sex, age_group, exploitation")
        if result.cells.missing == "em":
            em_note = "detected in cells includes persons with unknown covariates shared out by EM"
        else:
            em_note = ""
    else:
        cells = pd.DataFrame({"observed": [result.n_observed], "n_hat": [result.n_hat],
                              "status": [result.status]})
        draws = None if result.draws is None else np.asarray(result.draws)[:, None]
        if draws is None:
            cells["lower"], cells["upper"] = result.ci
        strata, em_note = [], ""
    if "age_group" in strata and "age_group_l2" in strata:
        raise InputError("strata age_group and age_group_l2 together: use one age dimension")
    dims = strata if dims is None else [d for d in dims if d in strata]
    cells = cells.assign(_why=_why_not_estimable(cells))
    cells0, draws0 = cells, draws
    cells_m, draws_m, notes_mix = _remap_mix(cells, draws, mix)
    n_lists = (len(result.cells.lists) or None) if result.cells is not None else None
    method = "MSE_LOGLINEAR" if result.method.startswith("stratified") or result.method == "loglinear" \
        else result.method.upper()
    rows = []
    for r in range(len(dims) + 1):
        for keep in itertools.combinations(dims, r):
            keep = list(keep)
            # form rows use the mixed-exploitation rule; other margins count each person once
            cells, draws = (cells_m, draws_m) if "exploitation" in keep else (cells0, draws0)
            groups = cells.groupby(keep, sort=True).indices if keep else {(): np.arange(len(cells))}
            for key, idx in groups.items():
                key = key if isinstance(key, tuple) else (key,)
                vals = dict(zip(keep, key, strict=True))
                det = round(float(cells["observed"].iloc[idx].sum()), 6)  # EM sums: no float dust
                why = [w for w in cells["_why"].iloc[idx] if w]
                if why:  # no estimate for a stratum of the row: none for the row
                    tot = lo = hi = math.nan
                    why = (why[0] if len(idx) == 1 else
                           f"contains {len(why)} of {len(idx)} strata without an estimate "
                           f"({'; '.join(sorted(set(why)))})")
                else:
                    tot = float(cells["n_hat"].iloc[idx].sum())
                    if draws is not None and len(draws):
                        d = draws[:, idx].sum(axis=1)
                        d = d[np.isfinite(d)]
                    else:
                        d = None
                    if d is not None and len(d):
                        lo, hi = equal_tailed(d, level, floor=det)
                    elif len(idx) == 1 and "lower" in cells.columns:
                        lo, hi = float(cells["lower"].iloc[idx[0]]), float(cells["upper"].iloc[idx[0]])
                    else:
                        lo = hi = math.nan
                sex = str(vals.get("sex", "_T"))
                age = str(vals.get("age_group", vals.get("age_group_l2", "_T")))
                form = str(vals.get("exploitation", "_T"))
                rows.append(dict(sex=sex, age=age, exploitation=form, detected=det,
                                 total_est=tot, total_lcl=lo, total_ucl=hi,
                                 _why=f"not estimable: {why}" if why else ""))
    table = pd.DataFrame(rows)
    table["undetected_est"] = table["total_est"] - table["detected"]
    table["undetected_lcl"] = table["total_lcl"] - table["detected"]
    table["undetected_ucl"] = table["total_ucl"] - table["detected"]
    # denominators (rule 9)
    pop_col, notes, missing_pop = [], [], []
    for i, r in table.iterrows():
        note = [n for n in (em_note,) if n]
        if denominator == "total":
            keyp = ("_T", "_T")
        else:
            keyp = (r.sex, r.age)
        if denominator == "group" and (r.sex in ("_U", "_O") or r.age == "_U"):
            pop_col.append(math.nan)
            note.append("no population at risk for unknown/other sex or age: no group rate")
        elif keyp not in pops:
            missing_pop.append((i, keyp))
            pop_col.append(math.nan)
        else:
            pop_col.append(pops[keyp])
        notes.append("; ".join(note + notes_mix))
    if missing_pop:
        keys = sorted(set(k for _, k in missing_pop))
        raise InputError("population table: rule 9, no row for "
                         + ", ".join(f"sex={s} x age_group={g}" for s, g in keys)
                         + " (the rates of these table rows need it; give the row, or the rows "
                         "it is the sum of)",
                         [Problem("population", None, f"sex={s}, age_group={g}",
                                  "a population row for this sex x age group")
                          for s, g in keys])
    table["population"] = pop_col
    table["denominator_type"] = denominator
    table["rate_per_100k"] = 1e5 * table["total_est"] / table["population"]
    table["rate_lcl"] = 1e5 * table["total_lcl"] / table["population"]
    table["rate_ucl"] = 1e5 * table["total_ucl"] / table["population"]
    table["detected_rate"] = 1e5 * table["detected"] / table["population"]
    table["ref_area"] = ref_area
    table["time_period"] = time_period
    table["method"] = method
    table["model_formula"] = result.model
    table["n_lists"] = n_lists
    table["series_code"] = table["exploitation"].map(SERIES)
    table["rate_series_code"] = table["series_code"].map(lambda s: s + "R" if isinstance(s, str) else None)
    table["obs_status"] = "estimated"
    table["notes"] = notes
    order = {"_T": "~"}  # totals last within each dimension; rows in their final order before
    table = table.sort_values(["exploitation", "age", "sex"],  # suppression (its masks follow)
                              key=lambda s: s.map(lambda v: order.get(v, v))).reset_index(drop=True)
    bad = table.pop("_why")
    gone = (bad != "").to_numpy()
    table.loc[gone, _ESTIMATES] = np.nan
    table.loc[gone, "obs_status"] = NOT_ESTIMABLE
    table["notes"] = ["; ".join(n for n in (w, old) if n) for w, old in
                      zip(bad, table["notes"], strict=True)]
    if gone.any():
        msg = (f"{int(gone.sum())} row(s) not estimable (a stratum's estimate does not exist or is "
               "not identifiable): published with blank estimates and obs_status 'not estimable'")
        warnings.warn(msg, TipstatWarning, stacklevel=2)
    small = ((table["detected"] > 0) & (table["detected"] < threshold)).to_numpy()
    msgs = [msg] if gone.any() else []
    n_sup = int(small.sum())
    n_sec = 0
    sup = None
    if n_sup:
        msg = f"[W7] {n_sup} row(s) with fewer than {threshold} detected persons"
        if suppress:
            msg += f" suppressed (<{threshold})"
            if secondary:
                sup = disclosure.suppress([table], threshold=threshold,
                                          hierarchies=_hierarchies(mix, None))
                small = sup.primary[0]
                extra = sup.secondary[0]
                n_sec = int(extra.sum())
                msg += (f", and {n_sec} complementary row(s) (secondary suppression, so that no "
                        "small cell can be narrowed from the published rows)")
                table.loc[extra, _NUMERIC] = np.nan
                table.loc[extra, "obs_status"] = SUPPRESSED  # one marker for every withheld row
        else:
            msg += " (not suppressed: suppress=False)"
        msgs.append(msg)
        warnings.warn(msg, TipstatWarning, stacklevel=2)
        if suppress:
            table.loc[small, _NUMERIC] = np.nan
            table.loc[small, "obs_status"] = SUPPRESSED
    return SDGTable(table[COLUMNS], level, suppress,
                    n_suppressed=n_sup + n_sec if suppress else 0, warnings=msgs,
                    n_suppressed_primary=n_sup if suppress else 0,
                    n_suppressed_secondary=n_sec, suppression=sup, mix=mix)


def _why_not_estimable(cells: pd.DataFrame) -> list[str]:
    """Per stratum: why it has no estimate (``""`` if it has one)."""
    status = (cells["status"].astype(str) if "status" in cells.columns
              else pd.Series("ok", index=cells.index))
    n_hat = pd.to_numeric(cells["n_hat"], errors="coerce").to_numpy(dtype=float)
    out = []
    for st, v in zip(status, n_hat, strict=True):
        if st in _NO_ESTIMATE:
            out.append(_NO_ESTIMATE[st])
        elif not math.isfinite(v):
            out.append("no finite estimate")
        else:
            out.append("")
    return out


def _hierarchies(mix: str, age: dict[str, list[str]] | None) -> dict[str, dict[str, list[str]]]:
    """The codes of an SDG table that cover other codes: mixed exploitation counted under
    SEX and LAB (``mix="both"``) or under OTH, and age bands under child / adult."""
    out: dict[str, dict[str, list[str]]] = {}
    if mix == "both":
        out["exploitation"] = {"SEX": ["SEX", "MIX"], "LAB": ["LAB", "MIX"]}
    elif mix == "OTH":
        out["exploitation"] = {"OTH": ["OTH", "MIX"]}
    if age:
        out["age"] = age
    return out


def _age_hierarchy() -> dict[str, list[str]]:
    """``{level-1 age group: [its bands]}`` from the age_group code list."""
    from .ictip import codelists

    out: dict[str, list[str]] = {}
    for code, parent in codelists.load("age_group").parents.items():
        if parent:
            out.setdefault(parent, []).append(code)
    return out


def protect_together(tables: Sequence[SDGTable], *, threshold: int = 5,
                     method: str = "cell") -> list[SDGTable]:
    """Suppress tables that are published together, as one problem.

    Tables of the same data published side by side (the SDG table by sex x child/adult x form
    beside one by age band, say) share margins: a pattern that protects each table alone can
    be defeated by combining them. This builds one linked problem over all of them (age
    bands are summed into child / adult by the age_group code list) and applies its pattern.

    Parameters
    ----------
    tables : sequence of SDGTable
        Built with ``suppress=False`` from the same detected persons (fits with
        ``missing="em"`` share unknowns out differently and cannot be linked exactly).
    threshold : int
        Primary suppression below this many detected persons.
    method : ``"cell"`` or ``"benders"``
        See :func:`tipstat.disclosure.suppress`.

    Returns
    -------
    list of SDGTable
        The same tables, suppressed; ``suppression`` holds the joint pattern.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = [("F", "_T", 3), ("M", "_T", 40), ("_T", "_T", 43)]
    >>> t = pd.DataFrame(rows, columns=["sex", "age", "detected"]).assign(
    ...     exploitation="_T", total_est=[9.0, 120.0, 129.0], obs_status="estimated")
    >>> a = SDGTable(t, 0.95, False)
    >>> [p.table.obs_status.tolist() for p in protect_together([a])]
    [['suppressed', 'suppressed', 'estimated']]
    """
    tabs = list(tables)
    if not tabs or not all(isinstance(t, SDGTable) for t in tabs):
        raise InputError("protect_together: expected a list of SDGTable (from sdg_16_2_2)")
    if any(t.suppressed for t in tabs):
        raise InputError("protect_together: build the tables with suppress=False (a suppressed "
                         "table has lost the values the joint pattern needs)")
    age = _age_hierarchy()
    sup = disclosure.suppress([t.table for t in tabs], threshold=threshold, method=method,
                              hierarchies=[_hierarchies(t.mix, age) for t in tabs])
    out = []
    for i, t in enumerate(tabs):
        tab = t.table.copy()
        p, q = sup.primary[i], sup.secondary[i]
        cols = [c for c in _NUMERIC if c in tab.columns]
        tab.loc[p | q, cols] = np.nan
        tab.loc[p | q, "obs_status"] = SUPPRESSED  # one marker for every withheld row
        msg = (f"[W7] {int(p.sum())} row(s) with fewer than {threshold} detected persons "
               f"suppressed (<{threshold}), and {int(q.sum())} complementary row(s), protected "
               f"together with {len(tabs) - 1} other table(s)")
        out.append(SDGTable(tab, t.level, True, n_suppressed=int((p | q).sum()),
                            warnings=[w for w in t.warnings if not w.startswith("[W7]")] + [msg],
                            n_suppressed_primary=int(p.sum()),
                            n_suppressed_secondary=int(q.sum()), suppression=sup, mix=t.mix,
                            seed=t.seed, meta=dict(t.meta)))
    return out


def secondary_suppression(table: pd.DataFrame, suppressed: np.ndarray, *,
                          threshold: int = 5) -> np.ndarray:
    """Complementary rows of one SDG-layout table, chosen by :func:`tipstat.disclosure.suppress`.

    Kept for callers that hold an unsuppressed table and the rows they suppress (the HTML
    report): the rows to withhold in addition so that no small row (1 to ``threshold - 1``
    detected persons) can be narrowed from the others by the linear or integer programming
    attack. (Until version 0.1 this was a sibling rule that only defeated single
    subtractions; the audit in ``docs/disclosure.md`` shows how it was broken.)

    Parameters
    ----------
    table : DataFrame
        Columns ``sex``, ``age``, ``exploitation`` (``_T`` for a margin) and ``detected``.
    suppressed : array of bool
        Rows already suppressed, in the table's row order (not returned again).
    threshold : int
        Primary suppression below this many detected persons.

    Returns
    -------
    numpy.ndarray of bool

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"sex": ["F", "M", "_T"], "age": "_T", "exploitation": "_T",
    ...                   "detected": [3.0, 40.0, 43.0]})
    >>> secondary_suppression(t, t.detected.lt(5).to_numpy()).tolist()
    [False, True, False]
    """
    table = table.reset_index(drop=True)
    dims = [d for d in disclosure.DIMS if d in table.columns]
    sup = disclosure.suppress([table], threshold=threshold, dims=dims)
    return (sup.primary[0] | sup.secondary[0]) & ~np.asarray(suppressed, dtype=bool)
