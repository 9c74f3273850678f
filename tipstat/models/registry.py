"""The registry of estimators: what each public estimator is and which keywords it takes.

Every estimator follows one contract::

    fit_x(h, <model spec>=default, *, level=0.95, ci=<interval method>, seed=DEFAULT_SEED,
          check=True, ...)

``h`` (:class:`~tipstat.CaptureHistories`) and at most one model specification are positional;
everything else is keyword-only. ``check=True`` attaches the checks of
:func:`tipstat.validate.assumption_warnings` to the result (structured warnings, each with a
code); inner fits (model searches, bootstrap replicates, refits) pass ``check=False``.
``seed`` exists only where there is a random step. The registry writes down, once, what
differs between estimators (the name of the model specification, the interval methods
accepted, whether there is a seed or a progress bar, whether strata are accepted, whether it
is slow), so that :func:`tipstat.compare`, the command line and the report
call estimators through :meth:`Entry.call` instead of guessing from their signatures. Entries
name their module and import it only when called, so ``import tipstat`` stays fast.

Examples
--------
>>> import tipstat
>>> from tipstat.models.registry import ESTIMATORS, get
>>> get("fit_loglinear").spec, get("fit_loglinear").ci_methods[0]
('terms', 'profile')
>>> [e.name for e in ESTIMATORS.values() if e.random][:3]
['bootstrap', 'fit_graphical', 'fit_stratified']
>>> est = get("fit_loglinear").call(tipstat.datasets.load("UK_5"), "independence", level=0.9)
>>> round(est.n_hat), est.level
(13444, 0.9)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from .._checks import DEFAULT_SEED
from ..errors import InputError

__all__ = ["ESTIMATORS", "Entry", "get"]

#: Interval methods of the maximum-likelihood fits (first: the default).
_ML_CI = ("profile", "profile_rcapture", "wald", "lognormal", "none")


@dataclass(frozen=True)
class Entry:
    """One registered estimator.

    Attributes
    ----------
    name : str
        The public name (``tipstat.<name>``).
    module : str
        The module that defines it (imported on first call).
    spec : str or None
        Name of the positional model-specification parameter (``"terms"``, ``"criterion"``,
        ...), ``None`` when the estimator takes only ``h`` positionally.
    ci_methods : tuple of str
        The values its ``ci`` accepts; the first is the default.
    random : bool
        Has a random step and so a ``seed`` (default :data:`tipstat.models.DEFAULT_SEED`).
    progress : bool
        Takes ``progress=`` (a progress bar).
    strata : bool
        Accepts stratified capture histories (the others raise InputError for them).
    slow : bool
        Seconds to minutes per fit (MCMC or many refits): left out of quick checks.
    bayesian : bool
        Reports a posterior (median and posterior interval).
    description : str
        One line, for tables and ``--help``.
    """

    name: str
    module: str
    spec: str | None
    ci_methods: tuple[str, ...]
    random: bool
    progress: bool
    strata: bool
    slow: bool
    bayesian: bool
    description: str

    @property
    def function(self) -> Callable[..., Any]:
        """The estimator itself (imports its module)."""
        return getattr(import_module(self.module), self.name)

    def available(self) -> bool:
        """Whether the estimator's module imports in this installation."""
        try:
            self.function  # noqa: B018 - importing is the check
        except (ImportError, AttributeError):
            return False
        return True

    def call(self, h: Any, *spec: Any, level: float = 0.95, ci: str | None = None,
             seed: int = DEFAULT_SEED, progress: bool = False, check: bool = True,
             **options: Any) -> Any:
        """Run the estimator with the contract's keywords, passing each only where it applies.

        ``ci=None`` keeps the estimator's default interval; ``seed`` goes to random estimators
        only and ``progress`` only to those with a progress bar (and only when true);
        ``check=False`` (every estimator takes it: no checks of
        :func:`tipstat.validate.assumption_warnings`, for inner fits) is passed when given; other
        ``options`` are passed as given.
        """
        if len(spec) > 1:
            raise InputError(f"{self.name}: one model specification at most, got {len(spec)}")
        if spec and self.spec is None:
            raise InputError(f"{self.name} takes no model specification")
        kwargs: dict[str, Any] = {"level": level, **options}
        if not check:
            kwargs["check"] = False
        if ci is not None:
            kwargs["ci"] = ci
        if self.random:
            kwargs["seed"] = seed
        if self.progress and progress:
            kwargs["progress"] = True
        return self.function(h, *spec, **kwargs)


def _entry(name: str, module: str, spec: str | None, ci_methods: tuple[str, ...],
           description: str, *, random: bool = False, progress: bool = False,
           strata: bool = False, slow: bool = False, bayesian: bool = False) -> Entry:
    return Entry(name, f"tipstat.models.{module}", spec, ci_methods, random, progress, strata,
                 slow, bayesian, description)


#: Every public estimator, by public name.
ESTIMATORS: dict[str, Entry] = {e.name: e for e in (
    _entry("estimate_population", "default", None, ("auto",),
           "tipstat's default: BIC model average over two-way log-linear models"),
    _entry("fit_loglinear", "loglinear", "terms", _ML_CI,
           "Poisson log-linear model with the given interaction terms"),
    _entry("fit_design", "loglinear", "design", _ML_CI,
           "Poisson log-linear model of any design matrix"),
    _entry("select_loglinear", "selection", "criterion", ("auto", *_ML_CI),
           "log-linear model chosen by AIC, BIC or a stepwise rule"),
    _entry("fit_closedp_model", "heterogeneity", "model", _ML_CI,
           "one of Rcapture's closed-population (heterogeneity) models"),
    _entry("bootstrap", "bootstrap", "estimator", ("bca", "percentile"),
           "bootstrap interval re-running the model selection on every replicate",
           random=True, progress=True, slow=True),
    _entry("fit_graphical", "graphical", None, ("equal_tailed",),
           "Bayesian averaging over decomposable graphical models (dga)",
           random=True, strata=True, bayesian=True),
    _entry("fit_stratified", "stratified", None, ("percentile",),
           "stratified log-linear MSE with cells, margins and total that add up",
           random=True, strata=True, slow=True),
    _entry("fit_loglinear_bma", "bma", "max_model", ("hpd", "equal_tailed"),
           "Bayesian averaging over hierarchical log-linear models (conting)",
           random=True, strata=True, slow=True, bayesian=True),
    _entry("fit_latent_class", "latent_class", "max_classes", ("equal_tailed",),
           "Bayesian non-parametric latent-class model (LCMCR)",
           random=True, progress=True, slow=True, bayesian=True),
    _entry("fit_bayes_loglinear", "bayes_loglinear", "terms", ("equal_tailed",),
           "Bayesian log-linear model with shrinkage priors on the interactions",
           random=True, progress=True, strata=True, slow=True, bayesian=True),
)}


def get(name: str) -> Entry:
    """The registry entry of estimator ``name``; InputError naming the known ones otherwise.

    >>> get("bootstrap").spec
    'estimator'
    """
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise InputError(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}") from None
