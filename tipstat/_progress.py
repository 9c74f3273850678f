"""A progress bar on standard error for loops over methods or steps (``rich``, a PyMC
dependency); a no-op when disabled or when rich is missing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(total: int, description: str, *,
                 enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """Yield ``advance(label)``, which moves the bar one step and shows ``label``.

    Disabled (a no-op) when ``enabled`` is false or rich is missing, so callers need no check.

    Examples
    --------
    >>> with progress_bar(2, "steps", enabled=False) as advance:
    ...     advance("one"); advance("two")
    """
    if not enabled:
        yield lambda label="": None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:  # pragma: no cover - rich comes with PyMC
        yield lambda label="": None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[label]}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total, label="")

        def advance(label: str = "") -> None:
            bar.update(task, advance=1, label=label)

        yield advance
