"""Exact linkage on the pseudonymous key, de-duplication within lists, covariate resolution.

Records with the same ``person_key`` are one person (or, when a linkage map
``record_id -> person_id`` is supplied, e.g. from :mod:`tipstat.linkage.probabilistic`, records
with the same ``person_id``). Several records of one person on one list are one capture.

Covariates recorded differently across a person's records are resolved by stated rules and
flagged (ICTIP.md §4.4):

* ``sex``, ``age_group`` (level 1, then the finest level consistent with it),
  ``citizenship_group``: rule ``"mode"`` (default) takes the most frequent known value (not
  ``_U``), ties broken by list priority; rule ``"priority"`` takes the value of the
  highest-priority list that knows it. The priority is the order of ``priority`` (default: the
  order of the lists).
* exploitation: the union of the form codes over the records, then the single stratum (``SEX``,
  ``LAB``, ``MIX``, ``ORG``, ``OTH``, ``_U``).
* a person has a conflict on a covariate when their records hold two or more different known
  values; ``conflict_<covariate>`` says so and a W4 warning counts them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, TipstatWarning
from ..ictip import codelists
from ..ictip.keys import check_no_identifiers
from ..ictip.records import Records
from ..ictip.validation import exploitation_stratum

__all__ = ["RESOLVED", "Persons", "link_exact", "persons"]

RESOLVED = ("sex", "age_group_l1", "citizenship_group")


@dataclass
class Persons:
    """Linked persons: one row per person, with list memberships and resolved covariates.

    Attributes
    ----------
    frame : pandas.DataFrame
        ``person_id`` (0..n-1), one 0/1 column per list, ``n_records``, resolved ``sex``,
        ``age_group``, ``age_group_l1``, ``citizenship_group``, ``exploitation_stratum``,
        ``year`` (of the first identification), and
        ``conflict_<covariate>`` flags. No person key.
    lists : tuple of str
    record_person : pandas.Series
        Person id of every used record (index: the record's row label).
    accounting : pandas.DataFrame
        Records used, captures after de-duplication, duplicates merged within lists, persons,
        and the multiplicity distribution (persons on 1, 2, ... lists).
    issues : list of (rule, message, count)
    """

    frame: pd.DataFrame
    lists: tuple[str, ...]
    record_person: pd.Series
    accounting: pd.DataFrame
    issues: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def n_persons(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"Persons(n={self.n_persons}, lists={list(self.lists)})"


def _resolve(rec: pd.DataFrame, col: str, rule: str, unknown: str = "_U") -> tuple[pd.Series, pd.Series]:
    """Resolved value and conflict flag of ``col`` per person (vectorised)."""
    known = rec[rec[col] != unknown]
    stats = (known.groupby(["pid", col], sort=False, observed=True)
             .agg(n=("rank", "size"), best=("rank", "min")).reset_index())
    if rule == "mode":
        stats = stats.sort_values(["pid", "n", "best"], ascending=[True, False, True])
    elif rule == "priority":
        stats = stats.sort_values(["pid", "best", "n"], ascending=[True, True, False])
    else:
        raise InputError(f"rule {rule!r} for {col!r}; expected 'mode' or 'priority'")
    chosen = stats.drop_duplicates("pid").set_index("pid")[col]
    n_values = stats.groupby("pid").size()
    return chosen, n_values > 1


def link_exact(
    records,
    *,
    person_map: pd.Series | Mapping | None = None,
    rules: Mapping[str, str] | None = None,
    priority: Sequence[str] | None = None,
    secure: bool = False,
) -> Persons:
    """Link used records into persons on the person key (or a supplied linkage map).

    Parameters
    ----------
    records : tipstat.ictip.Records or pandas.DataFrame
        Validated records (only the used ones are linked) or a frame with the same columns
        (``person_key``, ``list_id``, covariates).
    person_map : Series or mapping, optional
        ``record_id -> person_id`` from an upstream (e.g. probabilistic) linkage; replaces the
        key. Every used record must be in it.
    rules : mapping, optional
        Resolution rule per covariate (``"mode"`` or ``"priority"``); default ``"mode"``.
    priority : sequence of str, optional
        List priority for ties and for the ``"priority"`` rule (first = highest).
    secure : bool
        Allow a frame that still holds clear identifiers (refused otherwise, rule 7); they are
        not carried into the person table either way.

    Returns
    -------
    Persons

    Examples
    --------
    >>> import pandas as pd
    >>> rec = pd.DataFrame({"record_id": ["1", "2", "3", "4"],
    ...     "person_key": ["k1", "k1", "k1", "k2"], "list_id": ["P", "P", "N", "N"],
    ...     "sex": ["F", "F", "M", "_U"], "age_group": ["Y12T17"] * 4,
    ...     "age_group_l1": ["Y0T17"] * 4, "citizenship_group": ["FOR"] * 4,
    ...     "exploitation": ["SEX", "LAB", "_U", "_U"],
    ...     "identification_date": pd.to_datetime(["2024-01-01"] * 4)})
    >>> p = link_exact(rec, priority=["N", "P"])
    >>> p.frame[["P", "N", "n_records", "sex", "conflict_sex", "exploitation_stratum"]].values.tolist()
    [[1, 1, 3, 'F', True, 'MIX'], [0, 1, 1, '_U', False, '_U']]
    """
    if hasattr(records, "used"):
        rec = records.used.copy()
        lists = tuple(records.lists)
    else:
        check_no_identifiers(records, secure=secure, what="linkage input")
        rec = records.copy()
        lists = tuple(dict.fromkeys(rec["list_id"].astype(str)))
    if len(rec) == 0:
        raise InputError("no records in scope to link (every record was excluded)")
    rules = dict(rules or {})
    unknown_rules = [c for c in rules if c not in (*RESOLVED, "age_group")]
    if unknown_rules:
        raise InputError(f"rules for unknown covariates {unknown_rules}; have {list(RESOLVED)}")
    order = list(priority) if priority is not None else list(lists)
    bad = [x for x in order if x not in lists]
    if bad:
        raise InputError(f"priority names {bad} that are not lists {list(lists)}")
    order += [x for x in lists if x not in order]
    rank_of = {x: i for i, x in enumerate(order)}
    if person_map is not None:
        pm = pd.Series(person_map)
        ids = rec["record_id"].map(pm)
        miss = ids.isna().to_numpy()
        if miss.any():
            raise InputError("person_map has no person for some used records",
                             [Problem("record_id", r, None, "a record_id of person_map")
                              for r in rec.index[miss]])
        key = ids
    else:
        key = rec["person_key"]
        miss = key.isna().to_numpy()
        if miss.any():
            raise InputError("records without a person key cannot be linked",
                             [Problem("person_key", r, None, "a person key") for r in rec.index[miss]])
    pid, uniq = pd.factorize(key, sort=False)
    rec["pid"] = pid
    rec["rank"] = rec["list_id"].map(rank_of).astype(int)
    bit = rec["list_id"].map({x: j for j, x in enumerate(lists)}).to_numpy(dtype=np.int64)
    n = len(uniq)
    code = np.zeros(n, dtype=np.int64)
    np.bitwise_or.at(code, pid, 1 << bit)
    out = pd.DataFrame({"person_id": np.arange(n)})
    for j, name in enumerate(lists):
        out[name] = (code >> j) & 1
    out["n_records"] = np.bincount(pid, minlength=n)
    issues: list[tuple[str, str, int]] = []
    for col in RESOLVED:
        if col not in rec.columns:
            out[col] = "_U"
            out[f"conflict_{col}"] = False
            continue
        val, conflict = _resolve(rec, col, rules.get(col, "mode"))
        out[col] = val.reindex(out.index).fillna("_U").to_numpy()
        out[f"conflict_{col}"] = conflict.reindex(out.index).fillna(False).to_numpy(dtype=bool)
    out = out.rename(columns={"conflict_age_group_l1": "conflict_age_group"})
    # finest age group consistent with the resolved level-1 group
    if "age_group" in rec.columns:
        cl = codelists.load("age_group")
        lvl2 = rec[(rec["age_group"].map(cl.levels) == 2).to_numpy()]
        lvl2 = lvl2[lvl2["age_group"].map(cl.tops).to_numpy()
                    == out["age_group_l1"].to_numpy()[lvl2["pid"].to_numpy()]]
        fine, _ = _resolve(lvl2, "age_group", rules.get("age_group", "mode")) if len(lvl2) else \
            (pd.Series(dtype=object), None)
        out["age_group"] = fine.reindex(out.index).fillna(out["age_group_l1"]).to_numpy()
    else:
        out["age_group"] = out["age_group_l1"]
    # exploitation: union of level-1 families over the records (bit mask), then the stratum
    if "exploitation" in rec.columns:
        cl = codelists.load("exploitation_form")
        bits = {"SEX": 1, "LAB": 2, "ORG": 4, "OTH": 8}
        uniq_codes = pd.unique(rec["exploitation"].astype(str))
        mask_of = {u: sum({bits.get(cl.top(c), 0) for c in u.split(";")}) for u in uniq_codes}
        mask = np.zeros(n, dtype=np.int64)
        np.bitwise_or.at(mask, pid, rec["exploitation"].astype(str).map(mask_of).to_numpy(np.int64))
        names = {m: exploitation_stratum({k for k, b in bits.items() if m & b}) for m in range(16)}
        out["exploitation_stratum"] = [names[m] for m in mask]
    else:
        out["exploitation_stratum"] = "_U"
    if "identification_date" in rec.columns:
        first = rec.groupby("pid")["identification_date"].min()
        out["year"] = first.dt.year.reindex(out.index).to_numpy()
    for col in ("sex", "age_group", "citizenship_group"):
        k = int(out[f"conflict_{col}"].sum())
        if k:
            rule = rules.get(col if col != "age_group" else "age_group_l1", "mode")
            issues.append(("W4", f"{k} person(s) have conflicting {col} across their records; "
                           f"resolved by rule {rule!r} (list priority {order})", k))
    pairs = rec.drop_duplicates(["pid", "list_id"])
    mult = pd.Series(out[list(lists)].sum(axis=1)).value_counts().sort_index()
    acc = [("records used", len(rec)), ("captures (person, list) after de-duplication", len(pairs)),
           ("duplicate records merged within lists", len(rec) - len(pairs)),
           ("persons (distinct, detected)", n)]
    acc += [(f"persons on {int(k)} list(s)", int(v)) for k, v in mult.items()]
    out = out.set_index("person_id", drop=False).rename_axis(None)
    for rule, msg, _ in issues:
        warnings.warn(f"[{rule}] {msg}", TipstatWarning, stacklevel=2)
    return Persons(out, lists, pd.Series(pid, index=rec.index, name="person_id"),
                   pd.DataFrame(acc, columns=["item", "count"]), issues)


def persons(records: Any, *, period: Any = None, person_map: pd.Series | Mapping | None = None,
            rules: Mapping[str, str] | None = None, priority: Sequence[str] | None = None
            ) -> Persons:
    """Scope IC-TIP records to ``period`` and link them into persons.

    The records in scope are linked by :func:`link_exact` (which warns about covariate
    conflicts, W4); the accounting of the result starts with the records' own (read, used,
    excluded per reason) and goes on with the linkage's. The persons are what
    :func:`tipstat.ictip.capture_histories` stratifies.

    Parameters
    ----------
    records : tipstat.ictip.Records
        From :func:`tipstat.ictip.read_records`.
    period : optional
        Restrict to records identified in the period (see ``Records.restrict``).
    person_map, rules, priority
        Passed to :func:`link_exact`.

    Returns
    -------
    Persons

    Examples
    --------
    >>> import warnings
    >>> from tipstat import simulate
    >>> c = simulate.country(n_victims=500, seed=3)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     p = persons(c.read(), period=c.year)
    >>> p.n_persons == c.n_detected
    True
    """
    if not isinstance(records, Records):
        raise InputError(f"expected tipstat.ictip.Records (from read_records), got "
                         f"{type(records).__name__}")
    if records.meta.get("mse") is False:
        raise InputError("[W8] these records have no person key or list (CTDC input): MSE is "
                         "disabled; use them for descriptive tables only")
    recs = records.restrict(period=period) if period is not None else records
    p = link_exact(recs, person_map=person_map, rules=rules, priority=priority)
    acc = pd.concat([recs.accounting().rename(columns={"records": "count"}), p.accounting],
                    ignore_index=True)
    p.accounting = acc
    return p
