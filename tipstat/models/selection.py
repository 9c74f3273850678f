"""Model selection for Poisson log-linear MSE: information criteria, stepwise rules, averaging.

A *model* is a hierarchical set of interaction terms (bit masks over lists, as in
:mod:`tipstat.models.design`); main effects are always in. Every candidate is fitted by the shared
engine, vectorised over many models at once (:func:`tipstat.models.poisson.newton_batch`) and
checked for existence exactly as single fits are: a term whose margin is zero forces the cells
containing it to be empty (their fitted values are 0, the term is dropped, and the extended MLE is
fitted on the remaining cells, as SparseMSE does for non-overlapping lists); any other fit whose
empty cells' fitted values vanish goes to the exact linear-programming check of
:func:`tipstat.models.loglinear._fit`. Models whose MLE does not exist or whose N is not
identifiable are excluded from every rule and counted.

Rules
-----
``"aic"`` / ``"bic"``
    Minimise ``AIC = -2 l + 2 p`` or ``BIC = -2 l + p log n_obs`` (Rcapture's conventions: ``l``
    the Poisson log-likelihood of the ``2^K - 1`` observable cells, ``p`` design columns) over
    every hierarchical model with interactions up to ``max_order`` when there are at most
    ``max_models`` of them (UK_6: all 32,768 two-way models), else by greedy up/down search.
``"stepwise"`` (Chan, Silverman & Vincent 2021)
    From main effects, repeatedly add the two-way term with the smallest Poisson-tail p-value
    ``min(P(X <= n_ij), P(X >= n_ij))``, ``X ~ Poisson(sum of fitted cells on both lists i and
    j)``, ``n_ij`` the observed overlap, provided it is below ``pthresh`` (default 0.02) and the
    enlarged model's MLE exists; stop when no term qualifies.
``"bhs"`` (Bales, Hesketh & Silverman 2015, the Home Office UK 2013 estimate)
    From main effects, repeatedly add the two-way term that lowers AIC most, provided the lowered
    AIC is below the current one and the new term's Wald p-value ``2 (1 - Phi(|b / se(b)|))`` is
    below ``alpha`` (default 0.05); stop otherwise.

With ``average=True`` the AIC or BIC weights ``w_m = exp(-Delta_m / 2) / sum exp(-Delta / 2)``
over admissible models give ``N_avg = sum w_m N_m`` with Buckland's unconditional standard error
``sum w_m sqrt(se_m^2 + (N_m - N_avg)^2)``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.special import gammaln

from .._checks import check_ci, check_level
from ..errors import InputError, TipstatWarning
from ..estimate import Caveat, Estimate
from ..histories import CaptureHistories
from ..parallel import one_blas_thread
from .checks import attach_checks
from .design import loglinear_design, term_label
from .loglinear import CI_METHODS, _check_histories, _fit, estimate_from_fit
from .newton import count_scale, newton
from .poisson import _EXIST_RATIO, BatchFit, check_existence, newton_batch, reduced_full_rank
from .search import Decision, climb, exhaustive
from .terms import TermSpace

__all__ = ["CRITERIA", "select_loglinear"]

CRITERIA = ("aic", "bic", "stepwise", "bhs")
ADMISSIBLE = ("ok", "extended")


# --------------------------------------------------------------------------- model space
#: The model space of a search: candidate terms, hierarchy, labels, design (one type for the
#: package, :class:`tipstat.models.terms.TermSpace`).
Space = TermSpace


@lru_cache(maxsize=64)
def _space(lists: tuple[str, ...], max_order: int) -> TermSpace:
    return TermSpace(lists, max_order)


# --------------------------------------------------------------------------- batch evaluation
@dataclass
class Evaluated:
    """Fits of many models to one table (arrays aligned with ``models``)."""

    models: list
    n_hat: np.ndarray
    se: np.ndarray
    var_b0: np.ndarray
    loglik: np.ndarray
    deviance: np.ndarray
    n_params: np.ndarray
    aic: np.ndarray
    bic: np.ndarray
    status: np.ndarray
    beta: np.ndarray
    cov: np.ndarray
    mu: np.ndarray
    n_exact_checks: int = 0
    reasons: dict = field(default_factory=dict)

    @property
    def admissible(self) -> np.ndarray:
        return np.isin(self.status, ADMISSIBLE) & np.isfinite(self.n_hat)


def factored(space: Space) -> bool:
    """Whether searches of ``space`` fit models by moments (:func:`_factored_fit`): from 13
    lists with two-way terms, where the level-wise batch's Hessian products would take more
    than :data:`LEVELWISE_BYTES`. Up to 12 lists every number is the dense engine's."""
    return len(space.codes) * space.p**2 * 8 > LEVELWISE_BYTES


def evaluate(space: Space, y: np.ndarray, models: Sequence[Sequence[int]],
             beta0: np.ndarray | None = None, detail: bool = True,
             dense: bool = False, warm: np.ndarray | None = None) -> Evaluated:
    """Fit every model in ``models`` to the observable counts ``y`` ((n,), or (M, n): one table
    per model, e.g. one bootstrap replicate each). With ``detail=False`` (bootstrap replicates)
    models whose MLE does not exist are only classified, not fitted on their facial set (their
    deviance is then ``nan``). Spaces that are :func:`factored` are fitted by moments (no
    fitted cells ``mu``) unless ``dense`` asks for the dense engine. ``warm`` (p,) or (M, p):
    starts (e.g. from the proven fit of a neighbouring model) where ``beta0`` gives none; in
    the level-wise batch a model whose parent is among ``models`` still starts from it."""
    if not dense and (not space.dense_ok or factored(space)) and np.ndim(y) == 1:
        if beta0 is None and warm is not None:
            beta0 = np.broadcast_to(warm, (len(models), space.p))
        return _evaluate_factored(space, y, models, beta0)
    y = np.asarray(y, dtype=np.float64)
    M = len(models)
    many = y.ndim == 2
    Y = y if many else y[None, :]
    cmask = space.col_mask(models)
    n_obs = Y.sum(axis=1) if many else np.full(M, float(y.sum()))
    # a main effect or term with zero margin forces its cells to be empty: drop the cells and
    # the column (the extended MLE, fitted on the remaining cells)
    margins = Y @ space.X[:, 1:]  # (1 or M, p - 1)
    zero = np.zeros((M, space.p), dtype=bool)
    zero[:, 1:] = (margins == 0) & cmask[:, 1:]
    cells = np.ones((M, Y.shape[1]), dtype=bool)
    if zero.any():
        cells = (zero.astype(np.float64) @ space.X.T) == 0
        cmask &= ~zero
    if beta0 is None and M > 16 and not many and not factored(space):
        fit = _levelwise(space, y, models, cmask, cells, warm)
    else:
        # models with the same columns are fitted together on their own (compact) design
        fit = BatchFit(np.zeros((M, space.p)), np.zeros((M, Y.shape[1])),
                       np.zeros((M, space.p, space.p)), np.full(M, -np.inf),
                       np.zeros(M, dtype=bool), np.zeros(M, dtype=np.int64))
        groups: dict[bytes, list[int]] = {}
        for i in range(M):
            groups.setdefault(cmask[i].tobytes(), []).append(i)
        for idx in groups.values():
            ix = np.asarray(idx)
            cols = np.flatnonzero(cmask[ix[0]])
            b0 = None if beta0 is None else np.asarray(beta0)[np.ix_(ix, cols)]
            part = newton_batch(space.X[:, cols], Y[ix] if many else y,
                                np.ones((len(ix), len(cols)), dtype=bool), cells[ix], b0)
            fit.beta[np.ix_(ix, cols)] = part.beta
            fit.mu[ix] = part.mu
            fit.cov[np.ix_(ix, cols, cols)] = part.cov
            fit.kernel[ix] = part.kernel
            fit.exact[ix] = part.exact
            fit.iterations[ix] = part.iterations
    # a zero margin can leave fewer kept cells than columns, or a rank-deficient design on the
    # kept cells: then N may not be identified and Newton's iterate means nothing. Such models
    # go to the exact check below (the rank of every reduced design, in batched SVDs)
    reduced = np.flatnonzero(fit.exact & ~cells.all(axis=1))
    if len(reduced) > 1 and space.X.shape[0] < 128:
        fit.exact[reduced] = _reduced_full_rank_many(space.X, cells[reduced], cmask[reduced])
    else:  # many cells: the reduced designs (fewer rows) one by one are cheaper
        for i in reduced:
            fit.exact[i] = reduced_full_rank(space.X, cells[i], cmask[i])
    pos = Y > 0
    lgy = gammaln(Y + 1).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sat = np.where(pos, Y * np.log(np.where(pos, Y, 1.0)) - Y, 0.0).sum(axis=1)
    if not many:
        lgy = np.full(M, lgy[0])
        sat = np.full(M, sat[0])
    n_params = np.array([space.base + len(m) for m in models], dtype=np.float64)
    loglik = fit.kernel - lgy
    mu0 = np.exp(fit.beta[:, 0])
    var_b0 = fit.cov[:, 0, 0]
    status = np.where(cells.all(axis=1), "ok", "extended").astype(object)
    n_hat = n_obs + mu0
    with np.errstate(invalid="ignore"):
        se = np.sqrt(mu0 + mu0**2 * var_b0)
    beta = fit.beta
    cov = fit.cov
    mu = fit.mu
    reasons: dict = {}
    todo = np.flatnonzero(~fit.exact)
    labels = list(CaptureHistories(np.zeros(Y.shape[1]), space.lists).pattern_labels()) \
        if len(todo) else None
    for i in todo:  # exact check (linear programs) where Newton could not prove existence
        yi = Y[i] if many else y
        design = loglinear_design(space.lists, space.ordered(models[i]))
        if not detail:
            # existence is cached by zero pattern: excluded models cost no fit at all
            ex = check_existence(design.observable, yi, labels)
            if not ex.finite:
                status[i] = ex.status
                reasons[i] = ex.reason
                n_hat[i] = math.inf if ex.status == "does_not_exist" else math.nan
                se[i] = var_b0[i] = loglik[i] = math.nan
                continue
        f = _fit(design, yi, space.lists)
        st = f.existence.status if (f.converged or not f.existence.finite) else "not_converged"
        status[i] = st
        reasons[i] = f.existence.reason
        loglik[i] = f.loglik
        n_hat[i] = f.n_hat if st in ADMISSIBLE else (math.inf if st == "does_not_exist" else math.nan)
        se[i] = f.se
        var_b0[i] = f.var_b0
        cols = [0, *range(1, space.base)] + [space.base + space.index[t] for t in design.terms]
        b = np.zeros(space.p)
        b[cols] = np.nan_to_num(f.beta, nan=0.0)
        beta[i] = b
        c = np.zeros((space.p, space.p))
        if f.cov is not None:
            c[np.ix_(cols, cols)] = np.nan_to_num(f.cov, nan=0.0)
        cov[i] = c
        mu[i] = f.mu
    deviance = np.maximum(2.0 * (sat - (loglik + lgy)), 0.0)
    aic = -2.0 * loglik + 2.0 * n_params
    bic = -2.0 * loglik + np.log(n_obs) * n_params
    return Evaluated(list(models), n_hat, se, var_b0, loglik, deviance, n_params, aic, bic,
                     status.astype(str), beta, cov, mu, len(todo), reasons)


def _reduced_full_rank_many(X: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                            chunk_bytes: int = 32 * 2**20) -> np.ndarray:
    """:func:`~tipstat.models.poisson.reduced_full_rank` for a stack of (rows, cols) masks.

    ``X[rows][:, cols]`` has the non-zero singular values of ``X`` with the other rows and
    columns set to 0, so one batched SVD of the masked designs serves every model; the rank
    tolerance is ``matrix_rank``'s for the reduced shape (largest singular value x
    ``max(rows, cols)`` x machine epsilon). On the bundled 5- and 6-list tables (every two-way
    model) the answers equal the one-by-one rule's and take 1/2 (63 cells) to 1/4 (31 cells)
    of its time; from ~128 cells the one-by-one SVDs of the smaller reduced designs are cheaper.

    >>> X = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    >>> rows = np.array([[True, True, True, False], [False, True, True, True]])
    >>> _reduced_full_rank_many(X, rows, np.ones((2, 2), dtype=bool)).tolist()
    [True, False]
    """
    from .poisson import _REDUCED_RANK, RANK_CACHE_SIZE, _digest, _rank_key, _remember_rank

    rows = np.asarray(rows, dtype=bool)
    cols = np.asarray(cols, dtype=bool)
    n_rows = rows.sum(axis=1)
    n_cols = cols.sum(axis=1)
    out = n_rows > n_cols
    # answers already known (the cache of the one-by-one rule: the same question for every
    # table with this zero pattern) are read back; the others go to the batched SVDs. More
    # questions than the cache holds (an exhaustive search of 6 lists) bypass it
    asked = np.flatnonzero(out)
    keys: dict[int, bytes] = {}
    if len(asked) <= RANK_CACHE_SIZE // 2:
        x_digest = _digest(X)
        keys = {int(i): _rank_key(x_digest, rows[i], cols[i]) for i in asked}
    known = {int(i): _REDUCED_RANK.get(keys[int(i)]) if keys else None for i in asked}
    for i, ok in known.items():
        if ok is not None:
            out[i] = ok
    idx = np.array([i for i, ok in known.items() if ok is None], dtype=np.int64)
    step = max(1, chunk_bytes // max(1, X.size * 8))
    eps = np.finfo(np.float64).eps
    for lo in range(0, len(idx), step):
        ix = idx[lo:lo + step]
        masked = X[None, :, :] * rows[ix, :, None] * cols[ix, None, :]
        sv = np.linalg.svd(masked, compute_uv=False)
        tol = sv[:, :1] * np.maximum(n_rows[ix], n_cols[ix])[:, None] * eps
        out[ix] = (sv > tol).sum(axis=1) == n_cols[ix]
        for i in ix if keys else ():
            _remember_rank(keys[int(i)], bool(out[i]))
    return out


def _levelwise(space: Space, y: np.ndarray, models: Sequence[Sequence[int]], cmask: np.ndarray,
               cells: np.ndarray, warm: np.ndarray | None = None):
    """Fit models in order of size, each started from the fit of its parent (the model without
    its last term) when that is among ``models``, else from ``warm`` (a greedy step's current
    model) or the independence fit: neighbouring models have nearby estimates, so Newton needs
    3-5 steps instead of ~10 (from the current model of a greedy step, 2-4)."""
    M = len(models)
    # a model as an integer with bit j for term j; its parent drops the highest term (terms
    # are indexed by order, so the highest one has no higher-order term above it in the model)
    # (Python integers: a space of more than 63 terms does not fit a machine word)
    index = space.index
    keys = [sum([1 << index[t] for t in m]) for m in models]
    where: dict[int, int] = {}
    for i, key in enumerate(keys):
        where.setdefault(key, i)
    sizes = np.array([len(m) for m in models])
    parent = np.array([where.get(key ^ (1 << (key.bit_length() - 1)), -1) if key else -1
                       for key in keys], dtype=np.int64)
    start = np.zeros((M, space.p))
    if warm is None:
        warm = newton_batch(space.X, y, space.col_mask([()]), None, None).beta[0]
    start[:] = warm
    out = None
    for size in np.unique(sizes):
        idx = np.flatnonzero(sizes == size)
        if out is not None:
            # start from the parent's fit only where that fit is a proven finite MLE: the
            # iterate of a diverging parent is deep in a recession direction (fitted values of
            # 1e-30 on its empty cells), where the Newton decrement is dominated by rounding
            # and the existence certificate could pass for a child whose MLE does not exist
            has = parent[idx] >= 0
            has[has] = out.exact[parent[idx[has]]]
            start[idx[has]] = out.beta[parent[idx[has]]]
        part = newton_batch(space.X, y, cmask[idx], cells[idx], start[idx], full_cov=False)
        if out is None:
            out = BatchFit(np.zeros((M, space.p)), np.zeros((M, len(y))),
                           np.zeros((M, space.p, space.p)), np.full(M, -np.inf),
                           np.zeros(M, dtype=bool), np.zeros(M, dtype=np.int64))
        out.beta[idx] = part.beta
        out.mu[idx] = part.mu
        out.cov[idx] = part.cov
        out.kernel[idx] = part.kernel
        out.exact[idx] = part.exact
        out.iterations[idx] = part.iterations
    return out


# --------------------------------------------------------------------------- many lists
#: From this many observable cells x columns of a model stack, :func:`evaluate` fits each
#: model on its own columns instead of the level-wise batch (whose Hessian products take
#: cells x columns^2 memory), and beyond the dense design's memory limit by moments.
LEVELWISE_BYTES = 256 * 2**20


def _factored_fit(space: Space, t: np.ndarray, n_obs: float, model: Sequence[int],
                  beta0: np.ndarray | None, dead: np.ndarray, maxiter: int = 100) -> tuple:
    """Poisson MLE of one model without the ``2**K`` design, by its moments.

    Let ``S`` be the lists the model's interactions touch and ``R`` the others. The expected
    count of pattern ``x`` factorises, ``mu_x = exp(b_0) A(x_S) prod_{j in R} exp(a_j x_j)``,
    so over all ``2**K`` patterns ``M = sum_x mu_x = exp(b_0) Z_S prod_R (1 + exp(a_j))``
    with ``Z_S = sum A`` over the ``2**|S|`` patterns of ``S``. The log-likelihood of the
    observable cells is ``l = t' beta - (M - exp(b_0))`` (``t = X'y`` the observed margins),
    its gradient ``t - M E[phi] + exp(b_0) e_0`` and its information
    ``M E[phi phi'] - exp(b_0) e_0 e_0'``, where under the normalised ``mu`` the lists of
    ``R`` are independent Bernoulli(``p_j = 1 / (1 + exp(-a_j))``) and independent of
    ``x_S``: every moment costs ``2**|S|`` operations, not ``2**K``. Damped Newton as in the
    dense fit, the one iteration :func:`~tipstat.models.newton.newton` (step halving until
    ``l`` does not fall; stop after the step taken where the decrement ``g' H^-1 g`` was below
    ``1e-12`` count scales of the margins, with the existence proof). ``dead`` marks columns
    whose observed margin is zero: their cells are fixed empty (the extended MLE), as in
    :func:`evaluate`.

    Returns ``(beta (p,), cov (p, p), kernel, converged)`` in the space's columns.
    """
    k = space.k
    cols = [c for c in space.columns(model) if not dead[c]]
    terms = [space.terms[c - space.base] for c in cols if c >= space.base]
    dead_terms = [space.terms[c - space.base] for c in space.columns(model)
                  if c >= space.base and dead[c]]
    s_bits = 0
    for term in (*terms, *dead_terms):
        s_bits |= term
    S = [j for j in range(k) if s_bits >> j & 1]
    R = [j for j in range(k) if not s_bits >> j & 1 and not dead[1 + j]]
    # local parameter vector: intercept, main effects of S, terms, main effects of R
    pos_S = [cols.index(1 + j) for j in S if not dead[1 + j]]
    main_S = [j for j in S if not dead[1 + j]]
    pos_T = [cols.index(space.base + space.index[u]) for u in terms]
    pos_R = [cols.index(1 + j) for j in R]
    q = len(cols)
    u = np.arange(1 << len(S), dtype=np.int64)
    bits = np.column_stack([(u >> i) & 1 for i in range(len(S))]).astype(np.float64) \
        if S else np.zeros((1, 0))
    local = {j: i for i, j in enumerate(S)}

    def local_mask(term: int) -> int:
        return sum(1 << local[j] for j in range(k) if term >> j & 1)

    alive = np.ones(len(u), dtype=bool)
    for j in S:
        if dead[1 + j]:
            alive &= bits[:, local[j]] == 0
    for term in dead_terms:
        lm = local_mask(term)
        alive &= (u & lm) != lm
    F = np.column_stack([np.ones(len(u)),
                         *(bits[:, local[j]] for j in main_S),
                         *(((u & local_mask(term)) == local_mask(term)).astype(np.float64)
                           for term in terms)])
    F = F[alive]
    pos_F = [0, *pos_S, *pos_T]
    tt = t[cols]

    def moments(b: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray, float]:
        a_F = b[pos_F].copy()
        a_F[0] = 0.0
        la = F @ a_F
        top = la.max()
        A = np.exp(la - top)
        Z = A.sum()
        pi = A / Z
        a_R = b[pos_R]
        log_m = b[0] + top + math.log(Z) + float(np.sum(np.logaddexp(0.0, a_R)))
        pr = special.expit(a_R)
        mF = F.T @ pi
        EF = (F * pi[:, None]).T @ F
        E1 = np.zeros(q)
        E2 = np.zeros((q, q))
        E1[pos_F] = mF
        E1[pos_R] = pr
        E2[np.ix_(pos_F, pos_F)] = EF
        E2[np.ix_(pos_F, pos_R)] = np.outer(mF, pr)
        E2[np.ix_(pos_R, pos_F)] = np.outer(pr, mF)
        E2[np.ix_(pos_R, pos_R)] = np.outer(pr, pr)
        E2[pos_R, pos_R] = pr
        mu0 = math.exp(b[0])
        M = math.exp(log_m)
        kern = float(tt @ b) - (M - mu0)
        return kern, mu0, M * E1, M * E2, M

    if beta0 is not None:
        b = np.nan_to_num(np.asarray(beta0, dtype=np.float64)[cols])
    else:
        b = np.zeros(q)
        b[0] = math.log(max(n_obs, 1.0))  # main effects: log odds of each list's share
        for c_i, c in enumerate(cols):
            if 1 <= c <= k:
                share = min(max(t[c] / max(n_obs, 1.0), 1e-6), 1 - 1e-6)
                b[c_i] = math.log(share / (1 - share))

    def value(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, tuple]:
        try:
            kern, mu0, EM1, EM2, _ = moments(x[0])
        except OverflowError:
            return np.array([-np.inf]), (np.zeros((1, 1)), np.zeros((1, q)), np.zeros((1, q, q)))
        return np.array([kern]), (np.array([[mu0]]), EM1[None], EM2[None])

    def direction(x: np.ndarray, aux: tuple, rows: np.ndarray, certified: np.ndarray):
        bb, mu0, EM1, EM2 = x[0], float(aux[0][0, 0]), aux[1][0], aux[2][0]
        g = tt - EM1
        g[0] += mu0
        H = EM2.copy()
        H[0, 0] -= mu0
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            return np.zeros_like(x), np.array([np.nan]), None
        dec = float(g @ step)
        # existence proof of the dense fit (tipstat.models.poisson.newton_batch): a decrement
        # below 1e-4 x the smallest fitted value of a kept empty cell, with no cell's eta moved
        # by more than 0.01, proves the MLE exists; here with the smallest fitted value of any
        # kept cell (a lower bound, so the proof is conservative)
        a_F = bb[pos_F].copy()
        a_F[0] = 0.0
        log_min = bb[0] + float((F @ a_F).min()) + float(np.minimum(bb[pos_R], 0.0).sum())
        s_F = step[pos_F].copy()
        eta_step = abs(step[0]) + float(np.abs(F[:, 1:] @ s_F[1:]).max(initial=0.0)) \
            + float(np.abs(step[pos_R]).sum())
        proven = math.isfinite(dec) and dec * _EXIST_RATIO < math.exp(min(log_min, 700.0)) \
            and eta_step <= 0.01
        return step[None], np.array([dec]), np.array([proven])

    # the one Newton iteration; the decrement in count scales of the margins (t[0] = n_obs),
    # so the fit of c y stops where that of y does; models without the existence proof after
    # 30 iterations give up (their moments can take longer to settle than a dense fit's)
    run = newton(value, direction, b[None], scale=count_scale(t), maxiter=maxiter,
                 certify=True, give_up=30)
    b, kern = run.x[0], float(run.f[0])
    mu0, EM2 = float(run.aux[0][0, 0]), run.aux[2][0]
    converged = bool(run.converged[0])
    H = EM2.copy()
    H[0, 0] -= mu0
    try:
        cov_l = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        cov_l = np.full((q, q), np.nan)
        converged = False
    beta = np.zeros(space.p)
    beta[cols] = b
    cov = np.zeros((space.p, space.p))
    cov[np.ix_(cols, cols)] = cov_l
    return beta, cov, kern, converged


def _evaluate_factored(space: Space, y: np.ndarray, models: Sequence[Sequence[int]],
                       beta0: np.ndarray | None = None) -> Evaluated:
    """:func:`evaluate` for spaces whose dense design does not fit in memory (many lists).

    Each model is fitted by :func:`_factored_fit` (no ``2**K`` array). A column whose observed
    margin is zero fixes its cells empty (status ``"extended"``), as in :func:`evaluate`; a fit
    that does not converge (the MLE does not exist on a pattern of empty cells other than a
    zero margin, or N is not identified) gets status ``"not_converged"`` and is excluded from
    every rule. ``mu`` is not kept (it would be models x ``2**K``).
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise InputError(f"{space.k} lists: replicate tables are fitted with at most "
                         "16 lists")
    M = len(models)
    t = space.statistics(y)
    n_obs = float(t[0])
    dead = np.zeros(space.p, dtype=bool)
    dead[1:] = t[1:] == 0
    beta = np.zeros((M, space.p))
    cov = np.zeros((M, space.p, space.p))
    kernel = np.full(M, -np.inf)
    status = np.empty(M, dtype=object)
    for i, model in enumerate(models):
        cols = space.columns(model)
        b, c, kern, ok = _factored_fit(space, t, n_obs, model,
                                       None if beta0 is None else beta0[i], dead)
        beta[i], cov[i], kernel[i] = b, c, kern
        status[i] = ("extended" if dead[cols].any() else "ok") if ok else "not_converged"
    pos = y > 0
    lgy = float(gammaln(y[pos] + 1).sum())
    sat = float(np.sum(y[pos] * np.log(y[pos]) - y[pos]))
    n_params = np.array([space.base + len(m) for m in models], dtype=np.float64)
    loglik = kernel - lgy
    mu0 = np.exp(beta[:, 0])
    var_b0 = cov[:, 0, 0]
    n_hat = np.where(status != "not_converged", n_obs + mu0, math.nan)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(mu0 + mu0**2 * var_b0)
    deviance = np.maximum(2.0 * (sat - (loglik + lgy)), 0.0)
    aic = -2.0 * loglik + 2.0 * n_params
    bic = -2.0 * loglik + math.log(n_obs) * n_params
    return Evaluated(list(models), n_hat, se, var_b0, loglik, deviance, n_params, aic, bic,
                     status.astype(str), beta, cov, np.zeros((M, 0)), 0, {})


#: From this many lists the selected model is fitted by moments too (the dense fit of one
#: model over 2^17 patterns and more takes longer than the whole search).
DENSE_FINAL_K = 17


def _factored_estimate(space: Space, y: np.ndarray, model: tuple[int, ...], *, ci: str,
                       level: float, method: str) -> Estimate:
    """The :class:`Estimate` of one model fitted by :func:`_factored_fit` (many lists): the
    log-normal interval ``n + exp(b0 -/+ z se(b0))`` (``"wald"``) or Chao's (``"lognormal"``)."""
    ev = _evaluate_factored(space, y, [model])
    status = str(ev.status[0])
    n_obs = float(y.sum())
    mu0 = float(np.exp(ev.beta[0, 0]))
    var_b0, se = float(ev.var_b0[0]), float(ev.se[0])
    z = float(stats.norm.ppf(0.5 + level / 2))
    interval = (math.nan, math.nan)
    if status in ADMISSIBLE and ci == "wald" and var_b0 > 0:
        sd = math.sqrt(var_b0)
        interval = (n_obs + mu0 * math.exp(-z * sd), n_obs + mu0 * math.exp(z * sd))
    elif status in ADMISSIBLE and ci == "lognormal" and mu0 > 0:
        c = math.exp(z * math.sqrt(math.log1p(se**2 / mu0**2)))
        interval = (n_obs + mu0 / c, n_obs + mu0 * c)
    cols = space.columns(model)
    labels = ["(Intercept)", *space.lists, *(space.term_label(t) for t in space.ordered(model))]
    cov = ev.cov[0][np.ix_(cols, cols)]
    warns: list[str] = []
    if status == "extended":
        reason = "a margin of the model is zero: its cells are fitted as empty (extended MLE)"
        warns.append(reason)
    elif status != "ok":
        reason = "the fit did not converge to a proven MLE"
        warns.append(reason)
    else:
        reason = "the MLE exists and N is identified"
    n_params = int(ev.n_params[0])
    return Estimate(
        n_hat=float(ev.n_hat[0]), ci=interval, level=level, n_observed=n_obs, method=method,
        model=space.label(model), status=status, ci_method=ci if ci != "none" else "", se=se,
        deviance=float(ev.deviance[0]), df=len(y) - n_params, aic=float(ev.aic[0]),
        bic=float(ev.bic[0]), loglik=float(ev.loglik[0]), n_params=n_params,
        diagnostics={"reason": reason, "converged": status in ADMISSIBLE,
                     "coefficients": (labels, ev.beta[0, cols].copy(),
                                      np.sqrt(np.maximum(np.diag(cov), 0.0))),
                     "mu0": mu0, "terms": space.ordered(model)},
        warnings=tuple(warns))


# --------------------------------------------------------------------------- rules
@dataclass
class Selection:
    """Outcome of one selection run on one table (internal; also used by the bootstrap)."""

    model: tuple[int, ...]
    n_hat: float
    path: list
    table: Evaluated | None = None
    n_models: int = 0
    search: str = ""
    truncated: bool = False


def _poisson_tail_p(n: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``min(P(X <= n), P(X >= n))`` for ``X ~ Poisson(lam)`` (R: ``ppois``)."""
    lower = special.pdtr(n, lam)
    upper = np.where(n > 0, special.pdtrc(np.maximum(n - 1, 0), lam), 1.0)
    return np.minimum(lower, upper)


def _row(step: int, action: str, term: str, p_value: float, model: str, ev: Evaluated,
         j: int = 0) -> dict:
    return {"step": step, "action": action, "term": term, "p_value": p_value, "model": model,
            "n_hat": float(ev.n_hat[j]), "aic": float(ev.aic[j]), "bic": float(ev.bic[j]),
            "status": str(ev.status[j])}


def _stepwise(space: Space, y: np.ndarray, pthresh: float) -> Selection:
    pairs = [t for t in space.terms if t.bit_count() == 2]
    nstar = y @ space.contains[:, [space.index[t] for t in pairs]]
    model: tuple[int, ...] = ()
    cur = evaluate(space, y, [model], dense=True)
    path = [_row(0, "start", "", math.nan, space.label(model), cur)]
    if not cur.admissible[0]:
        return Selection(model, float(cur.n_hat[0]), path, search="stepwise")
    pair_cells = space.contains[:, [space.index[t] for t in pairs]].astype(np.float64)
    included = np.zeros(len(pairs), dtype=bool)
    tried: dict[tuple[int, ...], tuple[int, float]] = {}
    steps = [0]

    def propose(model: tuple[int, ...], cur: Evaluated) -> list[tuple[int, ...]]:
        # candidates in order of Poisson-tail p-value, up to the first at or above pthresh
        if not pthresh > 0 or included.all():
            return []
        pv = _poisson_tail_p(nstar, cur.mu[0] @ pair_cells)
        pv[included] = 1.0
        out = []
        tried.clear()
        for j in np.argsort(pv, kind="stable"):
            if pv[j] >= pthresh:
                break
            cand = (*model, pairs[j])
            tried[cand] = (int(j), float(pv[j]))
            out.append(cand)
        return out

    def fit(cands: Sequence[tuple[int, ...]], model: tuple[int, ...], cur: Evaluated) -> Evaluated:
        return evaluate(space, y, list(cands), cur.beta.copy(), dense=True)

    def choose(model: tuple[int, ...], cur: Evaluated, cands: Sequence[tuple[int, ...]],
               ev: Evaluated) -> Decision:
        j, pv = tried[cands[0]]
        term = term_label(pairs[j], space.lists)
        if ev.admissible[0]:
            steps[0] += 1
            included[j] = True
            return Decision(cands[0], ev, [_row(steps[0], "add", term, pv,
                                                space.label(cands[0]), ev)])
        # SparseMSE sets its p-value to 1 for this step only; it is tried again later
        return Decision.skip(_row(steps[0], "skip", term, pv,
                                  space.label(cands[0]), ev))

    out = climb(model, cur, propose, fit, choose, sequential=True, path=path)
    return Selection(space.ordered(out.model), float(out.fit.n_hat[0]), out.path,
                     search="stepwise")


def _bhs(space: Space, y: np.ndarray, alpha: float) -> Selection:
    pairs = [t for t in space.terms if t.bit_count() == 2]
    model: tuple[int, ...] = ()
    cur = evaluate(space, y, [model])
    path = [_row(0, "start", "", math.nan, space.label(model), cur)]
    budget = _Budget(space, y)

    def propose(model: tuple[int, ...], cur: Evaluated) -> list[tuple[int, ...]]:
        if not cur.admissible[0]:
            return []
        cands = [(*model, t) for t in pairs if t not in model]
        return cands if budget.allows(cands) else []

    def fit(cands: Sequence[tuple[int, ...]], model: tuple[int, ...], cur: Evaluated) -> Evaluated:
        return evaluate(space, y, list(cands), np.repeat(cur.beta, len(cands), axis=0))

    def choose(model: tuple[int, ...], cur: Evaluated, cands: Sequence[tuple[int, ...]],
               ev: Evaluated) -> Decision:
        aic = np.where(ev.admissible, ev.aic, np.inf)
        j = int(np.argmin(aic))
        if not np.isfinite(aic[j]) or aic[j] >= cur.aic[0]:
            return Decision.end()
        term = cands[j][-1]
        col = space.base + space.index[term]
        b, v = ev.beta[j, col], ev.cov[j, col, col]
        pval = float(2 * stats.norm.sf(abs(b) / math.sqrt(v))) if v > 0 else math.nan
        label = term_label(term, space.lists)
        if not pval < alpha:
            return Decision.end(_row(len(model), "stop (Wald p >= alpha)", label, pval,
                                     space.label(cands[j]), ev, j))
        new = evaluate(space, y, [cands[j]], ev.beta[j:j + 1])
        return Decision(cands[j], new, [_row(len(model) + 1, "add", label, pval,
                                             space.label(cands[j]), new)])

    out = climb(model, cur, propose, fit, choose, path=path)
    if budget.truncated:
        out.path.append(_row(len(out.model), "stop (work budget)", "", math.nan,
                             space.label(out.model), out.fit))
    return Selection(space.ordered(out.model), float(out.fit.n_hat[0]), out.path, search="bhs",
                     truncated=budget.truncated)


def _criterion_values(ev: Evaluated, criterion: str) -> np.ndarray:
    vals = ev.aic if criterion == "aic" else ev.bic
    return np.where(ev.admissible, vals, np.inf)


#: Work budget of a greedy search whose models are fitted by moments (from 13 lists, see
#: :func:`factored`), in patterns enumerated: a candidate touching the lists ``S`` costs
#: ``max(2**|S|, SEARCH_FLOOR)`` (one moment fit enumerates the ``2**|S|`` patterns of ``S``;
#: the floor stands for a fit's fixed cost). Before each step the cost of all its candidates is
#: added up; a step that would exceed the budget is not taken and the search ends
#: *truncated* (status ``"not_converged"``, ``diagnostics["search_truncated"]``, a
#: :class:`~tipstat.TipstatWarning`). 2**22 units took 12 s of fitting on one core at 13
#: lists (1,069 fits, 2.9 us a unit); at most ``SEARCH_BUDGET / SEARCH_FLOOR`` = 4,096
#: candidate fits.
SEARCH_BUDGET = 2**22
SEARCH_FLOOR = 2**10


def _support(model: Sequence[int]) -> int:
    """Number of lists the model's interactions touch (``|S|`` of :func:`_factored_fit`)."""
    bits = 0
    for term in model:
        bits |= term
    return bits.bit_count()


class _Budget:
    """Work budget of one search (:data:`SEARCH_BUDGET`; ``None``: unlimited, up to 12
    lists, where every number stays the dense engine's)."""

    def __init__(self, space: Space, y: np.ndarray) -> None:
        self.limit = SEARCH_BUDGET if factored(space) and np.ndim(y) == 1 else None
        self.spent = float(SEARCH_FLOOR)  # the start model
        self.truncated = False

    def allows(self, cands: Sequence[Sequence[int]]) -> bool:
        """Charge a step's candidates; ``False`` (and truncated) if they exceed the budget."""
        if self.limit is None or not cands:
            return True
        cost = float(sum(max(2 ** _support(m), SEARCH_FLOOR) for m in cands))
        if self.spent + cost > self.limit:
            self.truncated = True
            return False
        self.spent += cost
        return True


def _greedy(space: Space, y: np.ndarray, criterion: str, detail: bool = True) -> Selection:
    model: tuple[int, ...] = ()
    first = evaluate(space, y, [model])
    best = float(_criterion_values(first, criterion)[0])
    seen: dict[tuple[int, ...], float] = {}
    def lean(ev: Evaluated) -> Evaluated:
        # the path keeps each candidate's numbers, not its fitted cells and covariance (at
        # counts x1e9 on 12 lists: 4,293 candidates, 350 MB, copied once more by _concat)
        return dataclasses.replace(ev, cov=ev.cov[:, :0, :0], mu=ev.mu[:, :0])

    rows = [lean(first)]
    path = [{"step": 0, "action": "start", "term": "", "model": space.label(model),
             "n_hat": float(first.n_hat[0]), criterion: best}]
    moves = [0]
    budget = _Budget(space, y)
    # the neighbours of a step start from the current model's fit where it is a proven MLE on
    # every cell (status "ok"; 0 on the columns it lacks): a greedy path at large counts takes
    # many steps (BIC's penalty grows as log n while the likelihood ratios grow as n), each
    # fitting every neighbour, and from there Newton needs 2-4 steps instead of 5-10
    # (M, p) starts: an added term's coefficients move the others about as much as they did
    # when that term was last added to an earlier model, so a candidate model + u starts
    # from the current fit plus that earlier change (the current fit alone where there is none)
    warm = [first.beta[0] if first.status[0] == "ok" else None]
    moved: dict[int, np.ndarray] = {}

    def propose(model: tuple[int, ...], best: float) -> list[tuple[int, ...]]:
        cands = [m for m in space.neighbours(model) if m not in seen]
        return cands if budget.allows(cands) else []

    def fit(nb: Sequence[tuple[int, ...]], model: tuple[int, ...], best: float) -> np.ndarray:
        start = None
        if warm[0] is not None:
            start = np.repeat(warm[0][None], len(nb), axis=0)
            have = set(model)
            added = [next(iter(set(m) - have)) if len(m) == len(model) + 1 else None
                     for m in nb]
            for i, u in enumerate(added):
                if u in moved:
                    start[i] += moved[u]
        ev = evaluate(space, y, list(nb), detail=detail, warm=start)
        if start is not None:
            for i, u in enumerate(added):
                if u is not None and ev.status[i] == "ok" and np.isfinite(ev.beta[i]).all():
                    moved[u] = ev.beta[i] - warm[0]
        rows.append(lean(ev))
        vals = _criterion_values(ev, criterion)
        seen.update(zip(nb, vals, strict=True))
        return vals

    def choose(model: tuple[int, ...], best: float, nb: Sequence[tuple[int, ...]],
               vals: np.ndarray) -> Decision:
        j = int(np.argmin(vals))
        if not vals[j] < best:
            return Decision.end()
        added = set(nb[j]) - set(model)
        removed = set(model) - set(nb[j])
        term = next(iter(added or removed))
        moves[0] += 1
        warm[0] = rows[-1].beta[j] if rows[-1].status[j] == "ok" else None
        return Decision(nb[j], float(vals[j]), [{
            "step": moves[0], "action": "add" if added else "drop",
            "term": term_label(term, space.lists), "model": space.label(nb[j]),
            "n_hat": float(rows[-1].n_hat[j]), criterion: float(vals[j])}])

    out = climb(model, best, propose, fit, choose, path=path)
    table = _concat(rows)
    i = table.models.index(out.model)
    if budget.truncated:
        out.path.append({"step": moves[0], "action": "stop (work budget)", "term": "",
                         "model": space.label(out.model), "n_hat": float(table.n_hat[i]),
                         criterion: float(out.fit)})
    return Selection(out.model, float(table.n_hat[i]), out.path, table, len(table.models),
                     "greedy", budget.truncated)


def _concat(parts: list[Evaluated]) -> Evaluated:
    keys = ["n_hat", "se", "var_b0", "loglik", "deviance", "n_params", "aic", "bic", "status",
            "beta", "cov", "mu"]
    vals = {k: np.concatenate([getattr(p, k) for p in parts]) for k in keys}
    models = [m for p in parts for m in p.models]
    return Evaluated(models, **vals, n_exact_checks=sum(p.n_exact_checks for p in parts))


def _exhaustive(space: Space, y: np.ndarray, criterion: str, detail: bool = True) -> Selection:
    models = list(space.enumerate())
    j, ev, vals = exhaustive(models, lambda ms: evaluate(space, y, ms, detail=detail),
                             lambda ev: _criterion_values(ev, criterion))
    if not np.isfinite(vals[j]):
        return Selection((), math.nan, [], ev, len(models), "exhaustive")
    path = [{"step": 0, "action": f"best of {len(models)} by {criterion.upper()}", "term": "",
             "model": space.label(models[j]), "n_hat": float(ev.n_hat[j]),
             criterion: float(vals[j])}]
    return Selection(models[j], float(ev.n_hat[j]), path, ev, len(models), "exhaustive")


def run_selection(space: Space, y: np.ndarray, criterion: str, *, pthresh: float = 0.02,
                  alpha: float = 0.05, search: str = "auto", max_models: int = 40_000,
                  average: bool = False, detail: bool = True) -> Selection:
    """Run one rule on observable counts ``y`` (the fast core used by the bootstrap)."""
    if criterion == "stepwise":
        return _stepwise(space, y, pthresh)
    if criterion == "bhs":
        return _bhs(space, y, alpha)
    if search == "auto":
        search = "exhaustive" if space.count_models(max_models) <= max_models else "greedy"
    sel = _exhaustive(space, y, criterion, detail) if search == "exhaustive" else \
        _greedy(space, y, criterion, detail)
    if average and sel.table is not None:
        w = weights(sel.table, criterion)
        ok = w > 0
        sel.n_hat = float(np.sum(w[ok] * sel.table.n_hat[ok]))
    return sel


def weights(ev: Evaluated, criterion: str) -> np.ndarray:
    """Akaike / Schwarz weights ``exp(-Delta/2)`` normalised over admissible models."""
    vals = _criterion_values(ev, criterion)
    if not np.isfinite(vals).any():
        return np.zeros(len(vals))
    d = vals - vals.min()
    w = np.exp(-0.5 * d)
    return w / w.sum()


# --------------------------------------------------------------------------- what a choice rests on
#: Share of the criterion weight on untestable models (no residual df: the saturated model of
#: three lists) above which a result carries an ``untestable_weight`` caveat, and the share
#: the left-out models (MLE does not exist / N not identifiable) would carry above which it
#: carries a ``dropped_models`` caveat: 5% is a share that a test at the usual level would not
#: ignore. Their N-hat is infinite or undefined (left out) or rests on an assumption the data
#: cannot check (untestable), so any weight on them is worth a sentence.
WEIGHT_WARN = 0.05
#: Share of the criterion weight on boundary fits (extended MLEs) above which a result carries
#: a ``boundary_weight`` caveat: a quarter of the weight moves an average by a quarter of the
#: distance between the boundary fits and the others, the size of a typical interval.
BOUNDARY_WARN = 0.25
#: Share of the criterion weight on models that cannot bound N from above (left-out models
#: plus untestable ones) above which the status is ``"lower_bound"`` (the majority): the
#: default of ``select_loglinear(..., bound_share=)``.
LOWER_BOUND_SHARE = 0.5
#: Level of the fit test of the model a stepwise rule accepts (deviance against chi2(df)).
FIT_ALPHA = 0.05

_RULES = {"aic": "AIC", "bic": "BIC", "stepwise": "the stepwise rule", "bhs": "the BHS rule"}
#: the shares of :func:`weight_shares` (all ``nan`` for the stepwise rules, which weigh nothing)
SHARE_KEYS = ("excluded_weight", "untestable_weight", "extended_weight", "unbounded_weight",
              "best_excluded_rank", "best_excluded_odds")


def weight_shares(models: pd.DataFrame, criterion: str = "bic") -> dict[str, float]:
    r"""What the criterion weights of a model search rest on: one definition for every rule.

    ``models`` is a candidate table (``diagnostics["models"]`` of :func:`select_loglinear`:
    columns ``status``, ``df`` and the ``criterion``). The weights are those of every
    candidate the search compared: the admissible models (status ``"ok"`` or ``"extended"``,
    which the average uses) **and** the left-out ones (``"does_not_exist"``,
    ``"not_identifiable"``: their likelihood is bounded, its supremum reached on a face, so
    their AIC/BIC is finite and they compete),

    .. math::

        v_m = \frac{\exp(-\Delta_m / 2)}{\sum_l \exp(-\Delta_l / 2)}, \qquad
        \Delta_m = C_m - \min_l C_l ,

    over the candidates with a finite criterion ``C`` (a fit that did not converge has none).
    With one denominator the shares add up: they are the weights the data give each kind of
    model, not the weights inside the average (``models["weight"]``, which is ``v`` renormalised
    over the admissible models).

    * ``excluded_weight``: :math:`\sum v_m` over the left-out models, the weight they would
      carry (issue 16: "the share the dropped set would carry");
    * ``untestable_weight``: over admissible models with no residual df (``df <= 0``);
    * ``extended_weight``: over admissible boundary fits (extended MLEs);
    * ``unbounded_weight``: ``excluded_weight + untestable_weight``, the models that cannot
      bound N from above (no finite N-hat, or an N-hat that rests on the untestable absence of
      the highest interaction);
    * ``best_excluded_rank``: rank (1 = best) of the best left-out model among all compared
      (``nan`` if none);
    * ``best_excluded_odds``: :math:`\max v_{\text{admissible}} / \max v_{\text{left out}}`,
      the criterion odds of the best admissible model against the best left-out one (``inf``
      if none is left out, ``0`` if no model is admissible).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"bic": [10.0, 10.0, 12.0], "df": [1, 0, 2],
    ...                   "status": ["ok", "ok", "does_not_exist"]})
    >>> s = weight_shares(t)
    >>> round(s["excluded_weight"], 3), round(s["untestable_weight"], 3)
    (0.155, 0.422)
    >>> round(s["unbounded_weight"], 3), round(s["best_excluded_odds"], 3)
    (0.578, 2.718)
    """
    if criterion not in ("aic", "bic"):
        raise InputError(f"weight_shares: criterion={criterion!r} is not 'aic' or 'bic'")
    vals = pd.to_numeric(models[criterion], errors="coerce").to_numpy(dtype=float)
    status = models["status"].to_numpy()
    df = pd.to_numeric(models["df"], errors="coerce").to_numpy(dtype=float)
    adm = np.isin(status, ADMISSIBLE)
    excluded = np.isin(status, ("does_not_exist", "not_identifiable"))
    fin = np.isfinite(vals) & (adm | excluded)
    out = dict.fromkeys(SHARE_KEYS, 0.0)
    out["best_excluded_rank"] = math.nan
    out["best_excluded_odds"] = math.inf
    if not fin.any():
        return out
    v = np.zeros(len(vals))
    v[fin] = np.exp(-0.5 * (vals[fin] - vals[fin].min()))
    v /= v.sum()
    untestable = adm & fin & (df <= 0)
    out["excluded_weight"] = float(v[excluded].sum())
    out["untestable_weight"] = float(v[untestable].sum())
    out["extended_weight"] = float(v[adm & (status == "extended")].sum())
    out["unbounded_weight"] = float(v[excluded | untestable].sum())
    if (excluded & fin).any():
        best = float(vals[excluded & fin].min())
        out["best_excluded_rank"] = float(1 + np.sum(vals[fin] < best))
        best_adm = float(v[adm & fin].max()) if (adm & fin).any() else 0.0
        out["best_excluded_odds"] = best_adm / float(v[excluded & fin].max())
    return out


def lower_bound_reasons(shares: dict[str, float], *, criterion: str, average: bool,
                        chosen_df: float, estimable: bool = True,
                        bound_share: float = LOWER_BOUND_SHARE,
                        bound_odds: float | None = None) -> list[str]:
    """Why the data support only a lower bound on N (empty: they bound N). The one rule.

    ``shares`` are those of :func:`weight_shares`. Reasons, in order:

    1. with ``average``, no candidate has a finite, identified estimate (``estimable`` False);
    2. more than ``bound_share`` of the criterion weight is on models that cannot bound N from
       above (``unbounded_weight``: left out, or untestable);
    3. with ``bound_odds`` (Occam's window; ``None``: not applied), a left-out model is within
       the window: the best admissible model is favoured by odds of at most ``bound_odds``:1
       (``best_excluded_odds <= bound_odds``), so a model the data cannot rule out puts no
       finite upper end on N;
    4. without ``average``, the model the rule chose has no residual df.

    Examples
    --------
    >>> s = {"unbounded_weight": 0.2, "best_excluded_odds": 3.4}
    >>> lower_bound_reasons(s, criterion="bic", average=True, chosen_df=2.0)
    []
    >>> len(lower_bound_reasons(s, criterion="bic", average=True, chosen_df=2.0,
    ...                         bound_odds=20.0))
    1
    """
    rule = _RULES[criterion]
    reasons: list[str] = []
    if average and not estimable:
        reasons.append("no candidate model has a finite, identified estimate")
    unbounded = shares.get("unbounded_weight", math.nan)
    if unbounded > bound_share:
        reasons.append(f"{_pct(unbounded)} of the {rule} weight is on models that cannot bound "
                       "N from above (left out: N-hat infinite or undefined; or untestable)")
    odds = shares.get("best_excluded_odds", math.nan)
    if bound_odds is not None and estimable and odds <= bound_odds:
        reasons.append(f"a model with no finite estimate of N is within Occam's window ({rule} "
                       f"odds {odds:.1f}:1 against it, at most {bound_odds:g}:1), so the data "
                       "give no finite upper end")
    if not average and chosen_df == 0:
        reasons.append(f"the model {rule} chose has no residual df")
    return reasons


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if x >= 0.01 else f"{100 * x:.2g}%"


def choice_caveats(shares: dict[str, float], *, criterion: str, average: bool,
                   n_excluded: int, chosen_df: float, deviance: float,
                   status: str, estimable: bool = True, bound_share: float = LOWER_BOUND_SHARE,
                   bound_odds: float | None = None) -> tuple[list[Caveat], bool]:
    """The caveats of a model choice or average, and whether the answer is only a lower bound.

    ``shares`` are those of :func:`weight_shares` (``nan`` entries for the stepwise rules,
    which have no weights); ``chosen_df`` and ``deviance`` are the chosen (best) model's. The
    lower bound is :func:`lower_bound_reasons` with ``bound_share`` and ``bound_odds``.
    """
    rule = _RULES[criterion]
    out: list[Caveat] = []
    reasons = lower_bound_reasons(shares, criterion=criterion, average=average,
                                  chosen_df=chosen_df, estimable=estimable,
                                  bound_share=bound_share, bound_odds=bound_odds)
    untest = shares.get("untestable_weight", math.nan)
    if average and untest > WEIGHT_WARN:
        out.append(Caveat("untestable_weight", (
            f"{_pct(untest)} of the {rule} weight is on models whose fit cannot be tested (no "
            "residual df, e.g. the saturated model): they fit the observed cells exactly, as "
            "would a model with the interaction of all lists and any larger N"),
            {"share": untest, "threshold": WEIGHT_WARN}))
    elif not average and chosen_df == 0:
        out.append(Caveat("untestable_weight", (
            f"{rule} chose a model whose fit cannot be tested (0 residual df"
            + (f"; {_pct(untest)} of the {rule} weight is on such models" if untest == untest
               else "") + "): it fits the observed cells exactly, as would a model with the "
            "interaction of all lists and any larger N"),
            {"share": 1.0 if untest != untest else untest, "df": 0.0,
             "threshold": WEIGHT_WARN}))
    ext = shares.get("extended_weight", math.nan)
    if average and ext > BOUNDARY_WARN:
        out.append(Caveat("boundary_weight", (
            f"{_pct(ext)} of the {rule} weight is on boundary fits (extended MLEs: some fitted "
            "cells are zero, their interactions infinite); their intervals are approximate"),
            {"share": ext, "threshold": BOUNDARY_WARN}))
    elif not average and status == "extended":
        out.append(Caveat("boundary_weight", (
            f"{rule} chose a boundary fit (extended MLE: some fitted cells are zero)"
            + (f"; {_pct(ext)} of the {rule} weight is on boundary fits" if ext == ext else "")),
            {"share": 1.0 if ext != ext else ext, "threshold": BOUNDARY_WARN}))
    excl = shares.get("excluded_weight", math.nan)
    rank = shares.get("best_excluded_rank", math.nan)
    odds = shares.get("best_excluded_odds", math.nan)
    in_window = bound_odds is not None and estimable and odds <= bound_odds
    if n_excluded and (excl > WEIGHT_WARN or excl != excl or in_window):
        what = (f"{n_excluded} candidate model{'s' if n_excluded > 1 else ''} whose MLE does not "
                "exist or whose N is not identified (N-hat infinite or undefined) "
                f"{'were' if n_excluded > 1 else 'was'} left out")
        if excl == excl:
            what += (f"; by {rule} they would carry {_pct(excl)} of the weight"
                     + (f", the best of them ranked {rank:.0f}" if rank == rank else ""))
        out.append(Caveat("dropped_models", what,
                          {"n_dropped": float(n_excluded), "share": excl,
                           "best_rank": rank, "best_odds": odds, "threshold": WEIGHT_WARN}))
    if criterion in ("stepwise", "bhs") and chosen_df > 0 and math.isfinite(deviance):
        p = float(stats.chi2.sf(deviance, chosen_df))
        if p < FIT_ALPHA:
            ptxt = "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"
            out.append(Caveat("lack_of_fit", (
                f"{rule} accepted a model that fails its fit test: deviance {deviance:.1f} on "
                f"{chosen_df:g} df ({ptxt}); the rule stops adding terms by its own test, not "
                "because the model fits"),
                {"deviance": float(deviance), "df": float(chosen_df), "p_value": p,
                 "alpha": FIT_ALPHA}))
    if reasons:
        values = {"share": shares.get("unbounded_weight", math.nan), "threshold": bound_share,
                  "best_odds": odds,
                  "occam_odds": math.nan if bound_odds is None else float(bound_odds)}
        out.append(Caveat("lower_bound_only", (
            "the data support only a lower bound on N: " + "; ".join(reasons)
            + "; an upper end would rest on an assumption the data cannot check"), values))
    return out, bool(reasons)


# --------------------------------------------------------------------------- public API
def select_loglinear(
    h: CaptureHistories,
    criterion: str = "bic",
    *,
    max_order: int = 2,
    search: str = "auto",
    pthresh: float = 0.02,
    alpha: float = 0.05,
    average: bool = False,
    level: float = 0.95,
    ci: str = "auto",
    max_models: int = 40_000,
    check: bool = True,
    bound_share: float = LOWER_BOUND_SHARE,
    bound_odds: float | None = None,
) -> Estimate:
    """Choose a log-linear MSE model by an information criterion or a stepwise rule.

    Parameters
    ----------
    h : CaptureHistories
        Unstratified capture histories.
    criterion : {"aic", "bic", "stepwise", "bhs"}
        ``"aic"``/``"bic"``: minimise the criterion (Rcapture's ``closedpMS.t`` conventions);
        ``"stepwise"``: Chan, Silverman & Vincent (2021) forward selection by Poisson-tail
        p-values below ``pthresh`` (SparseMSE ``estimatepopulation``,
        MultipleSystemsEstimation ``estimate_population_stepwise``); ``"bhs"``: Bales, Hesketh
        & Silverman (2015) forward AIC steps kept only if the new term's Wald p < ``alpha``.
    max_order : int
        Highest interaction order searched by ``"aic"``/``"bic"`` (stepwise rules use two-way
        terms).
    search : {"auto", "exhaustive", "greedy"}
        ``"auto"``: every hierarchical model when there are at most ``max_models``, else greedy
        up/down steps (add or drop one term while the criterion improves). From 13 lists the
        greedy search has a work budget (:data:`SEARCH_BUDGET`, at most 4,096 candidate
        fits); a search stopped by it returns status ``"not_converged"`` with a
        :class:`~tipstat.TipstatWarning` and ``diagnostics["search_truncated"] = True`` (the
        last model's N-hat and, with ``ci="auto"``, its Wald interval, kept for inspection).
    pthresh, alpha : float
        Thresholds of the ``"stepwise"`` and ``"bhs"`` rules.
    average : bool
        Report the AIC/BIC model average ``sum w_m N_m`` (weights ``exp(-Delta_m/2)``
        normalised) over the searched models instead of the best model; its interval is
        log-normal from Buckland's unconditional SE. Needs ``"aic"`` or ``"bic"``. The
        deviance, df, AIC, BIC and status reported are the best model's (status
        ``"extended"`` when its MLE is extended); ``diagnostics["extended_weight"]`` is the
        share of the criterion weight held by models with extended MLEs (:func:`weight_shares`).
    level : float
        Interval coverage.
    ci : {"auto", "profile", "profile_rcapture", "wald", "lognormal", "none"}
        Interval of the selected model, conditional on the selection (for intervals that carry
        the selection step use :func:`tipstat.bootstrap`). ``"auto"`` (default): ``"wald"``
        (log-normal, ``n + exp(b0 -/+ z se)``, as SparseMSE) for the stepwise rules,
        ``"profile"`` for AIC/BIC. With ``average=True`` the interval is the log-normal one of
        the average (Buckland SE) whatever ``ci``.
    max_models : int
        Largest catalogue searched exhaustively.
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` (lack of fit of the
        model reported, sparse table, two lists; dependence and heterogeneity when the
        selected model is independence). False for inner fits.
    bound_share : float
        Lower-bound rule (:func:`lower_bound_reasons`, AIC/BIC): the answer is only a lower
        bound when more than this share of the criterion weight is on models that cannot bound
        N from above (default :data:`LOWER_BOUND_SHARE`, the majority).
    bound_odds : float or None
        Lower-bound rule, Occam's window: the answer is only a lower bound when a left-out
        model (no finite N-hat) is within these criterion odds of the best admissible model
        (``None``, the default: not applied; :func:`tipstat.estimate_population` uses 20,
        Madigan & Raftery 1994).

    Returns
    -------
    Estimate
        The selected model's fit. ``diagnostics["models"]``: DataFrame of every fitted
        candidate (model, n_hat, se, deviance, df, aic, bic, status, weight), sorted by the
        criterion; ``diagnostics["path"]``: the search steps; ``diagnostics["n_excluded"]`` and
        ``["excluded"]``: models left out because their MLE does not exist / N is not
        identifiable, by status; ``diagnostics["search_truncated"]``: the greedy search
        stopped at its work budget.

    Notes
    -----
    **What the answer rests on** (:func:`weight_shares`, :func:`choice_caveats`). For AIC/BIC
    the diagnostics hold the shares of the criterion weight over every candidate compared,
    the left-out ones included (their likelihood is bounded, so their criterion is finite):
    ``excluded_weight`` (the weight the left-out models would carry), ``untestable_weight``
    (models with no residual df, e.g. the saturated model of three lists),
    ``extended_weight`` (boundary fits) and ``unbounded_weight`` (left-out plus untestable).
    The result carries a :class:`~tipstat.estimate.Caveat` ``untestable_weight`` and
    ``dropped_models`` above :data:`WEIGHT_WARN` (or when the model chosen has no residual df;
    the stepwise rules: whenever they skipped a model), ``boundary_weight`` above
    :data:`BOUNDARY_WARN` (or when the chosen fit is extended), and, for the stepwise rules,
    ``lack_of_fit`` when the accepted model's deviance is significant against ``chi2(df)`` at
    :data:`FIT_ALPHA`. **Lower bound** (:func:`lower_bound_reasons`): when more than
    ``bound_share`` of the weight is on models that cannot bound N from above (their N-hat is
    infinite or undefined, or their fit is untestable: the model with the interaction of all
    lists added fits as well at any larger N), when a left-out model is within ``bound_odds``
    of the best, when an average has no model to average, or when the model a rule reports
    has no residual df, the status is ``"lower_bound"`` with a ``lower_bound_only`` caveat;
    N-hat and the interval are kept in ``diagnostics["unsupported"]`` (the interval's lower
    end, or the persons seen when nothing could be averaged, is what the data support).

    Examples
    --------
    >>> import tipstat
    >>> est = tipstat.select_loglinear(tipstat.datasets.load("Korea_3"), "bic")
    >>> est.model, round(est.n_hat, 1)
    ('[b:c, c:d]', 157.2)
    >>> est = tipstat.select_loglinear(tipstat.datasets.load("UK_5"), "bhs")
    >>> round(est.n_hat), [round(x) for x in est.ci]
    (11313, [9884, 13027])
    """
    _check_histories(h)
    check_level(level, "select_loglinear")
    check_ci(ci, ("auto", *CI_METHODS), "select_loglinear")
    if criterion not in CRITERIA:
        raise InputError(f"criterion={criterion!r} is not one of {CRITERIA}")
    if search not in ("auto", "exhaustive", "greedy"):
        raise InputError(f"search={search!r} is not one of ('auto', 'exhaustive', 'greedy')")
    if not 0 <= pthresh <= 1:
        raise InputError(f"pthresh={pthresh!r} must be a probability between 0 and 1")
    if not 0 < alpha < 1:
        raise InputError(f"alpha={alpha!r} must be a probability between 0 and 1")
    if average and criterion not in ("aic", "bic"):
        raise InputError(f"average=True needs criterion 'aic' or 'bic', not {criterion!r}")
    ci_auto = ci == "auto"
    if ci == "auto":
        ci = "wald" if criterion in ("stepwise", "bhs") or h.k >= DENSE_FINAL_K else "profile"
    if h.k >= DENSE_FINAL_K and ci not in ("wald", "lognormal", "none"):
        raise InputError(f"ci={ci!r}: with {h.k} lists (from {DENSE_FINAL_K}) the selected "
                         "model is fitted without the 2^K design and its interval is 'wald', "
                         "'lognormal' or 'none'")
    y = np.asarray(h.counts, dtype=np.float64)
    if y.sum() <= 0:
        raise InputError("the capture histories have no observed person")
    order = 2 if criterion in ("stepwise", "bhs") else max_order
    space = _space(tuple(h.lists), int(order))
    with one_blas_thread():
        sel = run_selection(space, y, criterion, pthresh=pthresh, alpha=alpha, search=search,
                            max_models=max_models)
    method = f"select_loglinear ({criterion}{', averaged' if average else ''})"
    if sel.truncated and ci_auto:
        # a truncated search (only by moments, from 13 lists) gives no final answer: its last
        # model is fitted by moments too, with the Wald interval, not by a dense profile
        # (49 s of a 64 s run at 15 lists)
        ci = "wald"
    if h.k >= DENSE_FINAL_K or (sel.truncated and ci_auto):
        est = _factored_estimate(space, y, sel.model, ci="none" if average else ci,
                                 level=level, method=method)
    else:
        design = loglinear_design(h.lists, sel.model)
        fit = _fit(design, y, h.lists)
        est = estimate_from_fit(fit, ci="none" if average else ci, level=level, method=method)
    diag = dict(est.diagnostics)
    diag["criterion"] = criterion
    diag["search"] = sel.search
    diag["path"] = pd.DataFrame(sel.path)
    if sel.table is not None:
        tab = sel.table
        w = weights(tab, criterion) if criterion in ("aic", "bic") else np.full(len(tab.models),
                                                                                math.nan)
        frame = pd.DataFrame({
            "model": [space.label(m) for m in tab.models],
            "n_terms": [len(m) for m in tab.models],
            "n_hat": tab.n_hat, "se": tab.se, "deviance": tab.deviance,
            "df": len(y) - tab.n_params, "aic": tab.aic, "bic": tab.bic,
            "status": tab.status, "weight": w,
        })
        key = frame[criterion].where(tab.admissible, np.inf)
        frame = frame.assign(_k=key).sort_values(["_k"], kind="stable").drop(columns="_k")
        diag["models"] = frame.reset_index(drop=True)
        excl = frame[~frame.status.isin(ADMISSIBLE)]
        diag["n_models"] = len(frame)
        diag["n_excluded"] = len(excl)
        diag["excluded"] = excl.status.value_counts().to_dict()
        diag["n_exact_checks"] = tab.n_exact_checks
    else:
        skipped = [r for r in sel.path if r["action"] == "skip"]
        diag["n_models"] = sum(1 for r in sel.path if r["action"] in ("start", "add")) + len(
            skipped)
        diag["n_excluded"] = len(skipped)
        diag["excluded"] = pd.Series([r["status"] for r in skipped],
                                     dtype=object).value_counts().to_dict()
    w = weights(sel.table, criterion) if average and sel.table is not None else None
    if w is not None and not (w > 0).any():
        est = dataclasses.replace(est, warnings=(*est.warnings, "no model has a finite "
                                                 "estimate: nothing to average"))
        w = None
    if w is not None:
        tab = sel.table
        ok = w > 0
        n_avg = float(np.sum(w[ok] * tab.n_hat[ok]))
        se_avg = float(np.sum(w[ok] * np.sqrt(tab.se[ok] ** 2 + (tab.n_hat[ok] - n_avg) ** 2)))
        z = stats.norm.ppf(0.5 + level / 2)
        n_obs = float(y.sum())
        dark = n_avg - n_obs
        if dark > 0:
            sdlog = math.sqrt(math.log1p((se_avg / dark) ** 2))
            interval = (n_obs + dark * math.exp(-z * sdlog), n_obs + dark * math.exp(z * sdlog))
        else:
            interval = (math.nan, math.nan)
        diag["model_averaged"] = True
        out = Estimate(n_hat=n_avg, ci=interval, level=level, n_observed=n_obs, method=method,
                        model=f"{criterion.upper()} average of {int(ok.sum())} models "
                              f"(best {space.label(sel.model)})",
                        status="extended" if est.status == "extended" else "ok",
                        ci_method="lognormal (Buckland SE)", se=se_avg,
                        # goodness of fit of the best model, so that lack-of-fit checks
                        # (tipstat.validate.assumption_warnings) apply to the average too
                        deviance=est.deviance, df=est.df, aic=est.aic, bic=est.bic,
                        loglik=est.loglik, n_params=est.n_params,
                        diagnostics=diag, warnings=est.warnings)
    else:
        out = dataclasses.replace(est, diagnostics=diag)
    bound = {"bound_share": float(bound_share), "bound_odds": bound_odds}
    return attach_checks(
        _mark_truncated(_rests_on(out, sel, criterion, average, estimable=not average or w is not None,
                                  **bound), sel, criterion),
        h, check=check)


def _rests_on(est: Estimate, sel: Selection, criterion: str, average: bool, *,
              estimable: bool, bound_share: float, bound_odds: float | None) -> Estimate:
    """``est`` with what its model choice or average rests on: the shares of
    :func:`weight_shares` in its diagnostics, the caveats of :func:`choice_caveats` in its
    warnings, and status ``"lower_bound"`` where :func:`lower_bound_reasons` says the data
    support only a lower bound (an ``"ok"`` or ``"extended"`` status, or an average with
    nothing to average, whose bound is the persons seen: a failed or non-converged result
    keeps its status)."""
    diag = dict(est.diagnostics)
    models = diag.get("models")
    if isinstance(models, pd.DataFrame) and criterion in ("aic", "bic"):
        shares = weight_shares(models, criterion)
    else:
        shares = dict.fromkeys(SHARE_KEYS, math.nan)
    diag.update({k: shares[k] for k in ("untestable_weight", "extended_weight",
                                          "excluded_weight", "unbounded_weight")})
    caveats, lower = choice_caveats(shares, criterion=criterion, average=average,
                                    n_excluded=int(diag.get("n_excluded", 0)),
                                    chosen_df=float(est.df), deviance=float(est.deviance),
                                    status=est.status, estimable=estimable,
                                    bound_share=bound_share, bound_odds=bound_odds)
    out = dataclasses.replace(est, diagnostics=diag, warnings=(*est.warnings, *caveats))
    if lower and est.status in ADMISSIBLE:
        diag["reason"] = caveats[-1].message
        out = dataclasses.replace(out, diagnostics=diag).as_lower_bound()
    elif lower and average and not estimable and est.status in ("does_not_exist",
                                                                 "not_identifiable"):
        diag["reason"] = caveats[-1].message
        out = dataclasses.replace(out, diagnostics=diag).as_lower_bound(est.n_observed)
    return out


def _mark_truncated(est: Estimate, sel: Selection, criterion: str) -> Estimate:
    """Record whether the search stopped at its work budget (:data:`SEARCH_BUDGET`): then the
    criterion may still improve beyond the model reported, so the status is
    ``"not_converged"`` (N-hat and interval are those of the last model reached, kept for
    inspection), with a reason, a warning in ``Estimate.warnings`` and a
    :class:`~tipstat.TipstatWarning`."""
    diag = {**est.diagnostics, "search_truncated": bool(sel.truncated)}
    if not sel.truncated:
        return dataclasses.replace(est, diagnostics=diag)
    msg = (f"the {sel.search} search ({criterion}) stopped at its work budget (at most "
           f"{SEARCH_BUDGET // SEARCH_FLOOR:,} candidate fits; large counts and many lists: "
           "every step still improved the criterion): the model reported is not the "
           "criterion's choice and its interval is conditional on a model the search would have left")
    diag["reason"] = msg
    diag["converged"] = False
    warnings.warn(msg, TipstatWarning, stacklevel=3)
    return dataclasses.replace(est, status="not_converged", diagnostics=diag,
                               warnings=(*est.warnings, msg))
