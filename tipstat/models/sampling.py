"""The one sampling layer of the Bayesian estimators (PyMC models sampled by NUTS).

:func:`tipstat.fit_bayes_loglinear` and :func:`tipstat.fit_latent_class` build a PyMC model and
hand it here. This module decides four things once for all of them:

* **the sampler** (:func:`resolve_sampler`): ``"auto"`` takes nutpie (Rust NUTS on a
  numba-compiled density, 2-5x faster on these models) when it imports and PyMC's own NUTS
  otherwise; a nutpie that is installed but cannot be imported is *said* (a
  :class:`~tipstat.TipstatWarning`), never hidden behind the slower sampler;
* **the compiled-model cache** (:func:`sample`): compiling a model for nutpie costs 5-30 s,
  sampling it 1-3 s. Models whose data are ``pm.Data`` have the same graph for every table of
  one shape, so the compiled model is kept (up to :data:`CACHE_SIZE`, least recently used
  dropped) under a key the caller gives and re-used with the new data; the draws are those of a
  fresh compilation. :func:`clear_compiled_cache` frees it;
* **the seeds** (:func:`seeds`): one scheme, ``tipstat.parallel.seed_sequence(seed)`` split into
  a sampler stream and a stream for the draws made after sampling (``N`` from its
  conditional); a sampler run takes one child of the sampler stream and gives the sampler one
  integer (:func:`run_seed`), from which PyMC and nutpie spawn one stream per chain;
* **the convergence summary** (:func:`convergence`): for the quantity of interest, R-hat
  (rank-normalised split R-hat of Vehtari et al. 2021) and bulk / tail effective sample sizes,
  and the number of divergent transitions, under the names ``rhat``, ``ess_bulk``,
  ``ess_tail``, ``divergences`` in every estimator's ``diagnostics``.

Examples
--------
>>> from tipstat.models.sampling import resolve_sampler, seeds
>>> resolve_sampler("pymc")
'pymc'
>>> sampler_stream, draw_stream = seeds(1)
>>> run_seed(sampler_stream.spawn(1)[0]) == run_seed(seeds(1)[0].spawn(1)[0])
True
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import DEFAULT_SEED
from ..errors import InputError, TipstatWarning
from ..parallel import seed_sequence

__all__ = ["CACHE_SIZE", "SAMPLERS", "clear_compiled_cache", "contraction", "convergence",
           "resolve_sampler", "run_seed", "sample", "seeds"]

SAMPLERS = ("auto", "pymc", "nutpie")

#: Compiled models kept by :func:`sample` (each holds a numba-compiled density, a few MB).
CACHE_SIZE = 16


# --------------------------------------------------------------------------- sampler choice
def resolve_sampler(sampler: str) -> str:
    """The sampler to run: ``"pymc"`` or ``"nutpie"`` as asked; for ``"auto"``, ``"nutpie"``
    when it imports, else ``"pymc"``, with a :class:`~tipstat.TipstatWarning` when nutpie is
    installed but cannot be imported (a version clash of the ``bayes`` extra).

    Raises
    ------
    InputError
        If ``sampler`` is not one of :data:`SAMPLERS`.
    """
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise InputError(f"sampler={sampler!r} is not one of {SAMPLERS}")
    if sampler != "auto":
        return sampler
    try:
        import nutpie  # noqa: F401
    except ImportError as exc:
        from importlib import metadata

        try:
            metadata.distribution("nutpie")  # installed (its files are there)
            installed = True
        except metadata.PackageNotFoundError:
            installed = False
        if installed:
            warnings.warn(f"nutpie is installed but cannot be imported ({type(exc).__name__}); "
                          "sampling with PyMC's own NUTS instead, which is slower and may mix "
                          "worse: check the versions of the `bayes` extra", TipstatWarning,
                          stacklevel=3)
        return "pymc"
    return "nutpie"


# --------------------------------------------------------------------------------- seeds
def seeds(seed: int | None = DEFAULT_SEED) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """``(sampler stream, draws stream)``: the two children of
    :func:`tipstat.parallel.seed_sequence` ``(seed)``. Each sampler run takes a child of the
    first (``stream.spawn(1)[0]``; re-runs take further children); the draws made from the
    posterior afterwards use ``numpy.random.default_rng(second)``."""
    sampler_stream, draw_stream = seed_sequence(seed).spawn(2)
    return sampler_stream, draw_stream


def run_seed(run: np.random.SeedSequence) -> int:
    """The integer seed of one sampler run (``pymc.sample``'s ``random_seed``, ``nutpie.sample``'s
    ``seed``): the first 32-bit word of the run's SeedSequence. Both samplers spawn one stream
    per chain from it."""
    return int(run.generate_state(1)[0])


# --------------------------------------------------------------------- compiled-model cache
@dataclass
class _Compiled:
    model: Any
    compiled: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


_COMPILED: OrderedDict[Hashable, _Compiled] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def clear_compiled_cache() -> None:
    """Forget the compiled models kept by the Bayesian estimators (frees their memory)."""
    with _CACHE_LOCK:
        _COMPILED.clear()


def _compile(model: Any, initial_points: dict[str, Any] | None,
             options: dict[str, Any]) -> _Compiled:
    import nutpie

    kwargs = dict(options)
    if initial_points is not None:
        kwargs["initial_points"] = initial_points
    return _Compiled(model, nutpie.compile_pymc_model(model, **kwargs))


def _cached(key: Hashable, model: Any, initial_points: dict[str, Any] | None,
            options: dict[str, Any]) -> _Compiled:
    """The compiled model under ``key`` (compiled now if absent), locked for this fit: a
    concurrent fit of the same graph compiles its own copy rather than wait."""
    with _CACHE_LOCK:
        entry = _COMPILED.get(key)
        if entry is not None:
            _COMPILED.move_to_end(key)
    if entry is None:
        entry = _compile(model, initial_points, options)
        with _CACHE_LOCK:
            _COMPILED[key] = entry
            while len(_COMPILED) > CACHE_SIZE:
                _COMPILED.popitem(last=False)
    if not entry.lock.acquire(blocking=False):
        entry = _compile(model, initial_points, options)
        entry.lock.acquire()
    return entry


# --------------------------------------------------------------------------------- sampling
def sample(
    model: Any,
    *,
    sampler: str,
    run: np.random.SeedSequence,
    draws: int,
    tune: int,
    chains: int,
    cores: int | None,
    target_accept: float,
    progress: bool = False,
    cache_key: Hashable | None = None,
    initial_points: dict[str, Any] | None = None,
    compile_options: dict[str, Any] | None = None,
    nutpie_kwargs: dict[str, Any] | None = None,
    pymc_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Sample ``model`` and return its ArviZ InferenceData.

    Parameters
    ----------
    model : pymc.Model
        The model, its data set (``pm.Data``) to the table being fitted.
    sampler : {"pymc", "nutpie"}
        As returned by :func:`resolve_sampler`.
    run : numpy.random.SeedSequence
        This run's seed (a child of the sampler stream of :func:`seeds`).
    draws, tune, chains, cores, target_accept, progress
        As in :func:`pymc.sample` (``progress`` is its ``progressbar``).
    cache_key : hashable, optional
        With nutpie, the compiled model is kept under this key and re-used by the next call
        with the same key, with this model's ``pm.Data`` values (the key must name everything
        that shapes the graph). Without a key the model is compiled for this call only.
    initial_points : dict, optional
        Starting point of every chain (nutpie: compiled in; PyMC: ``initvals``).
    compile_options : dict, optional
        Options of ``nutpie.compile_pymc_model`` (``backend``, ``gradient_backend``); they must
        be part of ``cache_key``.
    nutpie_kwargs, pymc_kwargs : dict, optional
        Further options of ``nutpie.sample`` / ``pymc.sample``.
    """
    if sampler == "nutpie":
        return _sample_nutpie(model, run, draws, tune, chains, cores, target_accept, progress,
                              cache_key, initial_points, dict(compile_options or {}),
                              dict(nutpie_kwargs or {}))
    import pymc as pm

    kwargs = dict(pymc_kwargs or {})
    if initial_points is not None:
        kwargs.setdefault("initvals", initial_points)
    with model:
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=cores,
                         target_accept=target_accept, random_seed=run_seed(run),
                         progressbar=progress, **kwargs)


def _sample_nutpie(model: Any, run: np.random.SeedSequence, draws: int, tune: int, chains: int,
                   cores: int | None, target_accept: float, progress: bool,
                   cache_key: Hashable | None, initial_points: dict[str, Any] | None,
                   compile_options: dict[str, Any], nuts_kwargs: dict[str, Any]) -> Any:
    import nutpie
    import pymc as pm
    from arviz import dict_to_dataset
    from arviz.data.base import make_attrs
    from pymc.backends import arviz as pm_arviz

    if cache_key is None:
        entry = _compile(model, initial_points, compile_options)
        entry.lock.acquire()
    else:
        entry = _cached(cache_key, model, initial_points, compile_options)
    try:
        values = {v.name: v.get_value() for v in model.data_vars}
        if entry.model is not model and values:
            # nutpie draws its starting point from the PyMC model's data: set them too
            pm.set_data(values, model=entry.model)
        compiled = entry.compiled.with_data(**values) if values else entry.compiled
        if cores is not None:
            nuts_kwargs.setdefault("cores", cores)
        t0 = time.time()
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains,
                              target_accept=target_accept, seed=run_seed(run),
                              progress_bar=progress, **nuts_kwargs)
        t_sample = time.time() - t0
        # the groups pymc.sample adds to nutpie's trace
        coords, dims = pm_arviz.coords_and_dims_for_inferencedata(entry.model)
        groups = {}
        for name, found in (("constant_data", pm_arviz.find_constants),
                            ("observed_data", pm_arviz.find_observations)):
            data = found(entry.model)
            if data:
                groups[name] = dict_to_dataset(data, library=pm, coords=coords, dims=dims,
                                               default_dims=[])
    finally:
        entry.lock.release()
    for k, v in make_attrs({"sampling_time": t_sample, "tuning_steps": tune},
                           library=nutpie).items():
        idata.posterior.attrs[k] = v
    if groups:
        idata.add_groups(groups, coords=coords, dims=dims)
    return idata


# ------------------------------------------------------------------------------ summaries
def convergence(idata: Any, var: str = "N", var_names: list[str] | None = None) -> dict[str, Any]:
    """Convergence of the chains, under the package's one set of names.

    Returns ``rhat``, ``ess_bulk``, ``ess_tail`` of ``var`` (rank-normalised split R-hat and
    effective sample sizes of ArviZ; R-hat is ``nan`` with one chain) and ``divergences`` (the
    number of divergent transitions, an int); with ``var_names``, also ``max_rhat`` and
    ``min_ess_bulk`` over those variables and ``summary`` (``arviz.summary`` of them).
    """
    import arviz as az

    names = list(var_names) if var_names else [var]
    if var not in names:
        names = [var, *names]
    summ = az.summary(idata, var_names=names, round_to="none")
    n_chains = idata.posterior.sizes["chain"]
    stats = getattr(idata, "sample_stats", {})
    out: dict[str, Any] = {
        "rhat": float(summ.loc[var, "r_hat"]) if n_chains > 1 else math.nan,
        "ess_bulk": float(summ.loc[var, "ess_bulk"]),
        "ess_tail": float(summ.loc[var, "ess_tail"]),
        "divergences": int(stats["diverging"].values.sum()) if "diverging" in stats else 0,
    }
    if var_names:
        out["max_rhat"] = float(summ["r_hat"].max()) if n_chains > 1 else math.nan
        out["min_ess_bulk"] = float(summ["ess_bulk"].min())
        out["summary"] = summ
    return out


#: Prior-to-posterior contraction below which a Bayesian result carries a ``prior_driven``
#: caveat: the data removed less than half of the prior's variance of the quantity that sets
#: N (log of the unseen count, or of the unseen share).
CONTRACTION_WARN = 0.5


def contraction(prior: Any, posterior: Any) -> float:
    """Prior-to-posterior contraction ``1 - var(posterior) / var(prior)`` of one quantity from
    draws of each (``nan`` when either has fewer than two finite draws or the prior's variance
    is zero). Near 1: the data decided; near 0 (or below): the posterior is the prior's.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> round(contraction(rng.normal(0, 10, 100_000), rng.normal(0, 1, 100_000)), 2)
    0.99
    """
    a = np.asarray(prior, dtype=float).ravel()
    b = np.asarray(posterior, dtype=float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return math.nan
    va = float(np.var(a, ddof=1))
    return 1.0 - float(np.var(b, ddof=1)) / va if va > 0 else math.nan
