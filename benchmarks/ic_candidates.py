"""Candidate default settings on the internal-consistency benchmark of Binette & Steorts (2022).

Every variant runs :func:`tipstat.validate.internal_consistency` (``min_seen=30``) on the five
tables of the paper; the lists are pooled as the paper pools them. For each variant the script
prints the mean log relative bias over lists with its standard error (sd / sqrt(lists)), the
median, the RMSE of the log relative bias, the coverage of the 95% intervals, and the paired
change of the mean against the default (BIC) on the same lists. Used for the "Candidates" table
of docs/validation.md (section "Analysis"); it changes no default.

Run (about a minute; name variants to run only those, ``--min-seen 1`` first to include every
list with some overlap)::

    python benchmarks/ic_candidates.py
    python benchmarks/ic_candidates.py --min-seen 1 "default (issue 16)" "bic model average"
    python benchmarks/ic_candidates.py "default (issue 16)" "default window 3:1" \
        "default window 5:1" "default window 10:1"
"""

from __future__ import annotations

import itertools
import math
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

import tipstat
from tipstat import CaptureHistories, Estimate
from tipstat.validate import internal_consistency

BS_TABLES = ["UK_5", "Netherlands_5", "NewOrleans_5", "Western_5", "Australia_4"]
#: Binette & Steorts' filter (at least 30 members seen on other lists); ``--min-seen 1`` runs
#: every smaller sub-problem as well
HETEROGENEITY = ("Mth Chao (LB)", "Mth Poisson2", "Mth Darroch")


def _usable(e: Estimate, criterion: str) -> bool:
    return e.status in ("ok", "extended") and math.isfinite(getattr(e, criterion))


def with_heterogeneity_models(h: CaptureHistories, criterion: str = "bic") -> Estimate:
    """The best of the selected log-linear model and the Mth heterogeneity models (no terms)."""
    cands = [tipstat.select_loglinear(h, criterion)]
    cands += [tipstat.fit_closedp_model(h, m) for m in HETEROGENEITY]
    ok = [c for c in cands if _usable(c, criterion)]
    return min(ok, key=lambda c: getattr(c, criterion)) if ok else cands[0]


def heterogeneity_aware(h: CaptureHistories, criterion: str = "bic") -> Estimate:
    """Exhaustive search over two-way log-linear models with and without each heterogeneity
    column of Rcapture's Mth models (Chao, Poisson2, Darroch), by ``criterion``."""
    cands = [tipstat.select_loglinear(h, criterion)]
    pairs = [f"{a}:{b}" for a, b in itertools.combinations(h.lists, 2)]
    for het in HETEROGENEITY:
        for r in range(len(pairs) + 1):
            for terms in itertools.combinations(pairs, r):
                try:
                    cands.append(tipstat.fit_closedp_model(h, het, terms=list(terms)))
                except tipstat.TipstatError:
                    continue
    ok = [c for c in cands if _usable(c, criterion)]
    return min(ok, key=lambda c: getattr(c, criterion)) if ok else cands[0]


def default_with_window(odds: float) -> Callable[[CaptureHistories], Estimate]:
    """tipstat's default with Occam's window at ``odds``:1 instead of 20:1 (for the lower
    bound and the interval alike): what a different window would have given."""
    from tipstat.models import default

    def run(h: CaptureHistories) -> Estimate:
        kept = default.OCCAM_ODDS
        default.OCCAM_ODDS = odds
        try:
            return tipstat.estimate_population(h)
        finally:
            default.OCCAM_ODDS = kept

    return run


VARIANTS: dict[str, Callable[[CaptureHistories], Estimate]] = {
    "bic (default)": lambda x: tipstat.select_loglinear(x, "bic"),
    "bic max_order=3": lambda x: tipstat.select_loglinear(x, "bic", max_order=3),
    "aic": lambda x: tipstat.select_loglinear(x, "aic"),
    "aic max_order=3": lambda x: tipstat.select_loglinear(x, "aic", max_order=3),
    "bic model average": lambda x: tipstat.select_loglinear(x, "bic", average=True),
    # tipstat.estimate_population since issue 16: the BIC average, its interval joined over
    # Occam's window, a lower bound where a defensible model bounds nothing
    "default (issue 16)": lambda x: tipstat.estimate_population(x),
    # the same default with another window (docs/validation.md, "One lower-bound rule")
    "default window 3:1": default_with_window(3.0),
    "default window 5:1": default_with_window(5.0),
    "default window 10:1": default_with_window(10.0),
    "aic model average": lambda x: tipstat.select_loglinear(x, "aic", average=True),
    "all2": lambda x: tipstat.fit_loglinear(x, "all2"),
    "bic + Mth models": with_heterogeneity_models,
    "bic heterogeneity-aware": heterogeneity_aware,
    "aic heterogeneity-aware": lambda x: heterogeneity_aware(x, "aic"),
}


def run(names: list[str]) -> pd.DataFrame:
    """Per-list results of every variant on the five tables."""
    rows = []
    for name in names:
        t0 = time.perf_counter()
        for table in BS_TABLES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ic = internal_consistency(tipstat.datasets.load(table), VARIANTS[name],
                                          min_seen=MIN_SEEN)
            rows.append(ic.table.assign(variant=name, table=table))
        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return pd.concat(rows, ignore_index=True)


def summarise(lists: pd.DataFrame, base: str = "bic (default)") -> pd.DataFrame:
    """Pooled summary per variant, with the paired change against ``base``."""
    lists = lists.assign(key=lists.table + ":" + lists.list)
    ref = lists[lists.variant == base].set_index("key").log_rel_bias.astype(float)
    out = []
    for name, g in lists.groupby("variant", sort=False):
        x = g.set_index("key").log_rel_bias.astype(float)
        v = x[np.isfinite(x)]
        paired = (x - ref)[np.isfinite(x) & np.isfinite(ref)]
        out.append({
            "variant": name, "evaluated": len(v),
            "not_existing": int(((g.status != "too_few_seen") & ~np.isfinite(
                g.log_rel_bias.astype(float))).sum()),
            "mean": v.mean(), "se": v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else math.nan,
            "median": v.median(), "rmse": math.sqrt((v**2).mean()) if len(v) else math.nan,
            "coverage": g.covered[np.isfinite(g.log_rel_bias.astype(float))].astype(float).mean(),
            # issue 16: lists answered by a lower bound [L, inf), and the share of every
            # estimated list (bounds and failures included) whose interval holds the size
            "lower_bounds": int((g.status == "lower_bound").sum()),
            "coverage_all": float(((g.lower <= g.n_true) & (g.n_true <= g.upper))[
                ~g.status.isin(["too_few_seen", "no_overlap"])].mean()),
            "paired_change": paired.mean() if len(paired) else math.nan,
            "paired_se": paired.std(ddof=1) / math.sqrt(len(paired)) if len(paired) > 1
            else math.nan,
        })
    return pd.DataFrame(out)


MIN_SEEN = 30


def main() -> None:
    global MIN_SEEN
    args = sys.argv[1:]
    if args[:1] == ["--min-seen"]:
        MIN_SEEN, args = int(args[1]), args[2:]
    names = args or list(VARIANTS)
    lists = run(names)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summarise(lists).round(3).to_string(index=False))
        print(lists.pivot_table(index=["table", "list"], columns="variant",
                                values="log_rel_bias", sort=False).round(2).to_string())


if __name__ == "__main__":
    main()
