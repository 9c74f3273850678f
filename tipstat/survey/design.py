"""A declared survey design: weights, strata, clusters at each stage, finite-population
corrections or replicate weights, checked once.

:func:`declare_design` validates the microdata against the design (every problem named by
column and 1-based row number, never by the respondent's value) and returns a frozen
:class:`SurveyDesign` that :func:`tipstat.survey.survey_prevalence` estimates from.

Conventions (those of R's ``survey`` package, so that results can be compared with it):

* clusters are nested: a PSU code is read within its stratum (R's ``nest=TRUE``), a stage-2
  code within its PSU, and so on;
* a finite-population-correction column holds either population sizes (number of units of
  that stage in the stratum / parent unit; any value above 1) or sampling fractions (every
  value in (0, 1]); it must be constant within the stratum (stage 1) or the parent unit
  (later stages) and not smaller than the number of units sampled there;
* a weight of 0 is accepted: the respondent stays in the design (its PSU counts for the
  variance and the degrees of freedom) but contributes to no estimate; such rows are counted
  in :attr:`SurveyDesign.excluded` under ``"zero_weight"``. Negative or missing weights are
  errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, Problem

__all__ = ["REPLICATE_METHODS", "SINGLE_PSU", "SurveyDesign", "declare_design"]

#: Replicate-weight methods and the variance each one computes (``R`` replicates
#: ``theta_r``, their mean ``theta_bar``).
REPLICATE_METHODS = {
    "brr": "balanced repeated replication: V = (1/R) sum_r (theta_r - theta_bar)^2",
    "fay": "Fay's BRR with coefficient rho: V = 1/(R (1-rho)^2) sum_r (theta_r - theta_bar)^2",
    "jk1": "delete-one-PSU jackknife, unstratified: V = (1-f) (R-1)/R sum_r "
           "(theta_r - theta_bar)^2 (f: the stage-1 sampling fraction if an fpc is declared)",
    "jkn": "stratified delete-one-PSU jackknife: V = sum_h (1-f_h) (n_h-1)/n_h sum_{r in h} "
           "(theta_r - theta_bar)^2",
    "bootstrap": "bootstrap replicate weights: V = 1/(R-1) sum_r (theta_r - theta_bar)^2",
}

#: What to do with a stratum that has a single sampled PSU (R's ``survey.lonely.psu``).
SINGLE_PSU = {
    "fail": "raise an InputError naming the stratum (by its 1-based index) and the stage",
    "certainty": "the PSU is taken as sampled with certainty: the stratum adds no variance "
                 "(R's 'certainty' / 'remove')",
    "centre": "the PSU total is centred at the mean of all PSU totals instead of its stratum "
              "mean (R's 'adjust'); a later-stage unit alone in its parent unit adds nothing "
              "(it is centred at its own value, as in R's recursion)",
}

_SHOWN_ROWS = 5


def _rows_text(mask: np.ndarray) -> str:
    """1-based row numbers of ``mask``: the first few, then ``and N more``."""
    rows = np.flatnonzero(mask) + 1
    text = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    if len(rows) > _SHOWN_ROWS:
        text += f" and {len(rows) - _SHOWN_ROWS} more"
    return text


def _problem(column: str | None, mask: np.ndarray, expected: str) -> Problem:
    """A problem naming a column and rows (1-based), never a value."""
    n = int(mask.sum())
    return Problem(column, _rows_text(mask), None, f"{expected}; {n} row(s)")


def _as_columns(value: str | Sequence[str] | None, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InputError(f"declare_design: {name} must be a column name or a list of column names")


def _numeric(data: pd.DataFrame, column: str, problems: list[Problem], *,
             allow_missing: bool = False) -> np.ndarray:
    """Column as float; non-numeric and (unless allowed) missing cells become problems."""
    raw = data[column]
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    missing = raw.isna().to_numpy()
    bad = np.isnan(num) & ~missing
    if bad.any():
        problems.append(_problem(column, bad, "a number"))
    if missing.any() and not allow_missing:
        problems.append(_problem(column, missing, "a value (the cell is empty)"))
    return num


@dataclass(frozen=True)
class _Stage:
    """One sampling stage: the group each row's unit is drawn in, the unit, and the fraction."""

    group: np.ndarray       # int code per row: stratum (stage 1) or parent unit (later)
    unit: np.ndarray        # int code per row, unique over the whole sample
    n_units: np.ndarray     # per group: number of sampled units
    fraction: np.ndarray    # per group: sampling fraction n/N (0 = with replacement)
    unit_group: np.ndarray  # per unit: its group


@dataclass(frozen=True)
class SurveyDesign:
    """A survey sample with its declared design (the result of :func:`declare_design`).

    Attributes
    ----------
    data : pandas.DataFrame
        The microdata (a copy of what was declared; rows in the order given).
    weights : str
        The sampling-weight column.
    strata : str or None
        The stratum column (None: one stratum).
    psu : tuple of str
        Cluster columns, one per stage (empty: each row is its own PSU).
    fpc : tuple of str
        Finite-population-correction columns, one per stage (empty: with replacement).
    replicate_weights : tuple of str
        Replicate-weight columns (empty: Taylor linearisation).
    replicate_method : str or None
        One of :data:`REPLICATE_METHODS`.
    rho : float or None
        Fay coefficient (``replicate_method="fay"``).
    single_psu : str
        Rule for strata with one sampled PSU, one of :data:`SINGLE_PSU`.
    excluded : mapping of str to int
        Rows kept in the design that contribute to no estimate, by reason (``"zero_weight"``).
    df : int
        Degrees of freedom of the design: number of PSUs minus number of strata (Taylor), or
        the rank of the replicate-weight matrix minus 1 (replicates, as R's ``survey``).
    """

    data: pd.DataFrame
    weights: str
    strata: str | None
    psu: tuple[str, ...]
    fpc: tuple[str, ...]
    replicate_weights: tuple[str, ...]
    replicate_method: str | None
    rho: float | None
    single_psu: str
    excluded: Mapping[str, int]
    df: int
    _w: np.ndarray = field(repr=False, compare=False)
    _stages: tuple[_Stage, ...] = field(repr=False, compare=False)
    _rep: np.ndarray | None = field(repr=False, compare=False)
    _rep_scales: np.ndarray | None = field(repr=False, compare=False)

    @property
    def variance(self) -> str:
        """``"taylor"`` or the replicate method."""
        return self.replicate_method or "taylor"

    @property
    def n_strata(self) -> int:
        """Number of strata (1 if none was declared)."""
        return len(self._stages[0].n_units) if self._stages else 1

    @property
    def n_psu(self) -> int:
        """Number of sampled PSUs (rows, if no cluster was declared)."""
        return int(self._stages[0].n_units.sum()) if self._stages else len(self.data)

    def describe(self) -> pd.DataFrame:
        """The design in one small table (item, value): rows, strata, PSUs per stage, sum of
        weights, variance method, degrees of freedom, excluded rows.

        Examples
        --------
        >>> import pandas as pd
        >>> d = declare_design(pd.DataFrame({"w": [2.0, 2.0, 3.0, 3.0], "h": [1, 1, 2, 2]}),
        ...                    weights="w", strata="h")
        >>> d.describe().set_index("item").loc["degrees of freedom", "value"]
        2
        """
        items: list[tuple[str, Any]] = [("rows", len(self.data)),
                                        ("sum of weights", float(self._w.sum())),
                                        ("strata", self.n_strata)]
        for k, st in enumerate(self._stages, start=1):
            items.append((f"stage {k} units", int(st.n_units.sum())))
        items += [("variance", self.variance), ("degrees of freedom", self.df),
                  ("single PSU rule", self.single_psu)]
        if self.replicate_weights:
            items.append(("replicates", len(self.replicate_weights)))
        items += [(f"excluded: {k}", v) for k, v in self.excluded.items()]
        return pd.DataFrame(items, columns=["item", "value"])


def _codes(frame: pd.DataFrame) -> np.ndarray:
    """One int code per distinct row of ``frame`` (its columns taken together)."""
    return frame.groupby(list(frame.columns), sort=True, dropna=False,
                         observed=True).ngroup().to_numpy()


def declare_design(data: pd.DataFrame, *, weights: str, strata: str | None = None,
                   psu: str | Sequence[str] | None = None, fpc: str | Sequence[str] | None = None,
                   replicate_weights: str | Sequence[str] | None = None,
                   replicate_method: str | None = None, rho: float | None = None,
                   single_psu: str = "fail") -> SurveyDesign:
    """Declare the sampling design of survey microdata and check the data against it.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per respondent (e.g. from :func:`tipstat.survey.read_survey`).
    weights : str
        Sampling-weight column: numbers >= 0, none missing (0: kept in the design, counted in
        ``excluded["zero_weight"]``, contributes to no estimate).
    strata : str, optional
        Stratum column (no missing value).
    psu : str or list of str, optional
        Cluster column(s), one per stage (first the PSU, then the second-stage unit, ...);
        codes are nested (read within the stratum / parent unit). None: each row is a PSU.
    fpc : str or list of str, optional
        Finite-population correction per stage: population sizes (units of that stage in the
        stratum or parent unit) or sampling fractions in (0, 1]. Stages without one are taken
        as sampled with replacement, and stages below them add no variance.
    replicate_weights : str or list of str, optional
        Replicate-weight columns (a list), or a prefix (a string: every column starting with
        it, in file order). When given, variances come from the replicates.
    replicate_method : {"brr", "fay", "jk1", "jkn", "bootstrap"}, optional
        Required with ``replicate_weights``; see :data:`REPLICATE_METHODS`. ``"jkn"`` needs
        ``strata`` and ``psu`` (the stratum of each replicate is that of its deleted PSU).
    rho : float, optional
        Fay coefficient in (0, 1), required with ``replicate_method="fay"``.
    single_psu : {"fail", "certainty", "centre"}
        Rule for a stratum (or parent unit) with a single sampled unit that is not sampled
        with certainty; see :data:`SINGLE_PSU`.

    Returns
    -------
    SurveyDesign

    Raises
    ------
    InputError
        Every problem found, each naming the column, the 1-based row numbers (the first few
        and how many more) and what was expected; a respondent's value is never shown.

    Notes
    -----
    Degrees of freedom: ``#PSU - #strata`` for Taylor linearisation; the rank of the matrix of
    replicate weights minus 1 for replicate designs (as ``survey::degf``).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"h": [1, 1, 1, 2, 2, 2], "c": [1, 1, 2, 1, 2, 3],
    ...                    "w": [10.0, 10, 12, 8, 8, 9], "N": [40, 40, 40, 30, 30, 30]})
    >>> d = declare_design(df, weights="w", strata="h", psu="c", fpc="N")
    >>> d.n_strata, d.n_psu, d.df
    (2, 5, 3)
    """
    where = "declare_design"
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"{where}: data must be a pandas DataFrame")
    if single_psu not in SINGLE_PSU:
        raise InputError(f"{where}: single_psu={single_psu!r}; expected one of "
                         f"{', '.join(map(repr, SINGLE_PSU))}")
    psu_cols = _as_columns(psu, "psu")
    fpc_cols = _as_columns(fpc, "fpc")
    if isinstance(replicate_weights, str):
        rep_cols = tuple(c for c in map(str, data.columns) if c.startswith(replicate_weights))
        if not rep_cols:
            raise InputError(f"{where}: no column starts with the replicate-weight prefix "
                             f"{replicate_weights!r}")
    else:
        rep_cols = _as_columns(replicate_weights, "replicate_weights")
    if len(fpc_cols) > max(len(psu_cols), 1):
        raise InputError(f"{where}: {len(fpc_cols)} fpc column(s) for {max(len(psu_cols), 1)} "
                         "stage(s); expected at most one fpc column per stage")
    if rep_cols:
        if replicate_method not in REPLICATE_METHODS:
            raise InputError(f"{where}: replicate_method={replicate_method!r}; expected one of "
                             f"{', '.join(map(repr, REPLICATE_METHODS))} with replicate weights")
        if replicate_method == "fay" and not (isinstance(rho, (int, float))
                                              and 0 < float(rho) < 1):
            raise InputError(f"{where}: rho={rho!r}; Fay's method needs 0 < rho < 1")
        if replicate_method == "jkn" and (strata is None or not psu_cols):
            raise InputError(f"{where}: replicate_method='jkn' needs strata and psu (the stratum "
                             "of each replicate is that of the PSU it deletes)")
        if len(rep_cols) < 2:
            raise InputError(f"{where}: {len(rep_cols)} replicate-weight column; expected at "
                             "least 2")
    elif replicate_method is not None or rho is not None:
        raise InputError(f"{where}: replicate_method/rho given without replicate_weights")

    named = [("weights", weights)] + ([("strata", strata)] if strata is not None else [])
    named += [("psu", c) for c in psu_cols] + [("fpc", c) for c in fpc_cols]
    named += [("replicate_weights", c) for c in rep_cols]
    absent = [f"{role} column {col!r}" for role, col in named if col not in data.columns]
    if absent:
        raise InputError(f"{where}: not in the data: {', '.join(absent)}")
    if len(data) == 0:
        raise InputError(f"{where}: the data have no rows")

    data = data.copy()
    problems: list[Problem] = []
    w = _numeric(data, weights, problems)
    neg = w < 0
    if neg.any():
        problems.append(_problem(weights, neg, "a weight >= 0"))
    inf = np.isinf(w)
    if inf.any():
        problems.append(_problem(weights, inf, "a finite weight"))
    for col in ([strata] if strata is not None else []) + list(psu_cols):
        miss = data[col].isna().to_numpy()
        if miss.any():
            problems.append(_problem(col, miss, "a stratum or cluster code (the cell is empty)"))
    fpc_vals = [_numeric(data, c, problems) for c in fpc_cols]
    rep = None
    if rep_cols:
        rep = np.column_stack([_numeric(data, c, problems) for c in rep_cols])
        for j, c in enumerate(rep_cols):
            bad = rep[:, j] < 0
            if bad.any():
                problems.append(_problem(c, bad, "a replicate weight >= 0"))
    if problems:
        raise InputError(f"{where}: {len(problems)} problem(s) in the survey data", problems)

    # --- stages: group (stratum / parent unit) and unit codes, nested
    n = len(data)
    stratum = (_codes(data[[strata]]) if strata is not None else np.zeros(n, dtype=int))
    stages: list[_Stage] = []
    if not rep_cols or psu_cols or strata is not None:
        keys = pd.DataFrame({"_s": stratum})
        group = stratum
        levels = psu_cols if psu_cols else (None,)
        for k, col in enumerate(levels):
            keys[f"_u{k}"] = data[col].to_numpy() if col is not None else np.arange(n)
            unit = _codes(keys)
            n_groups = int(group.max()) + 1
            unit_group = np.zeros(int(unit.max()) + 1, dtype=int)
            unit_group[unit] = group
            n_units = np.bincount(unit_group, minlength=n_groups)
            fraction = np.zeros(n_groups)
            if k < len(fpc_vals):
                fraction = _fractions(fpc_vals[k], group, n_units, fpc_cols[k], k, problems)
            stages.append(_Stage(group, unit, n_units, fraction, unit_group))
            group = unit
        if problems:
            raise InputError(f"{where}: {len(problems)} problem(s) in the finite-population "
                             "corrections", problems)
        if not rep_cols:
            _check_single(stages, single_psu, psu_cols)

    rep_scales = None
    if rep is not None:
        df = int(np.linalg.matrix_rank(rep, tol=1e-5 * max(1.0, float(np.abs(rep).max())))) - 1
        rep_scales = _replicate_scales(replicate_method, rep, rho, stages, bool(fpc_cols))
    else:
        df = int(stages[0].n_units.sum() - len(stages[0].n_units))

    excluded = {"zero_weight": int((w == 0).sum())} if (w == 0).any() else {}
    return SurveyDesign(data=data, weights=weights, strata=strata, psu=psu_cols, fpc=fpc_cols,
                        replicate_weights=rep_cols, replicate_method=replicate_method,
                        rho=None if rho is None else float(rho), single_psu=single_psu,
                        excluded=MappingProxyType(excluded), df=df, _w=w, _stages=tuple(stages),
                        _rep=rep, _rep_scales=rep_scales)


def _fractions(values: np.ndarray, group: np.ndarray, n_units: np.ndarray, column: str,
               stage: int, problems: list[Problem]) -> np.ndarray:
    """Sampling fraction per group from an fpc column (sizes or fractions), with its checks."""
    where_group = "stratum" if stage == 0 else f"stage-{stage} unit"
    n_groups = len(n_units)
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    np.minimum.at(lo, group, values)
    np.maximum.at(hi, group, values)
    varies = (hi - lo) > 1e-9 * np.maximum(1.0, np.abs(hi))
    if varies.any():
        problems.append(_problem(column, varies[group],
                                 f"one finite-population correction per {where_group}"))
        return np.zeros(n_groups)
    bad = values <= 0
    if bad.any():
        problems.append(_problem(column, bad, "a population size or sampling fraction > 0"))
        return np.zeros(n_groups)
    if float(values.max()) <= 1.0:  # sampling fractions
        return lo
    size = lo
    small = size < n_units
    if small.any():
        problems.append(_problem(column, small[group], "a population size at least the number "
                                 f"of units sampled in the {where_group}"))
        return np.zeros(n_groups)
    return n_units / size


def _check_single(stages: Sequence[_Stage], rule: str, psu_cols: tuple[str, ...]) -> None:
    """Under ``single_psu="fail"``: an InputError for a group with one unit not sampled with
    certainty, naming the stage and the group's 1-based index (never its code)."""
    if rule != "fail":
        return
    reach = None  # per group of the stage: whether its variance enters (fractions above > 0)
    for k, st in enumerate(stages):
        lonely = (st.n_units == 1) & (st.fraction < 1 - 1e-12)
        if reach is not None:
            lonely &= reach
        reach = (st.fraction > 0)[st.unit_group] if reach is None else \
            ((st.fraction > 0) & reach)[st.unit_group]
        if not lonely.any():
            continue
        idx = np.flatnonzero(lonely) + 1
        shown = ", ".join(map(str, idx[:_SHOWN_ROWS]))
        more = f" and {len(idx) - _SHOWN_ROWS} more" if len(idx) > _SHOWN_ROWS else ""
        what = "stratum" if k == 0 else f"stage-{k} unit"
        unit = f"column {psu_cols[k]!r}" if k < len(psu_cols) else "each row a PSU"
        raise InputError(
            f"declare_design: {len(idx)} {what}(s) with a single sampled unit at stage {k + 1} "
            f"({unit}; {what} number {shown}{more}, counted in sorted order): its "
            "variance cannot be estimated. Declare single_psu='certainty' (it adds no "
            "variance) or 'centre' (centred at the mean of all units), or merge strata")


def _replicate_scales(method: str | None, rep: np.ndarray, rho: float | None,
                      stages: Sequence[_Stage], has_fpc: bool) -> np.ndarray:
    """Multiplier of each replicate's squared deviation (see :data:`REPLICATE_METHODS`); for
    jackknives with a declared stage-1 fpc, times ``1 - f`` (``1 - f_h``), as R's
    ``as.svrepdesign`` builds them."""
    r = rep.shape[1]
    if has_fpc and method not in ("jk1", "jkn"):
        raise InputError(f"declare_design: fpc with replicate_method={method!r}: a finite-"
                         "population correction is applied to jackknife replicates only "
                         "('jk1', 'jkn'); fold it into the replicate weights instead")
    if method == "jk1":
        scales = np.full(r, (r - 1) / r)
        if has_fpc:
            f = np.unique(stages[0].fraction)
            if len(f) != 1:
                raise InputError("declare_design: 'jk1' with an fpc needs one sampling "
                                 "fraction for the whole sample (use 'jkn' for strata)")
            scales *= 1.0 - f[0]
        return scales
    if method == "brr":
        return np.full(r, 1.0 / r)
    if method == "fay":
        return np.full(r, 1.0 / (r * (1.0 - float(rho)) ** 2))  # type: ignore[arg-type]
    if method == "bootstrap":
        return np.full(r, 1.0 / (r - 1))
    # jkn: the stratum of replicate j is that of the rows it deletes (replicate weight 0)
    st = stages[0]
    scales = np.empty(r)
    for j in range(r):
        deleted = rep[:, j] == 0
        groups = np.unique(st.group[deleted])
        if len(groups) != 1:
            raise InputError(
                f"declare_design: replicate-weight column number {j + 1} deletes rows of "
                f"{len(groups)} strata; 'jkn' expects each replicate to delete one PSU of "
                "one stratum (weight 0 on its rows)")
        nh = st.n_units[groups[0]]
        scales[j] = ((nh - 1) / nh if nh > 1 else 0.0) * (1.0 - st.fraction[groups[0]])
    return scales


def group_sum(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sums of the rows of ``values`` (2-D) by integer ``codes`` in ``0..n_groups-1`` (a sparse
    product: linear in the number of rows, unlike ``np.add.at``)."""
    from scipy import sparse

    m = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))),
                          shape=(n_groups, len(codes)))
    return np.asarray(m @ values)


def taylor_variance(design: SurveyDesign, z: np.ndarray) -> np.ndarray:
    """Design variance of the totals of the columns of ``z`` (influence values, one row per
    respondent) by Taylor linearisation, multistage as R's ``survey::svyrecvar``.

    Stage 1, stratum ``h`` with ``n_h`` sampled PSUs of ``N_h`` (``f_h = n_h/N_h``, 0 without
    fpc) and PSU totals ``t_hj = sum_{i in j} z_i``:

        V_1 = sum_h (1 - f_h) n_h/(n_h - 1) sum_j (t_hj - tbar_h)^2

    and each later stage adds the same sum computed within every sampled unit of the stage
    above (its units as the stratum), multiplied by the sampling fractions of the stages
    above it: ``V = V_1 + sum_j f_h V_2(j) + ...``. A stage without an fpc is with
    replacement: it ends the recursion. Strata with one unit follow ``design.single_psu``.

    Parameters
    ----------
    design : SurveyDesign
    z : array, shape (n,) or (n, k)
        Influence values, one row per row of ``design.data`` (zero outside a domain).

    Returns
    -------
    numpy.ndarray, shape (k,)
        The variance of ``z.sum(axis=0)`` under the design.

    Examples
    --------
    Two strata of two PSUs, with replacement: ``V = sum_h (t_h1 - t_h2)^2``.

    >>> import numpy as np, pandas as pd
    >>> d = declare_design(pd.DataFrame({"h": [1, 1, 2, 2], "w": [1.0] * 4}), weights="w",
    ...                    strata="h")
    >>> taylor_variance(d, np.array([1.0, 3.0, 2.0, 7.0])).tolist()
    [29.0]
    """
    z = np.asarray(z, dtype=float)
    if z.ndim == 1:
        z = z[:, None]
    total = np.zeros(z.shape[1])
    mult = None  # per group of the current stage: product of the fractions above it
    for k, st in enumerate(design._stages):
        n_unit = len(st.unit_group)
        t = group_sum(st.unit, z, n_unit)
        n_groups = len(st.n_units)
        gsum = group_sum(st.unit_group, t, n_groups)
        nu = st.n_units.astype(float)
        gmean = gsum / nu[:, None]
        dev = t - gmean[st.unit_group]
        lonely = st.n_units == 1
        if design.single_psu == "centre" and k == 0 and lonely.any():
            grand = t.sum(axis=0) / n_unit
            lone_units = lonely[st.unit_group]
            dev[lone_units] = t[lone_units] - grand
        ss = group_sum(st.unit_group, dev ** 2, n_groups)
        factor = np.where(lonely, 1.0, nu / np.maximum(nu - 1.0, 1.0)) * (1.0 - st.fraction)
        if not (design.single_psu == "centre" and k == 0):
            factor = np.where(lonely, 0.0, factor)
        factor = np.where(st.fraction >= 1 - 1e-12, 0.0, factor)
        if mult is not None:
            factor = factor * mult
        total += (ss * factor[:, None]).sum(axis=0)
        if not (st.fraction > 0).any():
            break
        # the groups of the next stage are this stage's units
        this = st.fraction if mult is None else st.fraction * mult
        mult = this[st.unit_group]
    return total


def replicate_variance(design: SurveyDesign, theta: np.ndarray,
                       theta_r: np.ndarray) -> np.ndarray:
    """Replicate variance: ``sum_r scale_r (theta_r - theta_bar)^2`` with ``theta_bar`` the mean
    of the replicates (R's default, ``survey.replicates.mse=FALSE``); ``scale_r`` as in
    :data:`REPLICATE_METHODS`. ``theta`` (the full-sample estimate) is not used by this
    centring; ``theta_r`` has one row per replicate and one column per statistic.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"w": [1.0, 1.0], "r1": [2.0, 0.0], "r2": [0.0, 2.0]})
    >>> d = declare_design(df, weights="w", replicate_weights=["r1", "r2"],
    ...                    replicate_method="brr")
    >>> replicate_variance(d, np.array([0.5]), np.array([[1.0], [0.0]])).tolist()
    [0.25]
    """
    theta_r = np.asarray(theta_r, dtype=float)
    centre = theta_r.mean(axis=0)
    scales = design._rep_scales
    assert scales is not None
    return (scales[:, None] * (theta_r - centre) ** 2).sum(axis=0)
