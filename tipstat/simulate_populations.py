"""Known-truth populations for checking Multiple Systems Estimation.

:func:`populations` draws the capture histories of a closed population of known size ``N`` over
``K`` lists, with list dependence, capture heterogeneity (latent classes or a continuous
logit-normal effect), strata and sparse overlaps, reproducibly from a seed. Coverage studies,
tests and :mod:`tipstat.validate` use it: every estimator can be scored against the truth.

The model
---------
Person ``i`` has a capture pattern ``x_i`` in ``{0, 1}^K``. Conditionally on a person effect
``s_i`` (a K-vector; zero without heterogeneity) the pattern follows the pairwise log-linear
(quadratic exponential) model

.. math::

    P(x \\mid s) = \\frac{1}{Z(a + s)}
        \\exp\\Big(\\sum_j (a_j + s_j) x_j + \\sum_{j<l} \\gamma_{jl}\\, x_j x_l\\Big),

so ``gamma_jl`` is the log odds ratio of lists ``j`` and ``l`` conditional on the other lists
(positive: being on ``j`` makes ``l`` more likely; negative: less likely). Without heterogeneity
this is exactly the log-linear model with the two-way terms ``j:l`` for which ``gamma_jl != 0``,
so that model recovers ``N`` without bias. Heterogeneity enters through ``s_i``:

* :class:`LatentClasses` - ``s_i`` takes one value per class: class ``c`` (weight ``w_c``) has
  its own capture probabilities.
* :class:`LogitNormal` - ``s_{ij} = lambda_j \\sigma z_i`` with ``z_i ~ N(0, 1)``: the continuous
  (Rasch-type) heterogeneity of model Mh; loadings ``lambda_j`` of opposite sign make lists
  negatively dependent.

The main effects ``a`` are calibrated so that the *average* capture probability of list ``j``
over the population, ``E_s[P(x_j = 1 | s)]``, equals the requested ``p_j`` (within each latent
class, the class's probabilities). The expected probability of every pattern, including the
unobserved one, is returned with the sample so that estimators and the simulation itself can be
checked against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss

from .errors import InputError
from .histories import CaptureHistories, pattern_matrix

__all__ = ["SCENARIOS", "LatentClasses", "LogitNormal", "Population", "populations", "scenario",
           "simulate_populations"]

MAX_SIM_LISTS = 12
_QUADRATURE_NODES = 48
_CHUNK_CELLS = 4_000_000  # persons x patterns evaluated at once for the continuous model


# ---------------------------------------------------------------------------- heterogeneity
@dataclass(frozen=True)
class LatentClasses:
    """Discrete capture heterogeneity: a finite mixture of homogeneous classes.

    Parameters
    ----------
    weights : sequence of float
        Share of the population in each class (normalised to sum 1).
    p : sequence, shape (C,) or (C, K)
        Capture probability of each class: one per class (the same on every list) or one per
        class and list. The overall capture probability of list ``j`` is ``sum_c w_c p_cj``.

    Examples
    --------
    >>> het = LatentClasses(weights=[0.8, 0.2], p=[0.1, 0.6])
    >>> pop = populations(n=2000, k=4, heterogeneity=het, seed=1)
    >>> pop.truth["class_sizes"]
    [1607, 393]
    """

    weights: Sequence[float]
    p: Sequence[float] | Sequence[Sequence[float]]


@dataclass(frozen=True)
class LogitNormal:
    """Continuous capture heterogeneity: ``logit P(on list j | z_i) = a_j + lambda_j sigma z_i``.

    Parameters
    ----------
    sigma : float
        Standard deviation of the person effect on the logit scale (0: homogeneous). Values of
        0.5-1.5 are moderate to strong.
    loadings : sequence of float, optional
        ``lambda_j`` per list (default 1 on every list). Equal signs make the lists positively
        dependent through the hidden effect; opposite signs negatively.

    Examples
    --------
    >>> pop = populations(n=5000, k=3, p=0.3, heterogeneity=LogitNormal(1.0), seed=2)
    >>> pop.histories.k, pop.n
    (3, 5000)
    """

    sigma: float
    loadings: Sequence[float] | None = None


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class Population:
    """A simulated population and its capture histories.

    Attributes
    ----------
    histories : CaptureHistories
        The observable counts (what an analyst sees), with a stratum column if strata were given.
    n : int
        True population size (sum over strata).
    n_by_stratum : pandas.Series
        True size of each stratum (one entry ``"all"`` when unstratified).
    unobserved : int
        True number of persons on no list: ``n - histories.n_observed``.
    probabilities : numpy.ndarray
        Shape ``(n_strata, 2**K)``: expected probability of each pattern code (column 0 is the
        unobserved pattern), exact for homogeneous and latent-class populations and to
        ~1e-10 (Gauss-Hermite quadrature) for the logit-normal one.
    capture_probabilities : pandas.DataFrame
        Expected marginal probability of each list (columns) in each stratum (rows).
    truth : dict
        The parameters used: ``p``, ``dependence`` (K x K matrix of ``gamma``), the calibrated
        main effects ``a`` per stratum, heterogeneity, class sizes for latent classes.
    seed : int or None
        The seed that reproduces this population.
    """

    histories: CaptureHistories
    n: int
    n_by_stratum: pd.Series
    probabilities: np.ndarray
    capture_probabilities: pd.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    @property
    def unobserved(self) -> int:
        return int(self.n - self.histories.n_observed)

    @property
    def expected_counts(self) -> np.ndarray:
        """Expected observable counts ``N_s * P(pattern)`` in cell order, pooled over strata."""
        sizes = self.n_by_stratum.to_numpy(dtype=float)
        return (sizes[:, None] * self.probabilities[:, 1:]).sum(axis=0)

    def __repr__(self) -> str:
        return (f"Population(n={self.n}, observed={self.histories.n_observed}, k={self.histories.k}, "
                f"strata={len(self.n_by_stratum)}, seed={self.seed})")


# ---------------------------------------------------------------------------- the model
def _interaction_scores(pat: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """``sum_{j<l} gamma_jl x_j x_l`` for every pattern (rows of ``pat``)."""
    upper = np.triu(gamma, 1)
    return np.einsum("cj,jl,cl->c", pat, upper, pat)


def _pattern_probs(eta: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    m = eta.max(axis=-1, keepdims=True)
    w = np.exp(eta - m)
    return w / w.sum(axis=-1, keepdims=True)


def _calibrate(target: np.ndarray, pat: np.ndarray, inter: np.ndarray, shifts: np.ndarray,
               weights: np.ndarray) -> np.ndarray:
    """Main effects ``a`` with ``sum_q w_q E[x | a + s_q] = target``.

    Newton's method on the convex function ``sum_q w_q log Z(a + s_q) - a' target`` (gradient:
    the mixture marginals minus the target; Hessian: the mixture of the capture covariances).
    """
    a = np.log(target / (1 - target))
    patf = pat.astype(float)

    def objective(a_: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        eta = (a_[None, :] + shifts) @ patf.T + inter[None, :]
        m = eta.max(axis=1, keepdims=True)
        logz = (m[:, 0] + np.log(np.exp(eta - m).sum(axis=1)))
        probs = np.exp(eta - logz[:, None])
        marg = probs @ patf                                    # (Q, K)
        f = float(weights @ logz - a_ @ target)
        grad = weights @ marg - target
        second = np.einsum("q,qc,cj,cl->jl", weights, probs, patf, patf)
        hess = second - np.einsum("q,qj,ql->jl", weights, marg, marg)
        return f, grad, hess

    f, grad, hess = objective(a)
    for _ in range(200):
        step = np.linalg.solve(hess + 1e-12 * np.eye(len(a)), grad)
        t = 1.0
        while True:
            f_new, g_new, h_new = objective(a - t * step)
            if f_new <= f + 1e-14 * abs(f) or t < 1e-8:
                break
            t /= 2
        a = a - t * step
        f, grad, hess = f_new, g_new, h_new
        if np.max(np.abs(grad)) < 1e-12:
            break
    return a


def _as_vector(value: Any, k: int, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.size == 1:
        arr = np.full(k, float(arr[0]))
    if arr.shape != (k,):
        raise InputError(f"{name} must be one number or one per list ({k}); got shape {arr.shape}")
    return arr


def _check_probs(p: np.ndarray, name: str) -> None:
    bad = [(j, float(v)) for j, v in enumerate(p.ravel()) if not (0 < v < 1)]
    if bad:
        raise InputError(f"{name}: capture probabilities must be strictly between 0 and 1; "
                         f"got {bad[0][1]!r} at position {bad[0][0]}")


def _dependence_matrix(dep: Any, lists: Sequence[str]) -> np.ndarray:
    """K x K symmetric matrix of log odds ratios from None, a matrix or a mapping."""
    k = len(lists)
    g = np.zeros((k, k))
    if dep is None:
        return g
    if isinstance(dep, Mapping):
        for key, value in dep.items():
            if isinstance(key, str):
                names = [x.strip() for x in key.split(":")]
            else:
                names = list(key)
            if len(names) != 2:
                raise InputError(f"dependence: key {key!r} must name two lists, e.g. 'A:B' or (0, 1)")
            idx = []
            for nm in names:
                if isinstance(nm, int | np.integer) and 0 <= int(nm) < k:
                    idx.append(int(nm))
                elif str(nm) in lists:
                    idx.append(list(lists).index(str(nm)))
                else:
                    raise InputError(f"dependence: unknown list {nm!r} in key {key!r}; the lists are "
                                     f"{list(lists)} (or indices 0..{k - 1})")
            if idx[0] == idx[1]:
                raise InputError(f"dependence: key {key!r} names the same list twice")
            v = float(value)
            if not math.isfinite(v):
                raise InputError(f"dependence: value {value!r} for {key!r} must be finite")
            g[idx[0], idx[1]] = g[idx[1], idx[0]] = v
        return g
    arr = np.asarray(dep, dtype=float)
    if arr.shape != (k, k):
        raise InputError(f"dependence must be a mapping {{'A:B': log_odds_ratio}} or a {k}x{k} "
                         f"matrix; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or not np.allclose(arr, arr.T):
        raise InputError("dependence matrix must be finite and symmetric")
    g = arr.copy()
    np.fill_diagonal(g, 0.0)
    return g


def _draw_stratum(n: int, p: Any, gamma: np.ndarray, het: Any, pat: np.ndarray,
                  rng: np.random.Generator, where: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Counts of all 2**K pattern codes for one stratum, their expected probabilities, truth."""
    k = pat.shape[1]
    inter = _interaction_scores(pat, gamma)
    truth: dict[str, Any] = {}
    if isinstance(het, LatentClasses):
        if p is not None:
            raise InputError(f"{where}: give the capture probabilities in LatentClasses(p=...) "
                             "and leave p=None")
        w = np.asarray(het.weights, dtype=float)
        if w.ndim != 1 or len(w) < 1 or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise InputError(f"{where}: LatentClasses weights must be non-negative numbers with a "
                             f"positive sum; got {list(het.weights)}")
        w = w / w.sum()
        cp = np.asarray(het.p, dtype=float)
        if cp.ndim == 1:
            cp = np.repeat(cp[:, None], k, axis=1)
        if cp.shape != (len(w), k):
            raise InputError(f"{where}: LatentClasses p must have shape ({len(w)},) or "
                             f"({len(w)}, {k}); got {np.shape(het.p)}")
        _check_probs(cp, f"{where}: LatentClasses p")
        zero = np.zeros((1, k))
        a_cls = np.array([_calibrate(cp[c], pat, inter, zero, np.ones(1)) for c in range(len(w))])
        probs_cls = _pattern_probs(a_cls @ pat.T + inter[None, :])
        sizes = rng.multinomial(n, w)
        counts = sum(rng.multinomial(int(sizes[c]), probs_cls[c]) for c in range(len(w)))
        probs = w @ probs_cls
        truth.update(a=a_cls, class_weights=w.tolist(), class_p=cp, class_sizes=sizes.tolist())
        return np.asarray(counts, dtype=np.int64), probs, truth

    pv = _as_vector(0.3 if p is None else p, k, f"{where}: p")
    _check_probs(pv, f"{where}: p")
    if het is None or (isinstance(het, LogitNormal) and float(het.sigma) == 0.0):
        a = _calibrate(pv, pat, inter, np.zeros((1, k)), np.ones(1))
        probs = _pattern_probs(a @ pat.T + inter)
        truth["a"] = a
        return rng.multinomial(n, probs).astype(np.int64), probs, truth
    if not isinstance(het, LogitNormal):
        raise InputError(f"{where}: heterogeneity must be None, LatentClasses(...) or "
                         f"LogitNormal(...); got {type(het).__name__}")
    sigma = float(het.sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"{where}: LogitNormal sigma must be a non-negative number; got {het.sigma!r}")
    lam = _as_vector(1.0 if het.loadings is None else het.loadings, k, f"{where}: loadings")
    nodes, wq = hermegauss(_QUADRATURE_NODES)
    wq = wq / wq.sum()
    shifts = nodes[:, None] * (sigma * lam)[None, :]
    a = _calibrate(pv, pat, inter, shifts, wq)
    probs = wq @ _pattern_probs((a[None, :] + shifts) @ pat.T + inter[None, :])
    truth["a"] = a
    z = rng.standard_normal(n)
    codes = np.empty(n, dtype=np.int64)
    if not np.any(gamma):
        # independent Bernoulli draws given z: no 2**K work per person
        logit = a[None, :] + np.outer(z, sigma * lam)
        on = rng.random((n, k)) < 1.0 / (1.0 + np.exp(-logit))
        codes = on.astype(np.int64) @ (1 << np.arange(k))
    else:
        chunk = max(1, _CHUNK_CELLS // (2**k))
        base = a @ pat.T + inter
        slope = (sigma * lam) @ pat.T
        for start in range(0, n, chunk):
            zz = z[start:start + chunk]
            pr = _pattern_probs(base[None, :] + zz[:, None] * slope[None, :])
            cdf = np.cumsum(pr, axis=1)
            u = rng.random(len(zz))[:, None] * cdf[:, -1:]
            codes[start:start + chunk] = np.minimum((cdf < u).sum(axis=1), 2**k - 1)
    return np.bincount(codes, minlength=2**k).astype(np.int64), probs, truth


def _check_n(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InputError(f"{where}: n must be a non-negative integer (the true population size); "
                         f"got {value!r}")
    return int(value)


def _one_population(n, k, p, lists, dependence, heterogeneity, strata, stratum_name, seed_seq,
                    seed_label) -> Population:
    rng = np.random.default_rng(seed_seq)
    pat = pattern_matrix(k, include_unobserved=True)
    gamma0 = _dependence_matrix(dependence, lists)
    if strata is None:
        specs: dict[Any, Mapping[str, Any]] = {"all": {}}
    else:
        if not isinstance(strata, Mapping) or not strata:
            raise InputError("strata must be a non-empty mapping {label: {parameter: value}}, e.g. "
                             "{'female': {'n': 600, 'p': 0.4}, 'male': {'n': 400}}")
        specs = dict(strata)
    allowed = {"n", "p", "dependence", "heterogeneity"}
    all_counts, all_probs, all_truth, sizes = [], [], {}, {}
    for label, spec in specs.items():
        where = "populations" if strata is None else f"stratum {label!r}"
        if not isinstance(spec, Mapping):
            raise InputError(f"{where}: expected a mapping of parameters, got {type(spec).__name__}")
        unknown = set(spec) - allowed
        if unknown:
            raise InputError(f"{where}: unknown parameter(s) {sorted(unknown)}; allowed: "
                             f"{sorted(allowed)}")
        n_s = _check_n(spec.get("n", n), where)
        gamma = _dependence_matrix(spec["dependence"], lists) if "dependence" in spec else gamma0
        het = spec.get("heterogeneity", heterogeneity)
        p_s = spec.get("p", p)
        counts, probs, truth = _draw_stratum(n_s, p_s, gamma, het, pat, rng, where)
        truth["dependence"] = gamma
        truth["p"] = probs @ pat
        all_counts.append(counts)
        all_probs.append(probs)
        all_truth[label] = truth
        sizes[label] = n_s
    counts = np.vstack(all_counts)
    probs = np.vstack(all_probs)
    if strata is None:
        h = CaptureHistories(counts[0, 1:], lists)
    else:
        index = pd.DataFrame({stratum_name: list(specs)})
        h = CaptureHistories(counts[:, 1:], lists, index)
    n_by = pd.Series(sizes, name="n")
    n_by.index.name = stratum_name if strata is not None else None
    cap = pd.DataFrame(probs @ pat, index=n_by.index, columns=list(lists))
    truth_out: dict[str, Any] = all_truth["all"] if strata is None else {"strata": all_truth}
    truth_out["heterogeneity"] = heterogeneity
    return Population(histories=h, n=int(sum(sizes.values())), n_by_stratum=n_by,
                      probabilities=probs, capture_probabilities=cap, truth=truth_out,
                      seed=seed_label)


def populations(
    n: int = 1000,
    k: int = 4,
    p: float | Sequence[float] | None = None,
    *,
    dependence: Mapping[Any, float] | np.ndarray | None = None,
    heterogeneity: LatentClasses | LogitNormal | None = None,
    strata: Mapping[Any, Mapping[str, Any]] | None = None,
    lists: Sequence[str] | None = None,
    stratum_name: str = "stratum",
    replicates: int | None = None,
    seed: int | np.random.SeedSequence | None = None,
) -> Population | list[Population]:
    """Simulate capture histories of a closed population of known size.

    Each of the ``n`` persons gets a capture pattern over ``k`` lists from the pairwise
    log-linear model (see the module docstring)

    .. math::

        P(x \\mid s_i) \\propto \\exp\\Big(\\sum_j (a_j + s_{ij}) x_j
            + \\sum_{j<l} \\gamma_{jl} x_j x_l\\Big),

    with ``a`` calibrated so that list ``j`` catches on average a share ``p_j`` of the
    population. Sparse overlaps come from small ``p``, many lists, or negative ``gamma``.

    Parameters
    ----------
    n : int
        True population size (of each stratum that does not set its own ``n``).
    k : int
        Number of lists, 2 to 12 (the issue's range is 3-10).
    p : float or sequence of float, optional
        Average capture probability of each list (default 0.3). Leave ``None`` with
        :class:`LatentClasses`, which carries its own probabilities.
    dependence : mapping or array, optional
        Conditional log odds ratios ``gamma_jl``: ``{"A:B": 1.0, (0, 2): -0.8}`` (list names or
        0-based indices) or a symmetric K x K matrix. Positive values are positive dependence.
    heterogeneity : LatentClasses or LogitNormal, optional
        Capture heterogeneity (default: none, every person has the same probabilities).
    strata : mapping, optional
        ``{label: {"n": ..., "p": ..., "dependence": ..., "heterogeneity": ...}}``; unset keys take
        the top-level values. The histories get a stratum column ``stratum_name``.
    lists : sequence of str, optional
        List names (default ``L1 .. Lk``).
    stratum_name : str
        Name of the stratum column.
    replicates : int, optional
        If given, return a list of that many independent populations; replicate ``r`` uses the
        ``r``-th child of ``numpy.random.SeedSequence(seed)``, so it does not depend on how many
        replicates are drawn nor in which order (safe for parallel runs).
    seed : int or numpy.random.SeedSequence, optional
        Everything random is drawn from ``numpy.random.default_rng`` seeded with it.

    Returns
    -------
    Population or list of Population
        ``.histories`` (what an analyst sees) and the truth: ``.n``, ``.n_by_stratum``,
        ``.probabilities`` (expected pattern probabilities), ``.truth`` (parameters).

    Raises
    ------
    InputError
        Naming the parameter (and stratum) that is out of range.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.simulate_populations import populations
    >>> pop = populations(n=3000, k=4, p=0.25, dependence={"L1:L2": 1.0}, seed=7)
    >>> pop.n, pop.histories.n_observed
    (3000, 1988)
    >>> est = tipstat.fit_loglinear(pop.histories, "L1:L2", ci="wald")
    >>> bool(est.ci[0] <= pop.n <= est.ci[1])
    True
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 2 <= k <= MAX_SIM_LISTS:
        raise InputError(f"k must be an integer from 2 to {MAX_SIM_LISTS} (number of lists); got {k!r}")
    k = int(k)
    _check_n(n, "populations")
    if lists is None:
        lists = [f"L{j + 1}" for j in range(k)]
    lists = [str(x) for x in lists]
    if len(lists) != k or len(set(lists)) != k:
        raise InputError(f"lists must be {k} distinct names; got {lists}")
    if replicates is not None and (isinstance(replicates, bool) or
                                   not isinstance(replicates, int | np.integer) or replicates < 1):
        raise InputError(f"replicates must be a positive integer; got {replicates!r}")
    if isinstance(seed, np.random.SeedSequence):
        seq = seed
        label = seed.entropy if isinstance(seed.entropy, int) else None
    elif seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool)):
        seq = np.random.SeedSequence(None if seed is None else int(seed))
        label = int(seq.entropy) if seed is None else int(seed)
    else:
        raise InputError(f"seed must be an integer, a numpy SeedSequence or None; got {seed!r}")
    args = (n, k, p, lists, dependence, heterogeneity, strata, stratum_name)
    if replicates is None:
        return _one_population(*args, seq, label)
    return [_one_population(*args, child, label) for child in seq.spawn(int(replicates))]


#: ``tipstat.simulate_populations`` (the lazily exported name of :func:`populations`).
simulate_populations = populations


# ---------------------------------------------------------------------------- scenarios
#: Named scenarios of the coverage study: (description, keyword arguments of `populations`
#: as a function of k). Which assumption of the independence model each one breaks is in the
#: description.
SCENARIOS: dict[str, str] = {
    "independence": "homogeneous, independent lists, p = 0.25 (all assumptions hold)",
    "positive": "lists 1-2 and 3-4 positively dependent (log odds ratio +1.0), p = 0.25",
    "negative": "lists 1-2 negatively dependent (log odds ratio -1.0), p = 0.25",
    "heterogeneity": "logit-normal heterogeneity, sigma = 1, mean p = 0.25 (Mh)",
    "latent_classes": "two classes: 80% with p = 0.12, 20% with p = 0.5",
    "sparse": "independent lists, p = 0.06 (many empty overlap cells)",
}


def scenario(name: str, k: int = 4) -> dict[str, Any]:
    """Keyword arguments of :func:`populations` for a named scenario of :data:`SCENARIOS`.

    Examples
    --------
    >>> kw = scenario("negative", k=5)
    >>> kw["dependence"]
    {(0, 1): -1.0}
    >>> populations(n=1000, seed=1, **kw).histories.k
    5
    """
    if name not in SCENARIOS:
        raise InputError(f"unknown scenario {name!r}; available: {', '.join(SCENARIOS)}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 3:
        raise InputError(f"scenario k must be an integer >= 3; got {k!r}")
    out: dict[str, Any] = {"k": int(k), "p": 0.25}
    if name == "positive":
        out["dependence"] = {(0, 1): 1.0, (2, 3): 1.0} if k >= 4 else {(0, 1): 1.0}
    elif name == "negative":
        out["dependence"] = {(0, 1): -1.0}
    elif name == "heterogeneity":
        out["heterogeneity"] = LogitNormal(1.0)
    elif name == "latent_classes":
        out["p"] = None
        out["heterogeneity"] = LatentClasses(weights=(0.8, 0.2), p=(0.12, 0.5))
    elif name == "sparse":
        out["p"] = 0.06
    return out
