"""Time the publication of the bundled survey country's tables (issue 17): every default
indicator by all five domain variables (sex, age group, sector, region, citizenship), through
``publish_prevalence`` with the linked disclosure audit (the attacker who combines every
published row and knows which rows hold the same persons) and its repair.

Prints: the time of ``publish_prevalence(table)`` (the default), of ``linked=True`` and of
``linked=False``, of one ``audit_linked()``, the withheld rows and the small cells the linked
attacker narrows below 1 to threshold - 1. Runs on any commit that has
``tipstat.survey.publish_prevalence`` (before the block program the default skipped the linked
audit on these tables), so before/after are measured by the same script.

Run: python benchmarks/bench_survey_publish.py
"""

from __future__ import annotations

import time

from tipstat import datasets
from tipstat.survey import classify, declare_design, publish_prevalence, survey_prevalence
from tipstat.survey.run import DEFAULT_INDICATORS

FIVE = ["sex", "age_group", "sector", "region", "citizenship"]


def main() -> None:
    sv = datasets.load_survey()
    c = classify(sv["data"], mapping=sv["mapping"])
    design = declare_design(sv["data"], **sv["design"])
    names = [f for f in DEFAULT_INDICATORS if f in c.flags.columns]
    table = survey_prevalence(design, c.flags[names], by=FIVE)
    publish_prevalence(table, linked=False)        # imports and warm-up, not timed
    for label, kw in [("default", {}), ("linked=True", {"linked": True}),
                      ("linked=False", {"linked": False})]:
        t0 = time.perf_counter()
        pub = publish_prevalence(table, **kw)
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        audit = pub.audit_linked()
        da = time.perf_counter() - t0
        print(f"{label:13s} publish {dt:6.1f} s  linked audit ran: {pub.linked_checked!s:5s}  "
              f"withheld {pub.n_suppressed}  audit_linked {da:5.2f} s  small cells "
              f"{len(audit)}, narrowed {int((~audit['protected']).sum())}")


if __name__ == "__main__":
    main()
