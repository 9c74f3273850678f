"""Run every benchmarks/bench_*.py script and write docs/performance.md.

Each script runs in its own Python process (so one script's imports, caches and memory do not
affect the next), and its peak resident memory is read from that process's resource usage
(``os.wait4``, ``ru_maxrss``). A script that defines ``main()`` returning a list of dicts (one
per benchmark: ``benchmark``, ``target``, ``tipstat_ms``, ``baseline``, ``baseline_ms``,
``ratio``, anything else) gets a row per benchmark in the summary table; any other script's
printed output is kept verbatim.

Run::

    python benchmarks/run.py            # all scripts, writes docs/performance.md
    python benchmarks/run.py loglinear  # only scripts whose name contains it
    python benchmarks/run.py --no-write
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Runs one script in a fresh interpreter: main() rows to a JSON file when the script has a
# main() returning a list of dicts, else the script as __main__ (its own printing).
_WRAPPER = r"""
import json, runpy, sys
script, out = sys.argv[1], sys.argv[2]
sys.argv = [script]
sys.path.insert(0, str(__import__("pathlib").Path(script).parent))
ns = runpy.run_path(script, run_name="__bench__")
main = ns.get("main")
if callable(main):
    rows = main()
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        with open(out, "w") as f:
            json.dump(rows, f, default=str)
        for r in rows:
            print("  ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in r.items()))
else:
    runpy.run_path(script, run_name="__main__")
"""

#: docs/performance.md keeps everything from this line on when it is regenerated
_KEEP = "<!-- benchmarks/run.py keeps everything below this line -->"
_OURS = re.compile(r"^(tipstat|ours|time)(_per_\w+)?_(ms|s|us)$")
_THEIRS = re.compile(r"^(baseline|theirs|reference)(_per_\w+)?_(ms|s|us)$")
_SCALE = {"s": 1e3, "ms": 1.0, "us": 1e-3}


def machine() -> dict[str, str]:
    """nproc, CPU model, memory, Python and library versions, load."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024**2:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        usable = os.cpu_count()
    info = {"nproc": str(usable), "cpu": cpu, "memory": mem, "os": platform.platform(),
            "python": platform.python_version()}
    for lib in ("tipstat", "numpy", "scipy", "pandas", "statsmodels", "pymc", "arviz", "joblib",
                "dask", "networkx"):
        try:
            info[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return info


def run_script(path: Path, timeout: float) -> dict:
    """Run one benchmark script; returns rows, output, seconds, peak RSS (MiB), return code."""
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "rows.json"
        log = Path(tmp) / "out.txt"
        start = time.perf_counter()
        with open(log, "w") as fh:
            proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(path), str(out_json)],
                                    stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
            deadline = start + timeout
            status, usage, timed_out = None, None, False
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    timed_out = True
                    break
                time.sleep(0.05)
            proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        rows = json.loads(out_json.read_text()) if out_json.exists() else []
        output = log.read_text(errors="replace")
    return {"script": path.name, "rows": rows, "output": output, "seconds": seconds,
            "peak_mib": usage.ru_maxrss / 1024.0, "returncode": proc.returncode,
            "timed_out": timed_out}


def _time_ms(row: dict, pattern: re.Pattern) -> float:
    for key, value in row.items():
        m = pattern.match(key)
        if m and isinstance(value, int | float):
            return float(value) * _SCALE[m.group(3)]
    return math.nan


def normalise(row: dict) -> dict:
    """The common columns of a benchmark row, whatever the script called them."""
    ours, theirs = _time_ms(row, _OURS), _time_ms(row, _THEIRS)
    ratio = row.get("ratio")
    if not isinstance(ratio, int | float):
        ratio = theirs / ours if ours and math.isfinite(ours) and math.isfinite(theirs) else math.nan
    met = next((row[k] for k in ("met", "target_met", "passed", "ok") if k in row), "")
    also = ", ".join(f"{k[len('ratio_vs_'):]}: {v:.3g}x" for k, v in row.items()
                     if k.startswith("ratio_vs_") and isinstance(v, int | float))
    return {"benchmark": str(row.get("benchmark", row.get("name", "?"))), "also": also,
            "target": str(row.get("target", "")), "tipstat_ms": ours,
            "baseline": str(row.get("baseline", "")), "baseline_ms": theirs,
            "ratio": float(ratio), "met": met}


_CLAUSE_TIME = re.compile(r"^<=\s*([\d.,]+)\s*(ms|s)$")
_CLAUSE_RATIO = re.compile(r"^>=\s*([\d.]+)\s*x(?:\s+faster)?(?:\s+than\s+(\w+))?$")
_CLAUSE_MEM = re.compile(r"^<=\s*([\d.]+)\s*(GB|GiB|MB|MiB)$")


def judge(row: dict, norm: dict, peak_mib: float) -> str:
    """Whether the target is met: the script's own ``met`` if it reports one, else the target
    text read clause by clause (``<= 60 s``, ``>= 4x``, ``>= 10x faster than dga`` against
    ``ratio_vs_dga``, ``<= 2 GB`` against the peak RSS); ``""`` when a clause cannot be read."""
    if isinstance(norm["met"], bool | int) and not isinstance(norm["met"], str):
        return "yes" if norm["met"] else "**no**"
    verdicts = []
    for clause in (c.strip() for c in norm["target"].split(",")):
        if not clause:
            continue
        if m := _CLAUSE_TIME.match(clause):
            limit = float(m.group(1).replace(",", "")) * (1e3 if m.group(2) == "s" else 1.0)
            verdicts.append(norm["tipstat_ms"] <= limit)
        elif m := _CLAUSE_RATIO.match(clause):
            ratio = row.get(f"ratio_vs_{m.group(2)}", norm["ratio"]) if m.group(2) else norm["ratio"]
            verdicts.append(isinstance(ratio, int | float) and ratio >= float(m.group(1)))
        elif m := _CLAUSE_MEM.match(clause):
            scale = 1024.0 if m.group(2) in ("GB", "GiB") else 1.0
            verdicts.append(peak_mib <= float(m.group(1)) * scale)
        else:
            return ""
    if not verdicts:
        return ""
    return "yes" if all(verdicts) else "**no**"


def _num(x: float, digits: int = 3) -> str:
    if not isinstance(x, int | float) or math.isnan(x):
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def table(results: list[dict]) -> list[str]:
    lines = ["| script | benchmark | target | tipstat (ms) | baseline | baseline (ms) | ratio "
             "| other ratios | met | peak RSS (MiB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        rows = [{**normalise(r), "verdict": judge(r, normalise(r), res["peak_mib"])}
                for r in res["rows"]] or [
            {"benchmark": "(see output)" if res["returncode"] == 0 else
             ("TIMED OUT" if res["timed_out"] else f"FAILED (exit {res['returncode']})"),
             "target": "", "tipstat_ms": math.nan, "baseline": "", "baseline_ms": math.nan,
             "ratio": math.nan, "also": "", "met": "", "verdict": ""}]
        for r in rows:
            met = r["verdict"]
            lines.append(f"| {res['script']} | {r['benchmark']} | {r['target']} | "
                         f"{_num(r['tipstat_ms'])} | {r['baseline']} | {_num(r['baseline_ms'])} | "
                         f"{_num(r['ratio'])} | {r['also']} | {met} | {res['peak_mib']:.0f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every benchmarks/bench_*.py script.")
    parser.add_argument("only", nargs="*", help="run only scripts whose name contains one of these")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per script")
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if any(o in s.name for o in args.only)]
    if not scripts:
        print("no benchmarks/bench_*.py script found")
        return 1
    info = machine()
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = []
    for path in scripts:
        print(f"== {path.name}", flush=True)
        res = run_script(path, args.timeout)
        results.append(res)
        print(res["output"].rstrip())
        state = "ok" if res["returncode"] == 0 else (
            "timed out" if res["timed_out"] else f"exit {res['returncode']}")
        print(f"-- {path.name}: {state}, {res['seconds']:.1f} s, peak RSS {res['peak_mib']:.0f} MiB",
              flush=True)
    summary = table(results)
    print("\n" + "\n".join(summary))
    if args.no_write:
        return 0 if all(r["returncode"] == 0 for r in results) else 1
    command = " ".join(["python", "benchmarks/run.py", *sys.argv[1:]])
    doc = [
        "# Performance",
        "",
        "Generated by `benchmarks/run.py` (rerun it rather than editing this file). Each "
        "`benchmarks/bench_*.py` script runs in its own process; *ratio* is baseline time / "
        "tipstat time (higher is faster than the baseline), both measured in the same process "
        "(*other ratios*: against published timings of the R packages, from the scripts); *met* is "
        "the script's own verdict where it gives one, else the target text read clause by clause "
        "(times against tipstat's time, `>= Nx` against the ratio, memory against the peak RSS; "
        "blank when a clause is not machine-readable); "
        "*peak RSS* is the maximum resident memory of the script's whole process.",
        "",
        "## Command and machine",
        "",
        f"    {command}",
        "",
        f"Run {started}. " + ", ".join(f"{k}: {v}" for k, v in info.items())
        + f". Load average at start {' '.join(f'{x:.2f}' for x in load_start)}, at end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine is shared: times are "
        "noisy, ratios less so).",
        "",
        "## Results",
        "",
        *summary,
        "",
        "## Output of each script",
        "",
    ]
    for res in results:
        doc += [f"### {res['script']} ({res['seconds']:.1f} s, peak RSS {res['peak_mib']:.0f} MiB, "
                f"exit {res['returncode']})", "", "```", res["output"].rstrip()[-6000:], "```", ""]
    out = Path(args.out)
    if out.exists() and _KEEP in (old := out.read_text()):
        # hand-written sections (issue figures, measurements by other scripts) are kept
        doc += [_KEEP + old.split(_KEEP, 1)[1].rstrip("\n"), ""]
    out.write_text("\n".join(doc))
    print(f"wrote {args.out}")
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
