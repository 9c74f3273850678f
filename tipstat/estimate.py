"""`Estimate`: the one result type every tipstat estimator returns.

Maximum-likelihood, bootstrap and Bayesian estimators all fill the same core fields (``n_hat``,
``ci``, ``level``, ``n_observed``, ``method``, ``model``, ``status``, ``diagnostics``); fields
that do not apply to a method are ``nan`` / ``None``. ``draws`` holds bootstrap replicates or
posterior draws of N; ``idata`` an ArviZ ``InferenceData`` for Bayesian fits.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["STATUSES", "Diagnostics", "Estimate", "StratumCells"]

#: Possible values of :attr:`Estimate.status`.
STATUSES = {
    "ok": "estimate exists",
    "extended": "extended MLE (some fitted cells are zero); N-hat finite and unique",
    "does_not_exist": "the MLE does not exist (N-hat infinite)",
    "not_identifiable": "N is not identifiable under this model",
    "not_converged": "the fit did not converge",
    "failed": "the method raised an error (the message is in diagnostics)",
}


def _read_only(value: Any) -> Any:
    """A read-only view of a numpy array (no copy; the caller's array is left writeable)."""
    if isinstance(value, np.ndarray) and value.flags.writeable:
        value = value.view()
        value.flags.writeable = False
    return value


class Diagnostics(Mapping[str, Any]):
    """A read-only mapping of diagnostics (:data:`DIAGNOSTICS` documents the keys).

    Behaves as a ``dict`` for reading (``d[key]``, ``d.get``, ``in``, ``dict(d)``, ``{**d}``);
    item assignment raises ``TypeError``. Numpy arrays stored in it are read-only views. To
    change a result build a new one: ``dataclasses.replace(est, diagnostics={**est.diagnostics,
    "key": value})``.

    Examples
    --------
    >>> d = Diagnostics({"converged": True})
    >>> d["converged"], dict(d)
    (True, {'converged': True})
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = {str(k): _read_only(v) for k, v in (data or {}).items()}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Diagnostics({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Diagnostics, (dict(self._data),))

    def __eq__(self, other: object) -> bool:
        return dict(self._data) == dict(other) if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


#: Columns of :attr:`StratumCells.table` after the strata columns (``model`` only for
#: ``pooling="separate"``: each stratum's own model).
CELL_COLUMNS = ("observed", "n_hat", "undetected", "lower", "upper", "status")


@dataclass(frozen=True, eq=False, init=False, repr=False)
class StratumCells:
    """Per-stratum estimates of a stratified fit and their bootstrap replicates (immutable).

    The stratified estimator (:func:`tipstat.fit_stratified`) estimates each stratum ``s``
    (a combination of covariate levels) as ``N_s = n_s + mu_s0`` (observed plus fitted
    undetected), and the total as ``sum_s N_s``; margins over some strata are sums of cells,
    and their intervals are percentiles of the replicates summed the same way.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per stratum (a copy on every access): the strata columns (:attr:`strata`), then
        ``observed``, ``n_hat``, ``undetected``, ``lower``, ``upper``, ``status`` (and
        ``model`` when each stratum has its own; ``observed``, ``n_hat`` and ``status`` are
        required).
    replicates : numpy.ndarray or None
        Bootstrap replicates of every stratum's N, shape ``(n_draws, n_strata)``, columns in the
        row order of :attr:`table` (read-only; ``None`` without bootstrap).
    strata : tuple of str
        Names of the stratifying covariates (the first columns of :attr:`table`).
    lists : tuple of str
        The lists (sources) of the capture histories.
    missing : str
        How unknown covariate values were handled: ``"stratum"`` (a level of its own) or
        ``"em"`` (shared out over the known levels; ``observed`` then includes the shares).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> c = StratumCells(pd.DataFrame({"sex": ["F", "M"], "observed": [10.0, 5.0],
    ...     "n_hat": [14.0, 9.0], "undetected": [4.0, 4.0], "lower": [11.0, 6.0],
    ...     "upper": [20.0, 15.0], "status": ["ok", "ok"]}),
    ...     np.array([[13.0, 8.0], [15.0, 10.0]]), strata=["sex"], lists=["A", "B"])
    >>> c.n_strata, c.labels
    (2, ('sex=F', 'sex=M'))
    >>> c.draws.sum("stratum").values.tolist()   # xarray DataArray, dims (draw, stratum)
    [21.0, 25.0]
    """

    _table: pd.DataFrame
    replicates: np.ndarray | None
    strata: tuple[str, ...]
    lists: tuple[str, ...]
    missing: str

    def __init__(self, table: pd.DataFrame, replicates: np.ndarray | None = None, *,
                 strata: Sequence[str] = (), lists: Sequence[str] = (),
                 missing: str = "stratum") -> None:
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"StratumCells needs a DataFrame, got {type(table).__name__}")
        table = table.reset_index(drop=True).copy()
        missing_cols = [c for c in (*strata, "observed", "n_hat", "status")
                        if c not in table.columns]
        if missing_cols:
            raise ValueError(f"StratumCells: table has no column(s) {missing_cols}")
        if replicates is not None:
            replicates = np.asarray(replicates, dtype=float)
            if replicates.ndim != 2 or replicates.shape[1] != len(table):
                raise ValueError(f"replicates of shape {replicates.shape}: expected (n_draws, "
                                 f"{len(table)}) for {len(table)} strata")
            replicates = _read_only(replicates)
        for name, value in (("_table", table), ("replicates", replicates),
                            ("strata", tuple(str(v) for v in strata)),
                            ("lists", tuple(str(v) for v in lists)), ("missing", str(missing))):
            object.__setattr__(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_cells_from, (self._table, self.replicates, self.strata, self.lists,
                              self.missing))

    @property
    def table(self) -> pd.DataFrame:
        """The per-stratum table (a copy: the result itself never changes)."""
        return self._table.copy()

    @property
    def n_strata(self) -> int:
        """Number of strata (rows of :attr:`table`)."""
        return len(self._table)

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per stratum, ``"sex=F, age_group=Y0T17"`` (``"total"`` when unstratified)."""
        if not self.strata:
            return ("total",) * self.n_strata
        cols = [self._table[s].astype(str).tolist() for s in self.strata]
        return tuple(", ".join(f"{s}={v}" for s, v in zip(self.strata, vals, strict=True))
                     for vals in zip(*cols, strict=True))

    @property
    def draws(self) -> Any:
        """The replicates as a labelled array: an ``xarray.DataArray`` with dims
        ``(draw, stratum)``, coordinate ``stratum`` (:attr:`labels`) and one coordinate per
        stratifying covariate along ``stratum`` (so ``draws.groupby("sex").sum()`` gives
        margins). Without xarray installed: the read-only numpy array :attr:`replicates`.
        ``None`` without bootstrap."""
        if self.replicates is None:
            return None
        try:
            import xarray as xr
        except ImportError:  # pragma: no cover - xarray comes with ArviZ
            return self.replicates
        coords: dict[str, Any] = {"draw": np.arange(self.replicates.shape[0]),
                                  "stratum": list(self.labels)}
        for s in self.strata:
            coords[s] = ("stratum", self._table[s].to_numpy())
        return xr.DataArray(self.replicates, dims=("draw", "stratum"), coords=coords,
                            name="N")

    def __repr__(self) -> str:
        reps = "no" if self.replicates is None else str(self.replicates.shape[0])
        return (f"StratumCells({self.n_strata} strata by {list(self.strata)}, {reps} replicates, "
                f"missing={self.missing!r})")


def _cells_from(table: pd.DataFrame, replicates: np.ndarray | None, strata: tuple[str, ...],
                lists: tuple[str, ...], missing: str) -> StratumCells:
    return StratumCells(table, replicates, strata=strata, lists=lists, missing=missing)


def _fmt(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:,.{digits}f}"


@dataclass(eq=False, frozen=True)
class Estimate:
    """Estimated population size with its interval, diagnostics and provenance.

    Immutable: a result is never changed after it is built (fields cannot be assigned,
    ``diagnostics`` is a read-only :class:`Diagnostics` mapping, ``draws`` a read-only array).
    Derive a changed copy with ``dataclasses.replace(est, field=value)``.

    Attributes
    ----------
    n_hat : float
        Estimated total N (observed plus undetected). ``inf`` when the MLE does not exist,
        ``nan`` when N is not identifiable; never a meaningless huge number.
    ci : tuple of float
        ``(lower, upper)`` interval for N at level :attr:`level`, of kind :attr:`ci_method`.
    level : float
        Interval coverage, e.g. 0.95.
    n_observed : float
        Persons seen on at least one list.
    method : str
        Estimator, e.g. ``"loglinear"``.
    model : str
        Human-readable model, e.g. ``"[LA:NG, PF:GO]"``.
    status : str
        One of :data:`STATUSES`.
    ci_method : str
        ``"profile"``, ``"wald"``, ``"bca"``, ``"percentile"``, ``"posterior"``...
    se : float
        Standard error of N-hat (posterior SD for Bayesian estimators).
    deviance, df, aic, bic, loglik : float
        Goodness of fit in Rcapture's conventions (Poisson over the observable cells).
    n_params : int
        Number of model parameters (design columns).
    diagnostics : Diagnostics
        Method-specific: convergence, existence details, R-hat/ESS, candidate-model tables...
        (read-only; every key is documented in :data:`DIAGNOSTICS`).
    draws : numpy.ndarray or None
        Bootstrap replicates or posterior draws of N (read-only).
    idata : arviz.InferenceData or None
        Posterior of Bayesian estimators, with N as a variable.
    seed : int or None
        The seed of every random step that produced this result.
    warnings : tuple of str
        Warnings raised while estimating (also issued as ``TipstatWarning``).
    cells : StratumCells or None
        Per-stratum estimates and their replicates for stratified estimators
        (:func:`tipstat.fit_stratified`); ``None`` otherwise.

    Examples
    --------
    >>> import tipstat
    >>> est = tipstat.fit_loglinear(tipstat.datasets.load("UK_5"), "independence", ci="wald")
    >>> round(est.n_hat, 1), est.status
    (13444.1, 'ok')
    """

    n_hat: float
    ci: tuple[float, float]
    level: float
    n_observed: float
    method: str
    model: str
    status: str = "ok"
    ci_method: str = ""
    se: float = math.nan
    deviance: float = math.nan
    df: float = math.nan
    aic: float = math.nan
    bic: float = math.nan
    loglik: float = math.nan
    n_params: int | None = None
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    draws: np.ndarray | None = None
    idata: Any = None
    seed: int | None = None
    warnings: tuple[str, ...] = ()
    cells: StratumCells | None = None

    def __post_init__(self) -> None:
        diagnostics = self.diagnostics
        if not isinstance(diagnostics, Diagnostics):
            object.__setattr__(self, "diagnostics", Diagnostics(diagnostics))
        if self.draws is not None:
            object.__setattr__(self, "draws", _read_only(np.asarray(self.draws)))
        object.__setattr__(self, "ci", tuple(self.ci))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    # ------------------------------------------------------------------ derived
    @property
    def undetected(self) -> float:
        """Estimated persons on no list: ``n_hat - n_observed``."""
        return self.n_hat - self.n_observed

    @property
    def ci_undetected(self) -> tuple[float, float]:
        return (self.ci[0] - self.n_observed, self.ci[1] - self.n_observed)

    @property
    def ok(self) -> bool:
        """True when N-hat is a finite, identified estimate."""
        return self.status in ("ok", "extended") and math.isfinite(self.n_hat)

    @property
    def coefficients(self) -> pd.DataFrame | None:
        """Table of log-linear coefficients (estimate, SE, z, p) where the method has one."""
        coef = self.diagnostics.get("coefficients")
        if coef is None:
            return None
        names, values, se = coef
        from scipy.stats import norm

        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.asarray(values) / np.asarray(se)
        return pd.DataFrame(
            {"estimate": values, "se": se, "z": z, "p": 2 * norm.sf(np.abs(z))},
            index=pd.Index(names, name="term"),
        )

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        """The core fields as plain Python values (for JSON)."""
        return {
            "method": self.method,
            "model": self.model,
            "status": self.status,
            "n_observed": float(self.n_observed),
            "n_hat": float(self.n_hat),
            "undetected": float(self.undetected),
            "lower": float(self.ci[0]),
            "upper": float(self.ci[1]),
            "level": float(self.level),
            "ci_method": self.ci_method,
            "se": float(self.se),
            "deviance": float(self.deviance),
            "df": float(self.df),
            "aic": float(self.aic),
            "bic": float(self.bic),
            "seed": self.seed,
        }

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame of the core fields (rows of several estimates concatenate)."""
        return pd.DataFrame([self.to_dict()])

    def summary(self) -> str:
        """A readable multi-line summary."""
        pct = f"{100 * self.level:g}%"
        lines = [
            f"{self.method}: {self.model}",
            f"  status      {self.status} - {STATUSES.get(self.status, '')}",
            f"  observed    {_fmt(float(self.n_observed), 0)}",
            f"  N-hat       {_fmt(self.n_hat)}   (undetected {_fmt(self.undetected)})",
            f"  {pct} CI     [{_fmt(self.ci[0])}, {_fmt(self.ci[1])}] ({self.ci_method})",
        ]
        if not math.isnan(self.se):
            lines.append(f"  SE          {_fmt(self.se)}")
        if not math.isnan(self.deviance):
            lines.append(f"  deviance    {self.deviance:.4f} on {self.df:g} df;  "
                         f"AIC {self.aic:.4f}  BIC {self.bic:.4f}")
        reason = self.diagnostics.get("reason")
        if reason and self.status != "ok":
            lines.append(f"  note        {reason}")
        lines += [f"  warning     {w}" for w in self.warnings]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Estimate(method={self.method!r}, model={self.model!r}, status={self.status!r}, "
                f"n_hat={self.n_hat:.6g}, ci=({self.ci[0]:.6g}, {self.ci[1]:.6g}), "
                f"level={self.level})")

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in [
                ("method", self.method),
                ("model", self.model),
                ("status", f"{self.status} ({STATUSES.get(self.status, '')})"),
                ("observed", _fmt(float(self.n_observed), 0)),
                ("N-hat", _fmt(self.n_hat)),
                ("undetected", _fmt(self.undetected)),
                (f"{100 * self.level:g}% interval ({self.ci_method})",
                 f"[{_fmt(self.ci[0])}, {_fmt(self.ci[1])}]"),
                ("SE", _fmt(self.se)),
                ("deviance / df", f"{_fmt(self.deviance, 3)} / {_fmt(float(self.df), 0)}"),
                ("AIC / BIC", f"{_fmt(self.aic, 3)} / {_fmt(self.bic, 3)}"),
            ]
        )
        warn = "".join(f"<p style='color:#a00'>{html.escape(w)}</p>" for w in self.warnings)
        return f"<div class='tipstat-estimate'><table>{rows}</table>{warn}</div>"

    def plot(self, ax: Any = None) -> Any:
        """Draw the estimate: the distribution of ``draws`` if any, else point and interval.

        Needs matplotlib (``pip install tipstat[plot]``). Returns the Axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 2.5))
        if self.draws is not None and len(self.draws):
            ax.hist(np.asarray(self.draws), bins=50, color="#8aa", alpha=0.8)
        if math.isfinite(self.n_hat):
            ax.axvline(self.n_hat, color="k", lw=2, label=f"N-hat {self.n_hat:,.0f}")
        lo, hi = self.ci
        if math.isfinite(lo) and math.isfinite(hi):
            ax.axvspan(lo, hi, color="#48c", alpha=0.2, label=f"{100 * self.level:g}% interval")
        ax.axvline(float(self.n_observed), color="#a33", ls="--", label="observed")
        ax.set_xlabel("population size N")
        ax.set_title(f"{self.method}: {self.model}")
        ax.legend(loc="best", fontsize="small")
        return ax
