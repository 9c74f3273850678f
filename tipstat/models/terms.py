"""Log-linear terms and model spaces: the one term parser and the one model-space type.

A *term* is a set of variables (lists, and for model averaging also covariates) written as a
Python ``int`` bit mask: bit ``j`` set means variable ``j`` is in the term (``0b101`` over
``("A", "B", "C")`` is ``A:C``). Python integers have no width, so a space of K = 20 lists (190
two-way terms, 1,140 three-way ones) is coded like a space of three; nothing here packs models
into machine words.

A *model* is a hierarchical set of interaction terms (order >= 2; main effects are always in):
with every term, each sub-term of order >= 2 is in the model too. :class:`TermSpace` holds the
candidate terms of a search (every term up to ``max_order``, or the closure of a maximal model)
with their hierarchy (``parents``: the sub-terms one order below; ``children``: the candidate
terms one order above), labels, the design columns of the ``2**K - 1`` observable capture
patterns (built on first use, after a memory check), and the enumeration and counting of its
hierarchical models. :mod:`tipstat.models.design`, :mod:`tipstat.models.selection` and
:mod:`tipstat.models.bma` all use it.

Examples
--------
>>> space = TermSpace(("A", "B", "C"), max_order=3)
>>> [space.term_label(t) for t in space.terms]
['A:B', 'A:C', 'B:C', 'A:B:C']
>>> space.count_models()
9
>>> space.label(parse_terms("A*B + B:C", space.lists))
'[A:B, B:C]'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from functools import cached_property
from itertools import combinations

import numpy as np

from ..errors import InputError

__all__ = ["MAX_DESIGN_BYTES", "TermSpace", "closure", "hierarchical", "order", "parse_terms",
           "term_label", "term_lists"]

#: Largest dense design (bytes) a model space builds over the observable patterns: beyond it a
#: search works without the dense design (K >= 17 lists with every two-way term) or is refused.
MAX_DESIGN_BYTES = 512 * 2**20


def order(mask: int) -> int:
    """Number of variables in a term (``order(0b1011) == 3``)."""
    return int(mask).bit_count()


def _key(mask: int) -> tuple[int, int]:
    return order(mask), int(mask)


def term_label(mask: int, names: Sequence[str]) -> str:
    """``'LA:NG'`` for the mask with the bits of LA and NG set.

    Examples
    --------
    >>> term_label(0b101, ["A", "B", "C"])
    'A:C'
    """
    return ":".join(name for j, name in enumerate(names) if mask >> j & 1)


def closure(masks: Sequence[int]) -> tuple[int, ...]:
    """Hierarchical closure of interaction masks: every sub-interaction of order >= 2 is added.

    Returned sorted by order, then by mask value.

    Examples
    --------
    >>> closure([0b111])
    (3, 5, 6, 7)
    """
    out: set[int] = set()
    for mask in masks:
        bits = [1 << j for j in range(int(mask).bit_length()) if mask >> j & 1]
        for r in range(2, len(bits) + 1):
            for combo in combinations(bits, r):
                out.add(sum(combo))
    return tuple(sorted(out, key=_key))


def hierarchical(model: Sequence[int]) -> bool:
    """Whether every sub-term of order >= 2 of every term of ``model`` is in ``model``."""
    s = set(model)
    return all(all((t & ~(1 << j)) in s for j in range(t.bit_length())
                   if t >> j & 1 and order(t) > 2) for t in s)


_ALL_RE = re.compile(r"^all(\d+)$")
_MAIN = ("independence", "main", "main effects", "mt", "")


def term_lists(spec: str | Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    """The terms of a formula as lists of variable names, before any check of the names.

    ``"A*B + C:D"`` gives ``[["A", "B"], ["C", "D"]]``, ``["A:B", ("C", "D")]`` the same. This
    is the parsing step other model families (e.g. list x covariate terms of
    :func:`tipstat.fit_stratified`) can share; :func:`parse_terms` adds the names' check and the
    closure.

    Examples
    --------
    >>> term_lists("A*B + C:D")
    [['A', 'B'], ['C', 'D']]
    """
    out: list[list[str]] = []
    if isinstance(spec, str):
        for piece in (p.strip() for p in spec.split("+")):
            if not piece:
                raise InputError(f"terms={spec!r}: empty term between '+' signs")
            if "*" in piece and ":" in piece:
                raise InputError(f"terms={spec!r}: mix of '*' and ':' in {piece!r}; use one")
            out.append([x.strip() for x in re.split(r"[:*]", piece)])
        return out
    for item in spec:
        if isinstance(item, str):
            out.append([x.strip() for x in re.split(r"[:*]", item)])
        else:
            out.append([str(x) for x in item])
    return out


def parse_terms(spec: str | Sequence[str] | Sequence[Sequence[str]] | None,
                lists: Sequence[str]) -> tuple[int, ...]:
    """Parse a model specification into its closed set of interaction masks.

    Parameters
    ----------
    spec : str or list
        ``"independence"`` (main effects only), ``"all2"`` (all two-way interactions; ``"allN"``
        for all interactions up to order N), a formula ``"LA*NG + PF:GO"`` (``:`` is an
        interaction, ``*`` an interaction with all its lower-order terms), or a list of terms
        such as ``["LA:NG", "PF:GO"]`` or ``[("LA", "NG")]``. Main effects of every variable are
        always in the model; the hierarchical closure is made explicit.
    lists : sequence of str
        Variable names (the lists of the capture histories, possibly followed by covariates).

    Returns
    -------
    tuple of int
        Interaction masks (order >= 2), sorted by order then mask.

    Examples
    --------
    >>> [term_label(m, "ABC") for m in parse_terms("A:B:C", "ABC")]
    ['A:B', 'A:C', 'B:C', 'A:B:C']
    """
    lists = [str(x) for x in lists]
    k = len(lists)
    if spec is None:
        return ()
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in _MAIN:
            return ()
        m = _ALL_RE.match(text.lower())
        if m:
            top = int(m.group(1))
            if top < 1:
                raise InputError(f"terms={spec!r}: the order must be at least 1")
            top = min(top, k)
            masks = [sum(1 << j for j in c) for r in range(2, top + 1)
                     for c in combinations(range(k), r)]
            return tuple(sorted(masks, key=_key))
    masks = []
    for names in term_lists(spec):
        unknown = [n for n in names if n not in lists]
        if unknown:
            raise InputError(
                f"terms: unknown list name(s) {unknown} in {':'.join(names)!r}; "
                f"the lists are {lists}"
            )
        if len(set(names)) != len(names):
            raise InputError(f"terms: a list is repeated in {':'.join(names)!r}")
        masks.append(sum(1 << lists.index(n) for n in names))
    return closure(masks)


class TermSpace:
    """The candidate interaction terms of a model search over K lists, and their hierarchy.

    Parameters
    ----------
    lists : sequence of str
        Variable names (bit ``j`` of a term is ``lists[j]``).
    max_order : int
        Every term of order 2..max_order is a candidate (1: main effects only).
    terms : sequence of int, optional
        The candidate terms instead (closed downwards, e.g. :func:`parse_terms` of a maximal
        model), kept in the order given (which :meth:`ordered`, labels and columns follow);
        ``max_order`` is then their highest order.

    Attributes
    ----------
    terms : tuple of int
        Candidate terms by order, then lexicographic in the lists (pairs run (1,2), (1,3), ...,
        (2,3), ... as in SparseMSE).
    index : dict
        Term -> position in :attr:`terms`; its design column is ``base + index[t]``.
    base : int
        ``1 + K``: the intercept and the main effects, in every model.
    p : int
        Columns of the full design.
    parents, children : dict
        Term -> its sub-terms of order >= 2 one order below / candidate super-terms one order
        above.

    Notes
    -----
    :attr:`X` (observable patterns x ``p``: intercept, main effects, terms; a term's column is
    1 on the patterns holding all its lists) and :attr:`contains` (the term columns as booleans)
    are built on first use; a design larger than :data:`MAX_DESIGN_BYTES` raises
    :class:`~tipstat.errors.InputError` before anything of that size is allocated.
    """

    def __init__(self, lists: Sequence[str], max_order: int = 2,
                 terms: Sequence[int] | None = None):
        self.lists = tuple(str(x) for x in lists)
        k = self.k = len(self.lists)
        if terms is None:
            if max_order < 1:
                raise InputError(f"max_order={max_order!r} must be at least 1 "
                                 "(1 = main effects only)")
            self.max_order = min(int(max_order), k)
            terms = [sum(1 << j for j in combo) for r in range(2, self.max_order + 1)
                     for combo in combinations(range(k), r)]
        else:
            terms = list(dict.fromkeys(int(t) for t in terms))
            if not hierarchical(terms) or any(order(t) < 2 or t >> k for t in terms):
                raise InputError(f"terms: {terms} are not a hierarchical set of interactions "
                                 f"of {list(self.lists)}")
            self.max_order = max((order(t) for t in terms), default=1)
        self.terms: tuple[int, ...] = tuple(terms)
        self.index = {t: i for i, t in enumerate(self.terms)}
        # sort rank (order, then index) and label of every term, computed once: exhaustive
        # searches order and label every one of their models
        self._rank = {t: r for r, t in enumerate(sorted(self.terms,
                                                        key=lambda t: (order(t), self.index[t])))}
        self._labels = {t: term_label(t, self.lists) for t in self.terms}
        self.base = 1 + k
        self.p = self.base + len(self.terms)
        present = set(self.terms)
        self.parents = {t: tuple(t & ~(1 << j) for j in range(k)
                                 if t >> j & 1 and order(t & ~(1 << j)) >= 2) for t in self.terms}
        self.children: dict[int, tuple[int, ...]] = {t: () for t in self.terms}
        for t in self.terms:
            for par in self.parents[t]:
                if par in present:
                    self.children[par] = (*self.children[par], t)

    # ------------------------------------------------------------------ labels and order
    def term_label(self, term: int) -> str:
        """``'A:B'`` for a term."""
        return self._labels.get(term) or term_label(term, self.lists)

    def ordered(self, model: Sequence[int]) -> tuple[int, ...]:
        """A model's terms in :attr:`terms` order."""
        return tuple(sorted(model, key=self._rank.__getitem__))

    def label(self, model: Sequence[int]) -> str:
        """``'[A:B, B:C]'``; ``'independence'`` for main effects only."""
        if not model:
            return "independence"
        labels = self._labels
        return "[" + ", ".join([labels[t] for t in self.ordered(model)]) + "]"

    def columns(self, model: Sequence[int]) -> list[int]:
        """Design columns of a model: intercept, main effects, then its terms in order."""
        return [*range(self.base), *(self.base + self.index[t] for t in self.ordered(model))]

    def col_mask(self, models: Sequence[Sequence[int]]) -> np.ndarray:
        """(models x :attr:`p`) booleans: the columns each model uses."""
        m = np.zeros((len(models), self.p), dtype=bool)
        m[:, : self.base] = True
        index, base = self.index, self.base
        rows = [i for i, model in enumerate(models) for _ in model]
        m[rows, [base + index[t] for model in models for t in model]] = True
        return m

    # ------------------------------------------------------------------ hierarchy
    def can_add(self, model: Sequence[int] | set[int] | frozenset[int], term: int) -> bool:
        """Whether adding ``term`` keeps ``model`` hierarchical (its parents are all in)."""
        return all(par in model for par in self.parents[term])

    def can_drop(self, model: Sequence[int] | set[int] | frozenset[int], term: int) -> bool:
        """Whether dropping ``term`` keeps ``model`` hierarchical (no child of it is in)."""
        return not any(c in model for c in self.children[term])

    def neighbours(self, model: Sequence[int]) -> list[tuple[int, ...]]:
        """Hierarchical models one term away (add or drop), in :attr:`terms` order."""
        s = set(model)
        out = []
        for t in self.terms:
            if t in s:
                if self.can_drop(s, t):
                    out.append(self.ordered(s - {t}))
            elif self.can_add(s, t):
                out.append(self.ordered(s | {t}))
        return out

    # ------------------------------------------------------------------ enumeration
    def count_models(self, limit: int | None = None) -> int:
        """Number of hierarchical models (counting stops above ``limit``).

        With two-way terms only it is ``2**n_terms``; otherwise the models are enumerated.
        """
        if self.max_order <= 2:
            return 2 ** len(self.terms)
        n = 0
        for _ in self.enumerate():
            n += 1
            if limit is not None and n > limit:
                break
        return n

    def enumerate(self, by_size: bool = False) -> Iterator[tuple[int, ...]]:
        """Every hierarchical model (downward-closed term set), depth-first: without each term
        before with it, so the first model is main effects only.

        With ``by_size=True`` and two-way terms only (every subset is hierarchical), the models
        come by number of terms, each size in the lexicographic order of
        :func:`itertools.combinations` over :attr:`terms`.
        """
        terms = self.terms
        if by_size:
            if self.max_order > 2:
                raise InputError("enumerate(by_size=True) needs a space of two-way terms")
            for r in range(len(terms) + 1):
                yield from combinations(terms, r)
            return
        if self.max_order <= 2:
            # every subset is hierarchical and :meth:`ordered` keeps the order of ``terms``:
            # the depth-first order below is counting in binary, the first term highest
            n = len(terms)
            for code in range(1 << n):
                yield tuple([terms[i] for i in range(n) if code >> (n - 1 - i) & 1])
            return
        chosen: set[int] = set()

        def rec(i: int) -> Iterator[tuple[int, ...]]:
            if i == len(terms):
                yield self.ordered(chosen)
                return
            t = terms[i]
            yield from rec(i + 1)
            if self.can_add(chosen, t):
                chosen.add(t)
                yield from rec(i + 1)
                chosen.discard(t)

        yield from rec(0)

    # ------------------------------------------------------------------ design
    @property
    def design_bytes(self) -> int:
        """Size of the dense design :attr:`X` (float64)."""
        return ((1 << self.k) - 1) * self.p * 8

    @property
    def dense_ok(self) -> bool:
        """Whether the dense design fits :data:`MAX_DESIGN_BYTES`."""
        return self.design_bytes <= MAX_DESIGN_BYTES

    def _check_dense(self, what: str) -> None:
        if not self.dense_ok:
            raise InputError(
                f"{what}: a design over the {(1 << self.k) - 1:,} observable patterns of "
                f"{self.k} lists with {self.p:,} columns needs "
                f"{self.design_bytes / 2**30:.1f} GiB (limit "
                f"{MAX_DESIGN_BYTES / 2**30:.1f} GiB); use fewer lists (h.merge_lists / "
                "h.drop_lists), a lower max_order, or a search that does not need it "
                "(select_loglinear with 'aic'/'bic')")

    @cached_property
    def codes(self) -> np.ndarray:
        """Pattern codes ``1 .. 2**K - 1`` of the observable cells."""
        return np.arange(1, 1 << self.k, dtype=np.int64)

    @cached_property
    def X(self) -> np.ndarray:
        """Dense design over the observable patterns (see the class notes)."""
        self._check_dense("model space")
        codes = self.codes
        X = np.empty((len(codes), self.p))
        X[:, 0] = 1.0
        for j in range(self.k):
            X[:, 1 + j] = codes >> j & 1
        for i, t in enumerate(self.terms):
            X[:, self.base + i] = (codes & t) == t
        return X

    @cached_property
    def contains(self) -> np.ndarray:
        """(observable patterns x terms) booleans: the cells holding each term."""
        if not self.terms:
            return np.zeros((len(self.codes), 0), dtype=bool)
        return self.X[:, self.base:] > 0

    def statistics(self, y: np.ndarray) -> np.ndarray:
        """Observed margins ``X' y`` of every column, from the non-empty cells only (no dense
        design): the sufficient statistics of every model of the space."""
        y = np.asarray(y, dtype=np.float64)
        nz = np.flatnonzero(y)
        c, v = nz + 1, y[nz]
        out = np.empty(self.p)
        out[0] = v.sum()
        for j in range(self.k):
            out[1 + j] = v[(c >> j & 1) == 1].sum()
        for i, t in enumerate(self.terms):
            out[self.base + i] = v[(c & t) == t].sum()
        return out


def n_two_way_models(k: int) -> float:
    """``2 ** (K (K - 1) / 2)``: hierarchical models with two-way terms over K lists."""
    return math.ldexp(1.0, k * (k - 1) // 2)
