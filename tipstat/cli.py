"""The ``tipstat`` command line: estimates, comparisons, reports and reproductions of published
figures from the shell.

Exit codes: 0 success, 2 bad input (a file, column, value or option is wrong: the message says
which), 1 internal error (a bug: run again with ``--debug`` and report the traceback).

``--json`` output (``estimate``, ``compare``, ``validate``, ``indicator``, ``reproduce``,
``demo``) is one JSON object with a stable schema, documented in ``docs/cli.md``::

    {"schema": "tipstat-cli/1", "command": "...", "tipstat_version": "...", "ok": true,
     "seed": 2024, "input": {...}, "results": [...], "warnings": [...], "error": null}

Non-finite numbers (an estimate that does not exist) are ``null`` and ``status`` says why.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .errors import InputError, TipstatError, TipstatWarning
from .pipeline import DEFAULT_SEED
from .redact import safe_value

SCHEMA = "tipstat-cli/1"
#: Columns of a pattern table read as strata, not lists, unless --lists/--strata say otherwise
#: (the strata `tipstat histories` writes).
STRATUM_COLUMNS = ("sex", "age_group", "age_group_l2", "exploitation", "citizenship_group", "year")

EPILOG = """\
examples:
  tipstat demo                                 # the whole job on bundled data -> ./tipstat-output/
  tipstat estimate UK_5                        # a bundled table, default estimator
  tipstat estimate patterns.csv --model "A:B + B:C" --json
  tipstat compare patterns.csv --methods default
  tipstat report patterns.csv --out report.html
  tipstat validate police.csv ngo.csv --entity-map lists.csv
  tipstat indicator police.csv ngo.csv --entity-map lists.csv --population population.csv \
      --by sex,age,exploitation --report sdg.html
  tipstat reproduce "UK 2013"
  tipstat reproduce                            # list the studies
  tipstat survey --demo                        # survey prevalence on the bundled synthetic country
  tipstat survey survey.sav --design design.toml --mapping mapping.toml --by sex,region

Input tables (CSV, TSV, Excel, ODS): one row per capture pattern with 0/1 list columns and a
'count' column, or one 0/1 row per person (no 'count' column). The name of a bundled table
(tipstat datasets) can be given instead of a file.

exit codes: 0 ok, 2 bad input, 1 internal error (add --debug for the traceback)
"""


# ---------------------------------------------------------------------------- output helpers
def _envelope(command: str, *, seed: int | None = DEFAULT_SEED, input: dict | None = None,
              results: list | None = None, warns: Sequence[str] = (),
              error: dict | None = None, extra: dict | None = None) -> dict[str, Any]:
    from . import __version__

    out = {"schema": SCHEMA, "command": command, "tipstat_version": __version__,
           "ok": error is None, "seed": DEFAULT_SEED if seed is None else seed,
           "input": input or {}, "results": results or [],
           "warnings": list(warns), "error": error}
    if extra:
        out.update(extra)
    from ._json import jsonable

    return jsonable(out)


def _print_json(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, indent=2, allow_nan=False))


def _fmt(x: Any, digits: int = 0) -> str:
    from ._format import number

    return number(x, digits)


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and not getattr(args, "json", False) \
        and sys.stderr.isatty()


# ---------------------------------------------------------------------------- input
def _read_table(path: Path) -> Any:
    """A count table or person rows (numbers read as numbers), rows labelled by file line."""
    from .pipeline import check_file
    from .tables import read_cells

    ods = path.suffix.lower() == ".ods" and find_spec("odf") is not None  # odfpy reads ODS
    if not ods:
        check_file(path, "table")
    elif path.stat().st_size == 0:
        raise InputError(f"{path}: the table is empty (expected a header line and rows)")
    try:
        return read_cells(path, raw=False)[0]
    except InputError as exc:
        raise InputError(f"{path}: cannot read the file as a table: {exc}") from None


def load_histories(source: str, *, count: str = "count", lists: Sequence[str] | None = None,
                   strata: Sequence[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """Capture histories from a file (pattern table or person rows) or a bundled table name.

    Returns the histories and a description of the input for JSON output.
    """
    import tipstat

    path = Path(source)
    if not path.exists():
        if source in tipstat.datasets.names():
            h = tipstat.datasets.load(source)
            return h, {"source": source, "kind": "bundled dataset", "lists": list(h.lists),
                       "n_observed": float(h.n_observed), "strata": list(h.strata),
                       "citation": tipstat.datasets.citation(source)}
        raise InputError(f"{source}: no such file, and not the name of a bundled table "
                         f"(bundled: {', '.join(tipstat.datasets.names())})")
    if path.is_dir():
        raise InputError(f"{source}: is a folder; expected a table file (CSV, TSV, Excel)")
    df = _read_table(path)
    from .ictip.validation import record_like_columns

    record_cols = record_like_columns(df.columns)
    if record_cols:  # refused by column name: its cells are never read or shown
        raise InputError(f"{source}: this looks like a file of victim records (columns "
                         f"{sorted(set(record_cols))[:6]}), not a count table; make the count "
                         "table with: tipstat histories RECORDS... --entity-map MAP --out "
                         "counts.csv")
    if count in df.columns:
        if strata is None and lists is None:  # the table of `tipstat histories`: known strata
            strata = [c for c in df.columns if c in STRATUM_COLUMNS]
        h = tipstat.CaptureHistories.from_frame(df, count=count, strata=list(strata or []) or None,
                                                lists=lists)
        kind = "pattern table"
    else:
        h = tipstat.CaptureHistories.from_individuals(df, lists=lists,
                                                      strata=list(strata or []) or None)
        kind = "person rows"
    return h, {"source": str(path), "kind": kind, "lists": list(h.lists),
               "n_observed": float(h.n_observed), "strata": list(h.strata)}


def _pooled(h: Any, warns: list[str]) -> Any:
    if h.n_strata > 1:
        warns.append(f"the table has {h.n_strata} strata ({', '.join(h.strata)}); estimating the "
                     "pooled table (use --by-stratum for one estimate per stratum)")
        return h.pooled()
    return h


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", default="count", help="name of the count column (default: count)")
    p.add_argument("--lists", type=_csv_list, default=None,
                   help="list columns, comma-separated, in order (default: every other column)")
    p.add_argument("--strata", type=_csv_list, default=None,
                   help="stratum columns, comma-separated (e.g. sex,age_group)")


def _csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return items


# ---------------------------------------------------------------------------- commands
def _estimate_rows(h: Any, args: argparse.Namespace) -> list[Any]:
    import tipstat

    from .comparison import METHODS

    method = args.method
    if method is None:
        method = "default" if args.model is None else "loglinear"
    if method == "default":
        if args.model is not None:
            raise InputError("--model is for --method loglinear; the default method averages "
                             "over the log-linear models itself")
        return [tipstat.estimate_population(h, level=args.level)]
    if method == "loglinear":
        return [tipstat.fit_loglinear(h, args.model or "independence", ci=args.ci,
                                      level=args.level)]
    if args.model is not None:
        raise InputError(f"--model is for --method loglinear; --method {method} chooses its own "
                         "model")
    if method not in METHODS:
        raise InputError(f"--method {method!r}: unknown; choose loglinear or one of "
                         f"{', '.join(METHODS)}")
    m = METHODS[method]
    if not m.available():
        raise InputError(f"--method {method!r} needs tipstat.{m.estimator}, which does not import "
                         "in this installation")
    return m.run(h, level=args.level, seed=args.seed, progress=_progress(args))


def _estimate_record(est: Any) -> dict[str, Any]:
    """``Estimate.to_dict()`` (its ``warnings`` are ``{"code", "message", "values"}``) plus
    ``shown``: the figure a reader is given (``"at least L"`` for a lower bound, words where
    there is no estimate)."""
    from .report.display import figure

    rec = est.to_dict()
    rec["shown"] = figure(est.status, est.n_hat, est.ci[0], est.ci[1])
    return rec


def _reliability_check(h: Any, args: argparse.Namespace) -> tuple[Any, float, str | None]:
    """The internal-consistency check of the default method on the (pooled) table: the result
    (None when not run), its seconds, and why it was not run."""
    if getattr(args, "no_reliability", False):
        return None, 0.0, "switched off (--no-reliability)"
    hp = h.pooled() if h.n_strata > 1 else h
    if hp.k < 3:
        return None, 0.0, (f"not assessed: the check needs at least 3 lists (each list is "
                           f"estimated from the others); the table has {hp.k}")
    t0 = time.perf_counter()
    ic = _reliability(hp)
    return ic, time.perf_counter() - t0, None


def cmd_estimate(args: argparse.Namespace) -> int:
    from .report.display import estimate_lines, reliability_lines, reliability_record

    h, info = load_histories(args.file, count=args.count, lists=args.lists, strata=args.strata)
    warns: list[str] = []
    parts = list(h.by_stratum()) if args.by_stratum and h.n_strata > 1 else [((), _pooled(h, warns))]
    results = []
    for key, hs in parts:
        for est in _estimate_rows(hs, args):
            rec = _estimate_record(est)
            if key:
                rec["stratum"] = dict(zip(h.strata, key, strict=True))
            results.append((key, est, rec))
    ic, seconds, why_not = _reliability_check(h, args)
    if args.json:
        reliability = (reliability_record(ic, seconds) if ic is not None
                       else {"rating": "not_assessed", "note": why_not})
        _print_json(_envelope("estimate", seed=args.seed, input=info,
                              results=[r for _, _, r in results], warns=warns,
                              extra={"reliability": reliability}))
        return 0
    print(f"{info['source']}: {h.k} lists ({', '.join(h.lists)}), "
          f"{_fmt(h.n_observed)} persons observed")
    for w in warns:
        print(f"note: {w}")
    for key, est, _ in results:
        print()
        if key:
            print("stratum " + ", ".join(f"{s}={v}" for s, v in zip(h.strata, key, strict=True)))
        print("\n".join(estimate_lines(est)))
    print()
    if ic is not None:
        print("\n".join(reliability_lines(ic, seconds)))
    else:
        print(f"reliability check: {why_not}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import tipstat

    h, info = load_histories(args.file, count=args.count, lists=args.lists, strata=args.strata)
    warns: list[str] = []
    h = _pooled(h, warns)
    methods = args.methods if args.methods in ("default", "all") else _csv_list(args.methods)
    table = tipstat.compare(h, methods, level=args.level, seed=args.seed, progress=_progress(args),
                            reliability=args.reliability)
    if args.csv:
        out = Path(args.csv)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.drop(columns=["warnings"]).to_csv(out, index=False)
    if args.json:
        from .report.tables import comparison_records

        _print_json(_envelope("compare", seed=args.seed, input=info,
                              results=comparison_records(table),
                              warns=warns, extra={"skipped": table.attrs.get("skipped", [])}))
        return 0
    print(f"{info['source']}: {h.k} lists, {_fmt(h.n_observed)} persons observed; "
          f"{100 * args.level:g}% intervals")
    for w in warns:
        print(f"note: {w}")
    _print_table(table)
    if args.reliability:
        print("\nreliability (each list estimated from the others, Binette & Steorts 2022):")
        for _, r in table.iterrows():
            if r["reliability"]:
                print(f"  {str(r['method'])[:28]:<28} {r['reliability']}")
    skipped = table.attrs.get("skipped") or []
    if skipped:
        print(f"\nnot in this version of tipstat: {', '.join(skipped)}")
    if args.csv:
        print(f"\nwritten: {args.csv}")
    return 0


def _print_table(table: Any) -> None:
    """The comparison as text: a row that is not an estimate shows its status in words, a lower
    bound "at least L"; the caveats column gives a row's caveat codes, numbered, and every
    caveat's message follows the table."""
    from .report.display import caveat_line, figure, interval

    header = f"{'method':<28} {'model':<32} {'status':<16} {'N-hat':>16} {'interval':>24} " \
             f"{'kind':<10} {'AIC':>8}  caveats"
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    for i, (_, r) in enumerate(table.iterrows(), start=1):
        model = str(r["model"])
        model = model if len(model) <= 32 else model[:31] + "…"
        method = str(r["method"])[:28]
        kind = str(r["ci_method"] or "-").split(" ")[0][:10]
        shown = figure(r["status"], r["n_hat"], r["lower"], r["upper"])
        ci = interval(r["status"], r["lower"], r["upper"])
        codes = r.get("warning_codes") or ""
        mark = f"({i}) {codes}" if codes else "-"
        if codes:
            notes += [f"  ({i}) {caveat_line(w)}" for w in r["warnings"]]
        print(f"{method:<28} {model:<32} {r['status']:<16} {shown:>16} "
              f"{ci:>24} {kind:<10} {_fmt(r['aic'], 1):>8}  {mark}")
    if notes:
        print("\nwhat the data cannot support (caveats by row):")
        for line in notes:
            print(line)


def _looks_like_records(path: Path) -> bool:
    """An IC-TIP records file (entity/record/key columns) or an HTCDS export."""
    from .ictip.sources import htcds_columns
    from .pipeline import check_file
    from .tables import CASE_SHEET, read_header

    check_file(path, "file")
    try:
        cols, _ = read_header(path, prefer_sheet=CASE_SHEET)
    except InputError:
        return False  # read as a table, which says what is wrong with the file
    return bool(htcds_columns(cols)) or any(
        c in cols for c in ("person_key", "entity_id", "record_id", "source_record_id"))


def _validate_records(paths: list[str], args: argparse.Namespace) -> dict[str, Any] | None:
    """Validate agency exports (IC-TIP or HTCDS, any mix) with ``tipstat.pipeline.read_exports``;
    None when the files are not records (then they are checked as capture-history tables)."""
    from .pipeline import RunWarning, read_exports

    if not all(Path(p).is_file() and _looks_like_records(Path(p)) for p in paths):
        return None
    if args.entity_map is None:
        raise InputError("these are victim-record files: --entity-map is required (a CSV with "
                         "columns entity_id, list_id)")
    warns: list[RunWarning] = []
    try:
        records, formats = read_exports(list(paths), args.entity_map, format=args.format,
                                        secret=_read_secret(args), warnings_=warns)
    except InputError as exc:
        raise _records_error(exc) from None
    accounting = records.accounting()
    acc = dict(zip(accounting.iloc[:, 0].astype(str), accounting.iloc[:, 1], strict=True))
    return {"kind": "IC-TIP records", "formats": formats, "lists": list(records.lists),
            "accounting": acc, "warnings": [w.message for w in warns], "problems": []}


def cmd_validate(args: argparse.Namespace) -> int:
    results = []
    any_error = False
    try:
        records = _validate_records(args.files, args)
    except InputError as exc:
        records = {"kind": "IC-TIP records", "valid": False, "error": str(exc).split("\n")[0],
                   "problems": [_problem(p) for p in exc.problems]}
        any_error = True
    if records is not None:
        results.append({"file": args.files, "valid": records.pop("valid", True), **records})
    else:
        for f in args.files:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    h, info = load_histories(f, count=args.count, lists=args.lists,
                                             strata=args.strata)
                zero = int((h.counts == 0).sum())
                results.append({"file": f, "valid": True, "kind": info["kind"],
                                "lists": list(h.lists), "n_observed": float(h.n_observed),
                                "strata": list(h.strata), "empty_patterns": zero,
                                "warnings": [str(w.message) for w in caught], "problems": []})
            except InputError as exc:
                any_error = True
                results.append({"file": f, "valid": False, "error": str(exc).split("\n")[0],
                                "problems": [_problem(p) for p in exc.problems]})
    if args.json:
        _print_json(_envelope("validate", input={"files": args.files}, results=results))
    else:
        for r in results:
            name = r["file"] if isinstance(r["file"], str) else ", ".join(r["file"])
            if r["valid"]:
                extra = (f"{r['kind']}, {len(r.get('lists', []))} lists, "
                         f"{_fmt(r.get('n_observed'))} persons observed"
                         if "n_observed" in r else r["kind"])
                print(f"{name}: valid ({extra})")
                for w in r.get("warnings", []):
                    print(f"  warning: {w}")
                if r.get("accounting"):
                    print(f"  accounting: {r['accounting']}")
            else:
                print(f"{name}: INVALID: {r['error']}")
                for p in r["problems"][:20]:
                    print(f"  - {_problem_text(p)}")
                if len(r["problems"]) > 20:
                    print(f"  ... and {len(r['problems']) - 20} more")
    return 2 if any_error else 0


def _safe_message(message: str) -> str:
    """A message of a library outside tipstat with its quoted parts hidden (they can quote a
    record's value)."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'<hidden>'", message)


def _problem(p: Any) -> dict[str, Any]:
    value = safe_value(p.value)
    return {"column": p.column, "row": p.row if isinstance(p.row, int | str) else str(p.row),
            "value": value, "expected": p.expected}


def _problem_text(p: dict[str, Any]) -> str:
    where = [f"column {p['column']!r}"] if p["column"] is not None else []
    if p["row"] is not None:
        where.append(f"row {p['row']}")
    shown = "" if p["value"] is None else f": value {p['value']!r}"
    return f"{', '.join(where)}{shown} (expected {p['expected']})"


def cmd_report(args: argparse.Namespace) -> int:
    from .comparison import compare, leave_one_list_out
    from .report.html import write_report

    h, info = load_histories(args.file, count=args.count, lists=args.lists, strata=args.strata)
    methods = args.methods if args.methods in ("default", "all") else _csv_list(args.methods)
    out = Path(args.out)
    title = args.title or f"Multiple Systems Estimation: {Path(info['source']).stem}"
    with warnings.catch_warnings(record=True) as caught:  # the run's own warnings go in the report
        warnings.simplefilter("always", TipstatWarning)
        check, _, why_not = _reliability_check(h, args)
    reliability = check if check is not None else why_not   # the report says why it is absent
    warns = list(dict.fromkeys(str(w.message) for w in caught
                               if issubclass(w.category, TipstatWarning)))
    # a bundled table keys its lists to their agencies from its catalogue entry
    list_key = args.file if info.get("kind") == "bundled dataset" else None
    pooled = h.pooled() if h.n_strata > 1 else h
    table = compare(pooled, methods, level=args.level, seed=args.seed)
    sensitivity = (leave_one_list_out(pooled, ["independence"], level=args.level, seed=args.seed)
                   if pooled.k >= 3 else None)
    write_report(out, h, comparison=table, sensitivity=sensitivity, seed=args.seed,
                 level=args.level, title=title, source=info.get("citation") or info["source"],
                 reliability=reliability, list_key=list_key, warnings=warns)
    print(f"report written: {out}")
    return 0


def _reliability(h: Any) -> Any:
    """The internal-consistency check of the default method (None below three lists)."""
    import tipstat

    return tipstat.internal_consistency(h, tipstat.estimate_population) if h.k >= 3 else None


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .report.reproduce import published_table, reproduce, studies

    if not args.study:
        t = published_table()
        if args.json:
            _print_json(_envelope("reproduce", results=[
                {"study": s, "title": t.loc[t.study == s, "title"].iloc[0],
                 "datasets": sorted(set(t.loc[t.study == s, "dataset"].dropna()))}
                for s in studies()]))
            return 0
        print("studies with published MSE estimates shipped in tipstat:")
        for s in studies():
            print(f"  {s:<14} {t.loc[t.study == s, 'title'].iloc[0]}")
        print('\nrun: tipstat reproduce STUDY   (e.g. tipstat reproduce "UK 2013")')
        return 0
    table = reproduce(args.study, selection=not args.no_selection, seed=args.seed)
    if args.json:
        _print_json(_envelope("reproduce", seed=args.seed, input={"study": args.study},
                              results=table.to_dict("records")))
        return 0
    for _, r in table.iterrows():
        print(f"{r['title']}" + (f" ({r['dataset']})" if r["dataset"] else ""))
        print(f"  published  {_fmt(r['published']):>9}  "
              + (f"[{_fmt(r['published_lower'])}, {_fmt(r['published_upper'])}] "
                 if not math.isnan(r["published_lower"]) else "")
              + f"({r['published_interval']})")
        print(f"             method: {r['published_method']}")
        print(f"             source: {r['source']}")
        if r["approach"] != "published only":
            from .report.display import figure, is_estimate

            rel = r["relative_difference"]
            print(f"  tipstat    {_fmt(r['n_hat']):>9}  [{_fmt(r['lower'])}, {_fmt(r['upper'])}] "
                  f"({r['ci_method']}; {r['status']}); difference {100 * rel:+.2f}%"
                  if math.isfinite(rel) and is_estimate(r["status"], r["n_hat"]) else
                  f"  tipstat    {figure(r['status'], r['n_hat'], r['lower']):>9}  "
                  f"({r['status']})")
            print(f"             {r['approach']}: {r['tipstat_method']} {r['tipstat_model']}")
        if r["note"]:
            print(f"  note       {r['note']}")
        print()
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    import tipstat

    rows = []
    for name in tipstat.datasets.names():
        info = tipstat.datasets.info(name)
        rows.append({"name": name, "lists": list(info["lists"]), "n_observed": info["n_observed"],
                     "kind": info.get("kind"), "citation": info["citation"]})
    if args.json:
        _print_json(_envelope("datasets", results=rows))
        return 0
    for r in rows:
        print(f"{r['name']:<22} {len(r['lists'])} lists  {_fmt(r['n_observed']):>7} observed  "
              f"{r['kind']}")
    return 0


def _report_available() -> bool:
    """True when the report's libraries (matplotlib, Jinja2: the ``report`` extra) are there."""
    from .pipeline import report_available

    return report_available()


def _accounting(*tables: Any) -> dict[str, Any]:
    """``item -> count`` from accounting tables (records read / used / excluded, linkage)."""
    out: dict[str, Any] = {}
    for t in tables:
        for item, value in t.iloc[:, :2].itertuples(index=False, name=None):
            out[str(item)] = value
    return out


def _run_steps(steps: Sequence[tuple[str, Callable[[], None]]], args: argparse.Namespace) -> None:
    from ._progress import progress_bar

    with progress_bar(len(steps), "demo", enabled=_progress(args)) as advance:
        for label, fn in steps:
            fn()
            advance(label)


# ---------------------------------------------------------------------------- secrets
SECRET_ENV = "TIPSTAT_SECRET"


def _read_secret(args: argparse.Namespace) -> Any:
    """The linkage secret from ``--secret-file`` or the environment variable TIPSTAT_SECRET
    (never from a command-line value); None when neither is given."""
    import os

    from .ictip import keys

    path = getattr(args, "secret_file", None)
    reader = getattr(keys, "read_secret", None)
    if reader is not None and path is not None:  # the linkage module's reader when it has one
        try:
            return reader(path)
        except TypeError:  # another signature: read the file here
            pass
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"--secret-file {p}: no such file")
        if p.stat().st_mode & 0o077:
            warnings.warn(f"--secret-file {p}: readable by other users; restrict it "
                          f"(chmod 600 {p})", UserWarning, stacklevel=2)
        value = p.read_text(encoding="utf-8").strip()
        if not value:
            raise InputError(f"--secret-file {p}: the file is empty (make a key with: tipstat "
                             f"keygen --out {p})")
        return keys.Secret(value)
    value = os.environ.get(SECRET_ENV, "").strip()
    return keys.Secret(value) if value else None


def _generate_secret() -> str:
    """A strong random key: ``tipstat.ictip.keys.generate_secret`` when present, else 32
    random bytes from the operating system (``secrets.token_urlsafe(32)``, 256 bits)."""
    from .ictip import keys

    gen = getattr(keys, "generate_secret", None)
    if gen is not None:
        return str(gen())
    import secrets

    return secrets.token_urlsafe(32)


def cmd_keygen(args: argparse.Namespace) -> int:
    """``tipstat keygen``: a new linkage key, written to a file readable only by its owner."""
    import os

    value = _generate_secret()
    if args.out is None:
        print(value)
        return 0
    path = Path(args.out)
    if path.exists() and not args.force:
        raise InputError(f"{path}: exists; a key is not overwritten (records keyed with it could "
                         "no longer be linked). Use --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)
    if not args.json:
        print(f"key written: {path} (readable only by you; keep it out of version control and "
              "share it only with the agencies that key their records with it)")
    else:
        _print_json(_envelope("keygen", seed=None, extra={"output": {"files": [str(path)]}}))
    return 0


def _records_error(exc: InputError) -> InputError:
    """Say how to give the key on the command line when records hold clear identifiers."""
    rule7 = any(str(p.expected).startswith("rule 7") for p in exc.problems)
    if rule7 or "clear personal identifiers" in str(exc):
        return InputError("the records hold clear identifiers (names, dates of birth): give the "
                          "linkage key with --secret-file FILE or the environment variable "
                          f"{SECRET_ENV} (make one with: tipstat keygen --out FILE)", exc.problems)
    return exc


# ---------------------------------------------------------------------------- the pipeline
def _run(args: argparse.Namespace, records: Sequence[Any], entity_map: Any, population: Any,
         **options: Any) -> Any:
    from .pipeline import run_indicator

    try:
        return run_indicator(records, entity_map, population, **options)
    except InputError as exc:
        raise _records_error(exc) from None


def _published_caveats(warnings_: Any) -> list[dict[str, Any]]:
    """Caveats of a published run as ``{"code", "message", "values"}``, counts of 1 to 4
    persons in their messages shown as ``<5`` (the report's rule for published text)."""
    from .report.display import caveat_dicts
    from .report.html import SUPPRESS_BELOW, _mask_small_numbers

    return [c | {"message": _mask_small_numbers(c["message"], SUPPRESS_BELOW)}
            for c in caveat_dicts(warnings_ or ())]


def _headline_lines(run: Any) -> list[str]:
    from .report.display import caveat_line, figure, interval

    lines = [run.headline.text()]
    fit = getattr(run, "fit", None)
    for w in _published_caveats(getattr(fit, "warnings", ())):
        lines.append(f"  caveat of the published fit: {caveat_line(w)}")
    p = run.pooled
    if p is not None:
        ci = interval(p.status, p.ci[0], p.ci[1], sep="; ")
        ci = f" {ci}" if ci not in ("-", "–") else ""
        lines.append(f"  check (not published): pooled default estimate "
                     f"{figure(p.status, p.n_hat, p.ci[0], p.ci[1])}{ci}"
                     f" ({p.method}, {p.status}). {run.pooled_note}")
        lines += [f"  caveat of the pooled check: {caveat_line(w)}"
                  for w in _published_caveats(p.warnings)]
    return lines


def _pooled_json(run: Any) -> dict[str, Any] | None:
    from .report.display import figure

    p = run.pooled
    if p is None:
        return None
    return {"n_hat": p.n_hat, "lower": p.ci[0], "upper": p.ci[1], "level": p.level,
            "method": p.method, "model": p.model, "status": p.status,
            "shown": figure(p.status, p.n_hat, p.ci[0], p.ci[1]),
            "warnings": _published_caveats(p.warnings),
            "role": "sensitivity check (not published)", "note": run.pooled_note}


def _run_extra(run: Any, files: Sequence[Any]) -> dict[str, Any]:
    fit = getattr(run, "fit", None)
    return {"headline": run.headline.to_dict(), "pooled_check": _pooled_json(run),
            "fit_warnings": _published_caveats(getattr(fit, "warnings", ())),
            "run_warnings": [w.to_dict() for w in run.warnings],
            "output": {"files": [str(f) for f in files]}}


def _demo_source() -> dict[str, Any]:
    """The demo's agency records: the bundled synthetic example (``tipstat.datasets.example``),
    with known truth and no real person."""
    import tipstat

    ex = tipstat.datasets.example()
    return {"records": ex["records"], "list_definition": ex["list_definition"],
            "entities": ex["reporting_entity"], "population": ex["population"],
            "ref_area": ex["ref_area"], "year": int(ex["year"]),
            "victims": int(ex["truth"]["N"].sum()), "detected": int(ex["truth"]["detected"].sum()),
            "source": "tipstat.datasets.example(): bundled synthetic agency records"}


def _demo_state(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The main job on synthetic agency exports: write the exports, then the pipeline
    (:func:`tipstat.pipeline.run_indicator`), every method on the pooled table, the outputs."""
    import tipstat

    seed = args.seed
    st: dict[str, Any] = {"files": [], "notes": []}

    def exports() -> None:
        st["src"] = src = _demo_source()
        folder = out / "agency-exports"
        folder.mkdir(exist_ok=True)
        st["exports"] = []
        for entity, part in src["records"].groupby("entity_id"):
            st["exports"].append(folder / f"{entity}.csv")
            part.to_csv(st["exports"][-1], index=False)
        st["files"].append(str(folder))

    def pipeline() -> None:
        src = st["src"]
        st["run"] = _run(args, [str(p) for p in st["exports"]], src["list_definition"],
                         src["population"], entities=src["entities"], country=src["ref_area"],
                         year=src["year"], today=f"{src['year'] + 1}-12-31", seed=seed,
                         n_boot=args.bootstrap, pooled=False)
        st["h"] = st["run"].histories
        st["accounting"] = st["run"].accounting
        st["warnings"] = [w.message for w in st["run"].warnings]
        st["sdg"] = st["run"].sdg.table

    def estimate() -> None:
        st["table"] = tipstat.compare(st["h"].pooled(), "default", seed=seed,
                                      progress=_progress(args))
        # its first row is the pooled default estimate: the run's sensitivity check
        first = st["table"].estimates[0] if st["table"].estimates else None
        if first is not None and str(first.method).startswith("default"):
            st["run"].pooled = first

    def write() -> None:
        run = st["run"]
        st["table"].drop(columns=["warnings"]).to_csv(out / "estimates.csv", index=False)
        st["files"].append(str(out / "estimates.csv"))
        st["files"] += [str(f) for f in run.write(out, report=False)]
        if not _report_available():
            st["notes"].append('the HTML report needs matplotlib and Jinja2: pip install '
                               '"tipstat[report]"')
            return
        src = st["src"]
        path = run.write_report(
            out / "report.html", comparison=st["table"], list_key=src["list_definition"],
            entities=src["entities"],
            title=f"Synthetic country {src['ref_area']} {src['year']}: victims of trafficking, "
                  "detected and undetected", reliability=not args.no_reliability,
            source=f"{src['source']} with known truth (no real person)")
        st["files"].append(str(path))

    _run_steps([("agency exports", exports), ("records -> linkage -> SDG table", pipeline),
                ("estimate with every method", estimate), ("tables, exports and report", write)],
               args)
    return st


def cmd_demo(args: argparse.Namespace) -> int:
    """``tipstat demo``: the main job on bundled data, written to ``--out``."""
    import tipstat

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not args.json:
        print(f"tipstat {tipstat.__version__} demo: a synthetic country whose agencies exported "
              "IC-TIP coded victim records (known truth, no real person)")
    st = _demo_state(args, out)
    src, table, sdg, acc, run = st["src"], st["table"], st["sdg"], st["accounting"], st["run"]
    if args.json:
        from .report.tables import comparison_records

        _print_json(_envelope(
            "demo", seed=args.seed, input={"source": src["source"], "accounting": acc,
                                           "formats": run.formats},
            results=comparison_records(table), warns=st["warnings"],
            extra={**_run_extra(run, st["files"]),
                   "truth": {"victims": src["victims"], "detected": src["detected"]},
                   "sdg_16_2_2": sdg.to_dict("records")}))
        return 0
    print(f"  records read {_fmt(acc.get('read'))}, used {_fmt(acc.get('used'))}; "
          f"{_fmt(st['h'].n_observed)} distinct persons on {st['h'].k} lists after linkage")
    for w in st["warnings"]:
        print(f"  warning: {w}")
    print()
    for line in _headline_lines(run):
        print(line)
    print(f"\ntruth of this synthetic country: {_fmt(src['victims'])} victims, "
          f"{_fmt(src['detected'])} detected")
    dims = [d for d in ("sex", "age", "exploitation") if d in sdg]
    total = sdg[(sdg[dims].astype(str) == "_T").all(axis=1)]
    if len(total):
        r = total.iloc[0]
        print(f"SDG 16.2.2: {_fmt(r['rate_per_100k'], 2)} victims per 100,000 "
              f"[{_fmt(r['rate_lcl'], 2)}, {_fmt(r['rate_ucl'], 2)}] (detected and undetected); "
              f"{len(sdg)} rows by {' x '.join(dims)}, small cells suppressed; seed {run.seed}")
    print("\nsensitivity: every method on the table pooled over strata (not published)")
    _print_table(table)
    for note in st["notes"]:
        print(f"note: {note}")
    print(f"\nwritten in {time.perf_counter() - t0:.1f} s:")
    for f in st["files"]:
        print(f"  {f}")
    return 0


def cmd_indicator(args: argparse.Namespace) -> int:
    """``tipstat indicator``: agency exports -> linkage -> SDG 16.2.2 table and its exports."""
    out = Path(args.out)
    if out.suffix.lower() in (".csv", ".xlsx", ".html"):
        raise InputError(f"--out {out}: expected a folder (the SDG table, its GLOTIP, SDMX and "
                         "Excel forms and the report are written into it)")
    run = _run(args, list(args.records), args.entity_map, args.population, format=args.format,
               secret=_read_secret(args), country=args.country, year=args.year, by=args.by,
               seed=args.seed, n_boot=args.bootstrap, level=args.level)
    files = run.write(out, report=args.report or not args.no_report,
                      source=", ".join(Path(r).name for r in args.records),
                      reliability=not args.no_reliability)
    table = run.sdg.table
    if args.json:
        _print_json(_envelope("indicator", seed=run.seed,
                              input={"records": [Path(r).name for r in args.records],
                                     "formats": run.formats,
                                     "population": Path(args.population).name, "by": args.by,
                                     "accounting": run.accounting},
                              results=table.to_dict("records"),
                              warns=[w.message for w in run.warnings],
                              extra=_run_extra(run, files)))
        return 0
    acc = run.accounting
    print(f"records read {_fmt(acc.get('read'))}, used {_fmt(acc.get('used'))} "
          f"({', '.join(f'{k}: {v}' for k, v in run.formats.items())}); "
          f"{_fmt(run.histories.n_observed)} distinct persons on {run.histories.k} lists")
    for w in run.warnings:
        print(f"warning: {w.message}")
    print()
    for line in _headline_lines(run):
        print(line)
    print()
    shown = [c for c in ("sex", "age", "exploitation", "detected", "total_est", "total_lcl",
                         "total_ucl", "rate_per_100k", "rate_lcl", "rate_ucl", "obs_status")
             if c in table]
    print(table[shown].to_string(index=False, float_format="{:,.1f}".format))
    print(f"\nseed {run.seed}; written:")
    for f in files:
        print(f"  {f}")
    return 0


def cmd_histories(args: argparse.Namespace) -> int:
    """``tipstat histories``: agency exports -> linked persons -> the count table that
    ``estimate``, ``compare`` and ``report`` read."""
    from .pipeline import histories_from_exports

    try:
        linked, h = histories_from_exports(list(args.records), args.entity_map, by=args.by,
                                           format=args.format, secret=_read_secret(args),
                                           country=args.country, year=args.year)
    except InputError as exc:
        raise _records_error(exc) from None
    warns, formats, acc = linked.warnings, linked.formats, linked.accounting
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = h.to_frame(include_zeros=False)
    frame.to_csv(out, index=False)
    if args.json:
        _print_json(_envelope("histories", input={"records": [Path(r).name for r in args.records],
                                                  "formats": formats, "accounting": acc},
                              results=[{"lists": list(h.lists), "strata": list(h.strata),
                                        "n_observed": float(h.n_observed), "rows": len(frame)}],
                              warns=[w.message for w in warns],
                              extra={"output": {"files": [str(out)]}}))
        return 0
    for w in warns:
        print(f"warning: {w.message}")
    print(f"{_fmt(h.n_observed)} distinct persons on {h.k} lists ({', '.join(h.lists)})"
          + (f" by {', '.join(h.strata)}" if h.strata else "") + f"; {len(frame)} rows")
    print(f"written: {out}   (next: tipstat estimate {out})")
    return 0


# ---------------------------------------------------------------------------- survey (issue 17)
def _survey_mse(path: str) -> Any:
    """An MSE estimate from the JSON of ``tipstat estimate --json`` (its first result)."""
    from .estimate import Estimate

    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
        r = obj["results"][0] if "results" in obj else obj
        num = {k: (math.nan if r.get(k) is None else float(r[k]))
               for k in ("n_hat", "lower", "upper", "level", "n_observed")}
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError):
        raise InputError(f"--mse {Path(path).name}: expected the JSON written by "
                         "'tipstat estimate --json' (results with n_hat, lower, upper, "
                         "status)") from None
    status = str(r.get("status", "ok"))
    upper = math.inf if status == "lower_bound" or math.isnan(num["upper"]) else num["upper"]
    return Estimate(n_hat=num["n_hat"], ci=(num["lower"], upper), level=num["level"] or 0.95,
                    n_observed=num["n_observed"], method=str(r.get("method", "mse")),
                    model=str(r.get("model", "")), status=status,
                    ci_method=str(r.get("ci_method", "")))


def cmd_survey(args: argparse.Namespace) -> int:
    """``tipstat survey``: survey microdata + design + questionnaire mapping -> domain
    prevalence tables (small cells withheld), exclusions, caveats; side by side with an MSE
    estimate when one is given."""
    from . import datasets
    from .survey import read_design_spec, read_survey, run_survey, side_by_side

    if args.demo or args.file is None:
        if args.file is None and not args.demo:
            raise InputError("give a survey file (CSV, Excel, SPSS, Stata, SAS) with --design "
                             "and --mapping, or --demo for the bundled synthetic country")
        sv = datasets.load_survey()
        data, design, mapping = sv["data"], sv["design"], sv["mapping"]
        spec = read_design_spec(sv["paths"]["design"])
        source = Path(sv["paths"]["data"]).name
    else:
        if args.design is None:
            raise InputError("--design DESIGN.toml is needed with a survey file (its [design] "
                             "table: weights, strata, psu, fpc...)")
        spec = read_design_spec(args.design)
        data, design, source = read_survey(args.file), spec["design"], Path(args.file).name
        mapping = args.mapping
        if mapping is None and spec["survey"].get("mapping"):
            mapping = str(Path(args.design).parent / spec["survey"]["mapping"])
    if args.mse is not None and args.population is None:
        raise InputError("--mse needs --population (the population the MSE rate is per)")
    by = args.by if args.by is not None else spec["domains"]
    definition = args.definition or spec["survey"].get("definition")
    nsum = spec.get("nsum") or None
    run = run_survey(data, design=design, mapping=mapping, definition=definition, by=by,
                     indicators=args.indicators, level=args.level, ci=args.ci,
                     threshold=args.threshold, source=source, nsum=nsum, seed=args.seed)
    side = None
    if args.mse is not None or run.nsum is not None:
        side = side_by_side(run.published.table,
                            _survey_mse(args.mse) if args.mse is not None else None,
                            population=args.population if args.population is not None
                            else nsum["population"],
                            survey_period=run.definition["reference_period"],
                            nsum=run.nsum, nsum_label=run.nsum_label,
                            nsum_threshold=args.threshold)
    files: list[str] = []
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() in (".csv", ".html", ".json", ".xlsx"):
            raise InputError(f"--out {out.name}: expected a folder (the published table and the "
                             "report are written into it)")
        out.mkdir(parents=True, exist_ok=True)
        run.published.table.to_csv(out / "survey_prevalence.csv", index=False)
        files.append(str(out / "survey_prevalence.csv"))
        if side is not None:
            side.to_csv(out / "side_by_side.csv", index=False)
            files.append(str(out / "side_by_side.csv"))
        if _report_available():
            from .report.survey import write_survey_report

            files.append(str(write_survey_report(out / "survey_report.html", run, side)))
    if args.json:
        res = run.to_dict()
        _print_json(_envelope(
            "survey", seed=args.seed if nsum else None,
            input={"file": source, "design": design if isinstance(
                design, dict) else {}, "definition": res["definition"], "by": res["by"]},
            results=res["rows"], warns=[w.message for w in run.warnings],
            extra={"excluded": res["excluded"], "design": res["design"], "nsum": res["nsum"],
                   "side_by_side": None if side is None else side.to_dict("records"),
                   "output": {"files": files}}))
        return 0
    d, dd = run.definition, run.design
    print(f"{source}: {_fmt(len(dd.data))} respondents, {dd.n_strata} strata, {dd.n_psu} PSUs "
          f"(variance: {dd.variance}, {dd.df} df)")
    print(f"definition {d['name']} version {d['version']} ({d['status']}); reference period: "
          f"{d['reference_period']}")
    for stage, reasons in run.excluded.items():
        for reason, n in reasons.items():
            print(f"excluded ({stage}): {reason}: {_fmt(n)}")
    pct = f"{100 * run.level:g}%"
    table = run.published.table
    for ind in run.indicators:
        print(f"\n{ind}: per 100,000 and estimated persons, {pct} intervals ({run.ci})")
        print(f"  {'domain':<26} {'resp.':>6} {'cases':>6} {'per 100,000':>12} "
              f"{'interval':>21} {'persons':>9} {'interval':>19}  status")
        for r in table[table["indicator"] == ind].to_dict("records"):
            dom = ", ".join(f"{c}={r[c]}" for c in run.published.dims
                            if str(r.get(c)) != "_T") or "total"
            if r["obs_status"] == "suppressed":
                cells = ["x"] * 5 + ["withheld"]
            elif r["status"] in ("ok", "small_domain") and math.isfinite(r["proportion"]):
                cells = [_fmt(r["n_cases"]), _fmt(1e5 * r["proportion"], 1),
                         f"[{_fmt(1e5 * r['ci_lower'], 1)}, {_fmt(1e5 * r['ci_upper'], 1)}]",
                         _fmt(r["total"]), f"[{_fmt(r['total_lower'])}, "
                                           f"{_fmt(r['total_upper'])}]",
                         r["status"]]
            else:
                cells = [_fmt(r["n_cases"]), "-", "-", "-", "-",
                         str(r["status"] or r["obs_status"]).replace("_", " ")]
            print(f"  {dom[:26]:<26} {_fmt(r['n_sample']):>6} {cells[0]:>6} {cells[1]:>12} "
                  f"{cells[2]:>21} {cells[3]:>9} {cells[4]:>19}  {cells[5]}")
    if run.nsum is not None:
        _print_nsum(run, pct, args.threshold)
    if side is not None:
        print("\nside by side (different quantities: no ratio, no difference)")
        for r in side.to_dict("records"):
            print(f"  {r['source']}: {r['indicator']}: {r['shown']} {r['interval_shown']}; "
                  f"per 100,000: {r['rate_shown']}\n    counts {r['counts']}; "
                  f"period: {r['reference_period']}")
    for w in run.warnings:
        print(f"warning: [{w.code}] {w}")
    if files:
        print("written:")
        for f in files:
            print(f"  {f}")
    return 0


def _print_nsum(run: Any, pct: str, threshold: int) -> None:
    """The network scale-up block of ``tipstat survey``'s text output."""
    e = run.nsum
    d = e.diagnostics
    print(f"\nnetwork scale-up: {run.nsum_label}")
    if run.nsum_withheld:
        print(f"  withheld: fewer than {threshold} respondents report knowing anyone in the "
              "hidden population")
    elif e.status != "ok":
        print(f"  {e.status.replace('_', ' ')}: {d.get('reason', '')}")
    else:
        print(f"  {_fmt(e.n_hat)} persons, {pct} interval [{_fmt(e.ci[0])}, {_fmt(e.ci[1])}] "
              f"({e.ci_method}; {d.get('resampled', 'no interval')})")
    print(f"  {_fmt(d['respondents'])} respondents answered every scale-up question, "
          f"{_fmt(d['respondents_reporting'])} know someone in the hidden population; "
          f"mean network size {_fmt(d['mean_degree'])}")
    for w in e.warnings:
        print(f"  caveat: [{w.code}] {w}")


# ---------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse without echoing unrecognised values (a key typed as ``--secret VALUE`` is not
    printed back)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            words = message[len(prefix):].split()
            shown = [w if w.startswith("-") else "<value>" for w in words]
            message = prefix + " ".join(shown)
        return super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the documentation and tests)."""
    from . import __version__

    parser = _Parser(
        allow_abbrev=False,  # no "--secret VALUE" taken as "--secret-file VALUE"
        prog="tipstat", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Multiple Systems Estimation of trafficking in persons: from agency records "
                    "to the SDG 16.2.2 indicator.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"tipstat {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str,
            example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, allow_abbrev=False, help=help, description=help,
                           epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
        return p

    def common(p: argparse.ArgumentParser, json_: bool = True, seed: bool = True,
               level: bool = False) -> None:
        if json_:
            p.add_argument("--json", action="store_true",
                           help="print one JSON object (schema tipstat-cli/1, see docs/cli.md)")
        if seed:
            p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                           help=f"seed of every random step (bootstrap, MCMC; default "
                                f"{DEFAULT_SEED}: the same command gives the same numbers)")
        if level:
            p.add_argument("--level", type=_level, default=0.95,
                           help="interval coverage (default 0.95)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = add("demo", cmd_demo, "run the main job on bundled example data, write ./tipstat-output/",
            "tipstat demo --out tipstat-output --seed 1")
    p.add_argument("--out", default="tipstat-output", help="output folder (default tipstat-output)")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap replicates of the stratified fit (default 200)")
    p.add_argument("--no-reliability", action="store_true",
                   help="leave the reliability check out of the report")
    common(p)

    p = add("estimate", cmd_estimate, "estimate the number of victims from a capture-history table",
            'tipstat estimate UK_5 --model "LA:NG + NG:GP" --json')
    p.add_argument("file", help="table file (CSV/TSV/Excel/ODS) or bundled table name")
    p.add_argument("--method", default=None,
                   help="default (tipstat's default estimator, a BIC model average over "
                        "log-linear models; used unless --model is given), loglinear (one "
                        "model, --model), or a comparison method: independence, all2, "
                        "stepwise, bhs, aic, bic, closedp, graphical, latent_class, "
                        "bayes_loglinear, loglinear_bma")
    p.add_argument("--model", default=None,
                   help='log-linear terms for --method loglinear, e.g. "independence", "all2", '
                        '"A:B + B:C"')
    p.add_argument("--ci", default="profile", choices=["profile", "profile_rcapture", "wald", "none"],
                   help="interval for --method loglinear (default profile likelihood)")
    p.add_argument("--by-stratum", action="store_true", help="one estimate per stratum")
    p.add_argument("--no-reliability", action="store_true",
                   help="skip the reliability check (tipstat's default method refitted once per "
                        "list, each list treated as a population of known size; on by default)")
    _add_input_options(p)
    common(p, level=True)

    p = add("compare", cmd_compare, "every method side by side (the sensitivity table)",
            "tipstat compare NewOrleans_8 --methods independence,all2 --csv compare.csv")
    p.add_argument("file", help="table file or bundled table name")
    p.add_argument("--methods", default="default",
                   help="'default', 'all' or comma-separated method names")
    p.add_argument("--csv", default=None, help="also write the table to this CSV file")
    p.add_argument("--reliability", action="store_true",
                   help="rate each method by the internal-consistency check (K more fits each)")
    _add_input_options(p)
    common(p, level=True)

    p = add("validate", cmd_validate, "check input files and say what is wrong, row by row",
            "tipstat validate police.csv ngo.csv --entity-map lists.csv")
    p.add_argument("files", nargs="+",
                   help="capture-history tables, or agency exports (IC-TIP or HTCDS)")
    p.add_argument("--entity-map", default=None,
                   help="agency exports: CSV mapping entity_id to list_id")
    p.add_argument("--format", default="auto", choices=["auto", "ictip", "htcds"],
                   help="agency exports: format of every file (default: detected per file)")
    p.add_argument("--secret-file", default=None,
                   help=f"agency exports with clear identifiers: file holding the linkage key "
                        f"(or the environment variable {SECRET_ENV})")
    _add_input_options(p)
    common(p, seed=False)

    def records_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("records", nargs="+",
                       help="agency exports: IC-TIP coded records (CSV/Excel) or IOM HTCDS v2.0 "
                            "(its Excel template or a CSV with its system names; the file name "
                            "is the entity_id)")
        p.add_argument("--format", default="auto", choices=["auto", "ictip", "htcds"],
                       help="format of every file; auto (default) detects each file by its "
                            "column names (HTCDS: prs_, vic_, cas_)")
        p.add_argument("--entity-map", required=True,
                       help="CSV with columns entity_id, list_id (which list each reporting "
                            "entity's records belong to)")
        p.add_argument("--secret-file", default=None,
                       help="file holding the linkage key, for records with clear identifiers "
                            f"(or the environment variable {SECRET_ENV}; never a command-line "
                            "value; make one with tipstat keygen)")
        p.add_argument("--year", type=int, default=None,
                       help="reference year (records outside it are excluded and counted)")
        p.add_argument("--country", default=None,
                       help="ISO-3 code of the country (records identified elsewhere are "
                            "excluded and counted)")
        p.add_argument("--by", type=_by_list, default=["sex", "age", "exploitation"],
                       help="disaggregation among sex, age, exploitation (default all three; "
                            "'none' for none)")

    p = add("indicator", cmd_indicator,
            "SDG 16.2.2 table from agency exports (records -> linkage -> stratified MSE)",
            "tipstat indicator exports/*.csv NGO_SHELTER.xlsx --entity-map lists.csv "
            "--population pop.csv --secret-file key.txt --country BEL --year 2024 --out sdg/")
    records_options(p)
    p.add_argument("--population", required=True,
                   help="population table: sex, age_group, population (see docs/cli.md)")
    p.add_argument("--out", default="tipstat-indicator",
                   help="output folder (default tipstat-indicator): SDG table CSV and Excel, "
                        "GLOTIP, SDMX-CSV, metadata, HTML report")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200)")
    p.add_argument("--report", default=None,
                   help="write the HTML report here instead of OUT/report.html")
    p.add_argument("--no-report", action="store_true", help="no HTML report")
    p.add_argument("--no-reliability", action="store_true",
                   help="leave the reliability check (the default method refitted once per "
                        "list) out of the report")
    common(p, level=True)

    p = add("histories", cmd_histories,
            "the linked count table (capture histories) of agency exports, for estimate, "
            "compare and report",
            "tipstat histories exports/*.csv --entity-map lists.csv --out counts.csv && "
            "tipstat estimate counts.csv")
    records_options(p)
    p.add_argument("--out", default="histories.csv", help="CSV file to write (default "
                                                          "histories.csv)")
    common(p, seed=False)

    p = add("keygen", cmd_keygen, "make a strong random linkage key",
            "tipstat keygen --out key.txt")
    p.add_argument("--out", default=None,
                   help="write the key to this file (permissions 0600); without it the key is "
                        "printed")
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    common(p, seed=False)

    p = add("report", cmd_report, "write a self-contained HTML report of an analysis",
            "tipstat report UK_5 --out uk5.html")
    p.add_argument("file", help="table file or bundled table name")
    p.add_argument("--out", default="tipstat-report.html", help="HTML file to write")
    p.add_argument("--methods", default="default", help="'default', 'all' or names")
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("--no-reliability", action="store_true",
                   help="leave the reliability check out of the report (it refits the default "
                        "method once per list; on by default)")
    _add_input_options(p)
    common(p, json_=False, level=True)

    p = add("reproduce", cmd_reproduce,
            "print a published estimate beside tipstat's number and method",
            'tipstat reproduce "UK 2013"')
    p.add_argument("study", nargs="?", default=None,
                   help="study (uk-2013, new-orleans, western-us, kosovo, korea, ...); "
                        "none: list them")
    p.add_argument("--no-selection", action="store_true",
                   help="only refit the published model; do not rerun the selection rule")
    common(p)

    p = add("survey", cmd_survey,
            "forced labour prevalence by domain from survey microdata (design, questionnaire "
            "mapping, definition); small cells withheld",
            "tipstat survey survey.sav --design design.toml --mapping mapping.toml "
            "--by sex,age_group --out survey/")
    p.add_argument("file", nargs="?", default=None,
                   help="survey microdata: CSV, Excel, SPSS .sav, Stata .dta, SAS; none with "
                        "--demo (the bundled synthetic country)")
    p.add_argument("--demo", action="store_true",
                   help="run on the bundled synthetic country survey")
    p.add_argument("--design", default=None,
                   help="TOML file: [design] weights, strata, psu, fpc (or replicate weights); "
                        "optional [survey] reference_period, mapping, definition, [domains] "
                        "and [nsum] (network scale-up: hidden, population, [nsum.known])")
    p.add_argument("--mapping", default=None,
                   help="questionnaire mapping (TOML/JSON/CSV): which variable answers each "
                        "item of the definition, and its yes/no/missing codes")
    p.add_argument("--definition", default=None,
                   help="statistical definition (default: the mapping's, else tipstat-prov-1)")
    p.add_argument("--by", type=_by_list, default=None,
                   help="domain columns, comma-separated (default: the design file's "
                        "[domains]; 'none' for the total only)")
    p.add_argument("--indicators", type=_csv_list, default=None,
                   help="flags to estimate (default forced_labour, trafficking_forced_labour, "
                        "child_forced_labour, forced_commercial_sexual_exploitation)")
    p.add_argument("--ci", default="logit", choices=["logit", "korn_graubard", "wald"],
                   help="interval for the proportions (default logit)")
    p.add_argument("--threshold", type=int, default=5,
                   help="least unweighted cases of a published domain (default 5)")
    p.add_argument("--mse", default=None,
                   help="JSON of 'tipstat estimate --json' to show side by side (needs "
                        "--population)")
    p.add_argument("--population", type=float, default=None,
                   help="population the MSE and scale-up rates are per (needed with --mse; "
                        "default for the scale-up: its [nsum] population)")
    p.add_argument("--out", default=None,
                   help="folder: survey_prevalence.csv (published table), side_by_side.csv, "
                        "survey_report.html")
    p.add_argument("--format", dest="json", type=_json_format, default=False,
                   metavar="{text,json}", help="output format (json: one JSON object, schema "
                                               "tipstat-cli/1)")
    common(p, level=True)

    p = add("datasets", cmd_datasets, "list the bundled published tables", "tipstat datasets")
    common(p, seed=False)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Warnings as one line on standard error, without source locations."""
    print(f"tipstat: warning: {message}", file=sys.stderr)


def _by_list(text: str) -> list[str]:
    if text.strip().lower() in ("none", ""):
        return []
    return _csv_list(text)


def _json_format(text: str) -> bool:
    """``--format text|json`` as the ``json`` flag."""
    if text not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"expected text or json, got {text!r}")
    return text == "json"


def _level(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a coverage between 0 and 1, e.g. 0.95")
    return v


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, 1 internal error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    as_json = getattr(args, "json", False)

    def fail(kind: str, message: str, code: int, problems: Sequence[Any] = ()) -> int:
        if as_json:
            try:
                _print_json(_envelope(args.command, seed=getattr(args, "seed", None), error={
                    "kind": kind, "message": message,
                    "problems": [_problem(p) for p in problems]}))
            except BrokenPipeError:  # `tipstat ... --json | head`: the error's code still stands
                _silence_stdout()
        else:
            print(f"tipstat {args.command}: error: {message}", file=sys.stderr)
            if code == 1 and kind == "internal":
                print("this is a bug in tipstat: run again with --debug and report the traceback",
                      file=sys.stderr)
        return code

    def trace(exc: BaseException, message: str) -> None:
        # --debug: the stack (file, line, function, source line: no frame's local variables)
        # and the exception's type with the same safe message as without --debug; an
        # exception's own text could quote a record's value, so it is not printed
        if debug:
            import traceback

            print("Traceback (most recent call last):\n"
                  + "".join(traceback.format_tb(exc.__traceback__))
                  + f"{type(exc).__qualname__}: {message}",
                  file=sys.stderr)

    def input_message(exc: InputError) -> str:
        head = str(exc.args[0]).split("\n")[0] if exc.args else ""
        if as_json or not exc.problems:
            return head
        lines = [f"  - {_problem_text(_problem(p))}" for p in exc.problems[:InputError.max_shown]]
        if len(exc.problems) > InputError.max_shown:
            lines.append(f"  ... and {len(exc.problems) - InputError.max_shown} more")
        return head + "\n" + "\n".join(lines)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if not debug:  # numerical noise of intermediate fits is not the user's business
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
            return args.func(args)
    except BrokenPipeError:
        # output piped into `head` & co.: the reader has what it wanted; stop quietly
        _silence_stdout()
        return 0
    except InputError as exc:
        message = input_message(exc)
        trace(exc, message.split("\n")[0])
        return fail("input", message, 2, exc.problems)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        trace(exc, f"{exc.filename}: {exc.strerror}")
        return fail("input", f"{exc.filename}: {exc.strerror}", 2)
    except TipstatError as exc:
        trace(exc, str(exc))
        return fail("estimation", str(exc), 1)
    except KeyboardInterrupt:
        print("tipstat: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        trace(exc, _safe_message(str(exc)))
        return fail("internal", f"{type(exc).__name__}: {_safe_message(str(exc))}", 1)


def _silence_stdout() -> None:
    """Point standard output at /dev/null so that the interpreter's final flush does not raise
    BrokenPipeError again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture stdout)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
