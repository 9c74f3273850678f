"""Designs: the columns of a Poisson log-linear model over the ``2**K`` capture patterns.

A model in tipstat is a :class:`Design` — a name plus a matrix with one row per capture pattern
(row ``c`` is pattern code ``c``, row 0 the unobserved pattern) — and nothing more. Fitting,
existence checks, intervals and summaries live once, in :mod:`tipstat.models.loglinear`.

Terms are parsed once, in :mod:`tipstat.models.terms` (``parse_terms``, ``closure`` and
``term_label`` are re-exported here). Log-linear terms are coded 0/1 (as R's ``glm`` on 0/1
list indicators and Rcapture do): the column of a term ``S`` (a set of lists) is 1 on the
patterns that contain every list of ``S``.
The all-zero pattern therefore has only the intercept, and ``mu_0 = exp(intercept)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import InputError
from ..histories import pattern_matrix
from .terms import MAX_DESIGN_BYTES, closure, parse_terms, term_label
from .terms import order as _order

__all__ = ["Design", "closure", "loglinear_design", "parse_terms", "term_label"]


@dataclass(frozen=True, eq=False)
class Design:
    """A log-linear model as a design matrix over all ``2**K`` capture patterns.

    Attributes
    ----------
    name : str
        Human-readable model name, e.g. ``"[LA:NG, PF:GO]"`` or ``"Mh Chao"``.
    columns : tuple of str
        Column names; the first is always ``"(Intercept)"``.
    matrix : numpy.ndarray
        ``(2**K, p)`` float matrix; row ``c`` is pattern code ``c`` (row 0: on no list).
    terms : tuple of int
        Interaction terms as bit masks over lists (empty for non-term designs).
    """

    name: str
    columns: tuple[str, ...]
    matrix: np.ndarray
    terms: tuple[int, ...] = ()
    rank: int = field(init=False)

    def __post_init__(self) -> None:
        m = np.ascontiguousarray(self.matrix, dtype=np.float64)
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "rank", int(np.linalg.matrix_rank(m[1:])))

    @property
    def n_params(self) -> int:
        return self.matrix.shape[1]

    @property
    def observable(self) -> np.ndarray:
        """Rows of the ``2**K - 1`` observable patterns, in cell order."""
        return self.matrix[1:]


@lru_cache(maxsize=4096)
def _loglinear_matrix(k: int, masks: tuple[int, ...]) -> np.ndarray:
    pat = pattern_matrix(k, include_unobserved=True)
    codes = np.arange(2**k)
    cols = [np.ones(2**k), *pat.T.astype(float)]
    cols += [((codes & m) == m).astype(float) for m in masks]
    return np.column_stack(cols)


def loglinear_design(lists: Sequence[str], terms: tuple[int, ...] | str | Sequence = ()) -> Design:
    """The design of the hierarchical log-linear model with the given interaction terms.

    Examples
    --------
    >>> d = loglinear_design(["A", "B", "C"], "A:B")
    >>> d.columns
    ('(Intercept)', 'A', 'B', 'C', 'A:B')
    """
    lists = tuple(str(x) for x in lists)
    if terms is None:
        terms = ()
    if not isinstance(terms, str) and not _is_term_sequence(terms):
        raise InputError(f"terms: expected a model such as 'independence', 'all2' or 'A:B + C:D', "
                         f"or a list of terms such as ['A:B']; got a {type(terms).__name__}")
    if isinstance(terms, str):
        masks = _parse_string_terms(terms, lists)
    elif terms and not isinstance(next(iter(terms)), int | np.integer):
        masks = parse_terms(terms, lists)
    else:
        masks = closure([int(t) for t in terms]) if any(_order(t) > 2 for t in terms) \
            else tuple(sorted({int(t) for t in terms}, key=lambda m: (_order(m), m)))
    bad = [m for m in masks if _order(m) < 2 or m >> len(lists)]
    if bad:
        raise InputError(f"terms: {bad} are not interactions of the {len(lists)} lists")
    need = (1 << len(lists)) * (1 + len(lists) + len(masks)) * 8
    if need > MAX_DESIGN_BYTES:
        raise InputError(f"terms: the design of this model over the {2 ** len(lists):,} "
                         f"patterns of {len(lists)} lists needs {need / 2**30:.1f} GiB (limit "
                         f"{MAX_DESIGN_BYTES / 2**30:.1f} GiB); use fewer interaction terms or "
                         "lists, or tipstat.estimate_population / select_loglinear('bic'), "
                         "which fit many lists without it")
    return _cached_design(lists, masks)


def _is_term_sequence(terms: object) -> bool:
    """A sequence whose items are all term names (``"A:B"``), sequences of list names, or
    (internally) interaction masks of one kind."""
    if isinstance(terms, str | bytes) or not isinstance(terms, Sequence | tuple | np.ndarray):
        return False
    items = list(terms)
    if all(isinstance(t, int | np.integer) and not isinstance(t, bool) for t in items):
        return all(int(t) >= 0 for t in items)
    return all(isinstance(t, str) or (isinstance(t, Sequence | tuple) and not isinstance(t, bytes)
                                      and all(isinstance(x, str) for x in t)) for t in items)


@lru_cache(maxsize=1024)
def _parse_string_terms(spec: str, lists: tuple[str, ...]) -> tuple[int, ...]:
    return parse_terms(spec, lists)


@lru_cache(maxsize=4096)
def _cached_design(lists: tuple[str, ...], masks: tuple[int, ...]) -> Design:
    name = "independence" if not masks else "[" + ", ".join(term_label(m, lists) for m in masks) + "]"
    columns = ("(Intercept)", *lists, *(term_label(m, lists) for m in masks))
    return Design(name=name, columns=columns, matrix=_loglinear_matrix(len(lists), masks),
                  terms=masks)
