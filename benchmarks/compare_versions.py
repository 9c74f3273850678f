"""Today's code against an earlier commit, in one run (issue 15: "no slower than today").

Every case runs in a fresh interpreter with one tree's ``tipstat`` first on the path; the two
trees alternate (old, new, old, new, ...) so that the load of a shared machine falls on both
alike. Each run reports wall and CPU seconds of the timed call only (imports, data loading and
simulation are outside the clock); the summary gives the median over the rounds and the ratio
old / new of the medians (> 1: today is faster). CPU seconds are the steadier figure on a busy
machine; they include the worker processes a case starts (``cpu`` = this process + its
children, the pool shut down after the clock so that its workers are counted; also reported
apart as ``cpu_main`` and ``cpu_children``). The load average is printed at the start and
end: worker processes only shorten the wall time on free cores.

The earlier tree is checked out with ``git worktree add`` into a temporary folder and removed
at the end. Where the estimator contract renamed an argument (``bootstrap=`` -> ``n_boot=`` in
``fit_stratified``), the case reads the signature of the tree it runs in.

Run::

    python benchmarks/compare_versions.py                      # against 7ac677f, 3 rounds
    python benchmarks/compare_versions.py --ref 7ac677f --rounds 5 indicator exhaustive
    python benchmarks/compare_versions.py --rounds 3 demo demo_stratified_fit   # issue 15's demo
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the commit that pinned the estimator outputs before the one-engine refactor (issue 15)
BEFORE_REFACTOR = "7ac677f"

_PRELUDE = r"""
import inspect, json, time, warnings
import numpy as np
import tipstat
import tipstat.models  # the lazily imported estimators: their import is not timed
warnings.simplefilter("ignore")

def _kw(fn, new, old, value):
    return {new if new in inspect.signature(fn).parameters else old: value}

def _opt(fn, name, value):
    # {name: value} where fn takes name (an option the earlier tree lacks, e.g. check=False:
    # the same work on both trees), else {}
    return {name: value} if name in inspect.signature(fn).parameters else {}

_NO_CHECK = _opt(tipstat.fit_loglinear, "check", False)

def _kids():
    # CPU seconds of the finished child processes; the worker pool (loky, reused between calls)
    # is shut down first so that its workers finish and count
    import os, sys
    if "joblib" in sys.modules:
        from joblib.externals.loky import reusable_executor
        if reusable_executor._executor is not None:
            reusable_executor._executor.shutdown(wait=True)
    t = os.times()
    return t.children_user + t.children_system

def _clock(fn, repeat=1):
    fn()  # warm (imports inside the estimators, caches)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        out = fn()
    wall = (time.perf_counter() - t) / repeat
    cpu = (time.process_time() - c) / repeat
    return wall, cpu, out
"""

_DEMO = (
    "import atexit, contextlib, io, shutil, tempfile\n"
    "from tipstat import cli\n"
    "out = tempfile.mkdtemp(prefix='tipstat-demo-')\n"
    "atexit.register(shutil.rmtree, out, True)\n"
    "def run():\n"
    "    with contextlib.redirect_stdout(io.StringIO()):\n"
    "        cli.main(['demo', '--out', out, '--json'])\n")
_CHECKS_OFF = (
    "import importlib\n"
    "for _name in ('tipstat.models.checks', 'tipstat.models.default'):\n"
    "    try:\n"
    "        _mod = importlib.import_module(_name)\n"
    "    except ImportError:\n"
    "        continue\n"
    "    if hasattr(_mod, 'check_assumptions'):\n"
    "        _mod.check_assumptions = lambda est, *a, **k: est\n")

# the stratified fit of `tipstat demo` alone (its 31 strata x 200 bootstrap replicates, ~70% of
# the demo): the demo runs up to the fit, which is then timed on the same histories with the
# same arguments (`bootstrap=` before the refactor, `n_boot=` today)
_DEMO_FIT = (
    "import contextlib, io, shutil, tempfile\n"
    "from tipstat import cli\n"
    "import tipstat.models.stratified as _strat\n"
    "class _Stop(BaseException):\n"
    "    pass\n"
    "_orig, _call = _strat.fit_stratified, []\n"
    "def _grab(h, **kw):\n"
    "    _call.append((h, kw))\n"
    "    raise _Stop\n"
    "_strat.fit_stratified = _grab\n"
    "out = tempfile.mkdtemp(prefix='tipstat-demo-')\n"
    "try:\n"
    "    with contextlib.redirect_stdout(io.StringIO()):\n"
    "        cli.main(['demo', '--out', out, '--json'])\n"
    "except _Stop:\n"
    "    pass\n"
    "shutil.rmtree(out, True)\n"
    "_strat.fit_stratified = _orig\n"
    "def run():\n"
    "    h, kw = _call[0]\n"
    "    return _orig(h, **kw)\n")
_BMA_CHECKS_OFF = (
    "import tipstat.models.bma as _bma\n"
    "if hasattr(_bma, 'predictive_check'):\n"
    "    from tipstat.models.posterior_checks import PredictiveCheck as _PC\n"
    "    _bma._predictive_shares = lambda *a, **k: None\n"
    "    _bma.predictive_check = lambda *a, **k: _PC(0.5, 0.0, 0, 0.0, 0.0)\n"
    "    _bma.reweighted_upper = lambda values, *a, **k: float('nan')\n")

# name -> (setup, call expression returning an Estimate-like, repeat)
CASES: dict[str, tuple[str, str, int]] = {
    "loglinear_UK6_indep": (
        "h = tipstat.datasets.load('UK_6')",
        "tipstat.fit_loglinear(h, 'independence', ci='none', **_NO_CHECK)", 2000),
    "loglinear_UK6_all2": (
        "h = tipstat.datasets.load('UK_6')",
        "tipstat.fit_loglinear(h, 'all2', ci='none', **_NO_CHECK)", 1000),
    "loglinear_UK6_all2_profile": (
        "h = tipstat.datasets.load('UK_6')",
        "tipstat.fit_loglinear(h, 'all2', **_NO_CHECK)", 200),
    "exhaustive_bic_UK6": (
        "h = tipstat.datasets.load('UK_6')",
        "tipstat.select_loglinear(h, 'bic', ci='none')", 1),
    "exhaustive_bic_Hare6": (
        "h = tipstat.datasets.load('Hare_6')",
        "tipstat.select_loglinear(h, 'bic', ci='none')", 1),
    "exhaustive_aic_Netherlands6": (
        "h = tipstat.datasets.load('Netherlands_6')",
        "tipstat.select_loglinear(h, 'aic')", 1),
    "default_UK5": (
        "h = tipstat.datasets.load('UK_5')",
        "tipstat.estimate_population(h)", 10),
    "default_Hare6": (
        "h = tipstat.datasets.load('Hare_6')",
        "tipstat.estimate_population(h)", 1),
    "stepwise_bootstrap_NO8_serial": (
        "h = tipstat.datasets.load('NewOrleans_8')",
        "tipstat.bootstrap(h, 'stepwise', n_boot=300, seed=1, n_jobs=1)", 1),
    "bma_UK5": (
        "h = tipstat.datasets.load('UK_5')",
        "tipstat.fit_loglinear_bma(h)", 3),
    # the same like for like: the posterior checks that issue 16 added to the average (the
    # posterior predictive p-value and the prior-shift reweighting; absent before the refactor)
    # replaced by stubs that cost nothing, so both trees do the same work
    "bma_UK5_checks_off": (
        "h = tipstat.datasets.load('UK_5')\n" + _BMA_CHECKS_OFF,
        "tipstat.fit_loglinear_bma(h)", 3),
    "graphical_UK5": (
        "h = tipstat.datasets.load('UK_5')",
        "tipstat.fit_graphical(h)", 3),
    "closedp_UK4": (
        "h = tipstat.datasets.load('UK_4')",
        "tipstat.closedp(h)", 3),
    "indicator_records_to_sdg": (
        "from tipstat import simulate\n"
        "from tipstat.ictip import capture_histories, read_records\n"
        "from tipstat.indicator import sdg_16_2_2\n"
        "try:\n"
        "    from tipstat.linkage import persons\n"
        "except ImportError:  # before the refactor: capture_histories linked the records\n"
        "    def persons(recs):\n"
        "        return recs\n"
        "from tipstat.models.stratified import fit_stratified\n"
        "c = simulate.country(122_000, seed=2024)\n"
        "def run():\n"
        "    recs = read_records(c.records, c.list_definition, entities=c.entities,\n"
        "                        period=c.year, ref_area=c.ref_area, today='2025-12-31')\n"
        "    h = capture_histories(persons(recs), by=['sex', 'age_group', 'exploitation'])\n"
        "    est = fit_stratified(h, seed=1, missing='em',\n"
        "                         **_kw(fit_stratified, 'n_boot', 'bootstrap', 200))\n"
        "    sdg_16_2_2(est, c.population, ref_area=c.ref_area, time_period=c.year)\n"
        "    return est\n",
        "run()", 1),
    # the whole `tipstat demo` (bundled agency exports -> stratified fit with 200 bootstrap
    # replicates -> every method on the pooled table -> report with the reliability check)
    "demo": (_DEMO, "run()", 1),
    # the same with the assumption checks that issue 16 attached to every estimate switched off
    # (tipstat.validate.check_assumptions as the estimators and the default call it returns
    # the estimate unchanged; absent before the refactor): the same work on both trees but for
    # the default's Occam window and Chao bound
    "demo_checks_off": (_DEMO + _CHECKS_OFF, "run()", 1),
    "demo_stratified_fit": (_DEMO_FIT, "run()", 1),
}
# cases whose first (warming) call is too costly to repeat: timed once, no warm call
_NO_WARM = {"demo", "demo_checks_off", "demo_stratified_fit", "indicator_records_to_sdg",
            "exhaustive_bic_UK6", "exhaustive_bic_Hare6", "exhaustive_aic_Netherlands6", "default_Hare6",
            "stepwise_bootstrap_NO8_serial"}


def _script(name: str) -> str:
    setup, call, repeat = CASES[name]
    clock = (f"_clock(lambda: {call}, {repeat})" if name not in _NO_WARM else
             f"(lambda t, c: (lambda out: (time.perf_counter() - t, time.process_time() - c,"
             f" out))({call}))(time.perf_counter(), time.process_time())")
    return (_PRELUDE + setup + "\n"
            + "_kids0 = _kids()\n"
            + f"wall, cpu, out = {clock}\n"
            + "kids = _kids() - _kids0\n"
            + "n_hat = getattr(out, 'n_hat', None)\n"
            + "print(json.dumps({'wall': wall, 'cpu': cpu + kids, 'cpu_main': cpu,"
            + " 'cpu_children': kids, 'n_hat': None if n_hat is None else float(n_hat)}))\n")


def _run(tree: Path, name: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", _script(name)], cwd=tree, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(names: list[str], ref: str, rounds: int) -> list[dict]:
    """Run ``names`` alternately on ``ref`` and today's tree; one dict per case."""
    tmp = Path(tempfile.mkdtemp(prefix="tipstat-old-"))
    old = tmp / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), ref],
                   check=True)
    rows = []
    try:
        for name in names:
            runs: dict[str, list[dict]] = {"old": [], "new": []}
            loads = []  # one-minute load average before each run
            for _ in range(rounds):
                loads.append(round(os.getloadavg()[0], 2))
                runs["old"].append(_run(old, name))
                loads.append(round(os.getloadavg()[0], 2))
                runs["new"].append(_run(ROOT, name))
            row: dict = {"case": name, "loads": loads}
            for side in ("old", "new"):
                errors = [r["error"] for r in runs[side] if "error" in r]
                if errors:
                    row[f"{side}_error"] = errors[0]
                    continue
                ok = runs[side]
                row[f"{side}_wall_s"] = statistics.median(r["wall"] for r in ok)
                row[f"{side}_cpu_s"] = statistics.median(r["cpu"] for r in ok)
                row[f"{side}_cpu_children_s"] = statistics.median(r["cpu_children"] for r in ok)
                row[f"{side}_walls"] = [round(r["wall"], 2) for r in ok]
                row[f"{side}_n_hat"] = ok[0]["n_hat"]
            if "old_cpu_s" in row and "new_cpu_s" in row:
                row["ratio_wall"] = row["old_wall_s"] / row["new_wall_s"]
                row["ratio_cpu"] = row["old_cpu_s"] / row["new_cpu_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                       check=False)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", help="substrings of case names (default: all)")
    ap.add_argument("--ref", default=BEFORE_REFACTOR, help="the earlier commit")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    # a case named exactly runs alone ("demo"), other words select every case containing them
    names = [n for n in CASES if not args.cases or n in args.cases
             or any(c in n and c not in CASES for c in args.cases)]
    print(f"load average at start {os.getloadavg()}", flush=True)
    compare(names, args.ref, args.rounds)
    print(f"load average at end {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
