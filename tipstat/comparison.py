"""Every method side by side: the sensitivity table every MSE report needs.

:func:`compare` runs a set of methods on the same :class:`~tipstat.CaptureHistories` and returns
a :class:`ComparisonTable` (a pandas DataFrame) with one row per method and model, in the columns
users of Rcapture and SparseMSE already read: N-hat, interval and its kind, status, deviance, df,
AIC and BIC where they are defined, and a short diagnostics note. :func:`leave_one_list_out`
refits with each list left out.

A *method* (:data:`METHODS`) is a registered estimator (:mod:`tipstat.models.registry`) with a
model specification and options fixed: ``"independence"`` is ``fit_loglinear`` with terms
``"independence"``. Methods whose estimator does not import in this installation are skipped by
the ``"default"`` and ``"all"`` sets (the table says which, in ``table.attrs["skipped"]``) and
refused with a clear message when asked for by name. Users can add their own with
:func:`register_method`.

This module computes; it draws nothing. The table's HTML and JSON forms and its forest plot are
in :mod:`tipstat.report.tables` and :func:`tipstat.report.plots.plot_forest`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ._checks import DEFAULT_SEED, check_level, check_seed
from ._progress import progress_bar
from .errors import InputError
from .estimate import STATUSES, Estimate
from .histories import CaptureHistories
from .models.registry import ESTIMATORS

__all__ = ["COLUMNS", "METHODS", "ComparisonTable", "Method", "available_methods", "compare",
           "diagnostic_note", "leave_one_list_out", "register_method"]

#: Columns of a comparison table, in order (stable: the CLI's ``--json`` and the report use them).
COLUMNS = (
    "method", "model", "family", "status", "n_observed", "n_hat", "lower", "upper", "level",
    "ci_method", "se", "deviance", "df", "aic", "bic", "diagnostics", "warnings",
    "warning_codes", "seconds", "reliability",
)

#: ``run(h, options) -> list of Estimate``: a method's own way to run (``options`` holds
#: ``level``, ``seed`` and ``progress``).
Runner = Callable[[CaptureHistories, dict[str, Any]], list[Estimate]]


@dataclass(frozen=True)
class Method:
    """One entry of the method list: a registered estimator with its model specification(s)
    and options fixed.

    Attributes
    ----------
    name : str
        Key, used in ``compare(h, methods=[...])`` and ``tipstat estimate --method``.
    label : str
        Human-readable name shown in tables.
    family : str
        ``"log-linear"``, ``"model selection"``, ``"heterogeneity"`` or ``"Bayesian"``.
    estimator : str
        The registered estimator it runs (:data:`tipstat.models.registry.ESTIMATORS`).
    runner : callable, optional
        ``runner(h, options) -> list of Estimate`` instead of calling ``estimator`` (for
        user-defined methods); ``options`` holds ``level``, ``seed`` and ``progress``.
    specs : tuple
        Model specifications passed positionally, one row each (empty: the estimator's
        default).
    options : mapping
        Further keyword options of the estimator.
    default : bool
        Part of ``methods="default"`` (fast enough to run on every table).
    default_max_lists : int, optional
        In the default set only for tables with at most this many lists (run time grows fast
        with the number of lists); asking for the method by name always runs it.
    """

    name: str
    label: str
    family: str
    estimator: str
    runner: Runner | None = None
    specs: tuple[Any, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    default: bool = True
    default_max_lists: int | None = None

    def available(self) -> bool:
        """True when the registered estimator this method needs imports here."""
        entry = ESTIMATORS.get(self.estimator)
        return entry is not None and entry.available()

    def run(self, h: CaptureHistories, *, level: float = 0.95, seed: int = DEFAULT_SEED,
            progress: bool = False) -> list[Estimate]:
        """The method's estimates on ``h`` (one per model specification)."""
        if self.runner is not None:
            return list(self.runner(h, {"level": level, "seed": seed, "progress": progress}))
        entry = ESTIMATORS[self.estimator]
        specs = [(s,) for s in self.specs] or [()]
        return [entry.call(h, *s, level=level, seed=seed, progress=progress, **self.options)
                for s in specs]


#: The method list, in display order. See :func:`register_method`.
METHODS: dict[str, Method] = {}


def register_method(method: Method, *, replace: bool = False) -> None:
    """Add a method to the list used by :func:`compare` and the command line.

    Parameters
    ----------
    method : Method
        The entry.
    replace : bool
        Allow replacing an entry of the same name.

    Examples
    --------
    >>> from tipstat.comparison import Method, register_method, METHODS
    >>> register_method(Method("mine", "log-linear [A:B]", "log-linear", "fit_loglinear",
    ...                        specs=("A:B",), default=False))
    >>> "mine" in METHODS
    True
    >>> del METHODS["mine"]
    """
    if method.name in METHODS and not replace:
        raise InputError(f"a method named {method.name!r} is already registered "
                         "(pass replace=True to replace it)")
    METHODS[method.name] = method


#: Rcapture's closed-population models in the comparison. The behavioural models Mb and Mbh are
#: left out: they assume the lists were made one after another in the order given, which
#: agencies' lists are not (``tipstat.closedp`` still lists them).
_CLOSEDP = ("M0", "Mt", "Mh Chao (LB)", "Mh Poisson2", "Mh Darroch", "Mh Gamma3.5",
            "Mth Chao (LB)", "Mth Poisson2", "Mth Darroch", "Mth Gamma3.5")

for _m in (
    Method("bic_average", "tipstat's default: BIC model average over two-way log-linear models",
           "model selection", "estimate_population"),
    Method("independence", "log-linear, independence (Mt)", "log-linear", "fit_loglinear",
           specs=("independence",)),
    Method("all2", "log-linear, all two-way interactions", "log-linear", "fit_loglinear",
           specs=("all2",)),
    Method("stepwise", "stepwise selection (Chan, Silverman & Vincent 2021)", "model selection",
           "select_loglinear", specs=("stepwise",)),
    Method("bhs", "AIC stepwise keeping Wald p < 0.05 terms (Bales, Hesketh & Silverman 2015)",
           "model selection", "select_loglinear", specs=("bhs",)),
    # exhaustive over all 2**(K(K-1)/2) two-way models: 1,024 at 5 lists, 32,768 at 6
    Method("aic", "AIC model selection", "model selection", "select_loglinear", specs=("aic",),
           default_max_lists=5),
    Method("bic", "BIC model selection", "model selection", "select_loglinear", specs=("bic",),
           default_max_lists=5),
    Method("closedp", "heterogeneity models (Rcapture closedp), with profile intervals",
           "heterogeneity", "fit_closedp_model", specs=_CLOSEDP),
    Method("graphical", "Bayesian decomposable graphical model averaging", "Bayesian",
           "fit_graphical", default_max_lists=5),
    Method("bootstrap", "stepwise selection, BCa bootstrap with re-selection", "model selection",
           "bootstrap", specs=("stepwise",), default=False),
    Method("latent_class", "Bayesian latent-class model (LCMCR)", "Bayesian", "fit_latent_class",
           default=False),
    Method("bayes_loglinear", "Bayesian log-linear, shrinkage priors", "Bayesian",
           "fit_bayes_loglinear", default=False),
    Method("loglinear_bma", "Bayesian averaging over log-linear models (conting)", "Bayesian",
           "fit_loglinear_bma", default=False),
):
    register_method(_m)


def available_methods() -> list[str]:
    """Names of the methods whose estimator imports in this installation.

    Examples
    --------
    >>> from tipstat.comparison import available_methods
    >>> available_methods()[:3]
    ['bic_average', 'independence', 'all2']
    """
    return [name for name, m in METHODS.items() if m.available()]


def _resolve(methods: str | Sequence[str], k: int) -> tuple[list[Method], list[str]]:
    if isinstance(methods, str) and methods in ("default", "all"):
        chosen = [m for m in METHODS.values() if methods == "all" or (
            m.default and (m.default_max_lists is None or k <= m.default_max_lists))]
        return [m for m in chosen if m.available()], [m.name for m in chosen if not m.available()]
    names = [methods] if isinstance(methods, str) else list(methods)
    if not names:
        raise InputError("methods: no method given; use 'default', 'all' or names from "
                         f"{list(METHODS)}")
    out = []
    for name in names:
        if name not in METHODS:
            raise InputError(f"methods: unknown method {name!r}; known: {', '.join(METHODS)} "
                             "(or 'default', 'all')")
        m = METHODS[name]
        if not m.available():
            raise InputError(f"methods: {name!r} needs tipstat.{m.estimator}, which does not "
                             "import in this installation; available: "
                             f"{', '.join(available_methods())}")
        out.append(m)
    return out, []


# ---------------------------------------------------------------------------- the table
def _first(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def diagnostic_note(est: Estimate) -> str:
    """A one-line summary of an estimate's diagnostics (existence, convergence, R-hat, ESS).

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.comparison import diagnostic_note
    >>> diagnostic_note(tipstat.fit_loglinear(tipstat.datasets.load("Korea_3"), "all2"))[:25]
    'the MLE does not exist: f'
    """
    d = est.diagnostics or {}
    parts: list[str] = []
    if est.status != "ok":
        parts.append(str(d.get("reason") or STATUSES.get(est.status, est.status)))
    if d.get("converged") is False and est.status != "not_converged":
        parts.append("did not converge")
    zero = d.get("zero_fitted_cells")
    if isinstance(zero, int | np.integer) and zero > 0 and est.status == "ok":
        parts.append(f"{int(zero)} zero fitted cell(s)")
    rhat = d.get("rhat")
    if rhat is not None:
        try:
            parts.append(f"R-hat {float(rhat):.3f}")
        except (TypeError, ValueError):
            pass
    ess = _first(d, "ess_bulk", "ess")
    if ess is not None:
        try:
            parts.append(f"ESS {float(ess):,.0f}")
        except (TypeError, ValueError):
            pass
    n_models = d.get("n_models")
    if n_models is not None:
        parts.append(f"{n_models} candidate models")
    if est.draws is not None and len(est.draws) and "ESS" not in " ".join(parts):
        parts.append(f"{len(est.draws):,} draws")
    if not parts:
        if est.status == "ok":
            parts.append("converged; estimate exists" if d.get("converged") else "estimate exists")
        else:
            parts.append(est.status)
    return "; ".join(parts)


class ComparisonTable(pd.DataFrame):
    """The result of :func:`compare`: a DataFrame with one row per method and model.

    Columns are :data:`COLUMNS`. The :class:`~tipstat.Estimate` of each row is kept in
    ``table.estimates`` (same order as the rows), so draws, posterior and coefficients stay
    reachable. ``table.attrs`` holds ``n_observed``, ``lists``, ``level``, ``seed`` and
    ``skipped`` (methods of the requested set whose estimator does not import here). Its HTML
    and JSON forms are :func:`tipstat.report.tables.comparison_html` and
    :func:`~tipstat.report.tables.comparison_records`; its forest plot
    :func:`tipstat.report.plots.plot_forest`.
    """

    _metadata: ClassVar[list[str]] = ["estimates"]

    @property
    def _constructor(self) -> type[ComparisonTable]:
        return ComparisonTable

    def best(self, criterion: str = "aic") -> pd.Series:
        """The row with the smallest ``criterion`` (``"aic"`` or ``"bic"``) among existing
        estimates of single models (a model average reports its best model's criterion but is
        not that model, so it is not a candidate)."""
        if criterion not in ("aic", "bic"):
            raise InputError(f"criterion={criterion!r}: expected 'aic' or 'bic'")
        # a model average says so in its diagnostics (``model_averaged``); rows keep the index
        # of their Estimate in ``self.estimates`` when the table is filtered
        ests = getattr(self, "estimates", None) or []
        averaged = pd.Series([isinstance(i, int | np.integer) and 0 <= i < len(ests)
                              and bool(ests[i].diagnostics.get("model_averaged", False))
                              for i in self.index], index=self.index, dtype=bool)
        ok = self[self["status"].isin(["ok", "extended"]) & np.isfinite(self[criterion])
                  & ~averaged]
        if ok.empty:
            raise InputError(f"no row of this comparison has a finite {criterion.upper()}")
        return ok.loc[ok[criterion].idxmin()]


def _row(est: Estimate, family: str, seconds: float) -> dict[str, Any]:
    core = est.to_dict()
    # the Caveats themselves (each a str, its message, with .code and .values): the HTML and
    # JSON renderings show code and message, the CSV the codes
    extra = {"family": family, "diagnostics": diagnostic_note(est),
             "warnings": tuple(est.warnings),
             "warning_codes": "; ".join(w.code for w in est.warnings),
             "seconds": seconds, "reliability": None}
    return {c: extra[c] if c in extra else core[c] for c in COLUMNS}


def _reliability(h: CaptureHistories, method: Method, level: float, seed: int) -> str:
    """Binette & Steorts' internal-consistency rating of a method on ``h``
    (:func:`tipstat.validate.internal_consistency`): ``"consistent"``, ``"questionable"``,
    ``"inconsistent"`` or ``"not_assessed"``, with the mean log relative bias."""
    from .validate import internal_consistency

    if h.k < 3:
        return "not_assessed (fewer than 3 lists)"

    def one(sub: CaptureHistories) -> Estimate:
        return method.run(sub, level=level, seed=seed)[0]

    ind = internal_consistency(h, one, level=level).indicator
    bias = ind.get("mean_log_rel_bias")
    if bias is None or not math.isfinite(bias):
        return str(ind["rating"])
    return f"{ind['rating']} (mean log relative bias {bias:+.2f}, coverage {ind['coverage']:.0%})"


def compare(
    h: CaptureHistories,
    methods: str | Sequence[str] = "default",
    *,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
    reliability: bool = False,
) -> ComparisonTable:
    """Estimate N with several methods and put the results side by side.

    Each method is run on the same table; a method that fails with an internal error becomes a
    row with status ``"failed"`` and the error in ``diagnostics`` (the other rows still come),
    while bad input (:class:`~tipstat.InputError`) stops the comparison.

    Parameters
    ----------
    h : CaptureHistories
        Unstratified capture histories (use ``h.pooled()`` or one stratum of ``h.by_stratum()``).
    methods : "default", "all" or list of str
        Method names (:data:`METHODS`): ``"bic_average"`` (tipstat's default estimator,
        :func:`tipstat.estimate_population`; the first row), ``"independence"``, ``"all2"``,
        ``"stepwise"``, ``"bhs"``, ``"aic"``, ``"bic"``, ``"closedp"``, ``"graphical"``,
        ``"bootstrap"``, ``"latent_class"``, ``"bayes_loglinear"``, ``"loglinear_bma"``.
        ``"default"`` is every fast method available here (AIC/BIC selection and
        graphical model averaging up to 5 lists, where they take about a second; name them to
        run them on more lists); ``"all"`` adds the bootstrap and MCMC ones and the searches at
        any number of lists.
    level : float
        Interval coverage passed to every method.
    seed : int
        Passed to every method that has a random step (bootstrap, MCMC), so the table is
        reproducible (default :data:`tipstat.models.DEFAULT_SEED`).
    progress : bool
        Show a progress bar over methods (and let methods that support it show theirs).
    reliability : bool
        Also run the reliability check of Binette & Steorts (2022) for each method that gives
        one estimate (each list in turn is a population of known size, estimated from the
        others; ``tipstat.validate.internal_consistency``) and put its rating in the
        ``reliability`` column. Costs K more fits per method.

    Returns
    -------
    ComparisonTable
        One row per method and model, columns :data:`COLUMNS`: ``n_hat``, ``lower``,
        ``upper`` (interval of kind ``ci_method``), ``status``, ``aic``/``bic``/``deviance``/``df``
        where the method has a likelihood (``nan`` otherwise), ``diagnostics`` (one-line note),
        ``warnings`` (a tuple of :class:`~tipstat.estimate.Caveat`: each is its message, with
        ``code`` and ``values``), ``warning_codes`` (their codes, ``"; "``-separated: what
        the data cannot support, at a glance), ``seconds``, ``reliability`` (with
        ``reliability=True``, else ``None``). A row whose ``status`` is ``lower_bound``,
        ``does_not_exist`` or ``not_identifiable`` is not an estimate of N, whatever its
        ``n_hat`` column holds: read the status first.

    Examples
    --------
    >>> import tipstat
    >>> table = tipstat.compare(tipstat.datasets.load("UK_5"), ["independence", "all2"])
    >>> table["status"].tolist()
    ['ok', 'extended']
    >>> round(table.n_hat.iloc[0])
    13444
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"compare: expected tipstat.CaptureHistories, got {type(h).__name__}")
    if h.n_strata > 1:
        raise InputError(f"compare: these capture histories have {h.n_strata} strata "
                         f"({', '.join(h.strata)}); compare the pooled table (h.pooled()) or one "
                         "stratum at a time (h.by_stratum())")
    check_level(level, "compare")
    seed = check_seed(seed, "compare")
    chosen, skipped = _resolve(methods, h.k)
    rows: list[dict[str, Any]] = []
    estimates: list[Estimate] = []
    with progress_bar(len(chosen), "methods", enabled=progress) as advance:
        for m in chosen:
            t0 = time.perf_counter()
            try:
                results = m.run(h, level=level, seed=seed, progress=progress)
            except InputError:
                raise
            except Exception as exc:  # one failing method must not hide the others
                failed = Estimate(n_hat=math.nan, ci=(math.nan, math.nan), level=level,
                                  n_observed=float(h.n_observed), method=m.name, model=m.label,
                                  status="failed",
                                  diagnostics={"reason": f"{type(exc).__name__}: {exc}"},
                                  warnings=(f"{m.name} failed: {type(exc).__name__}: {exc}",))
                results = [failed]
            seconds = (time.perf_counter() - t0) / max(len(results), 1)
            rating = None
            if reliability and len(results) == 1 and results[0].status != "failed":
                try:
                    rating = _reliability(h, m, level, seed)
                except InputError as exc:
                    rating = f"not_assessed ({exc})"
            for est in results:
                rows.append(_row(est, m.family, seconds) | {"reliability": rating})
                estimates.append(est)
            advance(m.name)
    table = ComparisonTable(pd.DataFrame(rows, columns=list(COLUMNS)))
    table.estimates = estimates
    table.attrs.update({"n_observed": float(h.n_observed), "lists": list(h.lists),
                        "level": level, "seed": seed, "skipped": skipped})
    return table


def leave_one_list_out(
    h: CaptureHistories,
    methods: str | Sequence[str] = ("independence",),
    *,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Refit with each list left out in turn: does one list drive the estimate?

    A classical MSE sensitivity check. Persons seen only on the list left out are no longer
    observed; their number is in the ``lost`` column (nothing disappears silently).

    Parameters
    ----------
    h : CaptureHistories
        Unstratified histories over at least three lists.
    methods, level, seed
        As in :func:`compare`, for each reduced table.

    Returns
    -------
    pandas.DataFrame
        One row per list left out and method/model: ``left_out``, ``observed``, ``lost``, then
        the columns of :func:`compare` (``method``, ``model``, ``status``, ``n_hat``, ``lower``,
        ``upper``, ...). ``attrs["methods"]`` names the methods refitted.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.comparison import leave_one_list_out
    >>> t = leave_one_list_out(tipstat.datasets.load("UK_5"))
    >>> t.loc[t.left_out == "GP", ["observed", "lost"]].values.tolist()
    [[2428.0, 316.0]]
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"leave_one_list_out: expected tipstat.CaptureHistories, got "
                         f"{type(h).__name__}")
    if h.k < 3:
        raise InputError(f"leave_one_list_out: needs at least three lists; the table has {h.k}")
    import warnings

    from .errors import TipstatWarning

    parts = []
    for name in h.lists:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TipstatWarning)   # the loss is the `lost` column
            sub = h.drop_lists([name])
        table = pd.DataFrame(compare(sub, methods, level=level, seed=seed))
        table.insert(0, "lost", float(h.n_observed - sub.n_observed))
        table.insert(0, "observed", float(sub.n_observed))
        table.insert(0, "left_out", name)
        parts.append(table)
    out = pd.concat(parts, ignore_index=True)
    out.attrs["methods"] = [methods] if isinstance(methods, str) else list(methods)
    return out
