"""Capture histories: the one data structure every tipstat model takes.

K lists (reporting entities) give ``2**K - 1`` observable capture patterns. A pattern is coded
as an integer ``c`` in ``1 .. 2**K - 1`` whose bit ``j`` (least-significant first) says whether
the person is on list ``j``. So with lists ``(A, B, C)`` the documented cell order is::

    c = 1: A     c = 2: B     c = 3: A B     c = 4: C
    c = 5: A C   c = 6: B C   c = 7: A B C

and code 0 is the unobserved pattern (on no list) whose count MSE estimates. This is the order of
the published tables in ``tipstat/datasets/data`` and of Rcapture's histories read backwards.
"""

from __future__ import annotations

import html
import math
import numbers
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, Problem, TipstatWarning
from .redact import hidden

__all__ = ["MAX_COUNT", "MAX_LISTS", "CaptureHistories", "pattern_matrix"]

#: Largest number of lists: 2**20 cells is already a million-row design.
MAX_LISTS = 20

#: Largest count of one cell, and of all cells together: ``2**53 - 1`` (about 9.0e15), the
#: largest whole number that float64 (in which every estimator computes) holds exactly. Larger
#: counts, or counts whose total is larger, are an :class:`~tipstat.errors.InputError`, so an
#: integer total can never wrap around.
MAX_COUNT = 2**53 - 1


def pattern_matrix(k: int, include_unobserved: bool = False) -> np.ndarray:
    """0/1 matrix of capture patterns in tipstat's cell order.

    Parameters
    ----------
    k : int
        Number of lists.
    include_unobserved : bool
        If True the first row is the all-zero pattern (code 0) and row ``c`` is pattern ``c``;
        otherwise row ``c - 1`` is pattern ``c``.

    Examples
    --------
    >>> pattern_matrix(2)
    array([[1, 0],
           [0, 1],
           [1, 1]])
    """
    codes = np.arange(0 if include_unobserved else 1, 2**k)
    return ((codes[:, None] >> np.arange(k)[None, :]) & 1).astype(np.int64)


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


class CaptureHistories:
    """Counts of persons by capture pattern over K lists, optionally by stratum.

    Build one with :meth:`from_frame` (a table of patterns and counts), :meth:`from_individuals`
    (one 0/1 row per person) or :meth:`from_memberships` (person, list) pairs. Every model in
    tipstat takes a ``CaptureHistories``.

    Attributes
    ----------
    lists : tuple of str
        List names, in pattern-bit order (the first list is the least-significant bit).
    k : int
        Number of lists.
    strata : tuple of str
        Names of the stratum columns (empty when unstratified).
    counts : numpy.ndarray
        The ``2**K - 1`` observable cell counts pooled over strata, in cell order.
    stratum_counts : numpy.ndarray
        Shape ``(n_strata, 2**K - 1)``: the counts of each stratum.
    n_observed : float
        Persons seen on at least one list (the sum of all counts).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"A": [1, 0, 1, 0], "B": [0, 1, 1, 0], "C": [0, 0, 0, 1],
    ...                    "count": [40, 30, 6, 20]})
    >>> h = CaptureHistories.from_frame(df)
    >>> h.lists, h.n_observed
    (('A', 'B', 'C'), 96)
    >>> h.counts.tolist()
    [40, 30, 6, 20, 0, 0, 0]
    """

    __slots__ = ("_counts", "_lists", "_strata_index")

    def __init__(
        self,
        counts: np.ndarray,
        lists: Sequence[str],
        strata_index: pd.DataFrame | None = None,
    ) -> None:
        lists = _list_names(lists)
        k = len(lists)
        counts = _checked_cell_counts(counts, k)
        if strata_index is None:
            if counts.shape[0] != 1:
                raise InputError("several rows of counts need a strata_index naming each stratum")
            strata_index = pd.DataFrame(index=range(1))
        if not isinstance(strata_index, pd.DataFrame):
            raise InputError(f"strata_index must be a DataFrame, got {type(strata_index).__name__}")
        _check_unique_columns(strata_index, "strata_index")
        strata_index = strata_index.reset_index(drop=True)
        if len(strata_index) != counts.shape[0]:
            raise InputError("strata_index must have one row per stratum row of counts")
        counts.setflags(write=False)
        self._counts = counts
        self._lists = lists
        self._strata_index = strata_index

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        count: str = "count",
        strata: str | Sequence[str] | None = None,
        lists: Sequence[str] | None = None,
    ) -> CaptureHistories:
        """Build from a table of capture patterns and their counts.

        Parameters
        ----------
        df : pandas.DataFrame
            One row per capture pattern (and stratum): 0/1 list columns and a count column.
            Patterns that are absent have count 0. Repeated patterns are summed, with a warning.
        count : str
            Name of the count column.
        strata : str or list of str, optional
            Stratum columns (sex, age group, ...). They must have no missing values: code
            unknowns explicitly (for example ``"unknown"``).
        lists : list of str, optional
            List columns, in the order that defines pattern bits. Default: every column that is
            neither the count nor a stratum, in table order.

        Raises
        ------
        InputError
            Naming the column and row, and what was expected: list values not 0/1; missing,
            negative, fractional or infinite counts, counts above :data:`MAX_COUNT` or summing
            to more than it; a positive count on the all-zero pattern; fewer than two or more
            than :data:`MAX_LISTS` lists; an empty table; duplicated column names, or list names
            equal once normalised; a stratum column with missing values or mixing kinds of
            values (numbers and text, say). A number in a count or list column is shown; any
            other value is only described (``<text of 3 characters>``), never shown.

        Notes
        -----
        List names are normalised: surrounding whitespace removed and Unicode composed (NFC), so
        ``'A '`` is list ``'A'``; two columns whose names are equal once normalised are an error.
        A stratum column holds one kind of value: numbers (``1`` and ``1.0`` are one stratum),
        text, booleans or dates; ``1`` beside ``"1"`` is an error rather than two strata.

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"A": [1, 0, 1], "B": [0, 1, 1], "count": [5, 3, "many"]})
        >>> CaptureHistories.from_frame(df)
        Traceback (most recent call last):
        ...
        tipstat.errors.InputError: count column 'count' must hold whole numbers >= 0
          - column 'count', row 2: value <text of 4 characters> (expected a whole number >= 0)
        """
        _check_table(df)
        strata_cols = _column_names(strata, "strata")
        missing_cols = [c for c in [count, *strata_cols] if c not in df.columns]
        if missing_cols:
            raise InputError(
                f"column(s) {missing_cols} not found; the table has columns {list(df.columns)}"
            )
        if lists is None:
            lists = [c for c in df.columns if c != count and c not in strata_cols]
        else:
            lists = _column_names(lists, "lists")
            absent = [c for c in lists if c not in df.columns]
            if absent:
                raise InputError(
                    f"list column(s) {absent} not found; the table has {list(df.columns)}"
                )
        _check_roles({"count": [count], "strata": strata_cols, "lists": lists})
        if len(lists) < 2:
            raise InputError(
                f"capture histories need at least two list columns; found {len(lists)}: {lists}"
                f" (every column other than {count!r} and the strata is taken as a list)"
            )
        names = _list_names(lists)  # before any 2**K allocation: at most MAX_LISTS lists
        if len(df) == 0:
            raise InputError("the table is empty: there is no capture pattern to count")
        bits = _validated_bits(df, lists)
        y = _validated_counts(df[count], count)
        codes = bits @ (1 << np.arange(len(lists)))
        zero = (codes == 0) & (y > 0)
        if zero.any():
            raise InputError(
                "the all-zero pattern (on no list) cannot be observed; it has a positive count",
                [Problem(count, df.index[i], int(y[i]), "0 or no row for the all-zero pattern")
                 for i in np.flatnonzero(zero)],
            )
        strata_index, sid = _stratum_ids(df, strata_cols)
        keep = codes > 0
        key = sid[keep] * (2 ** len(lists)) + codes[keep]
        n_dup = len(key) - len(np.unique(key))
        if n_dup:
            warnings.warn(f"{n_dup} repeated capture pattern row(s) were summed", TipstatWarning,
                          stacklevel=2)
        return cls._assemble(codes, y, sid, strata_index, names)

    @classmethod
    def _assemble(cls, codes: np.ndarray, weights: np.ndarray, sid: np.ndarray,
                  strata_index: pd.DataFrame, lists: Sequence[str]) -> CaptureHistories:
        """Sum ``weights`` by (stratum id, pattern code); code 0 rows carry no weight."""
        keep = codes > 0
        counts = np.zeros((len(strata_index), 2 ** len(lists) - 1), dtype=weights.dtype)
        np.add.at(counts, (sid[keep], codes[keep] - 1), weights[keep])
        return cls(counts, lists, strata_index)

    @classmethod
    def from_individuals(
        cls,
        df: pd.DataFrame,
        lists: Sequence[str] | None = None,
        strata: str | Sequence[str] | None = None,
    ) -> CaptureHistories:
        """Build from person-level rows: one 0/1 row per person, one column per list.

        A person on no list cannot have been observed, so an all-zero row is an error.

        Examples
        --------
        >>> import pandas as pd
        >>> people = pd.DataFrame({"police": [1, 1, 0], "ngo": [0, 1, 1]})
        >>> CaptureHistories.from_individuals(people).counts.tolist()
        [1, 1, 1]
        """
        _check_table(df)
        strata_cols = _column_names(strata, "strata")
        lists = (_column_names(lists, "lists") if lists is not None
                 else [c for c in df.columns if c not in strata_cols])
        absent = [c for c in [*lists, *strata_cols] if c not in df.columns]
        if absent:
            raise InputError(f"column(s) {absent} not found; the table has {list(df.columns)}")
        _check_roles({"strata": strata_cols, "lists": lists})
        if len(lists) < 2:
            raise InputError(f"need at least two list columns; found {len(lists)}: {lists}")
        names = _list_names(lists)
        if len(df) == 0:
            raise InputError("the table is empty: there is no person to count")
        bits = _validated_bits(df, lists)
        empty = np.flatnonzero(bits.sum(axis=1) == 0)
        if len(empty):
            raise InputError(
                f"{len(empty)} person row(s) are on no list; every person must be on at least one",
                [Problem(None, df.index[i], None, "a 1 in at least one list column")
                 for i in empty],
            )
        strata_index, sid = _stratum_ids(df, strata_cols)
        codes = bits @ (1 << np.arange(len(lists)))
        return cls._assemble(codes, np.ones(len(df), dtype=np.int64), sid, strata_index, names)

    @classmethod
    def from_memberships(
        cls,
        pairs: pd.DataFrame,
        person_column: str = "person",
        list_column: str = "list",
        strata: str | Sequence[str] | None = None,
        lists: Sequence[str] | None = None,
    ) -> CaptureHistories:
        """Build from (person, list) membership pairs, one row per person found on a list.

        Parameters
        ----------
        pairs : pandas.DataFrame
            A column of pseudonymous person keys and a column of list names; repeated pairs
            count once.
        person_column, list_column : str
            Names of those two columns.
        strata : str or list of str, optional
            Stratum columns; each person must have one value per stratum column.
        lists : list of str, optional
            All list names in order (lists where nobody was found still count as lists).

        Notes
        -----
        Person keys never appear in error messages: rows are cited by their index label. List
        names are normalised as text (surrounding whitespace removed, Unicode NFC), so the
        values ``'A'``, ``'A '`` and ``'A\\u00a0'`` name one list, and the number ``1`` and the
        text ``'1'`` name one list ``'1'``.

        Examples
        --------
        >>> import pandas as pd
        >>> pairs = pd.DataFrame({"person": ["k1", "k1", "k2", "k3"],
        ...                       "list": ["police", "ngo ", "ngo", "police"]})
        >>> h = CaptureHistories.from_memberships(pairs)
        >>> h.lists, h.counts.tolist()
        (('ngo', 'police'), [1, 1, 1])
        """
        _check_table(pairs)
        strata_cols = _column_names(strata, "strata")
        absent = [c for c in [person_column, list_column, *strata_cols] if c not in pairs.columns]
        if absent:
            raise InputError(f"column(s) {absent} not found; the table has {list(pairs.columns)}")
        _check_roles({"person_column": [person_column], "list_column": [list_column],
                      "strata": strata_cols})
        if len(pairs) == 0:
            raise InputError("the table is empty: there is no membership to count")
        problems = [
            Problem(col, pairs.index[i], None, "a value (not missing)")
            for col in (person_column, list_column)
            for i in np.flatnonzero(pairs[col].isna().to_numpy())
        ]
        if problems:
            raise InputError("missing person keys or list names", problems)
        try:
            pd.factorize(pairs[person_column])
        except TypeError:
            raise InputError(f"person column {person_column!r} must hold keys (text or numbers)",
                             [Problem(person_column, None, None, "hashable keys")]) from None
        named = pairs[list_column].map(_normal_name)
        found = list(pd.unique(named))
        if lists is None:
            lists = sorted(found)
            if len(lists) > MAX_LISTS:
                raise InputError(f"at most {MAX_LISTS} lists are supported; column "
                                 f"{list_column!r} names {len(lists)}")
        else:
            lists = list(_list_names(_column_names(lists, "lists"), at_least=0))
            unknown = [x for x in found if x not in lists]
            if unknown:
                rows = pairs.index[named.isin(unknown).to_numpy()]
                raise InputError(
                    f"list names {unknown} are not among lists={lists}",
                    [Problem(list_column, r, None, f"one of {lists}") for r in rows],
                )
        if len(lists) < 2:
            raise InputError(f"need at least two lists; found {len(lists)}: {lists}")
        lists = list(_list_names(lists))
        pos = {name: j for j, name in enumerate(lists)}
        bit = named.map(pos).to_numpy(dtype=np.int64)
        key_codes, keys = pd.factorize(pairs[person_column], sort=False)
        code = np.zeros(len(keys), dtype=np.int64)
        np.bitwise_or.at(code, key_codes, 1 << bit)
        if strata_cols:
            first = pd.DataFrame({"__p__": key_codes, **{c: pairs[c].to_numpy() for c in strata_cols}})
            n_values = first.groupby("__p__")[strata_cols].nunique(dropna=False)
            bad = n_values.index[(n_values > 1).any(axis=1).to_numpy()]
            if len(bad):
                rows = pairs.index[np.isin(key_codes, bad)]
                raise InputError(
                    f"{len(bad)} person(s) have conflicting stratum values across their rows "
                    "(resolve them before counting)",
                    [Problem(None, r, None, "one stratum value per person") for r in rows],
                )
            frame = first.groupby("__p__")[strata_cols].first().reset_index(drop=True)
        else:
            frame = pd.DataFrame(index=range(len(keys)))
        strata_index, sid = _stratum_ids(frame, strata_cols)
        return cls._assemble(code, np.ones(len(code), dtype=np.int64), sid, strata_index, lists)

    # ------------------------------------------------------------------ basic facts
    @property
    def lists(self) -> tuple[str, ...]:
        return self._lists

    @property
    def k(self) -> int:
        return len(self._lists)

    @property
    def strata(self) -> tuple[str, ...]:
        return tuple(self._strata_index.columns)

    @property
    def strata_index(self) -> pd.DataFrame:
        """One row per stratum with its values (a copy)."""
        return self._strata_index.copy()

    @property
    def n_strata(self) -> int:
        return self._counts.shape[0]

    @property
    def stratum_counts(self) -> np.ndarray:
        return self._counts

    @property
    def counts(self) -> np.ndarray:
        if self.n_strata == 1:
            return self._counts[0]
        out = self._counts.sum(axis=0)
        out.setflags(write=False)
        return out

    @property
    def n_observed(self) -> int | float:
        total = self._counts.sum()
        return int(total) if np.issubdtype(self._counts.dtype, np.integer) else float(total)

    @property
    def patterns(self) -> np.ndarray:
        """``(2**K - 1, K)`` 0/1 matrix: row ``c - 1`` is the pattern of cell ``c``."""
        return pattern_matrix(self.k)

    @property
    def n_zero_cells(self) -> int:
        """Observable patterns with a zero count (pooled over strata)."""
        return int(np.sum(self.counts == 0))

    def pattern_labels(self, sep: str = "+") -> list[str]:
        """Human-readable names of the cells, e.g. ``'LA+NG'``, in cell order."""
        return [sep.join(n for n, b in zip(self._lists, row, strict=True) if b)
                for row in self.patterns]

    # ------------------------------------------------------------------ tables
    def to_frame(self, include_zeros: bool = True) -> pd.DataFrame:
        """Table of patterns (0/1 list columns), strata and ``count``, in cell order."""
        pat = self.patterns
        rows = []
        for s in range(self.n_strata):
            block = pd.DataFrame(pat, columns=list(self._lists))
            for col in self.strata:
                block.insert(len(block.columns), col, self._strata_index.iloc[s][col])
            block["count"] = self._counts[s]
            rows.append(block)
        out = pd.concat(rows, ignore_index=True)
        if self.strata:
            out = out[[*self.strata, *self._lists, "count"]]
        if not include_zeros:
            out = out[out["count"] > 0].reset_index(drop=True)
        return out

    def list_sizes(self) -> pd.Series:
        """Number of persons on each list (pooled over strata)."""
        return pd.Series(self.patterns.T @ self.counts, index=list(self._lists), name="size")

    def overlap_matrix(self) -> pd.DataFrame:
        """K x K table: persons on both lists i and j (list sizes on the diagonal)."""
        pat = self.patterns
        m = (pat * self.counts[:, None]).T @ pat
        return pd.DataFrame(m, index=list(self._lists), columns=list(self._lists))

    # ------------------------------------------------------------------ transformations
    def _recode(self, new_lists: Sequence[str], new_bits: np.ndarray) -> CaptureHistories:
        """Map each old cell to the new pattern ``new_bits[c-1]`` (a row of 0/1 over new lists);
        cells mapped to the all-zero pattern are removed (their count is returned separately)."""
        new_codes = new_bits @ (1 << np.arange(len(new_lists)))
        out = np.zeros((self.n_strata, 2 ** len(new_lists) - 1), dtype=self._counts.dtype)
        keep = new_codes > 0
        for s in range(self.n_strata):
            np.add.at(out[s], new_codes[keep] - 1, self._counts[s, keep])
        return CaptureHistories(out, new_lists, self._strata_index)

    def _check_names(self, names: Iterable[str], what: str) -> list[str]:
        names = [str(n) for n in names]
        unknown = [n for n in names if n not in self._lists]
        if unknown:
            raise InputError(f"{what}: unknown list(s) {unknown}; the lists are {list(self._lists)}")
        return names

    def merge_lists(self, groups: Mapping[str, Sequence[str]]) -> CaptureHistories:
        """Merge lists: a person is on the new list if on any of its members.

        The merged list takes the position of its first member.

        Examples
        --------
        >>> from tipstat import datasets
        >>> datasets.load("UK_6").merge_lists({"PFNCA": ["PF", "NCA"]}).lists
        ('LA', 'NG', 'PFNCA', 'GO', 'GP')
        """
        owner: dict[str, str] = {}
        for new, members in groups.items():
            members = self._check_names(members, f"merge_lists({new!r})")
            if not members:
                raise InputError(f"merge_lists: group {new!r} has no member lists")
            for m in members:
                if m in owner:
                    raise InputError(f"merge_lists: list {m!r} is in two groups")
                owner[m] = new
        clash = [g for g in groups if g in self._lists and owner.get(g) != g]
        if clash:
            raise InputError(f"merge_lists: new name(s) {clash} are already list names")
        new_lists: list[str] = []
        for name in self._lists:
            target = owner.get(name, name)
            if target not in new_lists:
                new_lists.append(target)
        if len(new_lists) < 2:
            raise InputError("merge_lists would leave fewer than two lists")
        pat = self.patterns
        new_bits = np.zeros((pat.shape[0], len(new_lists)), dtype=np.int64)
        for j, name in enumerate(self._lists):
            new_bits[:, new_lists.index(owner.get(name, name))] |= pat[:, j]
        return self._recode(new_lists, new_bits)

    def drop_lists(self, names: Sequence[str]) -> CaptureHistories:
        """Remove lists. Persons seen only on dropped lists become unobserved: their number is
        reported in a warning (nothing disappears silently).

        Examples
        --------
        >>> from tipstat import datasets
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     h4 = datasets.load("UK_5").drop_lists(["GP"])
        >>> h4.n_observed
        2428
        """
        names = self._check_names(names, "drop_lists")
        keep = [j for j, n in enumerate(self._lists) if n not in names]
        if len(keep) < 2:
            raise InputError("drop_lists would leave fewer than two lists")
        pat = self.patterns
        new_bits = pat[:, keep]
        lost = self.counts[new_bits.sum(axis=1) == 0].sum()
        if lost > 0:
            warnings.warn(
                f"{lost} person(s) seen only on the dropped list(s) {names} are no longer "
                "observed",
                TipstatWarning,
                stacklevel=2,
            )
        return self._recode([self._lists[j] for j in keep], new_bits)

    def pooled(self) -> CaptureHistories:
        """The same histories summed over strata."""
        return CaptureHistories(self.counts.copy(), self._lists)

    def by_stratum(self) -> Iterator[tuple[tuple, CaptureHistories]]:
        """Iterate over ``(stratum values, unstratified histories)`` pairs."""
        for s in range(self.n_strata):
            key = tuple(self._strata_index.iloc[s].tolist())
            yield key, CaptureHistories(self._counts[s].copy(), self._lists)

    def __iter__(self) -> Iterator[tuple[tuple, CaptureHistories]]:
        return self.by_stratum()

    def select(self, **values: Any) -> CaptureHistories:
        """The strata whose columns equal the given values, e.g. ``h.select(sex="F")``.

        The result keeps its remaining strata; if one stratum is left it is still stratified
        (use :meth:`pooled` for a plain table).
        """
        unknown = [c for c in values if c not in self.strata]
        if unknown:
            raise InputError(f"select: unknown stratum column(s) {unknown}; strata are {list(self.strata)}")
        mask = np.ones(self.n_strata, dtype=bool)
        for col, val in values.items():
            mask &= (self._strata_index[col] == val).to_numpy()
        if not mask.any():
            raise InputError(f"select: no stratum has {values}")
        return CaptureHistories(self._counts[mask], self._lists, self._strata_index[mask])

    # ------------------------------------------------------------------ comparison, display
    def equals(self, other: object) -> bool:
        """Same lists (in order), strata and counts."""
        return (
            isinstance(other, CaptureHistories)
            and self._lists == other._lists
            and self._strata_index.equals(other._strata_index)
            and np.array_equal(self._counts, other._counts)
        )

    def __eq__(self, other: object) -> bool:
        return self.equals(other)

    __hash__ = None  # type: ignore[assignment]

    def summary(self) -> str:
        """A readable description: lists and sizes, overlaps, zero cells, strata."""
        sizes = self.list_sizes()
        lines = [
            f"Capture histories: {self.k} lists, {self.n_observed} persons observed, "
            f"{2**self.k - 1} observable patterns ({self.n_zero_cells} with zero count)",
            "List sizes: " + ", ".join(f"{n}={int(v) if float(v).is_integer() else v}"
                                       for n, v in sizes.items()),
        ]
        ov = self.overlap_matrix().to_numpy()
        empty = [f"{self._lists[i]}&{self._lists[j]}"
                 for i in range(self.k) for j in range(i + 1, self.k) if ov[i, j] == 0]
        lines.append(f"List pairs with no overlap: {', '.join(empty) if empty else 'none'}")
        if self.strata:
            lines.append(f"Strata ({', '.join(self.strata)}): {self.n_strata}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        strata = f", strata={list(self.strata)} ({self.n_strata})" if self.strata else ""
        return (f"CaptureHistories(lists={list(self._lists)}, n_observed={self.n_observed}"
                f"{strata})")

    def _repr_html_(self) -> str:
        frame = self.to_frame(include_zeros=False)
        head = html.escape(self.summary()).replace("\n", "<br>")
        return (f"<div class='tipstat-histories'><p>{head}</p>"
                f"{frame.to_html(index=False, max_rows=40)}</div>")


# ---------------------------------------------------------------------- input checks
def _shown(value: Any) -> Any:
    """What an error may show of a cell: a number (or numeric text) as it is, anything else
    only described by its kind and length, so no name or date ever reaches a message."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Real):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return hidden(value)
        return value
    if value is None:
        return None
    return hidden(value)


def _whole_number(value: Any) -> int | None:
    """The exact whole number a cell holds, or None (booleans, fractions, text, inf, nan)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, numbers.Real):
        f = float(value)
        return int(f) if math.isfinite(f) and f.is_integer() else None
    return None


def _normal_name(name: Any) -> str:
    """A list name as text: Unicode NFC, surrounding whitespace removed."""
    return unicodedata.normalize("NFC", str(name)).strip()


def _list_names(lists: Iterable[Any], at_least: int = 2) -> tuple[str, ...]:
    """Normalised, unique list names; at most :data:`MAX_LISTS` (checked before anything of
    size ``2**K`` exists)."""
    lists = list(lists)
    if len(lists) > MAX_LISTS:
        raise InputError(f"at most {MAX_LISTS} lists are supported; got {len(lists)} list "
                         "columns (name the list columns with lists=[...] if some are not lists)")
    names = tuple(_normal_name(x) for x in lists)
    empty = [x for x, n in zip(lists, names, strict=True) if not n]
    if empty:
        raise InputError(f"list names must not be blank; got {empty}")
    groups: dict[str, list[Any]] = {}
    for x, n in zip(lists, names, strict=True):
        groups.setdefault(n, []).append(x)
    dup = {n: xs for n, xs in groups.items() if len(xs) > 1}
    if dup:
        shown = "; ".join(f"{[str(x) for x in xs]} are all {n!r}" for n, xs in dup.items())
        raise InputError("list names must be unique once surrounding spaces are removed: " + shown)
    if len(names) < at_least:
        raise InputError(f"capture histories need at least {at_least} lists; got {len(names)}: "
                         f"{list(names)}")
    return names


def _check_table(df: Any) -> None:
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"expected a pandas DataFrame, got {type(df).__name__}")
    _check_unique_columns(df, "table")


def _check_unique_columns(df: pd.DataFrame, what: str) -> None:
    cols = list(df.columns)
    if len(set(cols)) == len(cols):  # the common case, without building pandas indexes
        return
    dup = list(dict.fromkeys(c for c in cols if cols.count(c) > 1))
    if dup:
        raise InputError(f"the {what} has duplicated column names {dup}: each column must have "
                         "its own name", [Problem(str(c), None, None, "a unique column name")
                                          for c in dup])


def _column_names(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        value = [value]
    out = list(value)
    for c in out:
        try:
            hash(c)
        except TypeError:
            raise InputError(f"{what} must be column names; got a {type(c).__name__}") from None
    return out


def _check_roles(roles: Mapping[str, Sequence[Any]]) -> None:
    seen: dict[Any, str] = {}
    for role, cols in roles.items():
        for c in cols:
            if c in seen and seen[c] != role:
                raise InputError(f"column {c!r} is given both as {seen[c]} and as {role}")
            if c in seen:
                raise InputError(f"column {c!r} is given twice as {role}")
            seen[c] = role


def _checked_cell_counts(counts: Any, k: int) -> np.ndarray:
    """Counts of the private constructor as int64 (whole numbers) or float64 (expected counts),
    shape ``(n_strata, 2**k - 1)``, every cell and the total within ``0 .. MAX_COUNT``."""
    try:
        arr = np.asarray(counts)
    except (TypeError, ValueError):
        raise InputError("cell counts must be a 1- or 2-dimensional array of numbers") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"cell counts must be 1- or 2-dimensional; got {arr.ndim} dimensions")
    if arr.shape[1] != 2**k - 1:
        raise InputError(f"expected {2**k - 1} cell counts for {k} lists, got {arr.shape[1]}")
    expected = f"a finite count from 0 to {MAX_COUNT} (2**53 - 1)"
    if arr.dtype.kind == "O":
        flat = arr.ravel()
        if all(isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)
               for v in flat):
            bad = [i for i, v in enumerate(flat) if not 0 <= int(v) <= MAX_COUNT]
            target = np.int64
        else:
            bad = [i for i, v in enumerate(flat)
                   if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Real)
                   or not 0 <= float(v) <= MAX_COUNT]  # False for nan
            target = np.float64
        if not bad:
            arr = np.array([int(v) if target is np.int64 else float(v) for v in flat],
                           dtype=target).reshape(arr.shape)
    elif arr.dtype.kind in "iu":
        flat = arr.ravel()
        bad = np.flatnonzero((flat < 0) | (flat > MAX_COUNT)).tolist()
        arr = arr.astype(np.int64) if not bad else arr
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
        flat = arr.ravel()
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~((flat >= 0) & (flat <= MAX_COUNT))).tolist()
    else:
        raise InputError(f"cell counts must be numbers; got an array of dtype {arr.dtype}")
    if bad:
        n_cells = arr.shape[1]
        raise InputError("cell counts must be finite, non-negative and at most 2**53 - 1",
                         [Problem(f"cell {i % n_cells + 1}", i // n_cells, _shown(flat[i]),
                                  expected) for i in bad])
    if float(np.sum(arr, dtype=np.float64)) > MAX_COUNT / 2:  # near the limit: add exactly
        total = (sum(int(v) for v in arr.ravel()) if arr.dtype.kind == "i"
                 else math.fsum(arr.ravel()))
        if total > MAX_COUNT:
            shown = f"{total}" if isinstance(total, int) else f"{total:.17g}"
            raise InputError(f"the cell counts add up to {shown}, more than the largest "
                             f"total tipstat holds exactly ({MAX_COUNT}, 2**53 - 1)")
    return arr


def _validated_bits(df: pd.DataFrame, lists: Sequence[Any]) -> np.ndarray:
    problems: list[Problem] = []
    out = np.zeros((len(df), len(lists)), dtype=np.int64)
    for j, col in enumerate(lists):
        values = df[col].to_numpy(dtype=object)
        for i, v in enumerate(values):
            if isinstance(v, bool | np.bool_):
                out[i, j] = int(v)
                continue
            n = None if _is_missing(v) else _whole_number(v)
            if n in (0, 1):
                out[i, j] = n
            else:
                problems.append(Problem(str(col), df.index[i], _shown(v), "0 or 1"))
    if problems:
        raise InputError("list columns must hold 0 or 1 only", problems)
    return out


def _validated_counts(series: pd.Series, name: Any) -> np.ndarray:
    """Whole numbers 0 .. MAX_COUNT whose total (added as Python integers) is at most
    MAX_COUNT, as int64: nothing can wrap around."""
    problems: list[Problem] = []
    values = series.to_numpy(dtype=object)
    out = np.zeros(len(values), dtype=np.int64)
    total = 0
    for i, v in enumerate(values):
        if _is_missing(v):
            problems.append(Problem(str(name), series.index[i], _shown(v),
                                    "a whole number >= 0, not missing"))
            continue
        n = _whole_number(v)
        if n is None or n < 0:
            problems.append(Problem(str(name), series.index[i], _shown(v), "a whole number >= 0"))
        elif n > MAX_COUNT:
            problems.append(Problem(str(name), series.index[i], _shown(v),
                                    f"a whole number at most {MAX_COUNT} (2**53 - 1)"))
        else:
            out[i] = n
            total += n
    if problems:
        raise InputError(f"count column {name!r} must hold whole numbers >= 0", problems)
    if total > MAX_COUNT:
        raise InputError(f"the counts of column {name!r} add up to {total}, more than the largest "
                         f"total tipstat holds exactly ({MAX_COUNT}, 2**53 - 1)")
    if total == 0 and len(out):
        raise InputError(f"every count of column {name!r} is 0: no one is observed on any list, so "
                         "there is nothing to estimate from")
    return out


def _value_kind(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "booleans"
    if isinstance(value, numbers.Real):
        return "numbers"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime | date | np.datetime64):
        return "dates"
    if isinstance(value, timedelta | np.timedelta64):
        return "durations"
    return "other"


def _stratum_ids(df: pd.DataFrame, strata_cols: Sequence[Any]) -> tuple[pd.DataFrame, np.ndarray]:
    if not strata_cols:
        return pd.DataFrame(index=range(1)), np.zeros(len(df), dtype=np.int64)
    problems = [
        Problem(str(col), df.index[i], None,
                "a stratum value (code unknowns explicitly, e.g. 'unknown')")
        for col in strata_cols
        for i in np.flatnonzero(df[col].isna().to_numpy())
    ]
    if problems:
        raise InputError("stratum columns must not have missing values", problems)
    for col in strata_cols:
        kinds = df[col].map(_value_kind, na_action=None).to_numpy(dtype=object)
        found = pd.unique(kinds)
        if "other" in found or len(found) > 1:
            main = pd.Series(kinds).value_counts().index[0]
            odd = [i for i, kd in enumerate(kinds) if kd == "other" or kd != main]
            raise InputError(
                f"stratum column {col!r} must hold one kind of value (text, numbers, booleans or "
                f"dates); it has {', '.join(sorted(found))}: recode it, e.g. as text",
                [Problem(str(col), df.index[i], None, f"{main} like the other rows"
                         if kinds[i] != "other" else "text, a number, a boolean or a date")
                 for i in odd],
            )
    sub = df[list(strata_cols)]
    try:
        index = sub.drop_duplicates().sort_values(list(strata_cols)).reset_index(drop=True)
    except TypeError:
        raise InputError(f"the values of stratum column(s) {list(strata_cols)} cannot be ordered "
                         "(dates with and without a time zone?): recode them as text") from None
    lookup = {tuple(r): s for s, r in enumerate(index.itertuples(index=False, name=None))}
    sid = np.fromiter((lookup[tuple(r)] for r in sub.itertuples(index=False, name=None)),
                      dtype=np.int64, count=len(sub))
    return index, sid
