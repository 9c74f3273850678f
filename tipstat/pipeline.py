"""The records-to-SDG pipeline: agency exports -> validated records -> linked persons ->
capture histories -> stratified MSE -> SDG 16.2.2 table, with one headline figure.

:func:`run_indicator` is the whole job as one function; ``tipstat indicator`` and ``tipstat demo``
only parse arguments for it and format its result. Every step is a public function of its own
module (:func:`tipstat.ictip.read_records`, :func:`tipstat.linkage.link_exact`,
:func:`tipstat.ictip.capture_histories`, :func:`tipstat.fit_stratified`,
:func:`tipstat.sdg_16_2_2`); this module chooses their defaults, collects their warnings and
writes their outputs.

The published figure
--------------------
The country's total is the SDG table's total row (every dimension ``_T``): the stratified
log-linear fit summed over its cells, with the percentile interval of the same bootstrap
replicates summed the same way (:class:`Headline`). The pooled default estimate
(:func:`tipstat.estimate_population` on the table pooled over strata) is reported beside it as a
sensitivity check only: the stratified model lets capture probabilities differ by sex, age and
form of exploitation, pooling assumes they do not, so the two differ when they do.

Reproducibility
---------------
Every random step takes :data:`DEFAULT_SEED` unless told otherwise, and the seed is recorded in
the result, the SDG table's metadata and the command line's JSON: the same inputs and options give
the same bits.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ._checks import DEFAULT_SEED, is_level  # DEFAULT_SEED: the seed when none is given
from .errors import InputError, TipstatWarning
from .redact import safe_value

__all__ = ["DEFAULT_SEED", "Headline", "IndicatorRun", "Linked", "RunWarning",
           "histories_from_exports", "link_records", "read_exports", "read_table",
           "run_indicator"]

#: ``--by`` names -> stratum columns of :func:`tipstat.ictip.capture_histories`.
BY_ALIASES = {"age": "age_group", "form": "exploitation", "age_l2": "age_group_l2"}
_BY_LABEL = {"sex": "sex", "age_group": "age", "age_group_l2": "age", "exploitation": "form"}
EXCEL_SUFFIXES = (".xlsx", ".xlsm")


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class RunWarning:
    """One warning raised during a run: the step, its rule code (``W1``..``W8``) if any, and the
    message (messages never hold record values)."""

    step: str
    message: str
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "code": self.code, "message": self.message}

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Headline:
    """The country's published figure: the SDG table's total row.

    Attributes
    ----------
    n_hat, lower, upper : float or None
        Estimated victims, detected and undetected, and the bootstrap interval (None when the
        total row has no number: suppressed or not estimable; ``status`` says which).
    level : float
    detected : float or None
        Distinct detected persons.
    method : str
        E.g. ``"stratified log-linear MSE by sex x age x form"``.
    status : str
        The total row's ``obs_status``.
    source : str
        Always ``"sdg_16_2_2 total row"``.
    """

    n_hat: float | None
    lower: float | None
    upper: float | None
    level: float
    detected: float | None
    method: str
    status: str = "estimated"
    source: str = "sdg_16_2_2 total row"

    def to_dict(self) -> dict[str, Any]:
        return {"n_hat": self.n_hat, "lower": self.lower, "upper": self.upper,
                "level": self.level, "detected": self.detected, "method": self.method,
                "status": self.status, "source": self.source}

    def text(self) -> str:
        """One sentence: ``Estimated victims, detected and undetected: 1,509 [1,306; 1,731], 95%
        bootstrap interval, stratified log-linear MSE by sex x age x form``."""
        if self.n_hat is None:
            return (f"Estimated victims, detected and undetected: not published ({self.status}), "
                    f"{self.method}")
        interval = (f" [{self.lower:,.0f}; {self.upper:,.0f}], {100 * self.level:g}% bootstrap "
                    "interval" if self.lower is not None and self.upper is not None else "")
        return (f"Estimated victims, detected and undetected: {self.n_hat:,.0f}{interval}, "
                f"{self.method}")


POOLED_NOTE = ("The pooled estimate is a sensitivity check, not the published figure: the "
               "stratified model allows capture probabilities to differ by {dims}; pooling assumes "
               "they don't.")


@dataclass
class IndicatorRun:
    """Everything a run of :func:`run_indicator` produced.

    Attributes
    ----------
    records : Records
        Validated records with their accounting (read = used + excluded).
    persons : Persons
        Linked persons (linkage accounting in ``persons.accounting``).
    histories : CaptureHistories
        Stratified capture histories of the distinct persons.
    fit : Estimate
        The stratified log-linear MSE (:func:`tipstat.fit_stratified`).
    sdg : SDGTable
        The SDG 16.2.2 table (its ``meta`` holds the seed and method).
    headline : Headline
        The published total (the SDG table's total row).
    pooled : Estimate or None
        The pooled default estimate, a sensitivity check.
    warnings : list of RunWarning
    seed : int
    formats : dict
        Format of each input (``ictip`` / ``htcds``), by file name.
    accounting : dict
        Records read / used / excluded per reason, linkage counts, and the entities of the map
        that sent no record.
    """

    records: Any
    persons: Any
    histories: Any
    fit: Any
    sdg: Any
    headline: Headline
    pooled: Any
    warnings: list[RunWarning]
    seed: int
    formats: dict[str, str] = field(default_factory=dict)
    accounting: dict[str, Any] = field(default_factory=dict)
    ref_area: str | None = None
    time_period: Any = None
    # (sdg table, its disclosure audit): the audit is computed once per table
    _audit: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def pooled_note(self) -> str:
        dims = [_BY_LABEL.get(s, s) for s in self.histories.strata] or ["stratum"]
        text = dims[0] if len(dims) == 1 else ", ".join(dims[:-1]) + " and " + dims[-1]
        return POOLED_NOTE.format(dims=text)

    def metadata(self) -> dict[str, Any]:
        """The table's metadata (seed, method, headline, inputs' formats)."""
        return dict(self.sdg.meta)

    def write(self, out: str | Path, *, excel: bool = True, report: bool | str | Path = True,
              title: str | None = None, source: str = "", reliability: bool = True
              ) -> list[Path]:
        """Write the SDG table (CSV and Excel), its GLOTIP long form, the SDMX-CSV file and the
        HTML report (when the ``report`` extra is installed) into the folder ``out``.

        Returns the paths written. Every file is byte-identical for the same inputs and seed
        (the workbook's time stamps are fixed; the report reads no clock).
        The metadata file holds the disclosure audit's summary (:meth:`disclosure_audit`).
        ``reliability=False`` leaves the reliability check out of the report (see
        :meth:`write_report`).
        """
        from .sdmx import write_sdmx_csv

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [self.sdg.to_csv(out / "sdg_16_2_2.csv"),
                   self.sdg.to_csv(out / "sdg_16_2_2_glotip.csv", glotip=True),
                   write_sdmx_csv(self.sdg, out / "sdg_16_2_2_sdmx.csv")]
        meta_path = out / "sdg_16_2_2_metadata.json"
        meta = self.metadata()
        audit = self.disclosure_audit()  # one attack serves the metadata and the report
        meta["disclosure_audit"] = audit.summary().split("\n")
        _write_json(meta_path, meta)
        written.append(meta_path)
        if excel and _has("openpyxl"):
            written.append(self.sdg.to_excel(out / "sdg_16_2_2.xlsx"))
        if report and report_available():
            path = out / "report.html" if report is True else Path(report)
            written.append(self.write_report(path, title=title, source=source,
                                             disclosure_audit=audit, reliability=reliability))
        return written

    def disclosure_audit(self) -> Any:
        """The attacker's audit of the published SDG table (:func:`tipstat.disclosure.audit`):
        the feasible range of every withheld row given every published row."""
        from .disclosure import audit

        if self._audit is not None and self._audit[0] is self.sdg:  # the demo asks twice
            return self._audit[1]
        pub = self.sdg.published()
        sup = getattr(pub, "suppression", None)
        result = audit(pub.table, sensitive=None if sup is None else sup.primary)
        self._audit = (self.sdg, result)
        return result

    def write_report(self, path: str | Path, *, title: str | None = None, source: str = "",
                     reliability: bool | Any = True, **kwargs: Any) -> Path:
        """The HTML report of this run (needs the ``report`` extra).

        ``reliability``: True (default) runs the reliability check of the default method on
        the pooled table (:func:`tipstat.validate.internal_consistency`; one refit per list)
        and shows it; False leaves it out (the report says so); a check already computed is
        shown as given. Other keywords go to :func:`tipstat.report.html.write_report`.
        """
        from .comparison import compare, leave_one_list_out
        from .models.default import estimate_population
        from .report.html import write_report
        from .validate import internal_consistency

        pooled = self.histories.pooled()
        level = self.headline.level
        # the report renders; the computations it shows are run here
        if "comparison" not in kwargs:
            kwargs["comparison"] = compare(pooled, "default", level=level, seed=self.seed)
        if "sensitivity" not in kwargs and pooled.k >= 3:
            kwargs["sensitivity"] = leave_one_list_out(pooled, ["independence"], level=level,
                                                       seed=self.seed)
        options: dict[str, Any] = dict(
            accounting=self.accounting, sdg_table=self.sdg.table, seed=self.seed,
            level=self.headline.level,
            reliability=(reliability if not isinstance(reliability, bool) else
                         "switched off (--no-reliability)" if not reliability else
                         internal_consistency(pooled, estimate_population) if pooled.k >= 3
                         else None),
            title=title or ("SDG 16.2.2: victims of trafficking, detected and undetected"
                            + (f", {self.ref_area}" if self.ref_area else "")
                            + (f" {self.time_period}" if self.time_period else "")),
            source=source)
        options["headline"] = self.headline.to_dict()
        options["disclosure_audit"] = (kwargs.pop("disclosure_audit", None)
                                       or self.disclosure_audit())
        options["warnings"] = [w.message for w in self.warnings]
        frame = getattr(self.records, "frame", None)
        if frame is not None and {"entity_id", "list_id"} <= set(frame.columns):
            options["list_key"] = (frame[["entity_id", "list_id"]].drop_duplicates()
                                   .sort_values(["list_id", "entity_id"]).reset_index(drop=True))
        options.update(kwargs)
        return write_report(path, self.histories, **options)


# ---------------------------------------------------------------------------- reading files
def _has(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def report_available() -> bool:
    """True when the report's libraries (matplotlib, Jinja2: the ``report`` extra) are there."""
    return _has("matplotlib") and _has("jinja2")


def _write_json(path: Path, obj: Any) -> None:
    import json

    from ._json import jsonable

    path.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n",
                    encoding="utf-8")


def check_file(path: str | Path, what: str = "file") -> Path:
    """An input file that exists, is not empty and is of a readable kind, or an InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such {what}")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; expected a {what} (CSV or Excel .xlsx)")
    suffix = path.suffix.lower()
    if suffix in (".ods", ".odt", ".numbers"):
        raise InputError(f"{path}: {suffix} spreadsheets are not read; save the sheet as CSV "
                         "(UTF-8) or Excel .xlsx")
    if suffix == ".xls":
        raise InputError(f"{path}: old Excel .xls files are not read; save as .xlsx or CSV")
    if path.stat().st_size == 0 or (suffix not in EXCEL_SUFFIXES
                                    and not path.read_bytes()[:4096].strip()):
        raise InputError(f"{path}: the {what} is empty (expected a header line and rows)")
    if suffix in EXCEL_SUFFIXES and not _has("openpyxl"):
        raise InputError(f"{path}: reading Excel files needs openpyxl: pip install openpyxl "
                         '(it comes with "tipstat[report]"), or save the sheet as CSV')
    if suffix in EXCEL_SUFFIXES:
        import zipfile

        if not zipfile.is_zipfile(path):
            raise InputError(f"{path}: not an Excel .xlsx workbook (the file is damaged or of "
                             "another kind); save it again as .xlsx or CSV")
    elif suffix != ".parquet" and path.read_bytes()[:4] == b"PK\x03\x04":
        raise InputError(f"{path}: a zip archive (a spreadsheet?), not a {what} in CSV; save "
                         "the sheet as CSV (UTF-8), or name an Excel workbook .xlsx")
    return path


def read_table(path: str | Path, what: str = "table") -> pd.DataFrame:
    """A small CSV/TSV/Excel table (entity map, population) with clear errors.

    Read by :func:`tipstat.tables.read_cells` (cells as written) after :func:`check_file`.
    Rows are indexed by their line in the file (line 1 is the header), as in error messages.
    """
    from .tables import read_cells

    path = check_file(path, what)
    try:
        df, _ = read_cells(path)
    except InputError as exc:
        raise InputError(f"{path}: cannot read the {what}: {exc}") from None
    if df.empty:
        raise InputError(f"{path}: the {what} has a header but no rows")
    df.columns = [str(c).strip() for c in df.columns]
    return df


# ---------------------------------------------------------------------------- the pipeline
def _code(message: str) -> str | None:
    m = re.match(r"\s*\[(W\d+)\]", message)
    return m.group(1) if m else None


def _collect(step: str, into: list[RunWarning], fn: Any) -> Any:
    """Run ``fn()`` and keep the tipstat warnings it raised (in order, without repeats)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    seen = {(w.step, w.message) for w in into}
    for w in caught:
        if issubclass(w.category, TipstatWarning):
            msg = str(w.message)
            if (step, msg) not in seen:
                seen.add((step, msg))
                into.append(RunWarning(step, msg, _code(msg)))
        else:  # anything else is shown as usual (numerical noise is the caller's choice)
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return result


def _entity_table(entity_map: Any) -> pd.DataFrame:
    if isinstance(entity_map, str | Path):
        entity_map = read_table(entity_map, "entity map")
    if isinstance(entity_map, Mapping):
        entity_map = pd.DataFrame({"entity_id": list(entity_map),
                                   "list_id": list(entity_map.values())})
    if not isinstance(entity_map, pd.DataFrame):
        raise InputError(f"entity map: expected a file, a DataFrame or a mapping, got "
                         f"{type(entity_map).__name__}")
    need = [c for c in ("entity_id", "list_id") if c not in entity_map.columns]
    if need:
        raise InputError(f"entity map: column(s) {need} missing; expected columns entity_id, "
                         f"list_id (it has {list(map(str, entity_map.columns))})")
    blank = entity_map[["entity_id", "list_id"]].isna().any(axis=1)
    if blank.any():
        raise InputError(f"entity map: blank entity_id or list_id on line(s) "
                         f"{[int(i) if isinstance(i, int) else i for i in entity_map.index[blank]]}")
    out = entity_map.copy()
    out["entity_id"] = out["entity_id"].astype(str).str.strip()
    out["list_id"] = out["list_id"].astype(str).str.strip()
    return out


def _sources(records: Any, fmt: str | Mapping[str, str], emap: pd.DataFrame
             ) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """Group the inputs by format: ``{format: [source, ...]}`` and ``{name: format}``."""
    from .ictip.sources import FORMATS, detect_format

    if fmt not in FORMATS and not isinstance(fmt, Mapping):
        raise InputError(f"format={fmt!r}; expected one of {list(FORMATS)}")
    if isinstance(records, pd.DataFrame | str | Path):
        records = [records]
    groups: dict[str, list[Any]] = {}
    formats: dict[str, str] = {}
    entities = set(emap["entity_id"])
    for i, src in enumerate(records):
        if isinstance(src, pd.DataFrame):
            name = f"table {i + 1}"
            f = fmt.get(name, "auto") if isinstance(fmt, Mapping) else fmt
            if f == "auto":
                f = detect_format(src)
            # a DataFrame in the HTCDS layout names its entity in an entity_id column
            groups.setdefault(f if f == "ictip" else "htcds:frames", []).append(src)
            formats[name] = f
            continue
        path = check_file(src, "records file")
        f = fmt.get(path.name, fmt.get(str(src), "auto")) if isinstance(fmt, Mapping) else fmt
        if f not in FORMATS:
            raise InputError(f"{path}: format {f!r}; expected one of {list(FORMATS)}")
        if f == "auto":
            f = detect_format(path)
        formats[path.name] = f
        if f == "htcds":
            # the HTCDS template has no entity column: the file is the entity's export
            entity = path.stem
            if entity not in entities:
                raise InputError(f"{path}: an HTCDS export is attributed to the entity named by "
                                 f"its file name ({entity!r}), which is not in the entity map "
                                 f"(entities: {sorted(entities)}); rename the file to its "
                                 "entity_id")
            groups.setdefault(f, []).append((entity, str(path)))
        else:
            _check_entities(path, entities)
            groups.setdefault(f, []).append(str(path))
    if not formats:
        raise InputError("no records file given")
    return groups, formats


def _check_entities(path: Path, entities: set[str]) -> None:
    """Every entity of an IC-TIP file is in the entity map: one message per file, not one per
    record."""
    from .tables import read_cells

    try:
        df, _ = read_cells(path)
    except InputError:
        return  # read_records says what is wrong with the file
    if "entity_id" not in df.columns:
        return
    ids = df["entity_id"].dropna().astype(str).str.strip()
    unknown = ids[~ids.isin(entities)]
    if len(unknown):
        names = sorted({str(safe_value(v)) for v in unknown})
        raise InputError(f"{path.name}: {len(unknown)} record(s) of entit"
                         f"{'y' if len(names) == 1 else 'ies'} {', '.join(names[:10])} not in the "
                         "entity map (add them with their list_id, e.g. "
                         "'entity_id,list_id' rows; the map has "
                         f"{', '.join(sorted(entities)[:20])})")


def _read_groups(groups: dict[str, list[Any]], emap: pd.DataFrame, options: dict[str, Any]):
    """read_records per format; one Records with row labels ``file:line``."""
    from .ictip.records import Records, read_records

    parts = []
    for key, items in groups.items():
        f = key.split(":")[0]
        if key == "htcds":
            names = [e for e, _ in items]
            dup = sorted({e for e in names if names.count(e) > 1})
            if dup:
                raise InputError(f"two HTCDS exports for entity {dup}; give one file per entity")
            source: Any = dict(items)
        else:
            source = items if len(items) > 1 else items[0]
        single = len(items) == 1 and not isinstance(items[0], pd.DataFrame)
        name = Path(items[0][1] if key == "htcds" else items[0]).name if single else ""
        try:
            recs = read_records(source, emap, format=f, **options)
        except InputError as exc:
            if single:  # say which file (several files already label rows file:line)
                raise InputError(f"{name}: {str(exc).split(chr(10))[0]}", exc.problems) from None
            raise
        if single:
            recs.frame.index = [f"{name}:{i}" for i in recs.frame.index]
        parts.append(recs)
    if len(parts) == 1:
        return parts[0]
    frame = pd.concat([p.frame for p in parts])
    if not frame.index.is_unique:
        raise InputError("two records files have the same name; rename one")
    dup = frame["record_id"].astype(str).duplicated(keep=False).to_numpy()
    if dup.any():
        raise InputError("rule 2: the same record id (entity_id, source_record_id) in files of "
                         f"different formats, rows {list(frame.index[dup])[:20]}")
    from .ictip.validation import ValidationReport

    report = ValidationReport([i for p in parts for i in p.report.issues])
    meta = {"format": "+".join(groups), "rows_in_source": sum(p.meta.get("rows_in_source", 0)
                                                              for p in parts)}
    return Records(frame, parts[0].lists, parts[0].version, report, parts[0].list_periods, meta)


def _drop_silent_lists(records: Any, emap: pd.DataFrame, into: list[RunWarning]
                       ) -> tuple[Any, list[str]]:
    """Entities of the map without any record are reported (a list none of whose entities has
    a record in scope is not a list of this analysis)."""
    sent = set(records.frame["entity_id"].astype(str))
    silent = sorted(set(emap["entity_id"]) - sent)
    if silent:
        into.append(RunWarning("read", f"{len(silent)} entit{'y' if len(silent) == 1 else 'ies'} "
                               f"of the entity map sent no record: {', '.join(silent)}", None))
    used_lists = set(records.used["list_id"].astype(str))
    empty = [lst for lst in records.lists if lst not in used_lists]
    if empty:
        into.append(RunWarning("read", f"list(s) {empty} have no record in scope and are left "
                               "out of the estimate", None))
        periods = records.list_periods
        if periods is not None:
            periods = periods[~periods["list_id"].astype(str).isin(empty)]
        records = replace(records, lists=tuple(x for x in records.lists if x not in empty),
                          list_periods=periods)
    if len(records.lists) < 2:
        raise InputError(f"records in scope on {len(records.lists)} list(s) {list(records.lists)}"
                         "; MSE needs at least two lists (check --year, --country and the "
                         "entity map)")
    return records, silent


def _accounting(*tables: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in tables:
        for item, value in t.iloc[:, :2].itertuples(index=False, name=None):
            out[str(item)] = int(value) if float(value).is_integer() else float(value)
    return out


def headline_of(sdg: Any, method: str) -> Headline:
    """The SDG table's total row (every dimension ``_T``) as a :class:`Headline`."""
    t = sdg.table
    total = t[(t[["sex", "age", "exploitation"]].astype(str) == "_T").all(axis=1)]
    if len(total) != 1:
        raise InputError("the SDG table has no total row")
    r = total.iloc[0]

    def num(x: Any) -> float | None:
        return float(x) if x is not None and math.isfinite(float(x)) else None

    return Headline(n_hat=num(r["total_est"]), lower=num(r["total_lcl"]),
                    upper=num(r["total_ucl"]), level=float(sdg.level),
                    detected=num(r["detected"]), method=method, status=str(r["obs_status"]))


def method_label(strata: Sequence[str]) -> str:
    """``"stratified log-linear MSE by sex x age x form"`` for the strata of the fit."""
    dims = [_BY_LABEL.get(s, s) for s in strata]
    return "stratified log-linear MSE" + (f" by {' x '.join(dims)}" if dims else "")


@dataclass
class Linked:
    """Records read from every export and linked into persons (:func:`link_records`)."""

    records: Any
    persons: Any
    warnings: list[RunWarning]
    formats: dict[str, str]
    accounting: dict[str, Any]
    silent_entities: list[str]


def read_exports(records: Any, entity_map: Any, *, format: str | Mapping[str, str] = "auto",
                 secret: Any = None, country: str | None = None, year: int | None = None,
                 entities: pd.DataFrame | None = None, today: Any = None,
                 warnings_: list[RunWarning] | None = None) -> tuple[Any, dict[str, str]]:
    """Read and validate agency exports of any format into one :class:`Records`.

    Each file is read in its format (``format="auto"``: detected by its column names, see
    :func:`tipstat.ictip.detect_format`); rows are labelled ``file:line``. Returns the records and
    ``{file name: format}``. Parameters as in :func:`run_indicator`.
    """
    warns = [] if warnings_ is None else warnings_
    emap = _entity_table(entity_map)
    groups, formats = _sources(records, format, emap)
    options = dict(secret=secret, period=year, ref_area=country, entities=entities)
    if today is not None:
        options["today"] = today
    recs = _collect("read", warns, lambda: _read_groups(groups, emap, options))
    return recs, formats


def link_records(records: Any, entity_map: Any, *, format: str | Mapping[str, str] = "auto",
                 secret: Any = None, country: str | None = None, year: int | None = None,
                 entities: pd.DataFrame | None = None, today: Any = None) -> Linked:
    """Read agency exports (:func:`read_exports`) and link their records into persons.

    Entities of the map that sent no record are reported and counted; lists with no record in
    scope are left out. Parameters as in :func:`run_indicator`.

    Examples
    --------
    >>> from tipstat import simulate
    >>> c = simulate.country(400, seed=2, lists={k: v for k, v in simulate.DEFAULT_LISTS.items()
    ...                                          if k in "PKO"})
    >>> linked = link_records(c.records, c.list_definition, country=c.ref_area, year=c.year,
    ...                       today="2025-12-31")
    >>> linked.persons.n_persons == c.n_detected
    True
    """
    from .linkage import link_exact

    warns: list[RunWarning] = []
    emap = _entity_table(entity_map)
    recs, formats = read_exports(records, emap, format=format, secret=secret, country=country,
                                 year=year, entities=entities, today=today, warnings_=warns)
    recs, silent = _drop_silent_lists(recs, emap, warns)
    persons = _collect("link", warns, lambda: link_exact(recs))
    accounting = _accounting(recs.accounting(), persons.accounting)
    accounting["entities without records"] = len(silent)
    return Linked(recs, persons, warns, formats, accounting, silent)


def histories_from_exports(records: Any, entity_map: Any, *,
                           by: Sequence[str] = ("sex", "age", "exploitation"),
                           format: str | Mapping[str, str] = "auto", secret: Any = None,
                           country: str | None = None, year: int | None = None,
                           entities: pd.DataFrame | None = None, today: Any = None
                           ) -> tuple[Linked, Any]:
    """Agency exports -> linked persons -> stratified capture histories: the first half of
    :func:`run_indicator`, and what ``tipstat histories`` writes.

    The exports are read and linked by :func:`link_records`; the linked persons are handed to
    :func:`tipstat.ictip.capture_histories` with the strata ``by`` (``--by`` names: ``age`` is
    ``age_group``, ``form`` is ``exploitation``). Its warnings join the linkage's.

    Returns
    -------
    (Linked, CaptureHistories)

    Examples
    --------
    >>> from tipstat import simulate
    >>> c = simulate.country(400, seed=2, lists={k: v for k, v in simulate.DEFAULT_LISTS.items()
    ...                                          if k in "PKO"})
    >>> linked, h = histories_from_exports(c.records, c.list_definition, by=["sex"],
    ...                                    country=c.ref_area, year=c.year, today="2025-12-31")
    >>> h.strata, h.n_observed == linked.persons.n_persons == c.n_detected
    (('sex',), True)
    """
    from .ictip import capture_histories

    strata = [BY_ALIASES.get(b, b) for b in by]
    linked = link_records(records, entity_map, format=format, secret=secret, country=country,
                          year=year, entities=entities, today=today)
    h = _collect("histories", linked.warnings,
                 lambda: capture_histories(linked.persons, by=strata))
    return linked, h


def run_indicator(
    records: Any,
    entity_map: Any,
    population: Any,
    *,
    format: str | Mapping[str, str] = "auto",
    secret: Any = None,
    country: str | None = None,
    year: int | None = None,
    by: Sequence[str] = ("sex", "age", "exploitation"),
    entities: pd.DataFrame | None = None,
    today: Any = None,
    seed: int | None = DEFAULT_SEED,
    n_boot: int = 200,
    level: float = 0.95,
    pooled: bool = True,
) -> IndicatorRun:
    """From agency exports to the SDG 16.2.2 table and its headline figure.

    Parameters
    ----------
    records : path, DataFrame or a list of them
        Agency exports: IC-TIP layout (CSV/Excel) or IOM HTCDS v2.0 (its Excel template's Case
        Sheet or a CSV with its system names). An HTCDS export holds one entity's records and is
        attributed to the entity named by its file name (``NGO_SHELTER.xlsx``).
    entity_map : path, DataFrame or mapping
        ``entity_id, list_id`` (optionally ``period_start, period_end``). Entities of the map
        that sent no record are reported in the warnings and the accounting; a record of an
        entity missing from the map is an error.
    population : path or DataFrame
        ``sex``, ``age_group``, ``population`` (optionally ``ref_area``, ``year``); aliases
        (``Female``, ``Total``, ``0 to 17 years``) accepted and ``_T`` totals derived where they
        are sums of the given rows (:func:`tipstat.indicator.normalise_population`).
    format : ``"auto"``, ``"ictip"``, ``"htcds"`` or ``{file name: format}``
        ``"auto"`` (default) detects each file by its column names.
    secret : str, bytes or Secret, optional
        For records with clear identifiers (names, dates of birth): the key of the HMAC person
        keys. Never printed or written.
    country, year : optional
        ISO-3 code and reference year: records outside are excluded and counted.
    by : sequence of str
        Disaggregation among ``sex``, ``age`` (``age_group``), ``exploitation``.
    seed : int
        Seed of the bootstrap (default :data:`DEFAULT_SEED`; ``None`` is replaced by it).
    n_boot : int
        Bootstrap replicates of the stratified fit.
    level : float
        Interval coverage.
    pooled : bool
        Also compute the pooled default estimate (the sensitivity check).

    Returns
    -------
    IndicatorRun

    Examples
    --------
    >>> import warnings
    >>> from tipstat import simulate
    >>> c = simulate.country(600, seed=3, lists={k: v for k, v in simulate.DEFAULT_LISTS.items()
    ...                                          if k in "PKO"})
    >>> run = run_indicator(c.records, c.list_definition, c.population, country=c.ref_area,
    ...                     year=c.year, by=["sex"], n_boot=20, today="2025-12-31")
    >>> run.headline.detected == c.n_detected, run.seed
    (True, 2024)
    """
    from .indicator import normalise_population, sdg_16_2_2
    from .models.stratified import fit_stratified

    seed = DEFAULT_SEED if seed is None else int(seed)
    if not is_level(level):
        raise InputError(f"level={level!r}; expected a coverage between 0 and 1, e.g. 0.95")
    if int(n_boot) < 1:
        raise InputError(f"n_boot={n_boot!r}; expected a positive number of replicates")
    strata = [BY_ALIASES.get(b, b) for b in by]
    bad = [b for b in strata if b not in ("sex", "age_group", "age_group_l2", "exploitation")]
    if bad:
        raise InputError(f"by: {bad} are not SDG 16.2.2 dimensions; choose among sex, age, "
                         "exploitation")
    if isinstance(population, str | Path):
        population = read_table(population, "population file")
    pop = normalise_population(population, ref_area=country, time_period=year)
    linked, h = histories_from_exports(records, entity_map, by=strata, format=format,
                                       secret=secret, country=country, year=year,
                                       entities=entities, today=today)
    recs, persons, warns = linked.records, linked.persons, linked.warnings
    formats, accounting = linked.formats, linked.accounting
    fit = _collect("fit", warns, lambda: fit_stratified(h, n_boot=int(n_boot), seed=seed,
                                                        level=level))
    sdg = _collect("sdg", warns, lambda: sdg_16_2_2(fit, pop, ref_area=country,
                                                    time_period=year))
    method = method_label(h.strata)
    headline = headline_of(sdg, method)
    pooled_est = None
    if pooled:
        from .models.default import estimate_population

        pooled_est = _collect("pooled", warns, lambda: estimate_population(h.pooled(),
                                                                           level=level))
    from . import __version__

    sdg.seed = seed
    sdg.meta = {"seed": seed, "bootstrap": int(n_boot), "level": level,
                "method": method, "model": fit.model, "headline": headline.to_dict(),
                "published_total": "the total row (sex, age, exploitation all _T)",
                "ref_area": country, "time_period": year, "formats": formats,
                "tipstat_version": __version__}
    return IndicatorRun(records=recs, persons=persons, histories=h, fit=fit, sdg=sdg,
                        headline=headline, pooled=pooled_est, warnings=warns, seed=seed,
                        formats=formats, accounting=accounting, ref_area=country,
                        time_period=year)
