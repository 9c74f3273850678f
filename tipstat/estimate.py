"""`Estimate`: the one result type every tipstat estimator returns.

Maximum-likelihood, bootstrap and Bayesian estimators all fill the same core fields (``n_hat``,
``ci``, ``level``, ``n_observed``, ``method``, ``model``, ``status``, ``diagnostics``); fields
that do not apply to a method are ``nan`` / ``None``. ``draws`` holds bootstrap replicates or
posterior draws of N; ``idata`` an ArviZ ``InferenceData`` for Bayesian fits.

Results are immutable (derive changed copies with ``dataclasses.replace``). Stratified fits
carry their per-stratum estimates as :class:`StratumCells` in ``Estimate.cells``; estimators
that fit several models at once (:func:`tipstat.closedp`) return an :class:`EstimateTable`.
Every ``diagnostics`` key is documented, with its type, in :data:`DIAGNOSTICS`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._format import number

__all__ = ["CAVEATS", "DIAGNOSTICS", "STATUSES", "Caveat", "DiagnosticKey", "Diagnostics",
           "Estimate", "EstimateTable", "StratumCells", "diagnostic_type_ok", "merge_caveats"]

#: Possible values of :attr:`Estimate.status`.
STATUSES = {
    "ok": "estimate exists",
    "extended": "extended MLE (some fitted cells are zero); N-hat finite and unique",
    "does_not_exist": "the MLE does not exist (N-hat infinite)",
    "not_identifiable": "N is not identifiable under this model",
    "lower_bound": "the data support only a lower bound on N (the interval's upper end is "
                   "not supported; see the warnings)",
    "not_converged": "the fit did not converge",
    "failed": "the method raised an error (the message is in diagnostics)",
}


#: Codes of :class:`Caveat` (structured warnings on an :class:`Estimate`) and their meaning.
#: Every caveat an estimator attaches uses one of these codes; ``"note"`` is a free-text
#: warning that no check has classified yet.
CAVEATS: dict[str, str] = {
    "note": "a warning raised while estimating (free text)",
    "lack_of_fit": "the chosen model fails its goodness-of-fit test (deviance against chi2(df))",
    "dependence": "list pairs are associated among persons seen elsewhere, against the "
                  "independence model",
    "sparse_table": "many empty cells or small margins: intervals and fit tests are approximate",
    "internal_inconsistency": "the method misses known list sizes on this table "
                              "(internal-consistency check)",
    # ---- checks of the table (every estimate of it)
    "two_lists": "only two lists: independence of the lists is assumed, it cannot be tested",
    "heterogeneity": "signs of capture heterogeneity (some persons easier to find on every list)",
    "unstable": "leaving one list out moves the estimate outside its own interval",
    # ---- checks of what a model choice or an average rests on
    "untestable_weight": "weight on models whose fit cannot be tested (no residual df)",
    "boundary_weight": "weight on boundary fits (extended MLE: some fitted cells are zero)",
    "dropped_models": "candidate models whose estimate does not exist were left out",
    # ---- Bayesian fits
    "not_identified_mass": "posterior mass on models or regions where N is not identified",
    "prior_driven": "the posterior of N depends on the prior (little contraction, or it "
                    "moves under a second prior)",
    "convergence": "the sampler or the optimiser did not converge well (R-hat, ESS, "
                   "divergences, iterations)",
    # ---- what the answer is
    "lower_bound_only": "the data support only a lower bound on N",
    # ---- survey estimates
    "small_domain": "a survey domain's effective sample size is below 30: its interval is "
                    "approximate and its point estimate should not be read alone",
    "nsum_bias": "the network scale-up rests on assumptions the data cannot test (transmission, "
                 "barrier effects, recall): the estimate is biased when they fail",
}


class Caveat(str):
    """One structured warning attached to an :class:`Estimate`: a code, a message, numbers.

    A caveat *is* its message (a ``str``), so it prints, compares and serialises as the text a
    user reads; ``code`` (one of :data:`CAVEATS`) and ``values`` (the numbers behind it) let
    programs act on it without parsing the text.

    Parameters
    ----------
    code : str
        What was found, one of :data:`CAVEATS`.
    message : str
        The sentence a user reads. Never contains a value that could identify a person.
    values : mapping of str to number, optional
        The numbers behind the message (a deviance, a weight, a count...).

    Examples
    --------
    >>> c = Caveat("lack_of_fit", "lack of fit: deviance 24.0 on 3 df", {"deviance": 24.0, "df": 3})
    >>> c.code, c.values["df"], c.startswith("lack of fit")
    ('lack_of_fit', 3, True)
    """

    code: str
    values: Mapping[str, Any]

    def __new__(cls, code: str, message: str, values: Mapping[str, Any] | None = None) -> Caveat:
        if code not in CAVEATS:
            raise ValueError(f"unknown caveat code {code!r}; known: {', '.join(CAVEATS)}")
        obj = super().__new__(cls, message)
        obj.code = code
        obj.values = MappingProxyType(dict(values or {}))
        return obj

    @property
    def message(self) -> str:
        """The text of the caveat (a plain ``str``)."""
        return str.__str__(self)

    @classmethod
    def of(cls, warning: str) -> Caveat:
        """``warning`` itself if it is a :class:`Caveat`, else a ``"note"`` caveat of its text."""
        return warning if isinstance(warning, Caveat) else cls("note", str(warning))

    def to_dict(self) -> dict[str, Any]:
        """``{"code", "message", "values"}`` as plain Python values (for JSON)."""
        return {"code": self.code, "message": self.message,
                "values": {k: (float(v) if isinstance(v, (int, float, np.number)) else v)
                           for k, v in self.values.items()}}

    def __reduce__(self) -> tuple[Any, ...]:
        return (Caveat, (self.code, self.message, dict(self.values)))

    def __repr__(self) -> str:
        return f"Caveat({self.code!r}, {self.message!r})"


def merge_caveats(old: Sequence[str], new: Sequence[str]) -> tuple[Caveat, ...]:
    """``old``, then each caveat of ``new`` whose code is not there yet (an estimator that found
    a problem itself says it better than a later generic check) and whose text is not either;
    free-text ``"note"`` caveats are compared by text only.

    >>> a = Caveat("lack_of_fit", "deviance 24 on 3 df")
    >>> [str(w) for w in merge_caveats([a], [Caveat("lack_of_fit", "other"), "a note"])]
    ['deviance 24 on 3 df', 'a note']
    """
    out = [Caveat.of(w) for w in old]
    codes = {w.code for w in out if w.code != "note"}
    for w in map(Caveat.of, new):
        if w not in out and (w.code == "note" or w.code not in codes):
            out.append(w)
            codes.add(w.code)
    return tuple(out)


class DiagnosticKey(NamedTuple):
    """Documentation of one :attr:`Estimate.diagnostics` key: its type and its meaning."""

    type: str
    meaning: str


#: Every key an estimator may put in :attr:`Estimate.diagnostics`, with its type (``float``
#: includes ``nan``; ``A or B``: either) and its meaning. One name per concept across estimators:
#: ``rhat`` is always the split R-hat of N, ``models`` always a DataFrame of candidate models,
#: ``path`` always a DataFrame of search steps. ``tests/test_estimate.py`` checks that every
#: key an estimator writes is here, with this type.
DIAGNOSTICS: dict[str, DiagnosticKey] = {
    # maximum likelihood (log-linear, heterogeneity, selection, default)
    "reason": DiagnosticKey("str", "why the status is what it is (e.g. which empty cells put "
                            "the MLE on the boundary)"),
    "converged": DiagnosticKey("bool", "the Newton fit met its convergence test"),
    "iterations": DiagnosticKey("int", "Newton iterations of the fit"),
    "existence": DiagnosticKey("int", "existence of the MLE as SparseMSE codes it: 0 exists, 1 "
                               "N-hat infinite, 2 not identifiable"),
    "zero_fitted_cells": DiagnosticKey("int", "observable cells whose fitted value is zero "
                                       "(extended MLE)"),
    "estimable_params": DiagnosticKey("int", "parameters estimable on the facial set"),
    "coefficients": DiagnosticKey("tuple", "(names, estimates, standard errors) of the "
                                  "log-linear parameters; see Estimate.coefficients"),
    "fitted": DiagnosticKey("ndarray", "fitted counts of the observable cells"),
    "mu0": DiagnosticKey("float", "fitted count of the unobserved cell (N-hat - observed)"),
    "terms": DiagnosticKey("tuple", "interaction terms of the model (bit masks over the lists)"),
    "n_hat_multinomial": DiagnosticKey("float", "conditional (multinomial) MLE of N, beside the "
                                       "Poisson N-hat (profile intervals)"),
    "eta_set_to_zero": DiagnosticKey("tuple", "heterogeneity parameters fixed at zero because "
                                     "their estimate was on the boundary (closedp)"),
    "assumption_warnings": DiagnosticKey("list", "caveats found by tipstat.validate."
                                         "check_assumptions (every estimator's check=True)"),
    "assumes_independence": DiagnosticKey("bool", "the model is independence or a submodel of "
                                          "it (M0): the dependence and heterogeneity checks "
                                          "apply"),
    # model search
    "criterion": DiagnosticKey("str", "criterion of the model search (aic, bic, stepwise, bhs)"),
    "search": DiagnosticKey("str", "how the model space was explored (exhaustive, greedy, "
                            "stepwise, bhs, enumeration, walk, enumerate, mcmc)"),
    "path": DiagnosticKey("DataFrame", "the search steps in order (column step, model, and the "
                          "criterion; for select_loglinear also action, term, n_hat, status)"),
    "models": DiagnosticKey("DataFrame", "the candidate models, one row each (model label, "
                            "N-hat or N's posterior, criterion or posterior probability)"),
    "n_models": DiagnosticKey("int or float", "candidate models in the model space (nan when the "
                              "space is too large to count: fit_loglinear_bma's walk)"),
    "n_excluded": DiagnosticKey("int", "candidate models left out: MLE does not exist or N not "
                                "identifiable"),
    "excluded": DiagnosticKey("dict", "status -> number of candidate models left out"),
    "search_truncated": DiagnosticKey("bool", "the greedy search stopped at its work budget "
                                      "before the criterion stopped improving (status "
                                      "not_converged)"),
    "n_exact_checks": DiagnosticKey("int", "candidates whose existence needed the exact "
                                    "linear-programming check"),
    "model_averaged": DiagnosticKey("bool", "N-hat is an AIC/BIC model average, not one model's "
                                    "estimate"),
    "extended_weight": DiagnosticKey("float", "share of the criterion weight (posterior "
                                     "probability) on models with extended MLEs"),
    "untestable_weight": DiagnosticKey("float", "share of the criterion weight (posterior "
                                       "probability) on models with no residual df"),
    "excluded_weight": DiagnosticKey("float", "share of the criterion weight the left-out "
                                     "models (no MLE, N not identifiable) would carry"),
    "unbounded_weight": DiagnosticKey("float", "share of the criterion weight on models that "
                                      "cannot bound N from above (left out or untestable)"),
    "default_rule": DiagnosticKey("str", "the rule estimate_population applied"),
    "unsupported": DiagnosticKey("dict", "status lower_bound: the point estimate and interval "
                                 "the method computed before the checks found that only a lower "
                                 "bound is supported ({'n_hat', 'ci', 'se', 'status'}; not for "
                                 "publication)"),
    "default_weights": DiagnosticKey("dict", "estimate_population: the BIC weight shares "
                                     "behind its answer, Occam window, bound"),
    "model_obj": DiagnosticKey("object", "the selected stratified model (internal object)"),
    "completed_counts": DiagnosticKey("ndarray", "observed counts, strata x patterns (EM-"
                                      "completed when missing='em')"),
    # resampling
    "kind": DiagnosticKey("str", "bootstrap kind: nonparametric or parametric"),
    "n_boot": DiagnosticKey("int", "bootstrap replicates requested"),
    "n_failed": DiagnosticKey("int", "replicates whose estimator failed (N-hat nan)"),
    "n_infinite": DiagnosticKey("int", "replicates with an infinite N-hat"),
    "point": DiagnosticKey("Estimate", "the estimator's result on the data"),
    "model_frequencies": DiagnosticKey("dict", "model label -> number of replicates that chose "
                                       "it"),
    "z0": DiagnosticKey("float", "BCa bias correction"),
    "acceleration": DiagnosticKey("float", "BCa acceleration"),
    "jackknife": DiagnosticKey("ndarray", "grouped-jackknife N-hats of the BCa acceleration"),
    "reselect": DiagnosticKey("str", "model re-selection in the replicates: local, full, none"),
    "reselected": DiagnosticKey("float", "share of replicates whose model differs from the "
                                "selected one"),
    # Bayesian
    "rhat": DiagnosticKey("float", "split R-hat of N (nan with one chain)"),
    "max_rhat": DiagnosticKey("float", "largest split R-hat over the model's parameters"),
    "ess_bulk": DiagnosticKey("float", "bulk effective sample size of N"),
    "min_ess_bulk": DiagnosticKey("float", "smallest bulk ESS over the model's parameters"),
    "ess_tail": DiagnosticKey("float", "tail effective sample size of N"),
    "ess": DiagnosticKey("float", "effective sample size of the importance-sampled draws of N"),
    "min_model_ess": DiagnosticKey("float", "smallest importance-sampling ESS of a model "
                                   "carrying the average (posterior probability > 1%; "
                                   "where none is, the most probable models holding 99%)"),
    "divergences": DiagnosticKey("int", "divergent NUTS transitions"),
    "chains": DiagnosticKey("int", "MCMC chains"),
    "draws_per_chain": DiagnosticKey("int", "kept draws per chain"),
    "chain_medians": DiagnosticKey("list", "posterior median of N in each chain"),
    "summary": DiagnosticKey("DataFrame", "ArviZ summary of the sampled parameters"),
    "sampler": DiagnosticKey("str", "NUTS implementation used (pymc or nutpie)"),
    "seconds": DiagnosticKey("float", "sampling time"),
    "tune": DiagnosticKey("int", "tuning steps per chain"),
    "target_accept": DiagnosticKey("float", "NUTS target acceptance rate"),
    "rerun_chains": DiagnosticKey("int", "chains re-run because they settled in a minor mode"),
    "chains_in_minor_mode": DiagnosticKey("list", "chains still in a minor mode after re-runs"),
    "prior": DiagnosticKey("str", "prior of the model parameters"),
    "design": DiagnosticKey("str", "log-linear model of the Bayesian fit"),
    "posterior_mean": DiagnosticKey("float", "posterior mean of N"),
    "posterior": DiagnosticKey("DataFrame", "grid posterior of N (columns N, prob)"),
    "equal_tailed": DiagnosticKey("tuple", "equal-tailed posterior interval of N"),
    "hpd": DiagnosticKey("tuple", "highest-posterior-density interval of N"),
    "term_probabilities": DiagnosticKey("dict", "interaction term -> posterior inclusion "
                                        "probability"),
    "not_identified_mass": DiagnosticKey("float", "posterior probability of models under which "
                                         "N is not identified or its MLE does not exist"),
    "nobody_missed_mass": DiagnosticKey("float", "posterior probability that N equals the "
                                        "observed count (graphical)"),
    "prior_contraction": DiagnosticKey("float", "1 - posterior var / prior var of log N (or of "
                                       "log mu0): how much the data narrowed the prior"),
    "prior_shift": DiagnosticKey("float", "relative change of the interval's upper end of N "
                                 "under a second prior one power flatter (on N: graphical, "
                                 "latent class; on the unseen count: log-linear)"),
    "ppp": DiagnosticKey("float", "posterior predictive p-value of the observed cells "
                         "(Freeman-Tukey; lack_of_fit outside [0.05, 0.95])"),
    "n_evaluated": DiagnosticKey("int", "models whose posterior was computed"),
    "n_pruned": DiagnosticKey("int", "models left out of the average (posterior probability "
                              "below prune)"),
    "max_model": DiagnosticKey("str", "largest model of the averaged space"),
    "variables": DiagnosticKey("tuple", "variables of the model space (lists, covariates)"),
    "delta": DiagnosticKey("float", "hyper-Dirichlet prior parameter (graphical)"),
    "prior_n": DiagnosticKey("str", "prior of N (graphical)"),
    "grid_size": DiagnosticKey("int", "points of the grid of N"),
    "grid_max": DiagnosticKey("float", "largest N on the grid"),
    "graph_prior": DiagnosticKey("float or str", "prior over graphs: edge probability or the "
                                 "callable's name"),
    "graphs_excluded_by_prior": DiagnosticKey("int", "graphs with prior probability zero"),
    "tail_mass_top1pct": DiagnosticKey("float", "posterior mass in the top 1% of the grid range"),
    "tail_mass_beyond_grid": DiagnosticKey("float", "extrapolated posterior mass beyond the grid"),
    "acceptance": DiagnosticKey("list", "acceptance rate of the graph MCMC, per chain"),
    "graphs_visited": DiagnosticKey("int", "graphs the MCMC visited"),
    "graphs_evaluated": DiagnosticKey("int", "graph likelihoods the MCMC computed"),
    "steps": DiagnosticKey("int", "MCMC steps per chain"),
    "burn": DiagnosticKey("int", "MCMC steps discarded per chain"),
    "max_classes": DiagnosticKey("int", "truncation of the latent-class model"),
    "a_alpha": DiagnosticKey("float", "Gamma prior shape of the stick-breaking alpha"),
    "b_alpha": DiagnosticKey("float", "Gamma prior rate of the stick-breaking alpha"),
    "n_classes_median": DiagnosticKey("float", "posterior median of the occupied classes"),
    "n_classes_mean": DiagnosticKey("float", "posterior mean of the occupied classes"),
    "n_classes_max": DiagnosticKey("int", "most occupied classes in a draw"),
    "prob_all_classes_occupied": DiagnosticKey("float", "share of draws with every class "
                                               "occupied (raise max_classes if large)"),
    "truncation_class_mass": DiagnosticKey("float", "posterior mean weight of the last class"),
    "alpha_median": DiagnosticKey("float", "posterior median of alpha"),
    "p0_median": DiagnosticKey("float", "posterior median of the probability of being unseen"),
    # network scale-up (tipstat.survey.fit_nsum)
    "known_populations": DiagnosticKey("DataFrame", "the known populations, each estimated from "
                                       "the others (population, size, share, estimate, ratio)"),
    "mean_degree": DiagnosticKey("float", "weighted mean personal network size of the "
                                 "respondents"),
    "respondents": DiagnosticKey("int", "respondents used"),
    "population": DiagnosticKey("float", "size of the population the respondents are drawn "
                                "from (network scale-up's N)"),
    "respondents_reporting": DiagnosticKey("int", "respondents who know at least one member "
                                           "of the hidden population"),
    "excluded_respondents": DiagnosticKey("dict", "reason -> respondents left out"),
    "resampled": DiagnosticKey("str", "what the bootstrap resampled (PSUs within strata, or "
                               "respondents)"),
}

_TYPES: dict[str, tuple[type, ...]] = {
    "float": (float, np.floating, int, np.integer), "int": (int, np.integer),
    "bool": (bool, np.bool_), "str": (str,), "tuple": (tuple,), "list": (list,),
    "dict": (dict,), "ndarray": (np.ndarray,), "DataFrame": (pd.DataFrame,),
    "object": (object,),
}


def diagnostic_type_ok(key: str, value: Any) -> bool:
    """Whether ``value`` has the type :data:`DIAGNOSTICS` documents for ``key`` (False for an
    undocumented key).

    Examples
    --------
    >>> diagnostic_type_ok("rhat", 1.002), diagnostic_type_ok("path", [("a", 1.0)])
    (True, False)
    """
    doc = DIAGNOSTICS.get(key)
    if doc is None:
        return False
    for name in doc.type.split(" or "):
        if name == "Estimate":
            if isinstance(value, Estimate):
                return True
            continue
        kinds = _TYPES[name]
        if name in ("int", "float") and isinstance(value, bool | np.bool_):
            continue
        if isinstance(value, kinds):
            return True
    return False


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
        self._data = {k if k.__class__ is str else str(k):
                      _read_only(v) if isinstance(v, np.ndarray) else v
                      for k, v in (data or {}).items()}

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
    return number(x, digits)  # tipstat._format: the one number formatter


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
        ``nan`` when N is not identifiable or when the data support only a lower bound
        (status ``"lower_bound"``: ``ci`` is ``(L, inf)``, see :meth:`as_lower_bound`); never a
        meaningless huge number.
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
    warnings : tuple of Caveat
        Structured warnings (:class:`Caveat`: a ``str`` with a ``code`` from :data:`CAVEATS`
        and the ``values`` behind it): what the data cannot support, raised while estimating
        or found by the checks (also issued as ``TipstatWarning``).
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
        if self.warnings:
            object.__setattr__(self, "warnings", tuple(Caveat.of(w) for w in self.warnings))
        elif self.warnings.__class__ is not tuple:
            object.__setattr__(self, "warnings", tuple(self.warnings))
        if self.status == "lower_bound" and (not math.isnan(self.n_hat)
                                             or self.ci[1] != math.inf):
            raise ValueError("an Estimate with status 'lower_bound' has no point estimate and "
                             "no upper end: n_hat must be nan and ci (L, inf); build it with "
                             "Estimate.as_lower_bound()")

    # ------------------------------------------------------------------ derived
    @property
    def undetected(self) -> float:
        """Estimated persons on no list: ``n_hat - n_observed``."""
        return self.n_hat - self.n_observed

    @property
    def ci_undetected(self) -> tuple[float, float]:
        return (self.ci[0] - self.n_observed, self.ci[1] - self.n_observed)

    def as_lower_bound(self, lower: float | None = None, *,
                       caveat: Caveat | None = None) -> Estimate:
        """This result read as what the data support: only a lower bound on N.

        Status ``"lower_bound"``, ``n_hat`` nan, interval ``(lower, inf)`` (``lower`` defaults
        to the interval's lower end), ``se`` nan; the point estimate and interval the method
        computed stay in ``diagnostics["unsupported"]`` (for analysts, not for publication).
        ``caveat`` (code ``lower_bound_only``) is added to the warnings when given.

        Examples
        --------
        >>> est = Estimate(n_hat=418.0, ci=(214.0, 975.0), level=0.95, n_observed=96,
        ...                method="m", model="x")
        >>> b = est.as_lower_bound()
        >>> b.status, b.n_hat, b.ci, b.diagnostics["unsupported"]["n_hat"]
        ('lower_bound', nan, (214.0, inf), 418.0)
        """
        low = float(self.ci[0]) if lower is None else float(lower)
        diagnostics = dict(self.diagnostics)
        if self.status != "lower_bound":
            diagnostics["unsupported"] = {"n_hat": float(self.n_hat),
                                          "ci": (float(self.ci[0]), float(self.ci[1])),
                                          "se": float(self.se), "status": self.status}
        warnings = self.warnings
        if caveat is not None and caveat not in warnings:
            warnings = (*warnings, caveat)
        return replace(self, status="lower_bound", n_hat=math.nan, ci=(low, math.inf),
                       se=math.nan, diagnostics=diagnostics, warnings=warnings)

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
            "warnings": [w.to_dict() for w in self.warnings],
        }

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame of the core fields (rows of several estimates concatenate)."""
        row = self.to_dict()
        row["warnings"] = "; ".join(w.code for w in self.warnings)
        return pd.DataFrame([row])

    def summary(self) -> str:
        """A readable multi-line summary; each warning on its own line, its code in brackets
        (``warning     [lack_of_fit] lack of fit: deviance ...``)."""
        pct = f"{100 * self.level:g}%"
        lines = [
            f"{self.method}: {self.model}",
            f"  status      {self.status} - {STATUSES.get(self.status, '')}",
            f"  observed    {_fmt(float(self.n_observed), 0)}",
            f"  N-hat       {_fmt(self.n_hat)}   (undetected {_fmt(self.undetected)})",
            f"  {pct} CI     [{_fmt(self.ci[0])}, {_fmt(self.ci[1])}] ({self.ci_method})",
        ]
        if self.status == "lower_bound":
            # a lower bound is read as one: the point and the upper end are not supported
            kept = self.diagnostics.get("unsupported")
            point = (f"; the computed N-hat {_fmt(kept['n_hat'])} is in "
                     "diagnostics['unsupported'], not for publication") if kept else ""
            lines[3:5] = [f"  N           at least {_fmt(self.ci[0], 0)}   (no point estimate "
                          f"and no upper end are supported{point})",
                          f"  {pct} CI     [{_fmt(self.ci[0])}, {_fmt(self.ci[1])}] "
                          f"({self.ci_method}; only the lower end is supported)"]
        if not math.isnan(self.se):
            lines.append(f"  SE          {_fmt(self.se)}")
        if not math.isnan(self.deviance):
            lines.append(f"  deviance    {self.deviance:.4f} on {self.df:g} df;  "
                         f"AIC {self.aic:.4f}  BIC {self.bic:.4f}")
        reason = self.diagnostics.get("reason")
        if reason and self.status != "ok":
            lines.append(f"  note        {reason}")
        lines += [f"  warning     [{w.code}] {w}" for w in self.warnings]
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
        warn = "".join(f"<p style='color:#a00'><b>{html.escape(w.code)}</b>: {html.escape(w)}</p>"
                       for w in self.warnings)
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


class EstimateTable(Mapping[str, Estimate]):
    """Several :class:`Estimate` s of one table, keyed by model name, in order (immutable).

    A read-only mapping ``name -> Estimate`` (``table["Mt"]``, ``table.items()``, ``len``);
    :meth:`to_frame` gives Rcapture's layout, one row per model.

    Examples
    --------
    >>> import tipstat
    >>> tab = tipstat.closedp(tipstat.datasets.load("UK_5"))
    >>> round(tab["Mt"].n_hat, 4), tab["Mb"].status
    (13444.1312, 'does_not_exist')
    >>> list(tab.to_frame().columns)
    ['abundance', 'stderr', 'deviance', 'df', 'AIC', 'BIC', 'status', 'reason']
    """

    __slots__ = ("_items",)

    def __init__(self, estimates: Mapping[str, Estimate] | Sequence[tuple[str, Estimate]]) -> None:
        items = dict(estimates.items() if isinstance(estimates, Mapping) else estimates)
        for name, est in items.items():
            if not isinstance(est, Estimate):
                raise TypeError(f"EstimateTable[{name!r}] is a {type(est).__name__}, "
                                "not an Estimate")
        self._items = items

    def __getitem__(self, name: str) -> Estimate:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __reduce__(self) -> tuple[Any, ...]:
        return (EstimateTable, (dict(self._items),))

    def to_frame(self) -> pd.DataFrame:
        """Rcapture's ``closedp`` layout: index ``model``; columns ``abundance`` (N-hat),
        ``stderr``, ``deviance``, ``df``, ``AIC``, ``BIC``, ``status`` and ``reason`` (why there
        is no valid estimate; empty when the status is ``ok``)."""
        rows = [{"model": name, "abundance": est.n_hat, "stderr": est.se,
                 "deviance": est.deviance, "df": est.df, "AIC": est.aic, "BIC": est.bic,
                 "status": est.status,
                 "reason": str(est.diagnostics.get("reason", "")) if est.status != "ok" else ""}
                for name, est in self._items.items()]
        cols = ["model", "abundance", "stderr", "deviance", "df", "AIC", "BIC", "status",
                "reason"]
        return pd.DataFrame(rows, columns=cols).set_index("model")

    def __repr__(self) -> str:
        return f"EstimateTable of {len(self)} estimates\n{self.to_frame()!r}"

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()
