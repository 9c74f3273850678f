"""Survey prevalence tables ready to publish: small unweighted cells withheld, through the same
disclosure layer as the SDG 16.2.2 table (:mod:`tipstat.disclosure`).

A domain estimate resting on a handful of respondents in forced labour can point at them (a
village, an age group, a sector with three cases), and the other published domains and the total
can give a withheld domain back by subtraction. The domains of one ``by`` variable and the total
are an additive table in their *unweighted* case counts (and in their weighted totals): the
disclosure layer treats the case counts as the counts it protects. A domain with 1 to
``threshold - 1`` unweighted cases is withheld (primary suppression) and further domains are
withheld so that none of the small ones can be worked out from the rest (secondary suppression,
optimal by integer programming, :func:`tipstat.disclosure.suppress`). Every value of a withheld
row is withheld (cases, proportion, rate, total, their intervals, SE, design effect): each gives
the case count back or narrows it. The number of respondents of a domain (``n_sample``) stays:
it says nothing about who is in forced labour.

Respondents whose domain variable is missing make a ``not stated`` row (code ``_U``) of that
variable, counted so that the domains add up to the total; its case count is published like
every other (or withheld), it has no estimate.

Zeros are published as 0 (as in :mod:`tipstat.disclosure`). Each indicator is protected as its
own table. Rows of different indicators or domains with equal case counts and equal weighted
totals (children in forced labour and forced labour among the 5-17 year olds; or by chance)
are withheld together: when one is withheld, the others are too (``forced`` cells of
:func:`tipstat.disclosure.suppress`, protected as secondary cells in their own table), until
none is published beside a withheld twin. Then the attacker who knows every published row of
every indicator and the equalities the definitions imply (:func:`_definitional`: not the
data's coincidences, which an outsider cannot know) attacks them all at once
(:meth:`PublishedPrevalence.audit_linked`, on blocks of cells: see there why the ranges are
those of the cross-classification of every variable), and siblings of any small cell it
narrows are withheld until none is (by default; ``linked=False`` is recorded in the result);
if a small cell stays narrowed with nothing left to withhold, nothing is published (an
error). Limit: a relation across indicators other than equality (a part is at most its whole)
is not in the attack (see ``docs/survey.md``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import disclosure
from ..errors import InputError
from ..estimate import Caveat

__all__ = ["SUPPRESS_BELOW", "PublishedPrevalence", "prevalence_frame", "publish_prevalence"]

#: Domains with fewer unweighted cases than this are withheld (the package's small-cell rule,
#: as in the SDG table; a reliability rule, e.g. 25 cases, is ``threshold=25``).
SUPPRESS_BELOW = 5
#: Code of a total over a domain variable, and of "not stated".
TOTAL, NOT_STATED = disclosure.TOTAL, "_U"
#: The values of a row (withheld together).
VALUES = ["n_cases", "proportion", "se", "ci_lower", "ci_upper", "rate", "rate_lower",
          "rate_upper", "total", "total_se", "total_lower", "total_upper", "deff", "n_effective"]


def _pair(v: Any) -> tuple[float, float]:
    try:
        lo, hi = v
        return float(lo), float(hi)
    except (TypeError, ValueError):
        return math.nan, math.nan


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def prevalence_frame(table: Any) -> pd.DataFrame:
    """A survey prevalence table (:class:`~tipstat.survey.PrevalenceTable`, a sequence of
    :class:`~tipstat.survey.Prevalence`, or a frame this function or :func:`publish_prevalence`
    made) as one flat frame: ``indicator``, one column per domain variable (``_T`` where the row
    is a total over it), ``n_sample``, the :data:`VALUES`, ``level``, ``ci_method``, ``status``,
    ``caveats`` (codes joined by ``;``), ``obs_status`` (``"estimated"``).

    Examples
    --------
    >>> from types import SimpleNamespace as P
    >>> rows = [P(indicator="fl", domain={}, n_sample=900, n_cases=30, proportion=0.03,
    ...           ci=(0.02, 0.04), status="ok"),
    ...         P(indicator="fl", domain={"sex": "F"}, n_sample=400, n_cases=3, proportion=0.01,
    ...           ci=(0.003, 0.03), status="small_domain")]
    >>> f = prevalence_frame(rows)
    >>> f[["indicator", "sex", "n_cases", "ci_upper", "status"]].values.tolist()
    [['fl', '_T', 30.0, 0.04, 'ok'], ['fl', 'F', 3.0, 0.03, 'small_domain']]
    """
    if isinstance(table, pd.DataFrame):
        need = {"indicator", "n_cases", "status"}
        if not need <= set(table.columns):
            raise InputError(f"expected a survey prevalence table; the frame has no column(s) "
                             f"{sorted(need - set(table.columns))}")
        out = table.copy()
        if "obs_status" not in out:
            out["obs_status"] = "estimated"
        out.attrs["dims"] = list(table.attrs.get("dims") or
                                 [c for c in out.columns if c not in _FIXED])
        return out
    rows = [table] if hasattr(table, "proportion") and hasattr(table, "domain") else list(table)
    if not rows:
        raise InputError("expected a survey prevalence table with at least one row, got none")
    dims: list[str] = []
    for r in rows:
        domain = getattr(r, "domain", None)
        if not isinstance(domain, Mapping) or not hasattr(r, "indicator"):
            raise InputError(f"expected rows of a survey prevalence table (Prevalence: indicator, "
                             f"domain, n_cases, ...), got {type(r).__name__}")
        for c in domain:
            if str(c) not in dims:
                dims.append(str(c))
    records = []
    for r in rows:
        domain = {str(k): v for k, v in r.domain.items()}
        rec: dict[str, Any] = {"indicator": str(r.indicator)}
        for d in dims:
            code = str(domain[d]) if d in domain else TOTAL
            if d in domain and code in (TOTAL, NOT_STATED):
                raise InputError(f"domain variable {d!r} has a level coded {code!r}, which "
                                 "tipstat reserves (total / not stated); recode it")
            rec[d] = code
        lo, hi = _pair(getattr(r, "ci", None))
        rlo, rhi = _pair(getattr(r, "rate_ci", None))
        tlo, thi = _pair(getattr(r, "total_ci", None))
        rec.update({
            "n_sample": _num(getattr(r, "n_sample", math.nan)),
            "n_cases": _num(getattr(r, "n_cases", math.nan)),
            "proportion": _num(getattr(r, "proportion", math.nan)),
            "se": _num(getattr(r, "se", math.nan)), "ci_lower": lo, "ci_upper": hi,
            "rate": _num(getattr(r, "rate", math.nan)), "rate_lower": rlo, "rate_upper": rhi,
            "total": _num(getattr(r, "total", math.nan)),
            "total_se": _num(getattr(r, "total_se", math.nan)),
            "total_lower": tlo, "total_upper": thi,
            "deff": _num(getattr(r, "deff", math.nan)),
            "n_effective": _num(getattr(r, "n_effective", math.nan)),
            "level": _num(getattr(r, "level", math.nan)),
            "ci_method": str(getattr(r, "ci_method", "") or ""),
            "status": str(getattr(r, "status", "ok")),
            "caveats": ";".join(getattr(w, "code", "note")
                                for w in (getattr(r, "warnings", ()) or ())),
            "obs_status": "estimated", "notes": ""})
        records.append(rec)
    out = pd.DataFrame(records, columns=["indicator", *dims, "n_sample", *VALUES, "level",
                                         "ci_method", "status", "caveats", "obs_status", "notes"])
    out.attrs["dims"] = dims
    return out


_FIXED = {"indicator", "n_sample", *VALUES, "level", "ci_method", "status", "caveats",
          "obs_status", "notes"}


@dataclass
class PublishedPrevalence:
    """A survey prevalence table with small unweighted cells withheld (from
    :func:`publish_prevalence`).

    Attributes
    ----------
    table : DataFrame
        One row per indicator x domain (the layout of :func:`prevalence_frame`): withheld rows
        have every value blank and ``obs_status = "suppressed"`` (small cells and their
        complements alike); ``not stated`` rows (``_U``) have ``obs_status = "not stated"``.
    threshold : int
    dims : list of str
        The domain variables.
    suppressions : dict
        Indicator -> :class:`tipstat.disclosure.Suppression` (the pattern in the rows of that
        indicator, in table order; ``primary`` tells the small ones: not for publication).
    same_persons : list
        Groups of rows ``(indicator, position in its rows)`` with equal case counts and
        weighted totals (withheld together, see :func:`publish_prevalence`); not for
        publication.
    equalities : list
        The equalities between rows a reader who knows the definitions knows (the attack's:
        see :meth:`audit_linked`), each a list of ``(coefficient, (indicator, position))``
        summing to 0; not for publication.
    linked_checked : bool
        Whether the linked audit (and its repair) ran in :func:`publish_prevalence` (it does
        unless ``linked=False``).
    linked_atoms : int
        Cells of the attacker's program in that audit (0 if it did not run).
    warnings : tuple of Caveat
        ``linked=False`` (the linked audit skipped); empty otherwise (small cells the repair
        cannot protect stop :func:`publish_prevalence` with an error: nothing is published).
    """

    table: pd.DataFrame
    threshold: int
    dims: list[str]
    suppressions: dict[str, disclosure.Suppression] = field(default_factory=dict)
    same_persons: list[list[tuple[str, int]]] = field(default_factory=list)
    equalities: list[Equality] = field(default_factory=list)
    linked_checked: bool = False
    linked_atoms: int = 0
    warnings: tuple[Caveat, ...] = ()

    @property
    def n_suppressed(self) -> int:
        """Rows withheld (small cells and their complements)."""
        return int((self.table["obs_status"] == disclosure.PRIMARY).sum())

    def rows(self, indicator: str) -> pd.DataFrame:
        """The published rows of one indicator."""
        return self.table[self.table["indicator"] == indicator].reset_index(drop=True)

    def audit(self, value: str = "n_cases") -> dict[str, disclosure.Audit]:
        """The attacker's audit (:func:`tipstat.disclosure.audit`) of each indicator's published
        rows on ``value`` (``"n_cases"``: the integer attack on the case counts; ``"total"``:
        the linear attack on the weighted totals), with the small cells as ``sensitive``."""
        out = {}
        for ind, sup in self.suppressions.items():
            rows = self.rows(ind)
            out[ind] = disclosure.audit(rows, value=value, dims=self.dims or ["_none"],
                                        threshold=self.threshold, sensitive=sup.primary[0],
                                        integer=None if value == "n_cases" else False)
        return out


    def audit_linked(self) -> pd.DataFrame:
        """The attacker who knows every published row and the definitions: every indicator's
        rows in one integer program, with the equalities the definitions imply
        (:attr:`equalities`, see :func:`_definitional`). One row per
        small (primary) cell: ``indicator``, ``row``, ``int_min``, ``int_max`` (``inf``: no
        bound) and ``protected`` (the range reaches 1 and ``threshold - 1``, the rule of
        :mod:`tipstat.disclosure`).

        The attacker looks for whole-number tables ``x >= 0`` of each indicator's persons that
        give every published row (a withheld row holds 1 or more: zeros are published) and
        satisfy the equalities; ``int_min``/``int_max`` are the least
        and greatest value of the small cell over them. The program is built on one block of
        cells per group of domain variables published together (each variable alone when no
        crossing shares a variable with another), not on the cross-classification of every
        variable: the blocks of one indicator sum to the same number, and whole-number block
        tables with a common sum always come from one whole-number table of every variable
        (a table with given margins on disjoint sets of variables exists, filled as a
        transport plan), so both programs have the same solutions for the published rows and
        the same ranges (``tests/survey/test_linked_audit.py`` compares them).

        Cross-indicator relations other than equality (a part is at most its whole) are not
        in the program.

        Examples
        --------
        >>> from types import SimpleNamespace as P
        >>> rows = [P(indicator=i, domain=d, n_sample=n, n_cases=c, proportion=c / n,
        ...           ci=(0, 1), status="ok")
        ...         for i, d, n, c in [("fl", {}, 900, 40), ("fl", {"sex": "F"}, 450, 3),
        ...                            ("fl", {"sex": "M"}, 450, 37)]]
        >>> pub = publish_prevalence(rows)
        >>> pub.audit_linked()[["int_min", "int_max", "protected"]].values.tolist()
        [[1.0, 39.0, True]]
        """
        frames = {ind: self.rows(ind) for ind in self.suppressions}
        P = _program(frames, self.dims, self.equalities)
        small = [(ind, r) for ind, sup in self.suppressions.items()
                 for r in np.flatnonzero(sup.primary[0])]
        cells = [P.row[(ind, int(r))] for ind, r in small]
        out = []
        for (ind, r), (_, _, a, b) in zip(small, disclosure._ranges(P.A, P.lo, P.hi, cells,
                                                                    P.ceiling - 0.5),
                                                 strict=True):
            out.append({"indicator": ind, "row": int(r), "int_min": a, "int_max": b,
                        "protected": a <= 1 and b >= self.threshold - 1})
        res = pd.DataFrame(out, columns=["indicator", "row", "int_min", "int_max", "protected"])
        res.attrs["atoms"] = int(P.A.shape[1])
        return res


#: Largest attacker's program the linked audit builds (atoms over every indicator): one block
#: per domain variable or crossing (tens to hundreds of atoms), except crossings in a cycle
#: (sex x age, age x region, region x sex), which make one block of their union's cells.
LINKED_MAX_ATOMS = 20_000


@dataclass
class _Program:
    """The attacker's integer program over every indicator's published rows (see
    :meth:`PublishedPrevalence.audit_linked`): ``lo <= A x <= hi``, ``x`` whole numbers >= 0."""

    A: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    row: dict[tuple[str, int], int]    # (indicator, position) -> row of A
    ceiling: float


def _program(parts: dict[str, pd.DataFrame], dims: list[str],
             equalities: list[Equality]) -> _Program:
    """The attacker's program on blocks of cells (:func:`tipstat.disclosure.suppress`'s
    ``blocks=True``), one indicator after the other: each indicator's persons as one
    whole-number table per group of domain variables published together, every block summing
    to the same number, each published row a sum of its block's cells (a withheld row holds
    1 or more), and the equalities between rows that the definitions imply
    (:func:`_definitional`)."""
    links = [disclosure._link_blocks([part], dims or ["_none"]) for part in parts.values()]
    n_atoms = sum(k.n_atoms for k in links)
    if n_atoms > LINKED_MAX_ATOMS:
        raise InputError(
            f"publish_prevalence: the linked audit needs {n_atoms} cells (crossings in a cycle, "
            "such as a x b, b x c and c x a, are audited on the cells of their union); publish "
            "crossings that form no cycle, or pass linked=False (recorded in the result: the "
            "small cells are then protected table by table only)")
    m = [k.A.shape[0] for k in links]
    A = np.zeros((sum(m), n_atoms))
    val = np.zeros(sum(m))
    row: dict[tuple[str, int], int] = {}
    r0 = c0 = 0
    for (ind, part), k in zip(parts.items(), links, strict=True):
        A[r0:r0 + k.A.shape[0], c0:c0 + k.n_atoms] = k.A
        cases = part["n_cases"].to_numpy(dtype=float)
        for r, j in enumerate(k.group[0]):
            row[(ind, r)] = r0 + int(j)
            val[r0 + int(j)] = cases[r]
        r0, c0 = r0 + k.A.shape[0], c0 + k.n_atoms
    # rows that are no table's (blocks summing alike) are 0; withheld rows (NaN) hold someone
    known = np.isfinite(val)
    ceiling = 10.0 * (float(np.nanmax(val)) if known.any() else 0.0) + 1000.0
    lo, hi = np.where(known, val, 1.0), np.where(known, val, ceiling)
    eq = [sum(c * A[row[key]] for c, key in e) for e in equalities]
    if eq:
        A = np.vstack([A, np.asarray(eq)])
        lo = np.concatenate([lo, np.zeros(len(eq))])
        hi = np.concatenate([hi, np.zeros(len(eq))])
    return _Program(A, lo, hi, row, ceiling)


def _not_stated(part: pd.DataFrame, dims: list[str]) -> pd.DataFrame:
    """Rows ``_U`` making the domains of each single variable add up to the total (respondents
    whose domain variable is missing): case counts and respondents only."""
    total = part[(part[dims] == TOTAL).all(axis=1)] if dims else part
    if len(total) != 1:
        return part.iloc[0:0]
    t = total.iloc[0]
    extra = []
    for d in dims:
        others = [c for c in dims if c != d]
        single = part[(part[d] != TOTAL) & (part[others] == TOTAL).all(axis=1)]
        if not len(single):
            continue
        gap = {c: float(t[c]) - float(single[c].sum()) for c in ("n_cases", "n_sample")}
        if gap["n_sample"] > 0.5 or gap["n_cases"] > 0.5:
            row = {c: np.nan for c in part.columns}
            row.update({"indicator": t["indicator"], **{c: TOTAL for c in others}, d: NOT_STATED,
                        "n_cases": gap["n_cases"], "n_sample": gap["n_sample"],
                        "status": "not_estimated", "caveats": "", "ci_method": "",
                        "obs_status": "not stated",
                        "notes": f"respondents whose {d} is missing (no estimate)"})
            extra.append(row)
    # a crossing (several variables split) without the single variables' rows: one "not
    # stated" row for respondents missing any of them
    split = (part[dims] != TOTAL) if dims else pd.DataFrame(index=part.index)
    singles = {d for d in dims if ((split[d]) & (split.sum(axis=1) == 1)).any()}
    for pattern in {tuple(d for d in dims if row[d]) for _, row in split.iterrows()}:
        if len(pattern) < 2 or set(pattern) & singles:
            continue
        cells = part[(split[list(pattern)].all(axis=1)) & (split.sum(axis=1) == len(pattern))]
        gap = {c: float(t[c]) - float(cells[c].sum()) for c in ("n_cases", "n_sample")}
        if gap["n_sample"] > 0.5 or gap["n_cases"] > 0.5:
            row = {c: np.nan for c in part.columns}
            row.update({"indicator": t["indicator"],
                        **{c: (NOT_STATED if c in pattern else TOTAL) for c in dims},
                        "n_cases": gap["n_cases"], "n_sample": gap["n_sample"],
                        "status": "not_estimated", "caveats": "", "ci_method": "",
                        "obs_status": "not stated",
                        "notes": f"respondents with {' or '.join(pattern)} missing (no estimate)"})
            extra.append(row)
    return pd.DataFrame(extra, columns=part.columns)


def _same_persons(parts: dict[str, pd.DataFrame]) -> list[list[tuple[str, int]]]:
    """Groups of rows (indicator, position) holding the same persons: equal unweighted case
    counts and weighted totals (to 1e-9) across indicators or domains, e.g. children in forced
    labour and forced labour among the 5-17 year olds, and coincidences (every case of a cell
    also in a smaller indicator). Withheld together (:func:`_suppress_linked`: conservative);
    the attack uses only the equalities the definitions imply (:func:`_definitional`), since
    an outsider cannot know a coincidence between withheld rows."""
    keys: dict[tuple[float, float], list[tuple[str, int]]] = {}
    for ind, part in parts.items():
        for i, (n, tot) in enumerate(zip(part["n_cases"], part["total"], strict=True)):
            if n > 0 and np.isfinite(tot):
                keys.setdefault((float(n), float(f"{tot:.9g}")), []).append((ind, i))
    return [g for g in keys.values() if len(g) > 1]


#: A linear equality between published rows: terms ``(coefficient, (indicator, position))``
#: whose weighted sum is 0 for every table the attacker may consider.
Equality = list[tuple[float, tuple[str, int]]]


def _holds(parts: dict[str, pd.DataFrame], eq: Equality) -> bool:
    """Whether an equality holds in the data: the unweighted case counts exactly, the weighted
    totals to 1e-9 of their size (where every row has one: ``not stated`` rows have none)."""
    cases = [c * float(parts[i]["n_cases"].iloc[r]) for c, (i, r) in eq]
    if abs(sum(cases)) > 1e-6:
        return False
    tots = [c * float(parts[i]["total"].iloc[r]) for c, (i, r) in eq]
    if all(math.isfinite(t) for t in tots):
        return abs(sum(tots)) <= 1e-9 * max(1.0, sum(abs(t) for t in tots))
    return True


def _restrictions(parts: dict[str, pd.DataFrame], dims: list[str]
                  ) -> list[tuple[str, str, str, frozenset[str], frozenset[str]]]:
    """Indicators that are another restricted to some levels of a domain variable:
    ``(a, b, v, levels, zero)`` where on every row split by ``v`` (``not stated`` aside) ``a``
    equals ``b`` (cases and weighted total) at the ``levels`` and is 0 at the ``zero`` levels,
    ``levels`` holding the levels where ``a`` is not 0 everywhere (children in forced labour
    are forced labour among the levels of age that are children)."""
    keys = {ind: {tuple(r): i for i, r in enumerate(p[dims].itertuples(index=False))}
            for ind, p in parts.items()} if dims else {}
    out = []
    for a, pa in parts.items():
        for b in parts:
            if a == b or not dims:
                continue
            for v in dims:
                split = pa.index[~pa[v].isin([TOTAL, NOT_STATED])]
                if not len(split):
                    continue
                eq_at: dict[str, bool] = {}
                zero_at: dict[str, bool] = {}
                ok = True
                for i in split:
                    j = keys[b].get(tuple(pa.loc[i, dims]))
                    if j is None:
                        ok = False
                        break
                    lev = str(pa.loc[i, v])
                    eq_at[lev] = eq_at.get(lev, True) and _holds(parts, [(1.0, (a, int(i))),
                                                                         (-1.0, (b, j))])
                    zero_at[lev] = zero_at.get(lev, True) and float(pa.loc[i, "n_cases"]) == 0
                levels = frozenset(c for c in eq_at if eq_at[c] and not zero_at[c])
                if not ok or not levels or any(not (eq_at[c] or zero_at[c]) for c in eq_at):
                    continue
                zero = frozenset(c for c in eq_at if zero_at[c] and not eq_at[c])
                out.append((a, b, v, levels, zero))
    return out


def _definitional(parts: dict[str, pd.DataFrame], dims: list[str]) -> list[Equality]:
    """The equalities between published rows that a reader who knows the definitions knows:
    from each restriction ``a = b`` at levels ``C`` of ``v`` (:func:`_restrictions`),

    * ``a[d] = b[d]`` for every row ``d`` whose ``v`` is in ``C``;
    * ``a[d] = sum of b[d']`` for a row ``d`` not split by ``v``, over the rows ``d'`` of one
      published pattern of variables that splits ``d``'s variables and ``v``, agree with ``d``
      and have ``v`` in ``C`` (the smallest such pattern whose sum holds: ``d`` restricted to
      ``C``, as one row or as a sum of cells of a crossing);
    * ``b[d] = a[d] + a'[d]`` on every row when that holds on every row (forced labour =
      adults' + children's, when both are published: a partition of the persons, whatever
      the domain variables).

    Only equalities that hold in the data are kept (a true equality always does: the same
    persons, the same weights); a row ``a[d]`` whose ``v`` is outside ``C`` is 0, published.

    Why none is missed for ``tipstat-prov-1``: its flags are ``involuntary``, ``coercion``,
    ``adult_forced_labour`` (not a child, involuntary, coerced), ``child_forced_labour`` (a
    child and (i)-(iv)), ``forced_labour`` (adults' or children's),
    ``forced_commercial_sexual_exploitation`` and ``trafficking_forced_labour`` (parts of
    forced labour and of commercial sexual work). The only identities between them as sets
    of persons are ``child = forced_labour and age < 18``, ``adult = forced_labour and not
    age < 18`` and their disjoint union; every other relation is an inclusion (trafficking,
    commercial sexual exploitation) or an intersection whose union is not published
    (involuntary and coercion). An identity restricted to an age condition gives equalities
    between published rows only where the rows are split by a variable whose levels lie
    inside or outside the condition (age group 5-17 inside ``age < 18``): the detection
    finds every such variable, since there ``a`` equals ``b`` at every level inside and is 0
    at every level outside, in every row; the equalities then are the three above. What the
    identity says beyond published rows (``child[d]`` at most ``forced_labour[d]`` when no
    row splits ``d`` by age) is an inclusion: not in the attack, as every inclusion.
    A coincidence (every case of a cell also in a smaller indicator) is no equality here
    unless it holds at every level of a variable, which makes the attacker stronger than a
    real one, never weaker.

    Examples
    --------
    >>> rows = {"fl": [("_T", 9, 900.0), ("Y", 2, 200.0), ("O", 7, 700.0)],
    ...         "child": [("_T", 2, 200.0), ("Y", 2, 200.0), ("O", 0, 0.0)]}
    >>> parts = {i: pd.DataFrame(r, columns=["age", "n_cases", "total"])
    ...          for i, r in rows.items()}
    >>> [[(c, k) for c, k in e] for e in _definitional(parts, ["age"])]
    [[(1.0, ('child', 0)), (-1.0, ('fl', 1))], [(1.0, ('child', 1)), (-1.0, ('fl', 1))]]
    """
    if not dims:
        return []
    rels = _restrictions(parts, dims)
    keys = {ind: {tuple(r): i for i, r in enumerate(p[dims].itertuples(index=False))}
            for ind, p in parts.items()}
    pattern = {ind: (p[dims] != TOTAL).to_numpy() for ind, p in parts.items()}
    out: list[Equality] = []
    seen: set[tuple] = set()

    def add(eq: Equality) -> None:
        key = tuple(sorted((t, c) for c, t in eq))
        if key not in seen and _holds(parts, eq):
            seen.add(key)
            out.append(eq)

    for a, b, v, levels, _ in rels:
        pa, pb = parts[a], parts[b]
        iv = dims.index(v)
        for i in range(len(pa)):
            lev = pa.iloc[i][v]
            if lev in levels:
                add([(1.0, (a, i)), (-1.0, (b, keys[b][tuple(pa.iloc[i][dims])]))])
            elif lev == TOTAL:
                own = pattern[a][i]
                cands = {tuple(q) for q in pattern[b] if q[iv] and (q >= own).all()}
                for q in sorted(cands, key=sum):
                    agree = (pattern[b] == np.array(q)).all(axis=1) \
                        & pb[v].isin(levels).to_numpy()
                    for k, d in enumerate(dims):
                        if own[k]:
                            agree &= (pb[d] == pa.iloc[i][d]).to_numpy()
                    if agree.any():
                        eq = [(1.0, (a, i))] + [(-1.0, (b, int(j))) for j in np.flatnonzero(agree)]
                        if _holds(parts, eq):
                            add(eq)
                            break
    # a partition: b is a and a' on every row (forced labour = adults' + children's)
    for b, pb in parts.items():
        for a, a2 in itertools.combinations([x for x in parts if x != b], 2):
            pa, pa2 = parts[a], parts[a2]
            if len(pa) != len(pb) or len(pa2) != len(pb) \
                    or not (pa["n_cases"].to_numpy() > 0).any() \
                    or not (pa2["n_cases"].to_numpy() > 0).any():
                continue
            rows = [(i, keys[a].get(k), keys[a2].get(k)) for k, i in keys[b].items()]
            if any(j is None or j2 is None for _, j, j2 in rows):
                continue
            eqs = [[(1.0, (b, i)), (-1.0, (a, j)), (-1.0, (a2, j2))] for i, j, j2 in rows]
            if all(_holds(parts, eq) for eq in eqs):
                for eq in eqs:
                    add(eq)
    return out


def _suppress_linked(parts: dict[str, pd.DataFrame], dims: list[str], threshold: int,
                     cost: str, forced: dict[str, np.ndarray],
                     memo: dict[tuple[str, bytes], disclosure.Suppression] | None = None
                     ) -> dict[str, disclosure.Suppression]:
    """Each indicator's table suppressed, then rows holding the same persons as a withheld row
    of another table withheld too (with the protection of a secondary cell in their own table),
    until no such row is published. ``forced`` (updated in place) starts the withheld rows;
    ``memo`` keeps the patterns already computed (indicator, withheld rows asked for)."""
    groups = _same_persons(parts)
    memo = {} if memo is None else memo

    def run(ind: str) -> disclosure.Suppression:
        key = (ind, forced[ind].tobytes())
        if key in memo:
            return memo[key]
        try:
            memo[key] = disclosure.suppress(
                parts[ind], threshold=threshold, dims=dims or ["_none"], value="n_cases",
                cost=cost, integer=True, blocks=True,
                forced=forced[ind] if forced[ind].any() else None)
            return memo[key]
        except InputError:
            raise InputError(
                f"publish_prevalence: the domains of indicator {ind!r} do not add up to their "
                "margins (a crossing of variables published with the variables alone, or "
                "crossings in a cycle, and respondents missing one of them): publish the "
                "crossing and the single "
                "variables as separate tables, or give the missing values a level") from None

    sups = {ind: run(ind) for ind in parts}
    for _ in range(len(parts) * 4):
        changed: set[str] = set()
        for g in groups:
            if any(sups[ind].suppressed(0)[i] for ind, i in g):
                for ind, i in g:
                    if not sups[ind].suppressed(0)[i] and not forced[ind][i]:
                        forced[ind][i] = True
                        changed.add(ind)
        if not changed:
            break
        for ind in changed:
            sups[ind] = run(ind)
    return sups


def publish_prevalence(table: Any, *, threshold: int = SUPPRESS_BELOW,
                       cost: str = "value", linked: bool = True) -> PublishedPrevalence:
    """Withhold the domains of a survey prevalence table with fewer than ``threshold``
    unweighted cases, and the domains that would give them back.

    For each indicator, the rows (the total, the domains of each ``by`` variable, crossings) are
    linked as an additive table of unweighted case counts (``_T`` = total over a variable;
    respondents whose variable is missing make a ``not stated`` row so that the sums hold), and
    :func:`tipstat.disclosure.suppress` chooses the primary (1 to ``threshold - 1`` cases) and
    the least-cost secondary suppressions against the integer attack. Every value of a withheld
    row is blanked and its ``obs_status`` is ``"suppressed"``.

    Parameters
    ----------
    table : PrevalenceTable, sequence of Prevalence, or DataFrame
        The estimates (:func:`tipstat.survey.survey_prevalence`), or :func:`prevalence_frame`.
    threshold : int
        Least number of unweighted cases a published domain holds (default 5).
    cost : ``"value"`` or ``"cells"``
        What the secondary suppression minimises (as :func:`tipstat.disclosure.suppress`).
    linked : bool
        Attack every published row at once, with the equalities the definitions imply
        (:meth:`PublishedPrevalence.audit_linked`), and withhold the smallest published sibling
        of a small cell (else a published row sharing one of its variables) while its range
        narrows below 1 to ``threshold - 1`` (default ``True``; about a second on the bundled
        country's five domain variables). When a small cell stays narrowed and no such row is
        left, :class:`~tipstat.errors.InputError`: nothing is published.
        ``linked=False`` protects each indicator's table on its own: the result says so
        (``linked_checked`` is ``False`` and ``warnings`` holds a caveat).

    Returns
    -------
    PublishedPrevalence

    Examples
    --------
    >>> from types import SimpleNamespace as P
    >>> rows = [P(indicator="fl", domain=d, n_sample=n, n_cases=c, proportion=c / n, ci=(0, 1),
    ...           status="ok") for d, n, c in [({}, 900, 40), ({"sex": "F"}, 450, 3),
    ...                                        ({"sex": "M"}, 450, 37)]]
    >>> pub = publish_prevalence(rows)
    >>> pub.table[["sex", "n_cases", "obs_status"]].values.tolist()
    [['_T', 40.0, 'estimated'], ['F', nan, 'suppressed'], ['M', nan, 'suppressed']]
    >>> pub.audit()["fl"].protected
    True
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | np.integer) or threshold < 1:
        raise InputError(f"publish_prevalence: threshold={threshold!r}; expected a whole number "
                         ">= 1")
    if not isinstance(linked, bool | np.bool_):
        raise InputError(f"publish_prevalence: linked={linked!r}; expected True (the default) "
                         "or False")
    frame = prevalence_frame(table)
    frame = frame[frame["obs_status"] != "not stated"].reset_index(drop=True)
    dims = list(frame.attrs.get("dims", []))
    parts: dict[str, pd.DataFrame] = {}
    for ind in dict.fromkeys(frame["indicator"]):
        part = frame[frame["indicator"] == ind].reset_index(drop=True)
        bad = part.index[~np.isfinite(part["n_cases"].to_numpy(dtype=float))
                         | (part["n_cases"].to_numpy(dtype=float) < 0)]
        if len(bad):
            raise InputError(f"publish_prevalence: indicator {ind!r} has rows without an "
                             f"unweighted case count (rows {list(bad[:10])}); expected n_cases "
                             ">= 0 on every row")
        parts[str(ind)] = pd.concat([part, _not_stated(part, dims)], ignore_index=True)
    groups = _same_persons(parts)
    equalities = _definitional(parts, dims)
    forced = {ind: np.zeros(len(p), dtype=bool) for ind, p in parts.items()}
    n_rows = sum(len(p) for p in parts.values())
    memo: dict[tuple[str, bytes], disclosure.Suppression] = {}
    for _ in range(n_rows + 1):   # each round withholds one more row at least, or stops
        sups = _suppress_linked(parts, dims, int(threshold), cost, forced, memo)
        pub = _assemble(parts, sups, dims, int(threshold), groups, equalities)
        if not linked:
            pub.warnings = (Caveat("note", "publish_prevalence(linked=False): the attack on "
                                           "every published row at once (rows of different "
                                           "indicators holding the same persons) was not run; "
                                           "each indicator's table is protected on its own",
                                   {"linked_checked": False}),)
            break
        audit = pub.audit_linked()
        pub.linked_checked, pub.linked_atoms = True, int(audit.attrs["atoms"])
        bad = audit[~audit["protected"]]
        if bad.empty:
            break
        # the attacker who knows the definitions narrows a small cell: withhold the smallest
        # published sibling (same variables) of each such cell, else the smallest published
        # row sharing a variable and its level with it, else sharing a variable; suppress again
        more = False
        for ind, r in zip(bad["indicator"], bad["row"], strict=True):
            part, withheld = parts[ind], sups[ind].suppressed(0)
            pattern = (part[dims] != TOTAL).to_numpy() if dims else np.zeros((len(part), 0))
            cases = part["n_cases"].to_numpy(dtype=float)
            free = ~withheld & ~forced[ind] & (cases >= threshold)
            level = np.zeros(len(part), dtype=bool)
            for k, d in enumerate(dims):
                if pattern[r, k]:
                    level |= pattern[:, k] & (part[d] == part[d].iloc[r]).to_numpy()
            for same in ((pattern == pattern[r]).all(axis=1), level,
                         (pattern & pattern[r]).any(axis=1)):
                if (same & free).any():
                    pick = np.flatnonzero(same & free)[np.argmin(cases[same & free])]
                    forced[ind][pick] = more = True
                    break
        if not more:
            raise InputError(
                f"publish_prevalence: nothing was published: {len(bad)} withheld cell(s) can "
                f"be narrowed below 1 to {threshold - 1} cases by an attacker who combines "
                "every published row (zeros are published, so each withheld row holds 1 or "
                "more), and every published row that could be withheld with them already is: "
                "publish fewer crossings (one crossing, or variables alone) or coarser levels; "
                "tables published separately are protected only one by one")
    return pub


def _assemble(parts: dict[str, pd.DataFrame], sups: dict[str, disclosure.Suppression],
              dims: list[str], threshold: int,
              groups: list[list[tuple[str, int]]],
              equalities: list[Equality]) -> PublishedPrevalence:
    """The published table: withheld rows blanked and marked."""
    out_parts = []
    for ind, part in parts.items():
        part = part.copy()
        withheld = sups[ind].suppressed(0)
        part[VALUES] = part[VALUES].astype(float)
        part.loc[withheld, VALUES] = np.nan
        part.loc[withheld, "obs_status"] = disclosure.PRIMARY  # one marker for every withheld row
        # the status and caveats of a withheld row are withheld too (a "small domain" status
        # would tell a small cell from its complements)
        part.loc[withheld, ["status", "caveats"]] = ""
        out_parts.append(part)
    out = pd.concat(out_parts, ignore_index=True)
    out.attrs["dims"] = dims
    out.attrs["threshold"] = threshold
    return PublishedPrevalence(out, threshold, dims, sups, groups, equalities)
