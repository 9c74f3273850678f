"""Decomposable (chordal) graphs over capture lists, as integer bit masks.

A graphical model over K lists is an undirected graph whose vertices are the lists. It is
*decomposable* when it is chordal; its maximal cliques ``C_1, ..., C_m`` can then be ordered with
the running-intersection property, and the separators are ``S_j = C_j ∩ (C_1 ∪ ... ∪ C_{j-1})``
(empty separators, between connected components, are dropped). A log-linear model that is
decomposable factorises as

.. math::

    p(x) = \\frac{\\prod_j p(x_{C_j})}{\\prod_j p(x_{S_j})} ,

which is what makes the marginal likelihoods of :mod:`tipstat.models.graphical` closed-form.

Vertex sets (cliques, separators) are bit masks over lists (bit ``j`` = list ``j``), as the terms
of :mod:`tipstat.models.design`. A graph is an *edge mask*: bit ``e`` set when the ``e``-th pair
of :func:`edge_pairs` is an edge.

Chordality and cliques are computed by maximum cardinality search (Tarjan & Yannakakis 1984) on
bit masks. networkx has the same algorithms (``is_chordal``, ``chordal_graph_cliques``) and the
tests check this module against them, but a networkx call costs ~300 µs on an 8-vertex graph
against a few µs here, and the model search calls it hundreds of thousands of times.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

__all__ = [
    "Decomposition",
    "adjacency",
    "decompose",
    "edge_pairs",
    "enumerate_decomposable",
    "graph_label",
]

#: Largest K for which :func:`enumerate_decomposable` walks every edge set (2**21 sets).
MAX_ENUMERATE = 7


class Decomposition(NamedTuple):
    """A decomposable graph: its edge mask, maximal cliques and separators (vertex bit masks).

    ``cliques`` are in a running-intersection order; ``separators`` are the non-empty
    ``C_j ∩ (C_1 ∪ ... ∪ C_{j-1})`` (a multiset: the same set may appear more than once).
    """

    edges: int
    cliques: tuple[int, ...]
    separators: tuple[int, ...]


@lru_cache(maxsize=32)
def edge_pairs(k: int) -> tuple[tuple[int, int], ...]:
    """The ``k (k - 1) / 2`` vertex pairs ``(i, j)``, ``i < j``, in edge-bit order.

    Examples
    --------
    >>> edge_pairs(3)
    ((0, 1), (0, 2), (1, 2))
    """
    return tuple((i, j) for i in range(k) for j in range(i + 1, k))


def adjacency(edges: int, k: int) -> list[int]:
    """Neighbour bit masks of the ``k`` vertices of the graph with edge mask ``edges``.

    Examples
    --------
    >>> adjacency(0b011, 3)  # edges 0-1 and 0-2
    [6, 1, 1]
    """
    adj = [0] * k
    for e, (i, j) in enumerate(edge_pairs(k)):
        if edges >> e & 1:
            adj[i] |= 1 << j
            adj[j] |= 1 << i
    return adj


def decompose(adj: Sequence[int], edges: int = -1) -> Decomposition | None:
    """Cliques and separators of a graph given by neighbour masks, or ``None`` if not chordal.

    Maximum cardinality search numbers the vertices one by one, always taking an unnumbered
    vertex with the most numbered neighbours. The graph is chordal iff, for every vertex ``v``,
    its neighbours numbered before it, ``P(v)``, form a clique. The maximal cliques are then the
    maximal sets ``{v} ∪ P(v)``, in the order of their last vertex, which has the
    running-intersection property.

    Parameters
    ----------
    adj : sequence of int
        ``adj[v]`` is the bit mask of the neighbours of vertex ``v``.
    edges : int
        The edge mask, stored on the result (``-1`` if unknown).

    Examples
    --------
    >>> decompose([0b110, 0b101, 0b011])  # triangle: one clique {0, 1, 2}
    Decomposition(edges=-1, cliques=(7,), separators=())
    >>> decompose(adjacency(0b0011, 3)).cliques  # path 1 - 0 - 2
    (3, 5)
    >>> decompose([0b1010, 0b0101, 0b1010, 0b0101]) is None  # 4-cycle without chord
    True
    """
    k = len(adj)
    numbered = 0
    candidates: list[int] = []
    for _ in range(k):
        best, best_w = -1, -1
        for v in range(k):
            if not numbered >> v & 1:
                w = (adj[v] & numbered).bit_count()
                if w > best_w:
                    best, best_w = v, w
        prev = adj[best] & numbered
        rest = prev
        while rest:
            low = rest & -rest
            u = low.bit_length() - 1
            if (prev & ~low) & ~adj[u]:
                return None
            rest ^= low
        numbered |= 1 << best
        candidates.append(prev | (1 << best))
    cliques = [
        c for i, c in enumerate(candidates)
        if not any(c & d == c for d in candidates[i + 1:])
    ]
    separators = []
    seen = 0
    for c in cliques:
        s = c & seen
        if s:
            separators.append(s)
        seen |= c
    return Decomposition(edges, tuple(cliques), tuple(separators))


@lru_cache(maxsize=8)
def enumerate_decomposable(k: int) -> tuple[Decomposition, ...]:
    """Every decomposable graph on ``k`` labelled vertices (there are 1, 2, 8, 61, 822, 18154,
    617675 for ``k = 1 .. 7``).

    Walks all ``2**(k(k-1)/2)`` edge sets, so ``k`` is limited to :data:`MAX_ENUMERATE`.

    Examples
    --------
    >>> len(enumerate_decomposable(4))
    61
    """
    if k > MAX_ENUMERATE:
        raise ValueError(f"enumerating decomposable graphs needs k <= {MAX_ENUMERATE}, got {k}")
    pairs = edge_pairs(k)
    out = []
    for edges in range(1 << len(pairs)):
        adj = [0] * k
        for e, (i, j) in enumerate(pairs):
            if edges >> e & 1:
                adj[i] |= 1 << j
                adj[j] |= 1 << i
        d = decompose(adj, edges)
        if d is not None:
            out.append(d)
    return tuple(out)


def graph_label(cliques: Sequence[int], lists: Sequence[str]) -> str:
    """Human-readable generating class of a graph: ``"[A,B][B,C][D]"``.

    Examples
    --------
    >>> graph_label((3, 6, 8), ["A", "B", "C", "D"])
    '[A,B][B,C][D]'
    """
    parts = []
    for c in cliques:
        names = [lists[j] for j in range(len(lists)) if c >> j & 1]
        parts.append("[" + ",".join(names) + "]")
    return "".join(parts)
