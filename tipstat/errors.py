"""The one error hierarchy of tipstat.

Every error tipstat raises on purpose is a :class:`TipstatError`. Bad input (a wrong value in a
table, an unknown list name, an impossible option) is an :class:`InputError`, whose message names
the column, row and value that are wrong and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["EstimationError", "InputError", "Problem", "TipstatError", "TipstatWarning"]


class TipstatError(Exception):
    """Base class of every error tipstat raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One bad value in an input table.

    ``row`` is the row label of the table (its index label, or its 1-based line number for files);
    ``value`` is shown only for non-identifying columns: callers pass ``None`` for identifiers.
    """

    column: str | None
    row: object
    value: object
    expected: str

    def __str__(self) -> str:
        where = []
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        shown = "" if self.value is None else f": value {self.value!r}"
        return f"{', '.join(where)}{shown} (expected {self.expected})"


class InputError(TipstatError, ValueError):
    """Bad input: the message says which column, row and value, and what was expected.

    Attributes
    ----------
    problems : list of Problem
        Every bad value found (not only the first), so a user can fix a file in one pass.
    """

    max_shown = 10

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        self.problems = list(problems)
        text = message
        if self.problems:
            shown = [f"  - {p}" for p in self.problems[: self.max_shown]]
            more = len(self.problems) - self.max_shown
            if more > 0:
                shown.append(f"  ... and {more} more")
            text = message + "\n" + "\n".join(shown)
        super().__init__(text)


class EstimationError(TipstatError, RuntimeError):
    """An estimator could not produce a result (for example, no admissible model)."""


class TipstatWarning(UserWarning):
    """Warnings tipstat issues about data or results (summed patterns, dropped persons...)."""
