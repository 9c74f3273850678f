"""The one search driver over model spaces: exhaustive, and step-by-step rules as callbacks.

Every model search in :mod:`tipstat.models` is one of two shapes.

*Exhaustive*: fit every model of a list and take the best by a score
(:func:`exhaustive`).

*Step by step* (:func:`climb`): from a starting model, repeatedly

1. ``propose(model, fit)`` the candidate models of the next step (greedy up/down: the
   hierarchical neighbours; forward rules: the models with one more two-way term, possibly in
   an order of preference),
2. fit them (``fit(candidates, model, fit)``: all at once, or with ``sequential=True`` one at
   a time in the proposed order),
3. ``choose(model, fit, candidates, fitted)`` a :class:`Decision`: move to one candidate, skip
   (sequential only: try the next one), or end,

until no candidate is proposed or the rule stops. The rules of
:mod:`tipstat.models.selection` are such callbacks: greedy AIC/BIC (move to the best neighbour
while the criterion falls), Chan, Silverman & Vincent's stepwise rule (candidates in order of
Poisson-tail p-value below a threshold, the first whose MLE exists is taken) and Bales,
Hesketh & Silverman's rule (the best AIC step, kept only if its Wald p-value is below alpha).
The stratified searches of :mod:`tipstat.models.stratified` (the forward search on the data and
the screened stepwise search of the bootstrap replicates) are the greedy rule again, with the
joint model's terms and fits. The driver knows nothing of log-linear models: ``model``,
``fit`` and the path rows are whatever the rule uses (tuples of term masks, batched fits and
dicts in selection; stratified models, their fits and ``(label, criterion)`` pairs there).

Examples
--------
>>> # a toy climb: models are integers, the score is (m - 3)^2, moves are +-1
>>> def propose(m, f):
...     return [m - 1, m + 1]
>>> def fit(cands, m, f):
...     return [(c - 3) ** 2 for c in cands]
>>> def choose(m, f, cands, scores):
...     j = min(range(len(cands)), key=scores.__getitem__)
...     return Decision(cands[j], scores[j]) if scores[j] < f else Decision.end()
>>> climb(0, 9, propose, fit, choose).model
3
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Climb", "Decision", "climb", "exhaustive"]


@dataclass
class Decision:
    """What a rule does after a step's candidates are fitted.

    ``model``/``fit``: the model moved to and its fit (``None``: no move); ``rows``: lines
    for the search path (any objects the rule writes); ``stop``: end the search (with or
    without a move).
    """

    model: Any = None
    fit: Any = None
    rows: list[Any] = field(default_factory=list)
    stop: bool = False

    @property
    def moved(self) -> bool:
        return self.model is not None

    @classmethod
    def skip(cls, *rows: Any) -> Decision:
        """No move; a sequential step goes on to its next candidate."""
        return cls(rows=list(rows))

    @classmethod
    def end(cls, *rows: Any) -> Decision:
        """No move, and the search ends."""
        return cls(rows=list(rows), stop=True)


@dataclass
class Climb:
    """Outcome of :func:`climb`: the final model and fit, the path rows and the steps taken."""

    model: Any
    fit: Any
    path: list[Any]
    steps: int


def climb(model: Any, fit: Any,
          propose: Callable[[Any, Any], Sequence[Any]],
          fit_models: Callable[[Sequence[Any], Any, Any], Any],
          choose: Callable[[Any, Any, Sequence[Any], Any], Decision], *,
          sequential: bool = False, path: list[Any] | None = None) -> Climb:
    """Step-by-step search from ``model`` (fitted as ``fit``) driven by a rule's callbacks.

    Parameters
    ----------
    model, fit
        The starting model and its fit.
    propose : callable
        ``propose(model, fit) -> candidates`` of the next step (empty: the search ends).
    fit_models : callable
        ``fit_models(candidates, model, fit) -> fitted`` (any object the rule's ``choose``
        reads; with ``sequential=True`` it is called with one candidate at a time).
    choose : callable
        ``choose(model, fit, candidates, fitted) -> Decision``.
    sequential : bool
        Fit and judge the candidates one at a time in the proposed order, stopping at the
        first move (``Decision.skip`` goes on to the next candidate; when every candidate is
        skipped the search ends).
    path : list, optional
        Rows already on the path (e.g. the start).

    Returns
    -------
    Climb
        ``model``, ``fit``, ``path`` (start rows, then each decision's rows in order) and
        ``steps`` (number of moves).
    """
    path = list(path or [])
    steps = 0
    while True:
        cands = list(propose(model, fit))
        if not cands:
            break
        moved = stopped = False
        groups = [[c] for c in cands] if sequential else [cands]
        for group in groups:
            decision = choose(model, fit, group, fit_models(group, model, fit))
            path.extend(decision.rows)
            if decision.moved:
                model, fit, moved = decision.model, decision.fit, True
                steps += 1
            if decision.stop:
                stopped = True
            if decision.moved or decision.stop:
                break
        if stopped or not moved:
            break
    return Climb(model, fit, path, steps)


def exhaustive(models: Sequence[Any], fit_models: Callable[[Sequence[Any]], Any],
               score: Callable[[Any], np.ndarray]) -> tuple[int, Any, np.ndarray]:
    """Fit every model and return ``(index of the best, fitted, scores)``.

    ``score(fitted)`` gives one number per model, lower is better (``inf`` for models excluded
    from the rule); the first of equal scores wins (``numpy.argmin``).
    """
    fitted = fit_models(models)
    scores = np.asarray(score(fitted))
    return int(np.argmin(scores)), fitted, scores
