"""Coverage study of the survey side: repeated complex samples from one synthetic country.

One population is simulated (:func:`tipstat.survey.simulate_survey_population`, seed
``--population-seed``); ``--reps`` samples are drawn from it
(:func:`tipstat.survey.draw_survey_sample`: 6 strata, ``--n-psu`` EAs per stratum by PPS or
SRS, ``--n-households`` households per EA, household non-response adjusted by weighting class),
each is classified by the provisional definition (:func:`tipstat.survey.classify`; the truth is
the same definition applied to the true answers, so only sampling error is measured) and
:func:`tipstat.survey.survey_prevalence` estimates the prevalence of each flag overall and by
region, sex and citizenship. Each interval is scored against the finite-population proportion:

* relative bias ``mean(p_hat / p - 1)``;
* coverage ``mean(L <= p <= U)`` of the ``--level`` interval (a replicate without a finite
  interval counts as not covered) and its Monte Carlo standard error ``sqrt(c (1 - c) / R)``;
* median relative width ``(U - L) / p``.

Design declared to :func:`tipstat.survey.declare_design` (``--design``): ``wr`` (strata and
PSUs, no finite-population correction: the with-replacement approximation usual for PPS
samples), ``fpc1`` (first-stage fpc only: under-estimates the variance of a two-stage sample,
kept to show it), ``two`` (both stages with their fpc: exact for SRS at both stages).

Run (about 2 minutes per 200 replicates on one shared core)::

    python benchmarks/survey_coverage.py --reps 200 --selection pps --design wr
    python benchmarks/survey_coverage.py --reps 200 --selection srs --design two
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

DOMAINS = ("region", "sex", "citizenship")
FLAGS = ("forced_labour", "trafficking_forced_labour", "forced_commercial_sexual_exploitation",
         "child_forced_labour")
DESIGNS = {"wr": {"psu": "psu"}, "fpc1": {"psu": "psu", "fpc": "fpc_psu"},
           "two": {"psu": ["psu", "household"], "fpc": ["fpc_psu", "fpc_ssu"]}}


def truth_table(pop: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    out = {}
    for f in FLAGS:
        out[(f, "total", "")] = float(pop[f"true_{f}"].mean())
        for by in DOMAINS:
            for level, p in pop.groupby(by, observed=True)[f"true_{f}"].mean().items():
                out[(f, by, str(level))] = float(p)
    return out


def run(reps: int, selection: str, design: str, n_psu: int, n_households: int, level: float,
        ci: str, population_seed: int, seed: int) -> pd.DataFrame:
    from tipstat.survey import (
        classify,
        declare_design,
        draw_survey_sample,
        simulate_survey_population,
        survey_prevalence,
    )

    pop = simulate_survey_population(seed=population_seed)
    truth = truth_table(pop)
    rows = []
    for r in range(reps):
        s = draw_survey_sample(pop, seed=seed + r, psu_selection=selection, n_psu=n_psu,
                               n_households=n_households)
        flags = classify(s).flags
        des = declare_design(s.join(flags), weights="weight", strata="stratum", **DESIGNS[design])
        tab = survey_prevalence(des, list(FLAGS), by=list(DOMAINS), level=level, ci=ci)
        for p in tab:
            by, lev = next(iter(p.domain.items()), ("total", ""))
            key = (p.indicator, by, str(lev))
            if key not in truth:
                continue
            lo, hi = p.ci
            rows.append({"flag": p.indicator, "by": by, "level": str(lev), "rep": r,
                         "true_p": truth[key], "p_hat": p.proportion, "lower": lo, "upper": hi,
                         "status": p.status})
    return pd.DataFrame(rows)


def summarise(raw: pd.DataFrame, reps: int) -> pd.DataFrame:
    def one(g: pd.DataFrame) -> pd.Series:
        finite = np.isfinite(g["lower"]) & np.isfinite(g["upper"])
        cov = float(((g["lower"] <= g["true_p"]) & (g["true_p"] <= g["upper"]) & finite).sum()
                    / reps)
        return pd.Series({
            "true_p": g["true_p"].iloc[0],
            "rel_bias": float((g["p_hat"] / g["true_p"] - 1).mean()),
            "coverage": cov, "coverage_mcse": float(np.sqrt(cov * (1 - cov) / reps)),
            "median_rel_width": float(((g["upper"] - g["lower"]) / g["true_p"])[finite].median()),
            "not_ok": int((g["status"] != "ok").sum())})

    return raw.groupby(["flag", "by", "level"], sort=False).apply(one).reset_index()


def _markdown(table: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--selection", choices=("pps", "srs"), default="pps")
    ap.add_argument("--design", choices=tuple(DESIGNS), default="wr")
    ap.add_argument("--n-psu", type=int, default=12)
    ap.add_argument("--n-households", type=int, default=15)
    ap.add_argument("--level", type=float, default=0.95)
    ap.add_argument("--ci", default="logit")
    ap.add_argument("--population-seed", type=int, default=2024)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--out", default=None, help="write the markdown table here")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    raw = run(a.reps, a.selection, a.design, a.n_psu, a.n_households, a.level, a.ci,
              a.population_seed, a.seed)
    table = summarise(raw, a.reps)
    minutes = (time.perf_counter() - t0) / 60
    text = "\n".join([
        f"Survey coverage: {a.reps} samples, selection {a.selection}, design {a.design}, "
        f"{a.n_psu} EAs x {a.n_households} households per stratum, {a.ci} {a.level:.0%} "
        f"intervals ({minutes:.1f} min)", "",
        _markdown(table), "",
        "Mean coverage by flag: " + ", ".join(
            f"{f} {c:.3f}" for f, c in table.groupby("flag", sort=False)["coverage"].mean().items()),
    ])
    print(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
