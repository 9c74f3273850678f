"""Bayesian model averaging over hierarchical log-linear models (the model of Overstall & King's conting).

Every hierarchical log-linear model ``m`` that holds all main effects and lies inside a maximal
model (default: every two-way interaction) gets prior probability ``1 / #models``. The cells are
the ``2**K`` capture patterns (times the levels of any covariates); the cells of the pattern "on
no list" are missing. With sum-to-zero coding (R's ``contr.sum``; binary factors are ``±1``) and
``X`` the maximal design over all ``n_c`` cells,

.. math::

    y_c \\mid \\beta, m \\sim \\text{Poisson}(e^{x_{mc}^\\top \\beta}),\\quad
    p(\\beta_0) \\propto 1,\\quad
    \\beta_{-0} \\mid \\sigma^2, m \\sim N\\!\\left(0,\\ \\sigma^2 R_m^{-1}\\right),\\quad
    R = X^\\top X / n_c,

where ``R_m`` is the block of ``R`` for the non-intercept columns of ``m`` (the *unit-information*
scale). The unit-information prior (``prior="UIP"``) fixes ``sigma^2 = 1``; the Sabanés Bové &
Held prior (``"SBH"``) puts ``sigma^2 ~ Inv-Gamma(a/2, b/2)`` on it (``a = b = 0.001``), which
integrates to a multivariate t prior with ``a`` degrees of freedom and scale ``(b/a) R_m^{-1}``:

.. math::

    \\log p(\\beta_{-0} \\mid m) = \\log\\Gamma\\!\\left(\\tfrac{a+q}{2}\\right)
    - \\log\\Gamma\\!\\left(\\tfrac{a}{2}\\right) - \\tfrac{q}{2}\\log(\\pi b)
    + \\tfrac12\\log|R_m| - \\tfrac{a+q}{2}\\log\\!\\left(1 + \\beta_{-0}^\\top R_m\\beta_{-0}/b\\right).

The missing cells drop out of the likelihood (their Poisson terms sum to one), so the posterior
model probabilities are ``p(m | y) ∝ p(y_obs | m)``, and given ``(m, beta)`` the unseen count is
``n_0 ~ Poisson(sum over missing cells of exp(x_mc' beta))``; ``N = n_obs + n_0``.

conting samples this posterior by reversible-jump MCMC with data augmentation. Here each model's
evidence ``p(y_obs | m)`` is computed by importance sampling (a multivariate-t proposal at the
posterior mode with the Laplace covariance), and the posterior of N is the evidence-weighted
mixture of the models' importance-weighted draws. Model spaces up to ``max_models`` are
enumerated (a 5-list all-two-way space has 1,024 models, a 6-list one 32,768); models whose
Laplace evidences add up to less than ``prune`` (default 1e-4) of the posterior mass are dropped
(the number is reported); an enumerated space's Laplace fits are computed in batches of
models with as many columns (vectorised Newton, each model warm-started from its parent's mode as
the one-model code does, so the evidences agree with it to rounding). Larger spaces are explored
by a Metropolis walk over models (add or drop one term, Laplace evidence) and the averaging is
over the models it visits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .._checks import DEFAULT_SEED, is_level
from ..errors import InputError, Problem
from ..estimate import Caveat, Estimate
from ..histories import CaptureHistories
from ..parallel import generator, one_blas_thread
from .checks import attach_checks
from .intervals import hpd_interval as _hpd
from .intervals import weighted_quantiles as _wquantile
from .newton import count_scale, newton
from .posterior_checks import (
    PPP_DRAWS,
    ppp_caveat,
    predictive_check,
    prior_shift_caveat,
    reweighted_upper,
    softmax_rows,
)
from .terms import MAX_DESIGN_BYTES, TermSpace, hierarchical, order, parse_terms, term_label

__all__ = ["bma_model_space", "fit_loglinear_bma"]

PRIORS = ("UIP", "SBH")
#: Interval methods of :func:`fit_loglinear_bma` (its ``ci``).
CI_METHODS = ("hpd", "equal_tailed")


# ------------------------------------------------------------------------------- model space
@dataclass(frozen=True)
class ModelSpace:
    """Cells, the maximal design and the optional terms of a log-linear model-averaging problem.

    Attributes
    ----------
    variables : tuple of str
        The lists, then the covariates (factor names).
    n_levels : tuple of int
        Levels of each variable (2 for a list).
    k : int
        Number of lists.
    y : numpy.ndarray
        Cell counts (0 in the missing cells).
    missing : numpy.ndarray
        Boolean mask of the missing cells (pattern "on no list", in every covariate stratum).
    X : numpy.ndarray
        Maximal design with sum-to-zero coding, first column the intercept.
    R : numpy.ndarray
        ``X'X / n_cells`` with the intercept row and column set to zero (unit-information scale).
    columns : dict
        Term mask (bits over :attr:`variables`; 0 = intercept) -> column indices of ``X``.
    base : tuple of int
        Masks always in the model: the intercept and the main effects.
    optional : tuple of int
        Masks of the interactions in the maximal model, ordered by order then mask.
    n_observed : float
        Persons seen on at least one list.
    """

    variables: tuple[str, ...]
    n_levels: tuple[int, ...]
    k: int
    y: np.ndarray
    missing: np.ndarray
    X: np.ndarray
    R: np.ndarray
    columns: dict[int, np.ndarray]
    base: tuple[int, ...]
    optional: tuple[int, ...]
    n_observed: float

    @functools.cached_property
    def space(self) -> TermSpace:
        """The optional terms as a :class:`~tipstat.models.terms.TermSpace` (hierarchy,
        enumeration), in the order of :attr:`optional`."""
        return TermSpace(self.variables, terms=self.optional)

    def label(self, mask: int) -> str:
        """``'S1:eth'`` for a term mask."""
        return term_label(mask, self.variables)

    def model_label(self, model: frozenset[int]) -> str:
        terms = sorted(model, key=lambda t: (order(t), t))
        return "[" + ", ".join(self.label(t) for t in terms) + "]" if terms else "[independence]"

    def cols(self, model: frozenset[int]) -> np.ndarray:
        """Columns of :attr:`X` in ``model`` (the base terms, then its terms by order and
        mask); kept per model (read-only: the fit asks for a model's columns many times)."""
        hit = self._cols.get(model)
        if hit is None:
            masks = list(self.base) + sorted(model, key=lambda t: (t.bit_count(), t))
            hit = np.concatenate([self.columns[m] for m in masks])
            hit.setflags(write=False)
            self._cols[model] = hit
        return hit

    @functools.cached_property
    def _cols(self) -> dict[frozenset[int], np.ndarray]:
        return {}

    def parents_ok(self, model: frozenset[int], term: int) -> bool:
        """Whether every interaction one order below ``term`` is in ``model`` (hierarchy)."""
        return self.space.can_add(model, term)

    def children_absent(self, model: frozenset[int], term: int) -> bool:
        """Whether no interaction of ``model`` one order above contains ``term``."""
        return self.space.can_drop(model, term)


def _contr_sum(levels: int) -> np.ndarray:
    """R's ``contr.sum``: ``levels x (levels - 1)``, the last level coded ``-1`` everywhere."""
    c = np.zeros((levels, levels - 1))
    c[: levels - 1] = np.eye(levels - 1)
    c[levels - 1] = -1.0
    return c


def _parse_max_model(spec: Any, variables: tuple[str, ...], k: int) -> tuple[int, ...]:
    """Interaction masks of the maximal model, closed downwards (hierarchy), by order then mask
    (:func:`tipstat.models.terms.parse_terms` over lists and covariates)."""
    try:
        masks = parse_terms(spec, variables)
    except InputError as err:
        raise InputError("invalid max_model", [Problem(
            "max_model", None, str(spec), f"terms over the variables {', '.join(variables)} "
            f"({err})")]) from None
    lists_mask = (1 << k) - 1
    if k > 1 and any(m & lists_mask == lists_mask for m in masks):
        raise InputError(
            "the maximal model holds the interaction of all lists, which is confounded with the "
            "unobserved cell", [Problem("max_model", None, str(spec),
                                        "interactions of at most K - 1 lists, e.g. 'all2'")])
    return tuple(sorted(set(masks), key=lambda t: (order(t), t)))


def bma_model_space(h: CaptureHistories, max_model: Any = "all2",
                    covariates: bool | Sequence[str] = False) -> ModelSpace:
    """Build the cells, maximal design and candidate terms of :func:`fit_loglinear_bma`.

    Parameters
    ----------
    h : CaptureHistories
        Capture histories; strata are pooled unless ``covariates`` names them.
    max_model : str or list of str
        ``"all2"`` (default), ``"all3"``..., ``"independence"``, or terms such as
        ``["S1:S2", "S1:eth"]`` / ``"S1*S2 + S3:eth"`` over list and covariate names.
    covariates : bool or list of str
        Stratum columns of ``h`` entered as factors (``True``: all of them).

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.models.bma import bma_model_space
    >>> s = bma_model_space(tipstat.datasets.load("Spina_3"), covariates=True)
    >>> s.variables, s.X.shape, len(s.optional)
    (('S1', 'S2', 'S3', 'eth'), (24, 15), 6)
    """
    if covariates is True:
        covs = tuple(h.strata)
    elif covariates is False or covariates is None:
        covs = ()
    else:
        covs = tuple(covariates)
        bad = [c for c in covs if c not in h.strata]
        if bad:
            raise InputError("covariates must be stratum columns of the histories", [
                Problem("covariates", None, c, f"one of {list(h.strata)}") for c in bad])
    lists = tuple(h.lists)
    k = h.k
    optional = _parse_max_model(max_model, lists + covs, k)
    n_cols = 1 + len(lists) + len(covs) + len(optional)   # at least (binary lists)
    need = (1 << k) * n_cols * 8 * max(1, len(h.strata_index) if covs else 1)
    if need > MAX_DESIGN_BYTES:
        raise InputError("the model space is too large for model averaging", [Problem(
            "lists", None, k, f"a design of at most {MAX_DESIGN_BYTES / 2**30:.1f} GiB; this "
            f"one ({2**k:,} cells x {n_cols} columns) needs {need / 2**30:.1f} GiB: merge or "
            "drop lists, or use tipstat.estimate_population")])
    if covs:
        index = h.strata_index
        # collapse strata not named in covs
        keys = index[list(covs)].astype(str)
        groups = keys.apply(tuple, axis=1)
        uniq = list(dict.fromkeys(groups))
        counts = np.zeros((len(uniq), (1 << k) - 1))
        for s, g in enumerate(groups):
            counts[uniq.index(g)] += h.stratum_counts[s]
        levels = [sorted(set(keys[c])) for c in covs]
        codes = np.array([[levels[j].index(g[j]) for j in range(len(covs))] for g in uniq])
        missing_combos = int(np.prod([len(lv) for lv in levels])) - len(uniq)
        if missing_combos:
            raise InputError("the covariates do not form a full factorial table",
                             [Problem("covariates", None, ", ".join(covs),
                                      "every combination of covariate levels present as a "
                                      "stratum (it may have zero counts)")])
    else:
        counts = np.asarray(h.counts, dtype=float)[None, :]
        levels = []
        codes = np.zeros((1, 0), dtype=int)
    variables = lists + covs
    n_levels = (2,) * k + tuple(len(lv) for lv in levels)
    # cells: every stratum row x every pattern 0..2^K-1 (pattern 0 missing)
    n_s, n_p = counts.shape[0], 1 << k
    pat = np.array([[(c >> j) & 1 for j in range(k)] for c in range(n_p)], dtype=int)
    cells = np.concatenate([np.column_stack([pat, np.repeat(codes[s][None, :], n_p, axis=0)])
                            for s in range(n_s)]) if covs else pat
    y = np.concatenate([np.concatenate([[0.0], counts[s]]) for s in range(n_s)])
    missing = np.tile(np.arange(n_p) == 0, n_s)
    # codings: a list value 0 is the first level (+1), 1 the last (-1), as contr.sum on a 0/1 factor
    codings = [_contr_sum(L) for L in n_levels]
    single = [codings[j][cells[:, j]] for j in range(len(variables))]
    base = (0, *(1 << j for j in range(len(variables))))
    blocks: list[np.ndarray] = []
    columns: dict[int, np.ndarray] = {}
    start = 0
    for mask in base + optional:
        block = np.ones((cells.shape[0], 1))
        for j in range(len(variables)):
            if mask >> j & 1:
                block = np.einsum("ci,cj->cij", block, single[j]).reshape(cells.shape[0], -1)
        blocks.append(block)
        columns[mask] = np.arange(start, start + block.shape[1])
        start += block.shape[1]
    X = np.hstack(blocks)
    R = X.T @ X / X.shape[0]
    R[0, :] = 0.0
    R[:, 0] = 0.0
    return ModelSpace(variables, n_levels, k, y, missing, X, R, columns, base, optional,
                      float(counts.sum()))


def _enumerate(space: ModelSpace, limit: int) -> list[frozenset[int]] | None:
    """Every hierarchical subset of the optional terms, or None when there are more than
    ``limit`` (two-way spaces by size, others depth-first: :meth:`TermSpace.enumerate`)."""
    terms = space.space
    if terms.max_order <= 2:
        if terms.count_models() > limit:
            return None
        return [frozenset(m) for m in terms.enumerate(by_size=True)]
    out: list[frozenset[int]] = []
    for m in terms.enumerate():
        out.append(frozenset(m))
        if len(out) > limit:
            return None
    return out


# ---------------------------------------------------------------------------- one model
@dataclass
class _ModelFit:
    log_laplace: float
    mode: np.ndarray
    cov: np.ndarray | None             # None until needed (batched enumeration)
    log_evidence: float = math.nan
    weights: np.ndarray | None = None   # normalised importance weights
    mu0: np.ndarray | None = None       # expected unseen count per draw
    ess: float = math.nan


def _prior_const(prior: str, q: float, a: float, b: float, half_logdet: Any) -> Any:
    """Normalising constant of the prior of the ``q`` non-intercept parameters (``half_logdet``
    is half the log determinant of their prior precision; arrays give one constant per model)."""
    if prior == "UIP":
        return half_logdet - 0.5 * q * math.log(2 * math.pi)
    return (special.gammaln((a + q) / 2) - special.gammaln(a / 2)
            - 0.5 * q * math.log(math.pi * b) + half_logdet)


class _Posterior:
    """Log posterior (up to the flat intercept) of one model and its derivatives."""

    def __init__(self, space: ModelSpace, cols: np.ndarray, prior: str, a: float, b: float):
        obs = ~space.missing
        self.X = space.X[:, cols]
        self.Xo = self.X[obs]
        self.yo = space.y[obs]
        self.Xm = self.X[space.missing]
        self.const = -float(np.sum(special.gammaln(self.yo + 1)))
        self.P = space.R[np.ix_(cols[1:], cols[1:])]
        self.q = len(cols) - 1
        self.prior, self.a, self.b = prior, a, b
        _, logdet = np.linalg.slogdet(self.P) if self.q else (1.0, 0.0)
        self.half_logdet = 0.5 * logdet
        self.prior_const = _prior_const(prior, self.q, a, b, self.half_logdet)

    @classmethod
    def many(cls, space: ModelSpace, cols: np.ndarray, prior: str, a: float,
             b: float) -> list[_Posterior]:
        """The posteriors of models with as many columns, built at once.

        ``cols`` is (models x columns). The design blocks, prior blocks and log determinants are
        taken for the whole stack (numpy's stacked ``slogdet`` runs the same LAPACK routine on
        each matrix), so every attribute equals that of ``_Posterior(space, cols[i], ...)``
        bit for bit.
        """
        obs = ~space.missing
        X = np.ascontiguousarray(space.X[:, cols].transpose(1, 0, 2))   # (models, cells, p)
        Xo, Xm = X[:, obs], X[:, space.missing]
        yo = space.y[obs]
        const = -float(np.sum(special.gammaln(yo + 1)))
        q = cols.shape[1] - 1
        P = space.R[cols[:, 1:, None], cols[:, None, 1:]]
        logdet = np.linalg.slogdet(P)[1] if q else np.zeros(len(cols))
        out = []
        for i in range(len(cols)):
            post = cls.__new__(cls)
            post.X, post.Xo, post.yo, post.Xm, post.const = X[i], Xo[i], yo, Xm[i], const
            post.P, post.q, post.prior, post.a, post.b = P[i], q, prior, a, b
            post.half_logdet = 0.5 * logdet[i] if q else 0.0
            post.prior_const = _prior_const(prior, q, a, b, post.half_logdet)
            out.append(post)
        return out

    def logpost(self, B: np.ndarray) -> np.ndarray:
        """Log likelihood plus log prior for rows of ``B`` (draws x params).

        The (draws x cells) intermediates are updated in place (the same arithmetic, without
        allocating a large array per operation).
        """
        return _logpost_stacked([self], B[None])[0]

    def grad_hess(self, beta: np.ndarray, modified: bool) -> tuple[np.ndarray, np.ndarray]:
        mu = np.exp(np.minimum(self.Xo @ beta, 700.0))
        g = self.Xo.T @ (self.yo - mu)
        H = (self.Xo * mu[:, None]).T @ self.Xo          # negative Hessian of the likelihood
        bb = beta[1:]
        Pb = self.P @ bb
        if self.prior == "UIP":
            g[1:] -= Pb
            H[1:, 1:] += self.P
        else:
            s = float(bb @ Pb)
            c = (self.a + self.q) / (self.b + s)
            g[1:] -= c * Pb
            H[1:, 1:] += c * self.P
            if not modified:
                H[1:, 1:] -= 2 * c / (self.b + s) * np.outer(Pb, Pb)
        return g, H

    def mode(self, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The posterior mode from ``start`` by the one Newton iteration
        (:func:`tipstat.models.newton.newton`, decrement in count scales of the observed cells)
        and the Hessian there."""

        def value(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, tuple]:
            return self.logpost(x), ()

        def direction(x: np.ndarray, aux: tuple, rows: np.ndarray, certified: np.ndarray):
            # Newton with the exact Hessian where it is positive definite; otherwise drop the
            # rank-one non-concave part of the t prior (always positive definite)
            g, H = self.grad_hess(x[0], modified=False)
            try:
                np.linalg.cholesky(H)
            except np.linalg.LinAlgError:
                g, H = self.grad_hess(x[0], modified=True)
            step = np.linalg.solve(H, g)
            return step[None], np.array([g @ step]), None

        beta = newton(value, direction, start[None], scale=count_scale(self.yo),
                      maxiter=200).x[0]
        _, H = self.grad_hess(beta, modified=False)
        try:
            np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            _, H = self.grad_hess(beta, modified=True)
        return beta, H


def _laplace(post: _Posterior, start: np.ndarray) -> _ModelFit:
    mode, H = post.mode(start)
    f = float(post.logpost(mode[None])[0])
    _, logdet = np.linalg.slogdet(H)
    log_lap = f + 0.5 * len(mode) * math.log(2 * math.pi) - 0.5 * logdet
    return _ModelFit(log_lap, mode, np.linalg.inv(H))


class _Batch:
    """Log posteriors of many models of one space at once, models with as many columns.

    Model ``i`` uses the columns ``cols[i]`` of ``X`` (increasing, the intercept first). The
    arithmetic is that of :class:`_Posterior` (same prior, same modified Hessian; the same line
    search and stopping rule in :func:`_laplace_many`), so a model's mode and Laplace evidence
    agree with the one-model code to rounding.
    """

    def __init__(self, space: ModelSpace, cols: np.ndarray, prior: str, a: float, b: float):
        obs = ~space.missing
        self.Xo = np.ascontiguousarray(space.X[obs][:, cols].transpose(1, 0, 2))  # (m, n, p)
        self.XoT = np.ascontiguousarray(self.Xo.transpose(0, 2, 1))
        self.yo = space.y[obs]
        self.const = -float(np.sum(special.gammaln(self.yo + 1)))
        self.prior, self.a, self.b = prior, a, b
        self.P = space.R[cols[:, :, None], cols[:, None, :]]   # intercept row and column zero
        self.q = float(cols.shape[1] - 1)
        half_logdet = 0.5 * np.linalg.slogdet(self.P[:, 1:, 1:])[1] if self.q else 0.0
        self.prior_const = np.broadcast_to(_prior_const(prior, self.q, a, b, half_logdet),
                                           (len(cols),))
        self._at: np.ndarray | None = None
        self._sub: tuple = ()

    def _rows(self, rows: np.ndarray) -> tuple:
        """``(Xo, XoT, P, prior_const)`` of the models ``rows`` (increasing): the stacks
        themselves when ``rows`` are all the models, else taken once per ``rows`` object (the
        Newton iteration passes the same object until a model finishes)."""
        if rows is not self._at:
            full = len(rows) == len(self.Xo)
            self._sub = ((self.Xo, self.XoT, self.P, self.prior_const) if full else
                         (self.Xo[rows], self.XoT[rows], self.P[rows], self.prior_const[rows]))
            self._at = rows
        return self._sub

    def _eta(self, beta: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.minimum(np.matmul(self._rows(rows)[0], beta[:, :, None])[:, :, 0], 700.0)

    def logpost(self, beta: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Log posterior of models ``rows`` at ``beta`` (one row of parameters per model)."""
        eta = self._eta(beta, rows)
        _, _, P, prior_const = self._rows(rows)
        ll = eta @ self.yo - np.exp(eta).sum(axis=1) + self.const
        s = np.einsum("mi,mij,mj->m", beta, P, beta)
        if self.prior == "UIP":
            lp = -0.5 * s
        else:
            lp = -0.5 * (self.a + self.q) * np.log1p(s / self.b)
        return ll + lp + prior_const

    def grad_hess(self, beta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian, the exact one where positive definite, else the modified one."""
        mu = np.exp(self._eta(beta, rows))
        Xo, XoT, P, _ = self._rows(rows)
        g = np.matmul(XoT, (self.yo - mu)[:, :, None])[:, :, 0]
        H = np.matmul(XoT * mu[:, None, :], Xo)
        Pb = np.einsum("mij,mj->mi", P, beta)
        if self.prior == "UIP":
            g -= Pb
            H += P
        else:
            s = np.einsum("mi,mi->m", beta, Pb)
            c = (self.a + self.q) / (self.b + s)
            g -= c[:, None] * Pb
            H += c[:, None, None] * P
            rank1 = (2 * c / (self.b + s))[:, None, None] * (Pb[:, :, None] * Pb[:, None, :])
            H -= rank1
            for i in _not_pd(H):
                H[i] += rank1[i]
        return g, H


def _not_pd(H: np.ndarray) -> list[int]:
    """Indices of the matrices of a stack whose Cholesky factorisation fails."""
    try:
        np.linalg.cholesky(H)
        return []
    except np.linalg.LinAlgError:
        bad = []
        for i in range(len(H)):
            try:
                np.linalg.cholesky(H[i])
            except np.linalg.LinAlgError:
                bad.append(i)
        return bad


def _laplace_many(batch: _Batch, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Modes and Laplace log evidences of the models of ``batch`` (as :func:`_laplace` each).

    ``start`` is (models x columns of each model). The one Newton iteration
    (:func:`tipstat.models.newton.newton`) on the stack, with the exact Hessian where it is
    positive definite (else the modified one), as :meth:`_Posterior.mode`.
    """

    def value(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, tuple]:
        return batch.logpost(x, rows), ()

    def direction(x: np.ndarray, aux: tuple, rows: np.ndarray, certified: np.ndarray):
        g, H = batch.grad_hess(x, rows)
        step = np.linalg.solve(H, g[:, :, None])[:, :, 0]
        return step, np.einsum("mi,mi->m", g, step), None

    beta = newton(value, direction, start, scale=count_scale(batch.yo), maxiter=200).x
    rows = np.arange(len(beta))
    _, H = batch.grad_hess(beta, rows)
    f = batch.logpost(beta, rows)
    log_lap = f + 0.5 * beta.shape[1] * math.log(2 * math.pi) - 0.5 * np.linalg.slogdet(H)[1]
    return beta, log_lap


def _laplace_enumerated(space: ModelSpace, models: list[frozenset[int]], full_mode: np.ndarray,
                        prior: str, a: float, b: float, chunk: int = 2048
                        ) -> dict[frozenset[int], _ModelFit]:
    """Laplace fits of every enumerated model, in batches of models with as many terms.

    Each model starts from the mode of its parent (the model without its last term, one level
    down), the empty model from the maximal model's mode: the warm starts of the one-model code.
    The covariances are left to :func:`_covariance` (only the models kept after pruning need
    them).
    """
    n_par = space.X.shape[1]
    index = {m: i for i, m in enumerate(models)}
    cols = [space.cols(m) for m in models]
    modes = np.zeros((len(models), n_par))      # zero outside the model's columns
    log_lap = np.empty(len(models))
    groups: dict[tuple[int, int], list[int]] = {}
    for i, m in enumerate(models):
        groups.setdefault((len(m), len(cols[i])), []).append(i)
    for key in sorted(groups):
        idx = np.array(groups[key])
        for lo in range(0, len(idx), chunk):
            part = idx[lo:lo + chunk]
            c = np.array([cols[i] for i in part])
            rows = np.arange(len(part))[:, None]
            if key[0] == 0:
                start = full_mode[c]
            else:
                start = modes[[index[_parent(models[i])] for i in part]][rows, c]
            mode, log_lap[part] = _laplace_many(_Batch(space, c, prior, a, b), start)
            modes[part[:, None], c] = mode
    return {m: _ModelFit(float(log_lap[i]), modes[i, cols[i]], None)
            for i, m in enumerate(models)}


def _parent(model: frozenset[int]) -> frozenset[int]:
    """The model without its highest term (by order, then mask)."""
    return model - {max(model, key=lambda t: (t.bit_count(), t))}


def _covariances(posts: list[_Posterior], modes: np.ndarray) -> np.ndarray:
    """Inverse Hessians at the modes of models with as many columns (as :meth:`_Posterior.mode`
    returns it: the exact Hessian where positive definite, else the modified one), as stacked
    matrix products.

    ``posts`` come from :meth:`_Posterior.many` and ``modes`` is (models x columns). Each
    product is the one :meth:`_Posterior.grad_hess` forms, with the operands laid out as there
    (numpy's stacked ``matmul`` calls the same BLAS routine per model), so the covariances equal
    the one-model ones bit for bit (checked in tests/models/test_bma.py).
    """
    post = posts[0]
    Xo = np.stack([p.Xo for p in posts])
    P = np.stack([p.P for p in posts])
    eta = np.matmul(Xo, modes[:, :, None])[:, :, 0]
    mu = np.exp(np.minimum(eta, 700.0))
    H = np.matmul((Xo * mu[:, :, None]).transpose(0, 2, 1), Xo)
    if post.prior == "UIP":
        H[:, 1:, 1:] += P
        return np.linalg.inv(H)
    bb = modes[:, 1:]
    Pb = np.matmul(P, bb[:, :, None])[:, :, 0]
    s = np.matmul(bb[:, None, :], Pb[:, :, None])[:, 0, 0]
    c = (post.a + post.q) / (post.b + s)
    H[:, 1:, 1:] += c[:, None, None] * P
    modified = H.copy()
    H[:, 1:, 1:] -= (2 * c / (post.b + s))[:, None, None] * (Pb[:, :, None] * Pb[:, None, :])
    for i in _not_pd(H):
        H[i] = modified[i]
    return np.linalg.inv(H)


#: Laplace posterior probability from which an enumerated model gets all ``draws``
FULL_DRAWS_MASS = 1e-3
#: fewest importance draws of an enumerated model
MIN_DRAWS = 200


def _allocate(draws: int, prob: float) -> int:
    """Importance draws of an enumerated model of Laplace posterior probability ``prob``.

    ``draws`` from :data:`FULL_DRAWS_MASS` up, ``draws * prob / FULL_DRAWS_MASS`` below (at
    least :data:`MIN_DRAWS`). The Monte Carlo variance of a model-averaged quantity is about
    ``sum_m p_m^2 s^2 / n_m`` (``s^2`` a per-draw variance, covering both the model's draws and
    its importance-sampled evidence); with ``n_m`` proportional to ``p_m`` below the threshold
    the models there add at most ``FULL_DRAWS_MASS * s^2 / draws`` times their total mass, so
    the variance stays within a few percent of giving every model ``draws``. A 6-list
    all-two-way space whose mass is spread over 20,000 kept models (simulated independent
    lists, N = 2000) then needs 5.2 million draws instead of 79 million, for +1% variance.
    """
    if prob >= FULL_DRAWS_MASS:
        return draws
    return min(draws, max(MIN_DRAWS, round(draws * prob / FULL_DRAWS_MASS)))


def _importance(post: _Posterior, fit: _ModelFit, draws: int, df: float,
                rng: np.random.Generator, inflate: float, adapt: bool = True) -> None:
    """Importance sampling from a multivariate t at the mode: evidence, weights, unseen means."""
    p = len(fit.mode)
    cov = fit.cov * inflate
    L = np.linalg.cholesky(cov + 1e-12 * np.eye(p))
    z = rng.standard_normal((draws, p))
    w = rng.chisquare(df, draws) / df
    B = z @ L.T
    B /= np.sqrt(w)[:, None]
    B += fit.mode       # = fit.mode + (z @ L.T) / sqrt(w), in place
    # log density of the multivariate t proposal
    u = np.sum(z**2, axis=1) / w
    logq = (special.gammaln((df + p) / 2) - special.gammaln(df / 2) - 0.5 * p * math.log(df * math.pi)
            - np.sum(np.log(np.diag(L))) - 0.5 * (df + p) * np.log1p(u / df))
    lw = post.logpost(B) - logq
    _weigh(post, fit, B, lw, draws, df, rng, inflate, adapt)


def _weigh(post: _Posterior, fit: _ModelFit, B: np.ndarray, lw: np.ndarray, draws: int,
           df: float, rng: np.random.Generator, inflate: float, adapt: bool) -> None:
    """The end of :func:`_importance`: weights, evidence, ESS and unseen means of the draws ``B``.

    ``lw`` holds the log importance ratios of the draws. Where the ESS is below a quarter of
    the draws (and ``adapt``), one adapted proposal is tried with further draws from ``rng``.
    """
    m = np.max(lw)
    wts = np.exp(lw - m)
    total = wts.sum()
    wts /= total                      # the normalised weights (computed once)
    ess = 1.0 / np.sum(wts**2)
    if adapt and ess < 0.25 * draws:
        # one adaptation step: move the proposal to the weighted moments of the draws
        mean = wts @ B
        centred = B - mean
        cov_w = (centred * wts[:, None]).T @ centred
        if np.all(np.isfinite(cov_w)) and np.linalg.eigvalsh(cov_w).min() > 0:
            adapted = _ModelFit(fit.log_laplace, mean, np.maximum(cov_w, cov_w.T) / inflate)
            _importance(post, adapted, draws, df, rng, inflate, adapt=False)
            if adapted.ess > ess:
                fit.log_evidence, fit.weights = adapted.log_evidence, adapted.weights
                fit.ess, fit.mu0 = adapted.ess, adapted.mu0
                return
    fit.log_evidence = float(m + math.log(total / draws))
    fit.weights = wts
    fit.ess = float(ess)
    fit.mu0 = np.exp(np.minimum(B @ post.Xm.T, 700.0)).sum(axis=1)


def _logpost_stacked(posts: list[_Posterior], B: np.ndarray) -> np.ndarray:
    """Log likelihood plus log prior of draws ``B`` (models x draws x params) of models with
    as many columns (``posts``, one per model; a stack of one is :meth:`_Posterior.logpost`).

    The (models x draws x cells) intermediates are updated in place.
    """
    post = posts[0]
    Xo = np.stack([q.Xo for q in posts])
    eta = np.matmul(B, Xo.transpose(0, 2, 1))
    if not eta.max() <= 700.0:  # (a pass that reads only; NaN stays NaN either way)
        np.minimum(eta, 700.0, out=eta)
    ll = np.matmul(eta, post.yo)
    ll -= np.exp(eta, out=eta).sum(axis=2)
    ll += post.const
    Bq = B[:, :, 1:]
    PB = np.matmul(Bq, np.stack([q.P for q in posts]))
    PB *= Bq
    s = PB.sum(axis=2)
    if post.prior == "UIP":
        lp = -0.5 * s
    else:
        lp = -0.5 * (post.a + post.q) * np.log1p(s / post.b)
    return ll + lp + np.array([q.prior_const for q in posts])[:, None]


def _importance_many(posts: list[_Posterior], fits: list[_ModelFit], draws: int, df: float,
                     rngs: list[np.random.Generator], inflate: float) -> None:
    """:func:`_importance` of models with as many columns and draws, stacked.

    Each model's normal and chi-square draws come from its own generator, in the order
    :func:`_importance` takes them, so the streams are unchanged; the proposal factors, the
    draws of the parameters, the proposal densities and the log posteriors are then computed
    for the stack (numpy's stacked ``cholesky`` and ``matmul`` run the same LAPACK/BLAS routine
    per model on operands laid out as in the one-model code), and each model is finished by
    :func:`_weigh` (with its adaptation step, if any, drawn from its generator as before). The
    results equal :func:`_importance`'s bit for bit (checked in tests/models/test_bma.py).
    """
    g, p = len(fits), len(fits[0].mode)
    cov = np.stack([f.cov for f in fits]) * inflate
    L = np.linalg.cholesky(cov + 1e-12 * np.eye(p))
    z = np.empty((g, draws, p))
    w = np.empty((g, draws))
    for i, rng in enumerate(rngs):
        rng.standard_normal(out=z[i])     # (what rng.standard_normal((draws, p)) draws)
        w[i] = rng.chisquare(df, draws) / df
    B = np.matmul(z, L.transpose(0, 2, 1))
    B /= np.sqrt(w)[:, :, None]
    B += np.stack([f.mode for f in fits])[:, None, :]
    u = np.sum(z**2, axis=2) / w
    log_diag = np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)), axis=1)
    logq = (special.gammaln((df + p) / 2) - special.gammaln(df / 2) - 0.5 * p * math.log(df * math.pi)
            - log_diag[:, None] - 0.5 * (df + p) * np.log1p(u / df))
    lw = _logpost_stacked(posts, B) - logq
    for i in range(g):
        _weigh(posts[i], fits[i], B[i], lw[i], draws, df, rngs[i], inflate, adapt=True)


# --------------------------------------------------------------------------- summaries
def _stable_order(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")`` for draws of N, faster where it can.

    The draws ``n_obs + n_0`` are whole numbers. When they span fewer than 65,536 values their
    offsets from the smallest are sorted as 16-bit integers, which numpy sorts stably by radix
    in linear time. Otherwise, while ``offset * 2**b + index`` (``2**b`` above the number of
    draws) fits in 62 bits, those keys are sorted (all distinct, so any sort puts them in one
    order: by value, ties by index) and the indices read back from their low bits. The order is
    the same permutation either way.
    """
    n = len(values)
    if n:
        lo, hi = float(values.min()), float(values.max())
        bits = n.bit_length()
        if (0.0 <= lo and hi < 2.0**53 and hi - lo < 2.0 ** (62 - bits)
                and np.array_equal(values, np.floor(values))):
            # (whole numbers below 2**53: values - lo is exact)
            if hi - lo < 65536:
                return np.argsort((values - lo).astype(np.uint16), kind="stable")
            key = (values - lo).astype(np.int64)
            key <<= bits
            key |= np.arange(n, dtype=np.int64)
            key.sort()
            key &= (1 << bits) - 1
            return key
    return np.argsort(values, kind="stable")


# ------------------------------------------------------------------------------ public
def _one_blas_thread(func):
    """Run ``func`` with BLAS limited to one thread (:func:`tipstat.parallel.one_blas_thread`).

    The fit's products are small (a model's importance draws times its columns); BLAS threads
    only add hand-offs, which on a busy 2-core machine made the per-model log posteriors 2-10x
    slower. Results are unchanged wherever the threaded BLAS splits no product differently (every
    enumerated 5- and 6-list table tried; with the walk's larger models a few evidences move in
    the last bits, see benchmarks/bench_bma.py).
    """
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return func(*args, **kwargs)
    return wrapper


@_one_blas_thread
def fit_loglinear_bma(
    h: CaptureHistories,
    max_model: str | Sequence[str] = "all2",
    *,
    level: float = 0.95,
    ci: str = "hpd",
    seed: int = DEFAULT_SEED,
    prior: str = "SBH",
    covariates: bool | Sequence[str] = False,
    draws: int = 4000,
    max_models: int = 40_000,
    prune: float = 1e-4,
    walk_steps: int = 5_000,
    a: float = 0.001,
    b: float = 0.001,
    proposal_df: float = 4.0,
    check: bool = True,
) -> Estimate:
    """Population size by Bayesian model averaging over hierarchical log-linear models.

    The model of conting's ``bict`` (Overstall & King 2014): see the module docstring for the
    priors. Each model's evidence is computed by importance sampling; the posterior of N is the
    model-averaged mixture.

    Parameters
    ----------
    h : CaptureHistories
        Capture histories. Strata are pooled unless ``covariates`` enters them as factors.
    max_model : str or list of str
        Largest model: ``"all2"`` (every two-way interaction, default), ``"all3"``, ... or terms
        over list and covariate names (``["S1:S2", "S2:eth"]``, hierarchical closure taken).
        The interaction of all lists is refused (confounded with the unseen cell).
    prior : {"SBH", "UIP"}
        Prior scale of the log-linear parameters: Sabanés Bové & Held's hyper-prior on
        ``sigma^2`` (default) or the unit-information prior (``sigma^2 = 1``; conting's default).
    covariates : bool or list of str
        Stratum columns entered as factors in the cells (``True``: all); their main effects are
        in every model and their interactions with lists follow ``max_model``.
    level : float
        Interval level.
    ci : {"hpd", "equal_tailed"}
        Interval method: highest posterior density (as conting's ``total_pop``) or
        equal-tailed.
    seed : int
        Seeds the importance draws (each model's stream is derived from the seed and the model,
        so results do not depend on the order of evaluation) and the draws of the unseen count;
        default :data:`tipstat.models.DEFAULT_SEED`.
    draws : int
        Importance draws per model. An enumerated model whose Laplace posterior probability
        ``p`` is below 1e-3 gets ``max(200, draws * p / 1e-3)`` (the Monte Carlo variance of the
        average grows by a few percent at most, see ``_allocate``); with a walk, a model visited
        ``v`` times gets ``max(500, draws * v / most visits)``.
    max_models : int
        Largest model space that is enumerated; beyond it a Metropolis walk over models is used.
    prune : float
        The least probable models (by their Laplace evidence) are dropped while their total
        posterior probability stays below ``prune``; the count is in ``diagnostics["n_pruned"]``.
    walk_steps : int
        Steps of the walk over models when the space is not enumerated.
    a, b : float
        Hyper-parameters of the SBH prior, ``sigma^2 ~ Inv-Gamma(a/2, b/2)``.
    proposal_df : float
        Degrees of freedom of the t importance proposal (heavier tails = safer weights).
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` to the result
        (the table's: sparse table, two lists; on the pooled table when stratified). False for inner fits.

    Returns
    -------
    Estimate
        ``n_hat`` = posterior median of N, ``ci`` = HPD (or equal-tailed) interval, ``se`` =
        posterior SD; ``draws`` (a weighted resample of N) and ``idata`` (ArviZ, ``N`` in the
        posterior); ``diagnostics``: ``models`` (DataFrame of models with log evidence,
        posterior probability and the median of N under each), ``mean``, ``equal_tailed``,
        ``hpd``, ``n_models`` (space size), ``n_evaluated``, ``n_pruned``, ``ess`` (Kish
        effective sample size of the pooled weighted draws), ``min_model_ess``, ``search``
        ("enumeration" or "walk"), ``term_probabilities`` (posterior inclusion of each term),
        and what the average rests on (``_rests_on``): ``untestable_weight`` (posterior
        probability of models with no residual df), ``not_identified_mass`` (of models whose
        MLE of N does not exist or is not identified on this table: the prior bounds N there),
        ``extended_weight`` (of boundary MLEs) and ``unbounded_weight`` (untestable or no MLE).
        Caveats: ``untestable_weight`` above 50%, ``not_identified_mass`` above 5%,
        ``boundary_weight`` above 25%, ``convergence`` (thin importance sampling); status
        ``"lower_bound"`` (caveat ``lower_bound_only``) when ``unbounded_weight`` exceeds 50%,
        the rule of :func:`tipstat.select_loglinear`. ``ppp``: posterior predictive p-value
        of the observed cells (:func:`tipstat.models.posterior_checks.predictive_check`,
        parameter draws by sampling-importance-resampling; caveat ``lack_of_fit`` outside
        [0.05, 0.95]); ``prior_shift``: the upper end under a flat prior on the unseen count
        (the draws reweighted by ``mu0``; caveat ``prior_driven`` above 25%).

    Examples
    --------
    >>> import tipstat
    >>> est = tipstat.fit_loglinear_bma(tipstat.datasets.load("Spina_3"), prior="SBH", seed=1)
    >>> 700 < est.n_hat < 750
    True
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"fit_loglinear_bma: expected tipstat.CaptureHistories, got "
                         f"{type(h).__name__}")
    problems = []
    if prior not in PRIORS:
        problems.append(Problem("prior", None, prior, "one of " + ", ".join(PRIORS)))
    if ci not in CI_METHODS:
        problems.append(Problem("ci", None, ci, "'hpd' or 'equal_tailed'"))
    if not is_level(level):
        problems.append(Problem("level", None, level, "a number between 0 and 1"))
    if not isinstance(draws, int | np.integer) or draws < 100:
        problems.append(Problem("draws", None, draws, "an integer >= 100"))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        problems.append(Problem("seed", None, seed, "a non-negative integer"))
    if not (a > 0 and b > 0):
        problems.append(Problem("a, b", None, (a, b), "positive numbers"))
    if problems:
        raise InputError("invalid input to fit_loglinear_bma", problems)
    if h.k < 2:
        raise InputError("model averaging needs at least 2 lists",
                         [Problem("lists", None, h.k, "2 or more lists")])
    space = bma_model_space(h, max_model, covariates)
    base_seed = int(generator(seed).integers(2**62))

    # a common starting point: the mode of the maximal model under the UIP (concave problem)
    full_cols = np.arange(space.X.shape[1])
    start_post = _Posterior(space, full_cols, "UIP", a, b)
    beta0 = np.zeros(len(full_cols))
    beta0[0] = math.log(max(space.y[~space.missing].mean(), 0.5))
    full_mode, _ = start_post.mode(beta0)

    cache: dict[frozenset[int], _ModelFit] = {}
    posts: dict[frozenset[int], _Posterior] = {}

    def posterior(model: frozenset[int]) -> _Posterior:
        if model not in posts:
            posts[model] = _Posterior(space, space.cols(model), prior, a, b)
        return posts[model]

    def laplace(model: frozenset[int], near: frozenset[int] | None = None) -> _ModelFit:
        """Laplace fit of a model, warm-started from a neighbour's mode when one is cached."""
        if model not in cache:
            cols = space.cols(model)
            start = full_mode[cols]
            if near is not None and near in cache:
                full = np.zeros(space.X.shape[1])
                full[space.cols(near)] = cache[near].mode
                start = full[cols]
            cache[model] = _laplace(posterior(model), start)
        return cache[model]

    models = _enumerate(space, max_models)
    if models is not None:
        search = "enumeration"
        n_space: float = len(models)
        cache.update(_laplace_enumerated(space, models, full_mode, prior, a, b))
        visits = None
    else:
        search = "walk"
        n_space = math.nan
        visits = _metropolis_walk(space, laplace, walk_steps, generator(base_seed + 1))
        models = list(visits)

    # drop the least probable models (by Laplace evidence) while their total mass is < prune
    lap = np.array([laplace(m).log_laplace for m in models])
    lap_p = np.exp(lap - lap.max())
    lap_p /= lap_p.sum()
    order = np.argsort(lap_p)
    n_drop = int(np.searchsorted(np.cumsum(lap_p[order]), prune))
    dropped = set(order[:n_drop].tolist())
    kept = [m for i, m in enumerate(models) if i not in dropped]
    n_pruned = len(models) - len(kept)

    top_visits = max(visits.values()) if visits else 1
    kept_p = [lap_p[i] for i in range(len(models)) if i not in dropped]
    # the posteriors and covariances of the kept models, in stacks of models with as many
    # columns (the same numbers as one model at a time)
    by_size: dict[int, list[frozenset[int]]] = {}
    for m in kept:
        if m not in posts or cache[m].cov is None:
            by_size.setdefault(len(cache[m].mode), []).append(m)
    for group in by_size.values():
        new_posts = [m for m in group if m not in posts]
        if new_posts:
            built = _Posterior.many(space, np.array([space.cols(m) for m in new_posts]),
                                    prior, a, b)
            posts.update(zip(new_posts, built, strict=True))
        need = [m for m in group if cache[m].cov is None]
        if need:
            covs = _covariances([posts[m] for m in need], np.array([cache[m].mode for m in need]))
            for m, cov in zip(need, covs, strict=True):
                cache[m].cov = cov
    # importance sampling, in stacks of models with as many columns and draws (each model
    # draws from its own generator, so the stacking changes no number)
    stacks: dict[tuple[int, int], list[tuple[frozenset[int], np.random.Generator]]] = {}
    for m, pm in zip(kept, kept_p, strict=True):
        if visits is None:
            # models below FULL_DRAWS_MASS of Laplace probability get draws in proportion
            # to it (at least MIN_DRAWS): see _allocate
            n_draws = _allocate(int(draws), float(pm))
        else:
            # with a walk, rarely visited models get fewer draws (at least 500)
            n_draws = max(500, round(int(draws) * visits[m] / top_visits))
        key = sum(1 << i for i, t in enumerate(space.optional) if t in m)
        rng = generator(base_seed, key)
        stacks.setdefault((len(cache[m].mode), n_draws), []).append((m, rng))
    for (_, n_draws), stack in stacks.items():
        chunk = max(1, 16384 // n_draws)    # a stack's (models x draws x cells) block: <= 8 MB
        for lo in range(0, len(stack), chunk):
            part = stack[lo:lo + chunk]
            _importance_many([posterior(m) for m, _ in part], [cache[m] for m, _ in part],
                             n_draws, proposal_df, [r for _, r in part], inflate=1.2)

    log_ev = np.array([cache[m].log_evidence for m in kept])
    probs = np.exp(log_ev - log_ev.max())
    probs /= probs.sum()
    n_obs = space.n_observed
    pois_rng = generator(base_seed, 2**40)
    # one Poisson call over every model's draws takes the same stream as one call per model
    mu0_all = np.minimum(np.concatenate([cache[m].mu0 for m in kept]), 1e15)
    n0_all = pois_rng.poisson(mu0_all)
    ends = np.cumsum([len(cache[m].mu0) for m in kept])
    values, weights, per_model_median = [], [], []
    for m, pm, n0 in zip(kept, probs, np.split(n0_all, ends[:-1]), strict=True):
        fit = cache[m]
        v = n_obs + n0
        values.append(v)
        weights.append(pm * fit.weights)
        per_model_median.append(float(_wquantile(v, fit.weights, [0.5], _stable_order(v))[0])
                                if pm > 1e-4 else math.nan)
    vals = np.concatenate(values).astype(float, copy=False)
    wts = np.concatenate(weights)
    keep = wts > 0
    if keep.all():
        wts /= wts.sum()
    else:
        vals, wts = vals[keep], wts[keep] / wts[keep].sum()
    alpha = (1 - level) / 2
    order = _stable_order(vals)
    q_lo, med, q_hi = _wquantile(vals, wts, [alpha, 0.5, 1 - alpha], order)
    hpd = _hpd(vals, wts, level, order)
    mean = float(np.sum(wts * vals))
    sd = float(math.sqrt(max(np.sum(wts * (vals - mean) ** 2), 0.0)))
    ess = float(1.0 / np.sum(wts**2))

    table = pd.DataFrame({
        "model": _model_labels(space, kept),
        "n_terms": [len(m) for m in kept],
        "log_evidence": log_ev,
        "probability": probs,
        "n_median": per_model_median,
        "ess": [cache[m].ess for m in kept],
    }).sort_values("probability", ascending=False, ignore_index=True)
    incl = {space.label(t): float(sum(p for m, p in zip(kept, probs, strict=True) if t in m))
            for t in space.optional}
    # the importance sampling of the models that carry the average: those above 1%, or, where
    # the posterior is spread so thin that none is (Hare_6), the fewest most probable models
    # holding 99% of it
    by_prob = np.argsort(-np.asarray(probs), kind="stable")
    carry = [i for i in by_prob if probs[i] > 0.01]
    if not carry:
        mass = np.cumsum(np.asarray(probs)[by_prob])
        carry = list(by_prob[:int(np.searchsorted(mass, 0.99)) + 1])
    min_ess = float(min(cache[kept[i]].ess for i in carry))

    rs_rng = generator(base_seed, 2**41)
    resample = rs_rng.choice(vals, size=4000, p=wts)
    idata = _idata(resample)
    warns: list[str] = []  # of Caveat (a str)
    if min_ess < 200:
        warns.append(Caveat("convergence", f"importance sampling is thin for a model that "
                            f"carries the average (ESS {min_ess:.0f}); raise draws or "
                            "proposal_df", {"min_model_ess": min_ess, "threshold": 200.0}))
    if search == "walk":
        warns.append(f"the model space is too large to enumerate; averaged over the "
                     f"{len(models)} models visited by a {walk_steps}-step walk")
    if np.max(vals) >= 1e14:
        warns.append(Caveat("prior_driven", "some posterior draws of N are huge: N is barely "
                            "identified by the data and the prior sets the tail",
                            {"max_draw": float(np.max(vals))}))
    shares = _rests_on(space, kept, probs)
    found, lower = _shares_caveats(shares)
    warns += found
    # goodness of fit and a second prior on the unseen count (own streams: N is unchanged)
    y_obs = space.y[~space.missing]
    fit_check = predictive_check(
        y_obs, _predictive_shares(kept, probs, cache, posterior, proposal_df,
                                  generator(base_seed, 2**42)),
        seed=generator(base_seed, 2**43).integers(2**63))
    extra: dict[str, Any] = {"ppp": fit_check.ppp}
    lack = ppp_caveat(fit_check, "the averaged models")
    if lack is not None:
        warns.append(lack)
    shifted = prior_shift_caveat(
        float(q_hi), reweighted_upper(vals, wts, mu0_all[keep], level, order),
        "on the unseen count", "flat (instead of about 1/mu0)", extra)
    if shifted is not None:
        warns.append(shifted)
    bounds = hpd if ci == "hpd" else (float(q_lo), float(q_hi))
    diagnostics: dict[str, Any] = {
        "models": table, "posterior_mean": mean, "equal_tailed": (float(q_lo), float(q_hi)),
        "hpd": hpd,
        "n_models": n_space, "n_evaluated": len(cache), "n_pruned": n_pruned, "ess": ess,
        "min_model_ess": min_ess, "search": search, "term_probabilities": incl,
        "prior": prior, "max_model": space.model_label(frozenset(space.optional)),
        "variables": space.variables,
    }
    diagnostics.update({k: v for k, v in shares.items() if k != "unchecked_mass"})
    diagnostics.update(extra)
    prior_label = ("unit-information prior" if prior == "UIP"
                   else f"Sabanés Bové–Held prior (a={a:g}, b={b:g})")
    est = Estimate(
        n_hat=float(med), ci=bounds, level=level, n_observed=n_obs, method="loglinear_bma",
        model=f"average over {len(kept)} models within {diagnostics['max_model']}, {prior_label}",
        status="ok",
        ci_method="posterior HPD" if ci == "hpd" else "posterior equal-tailed",
        se=sd, diagnostics=diagnostics, draws=resample, idata=idata, seed=seed,
        warnings=tuple(warns),
    )
    if lower:
        est = est.as_lower_bound()
    return attach_checks(est, h, check=check)


#: Posterior probability above which the weight on untestable models (no residual df) or on
#: models whose MLE does not exist / whose N is not identified gives a caveat (the majority
#: of the average) ...
UNTESTABLE_WARN = 0.5
NOT_IDENTIFIED_WARN = 0.05
BOUNDARY_WARN = 0.25
#: ... and above which their sum makes the status ``"lower_bound"`` (the rule of
#: :func:`tipstat.select_loglinear`).
LOWER_BOUND_SHARE = 0.5
#: Models checked for existence: the most probable ones, up to this many, until
#: ``1 - EXISTENCE_MASS`` of the posterior is covered.
EXISTENCE_MODELS = 500
EXISTENCE_MASS = 1e-4


def _rests_on(space: ModelSpace, models: list[frozenset[int]], probs: np.ndarray
              ) -> dict[str, float]:
    """Posterior probability of the averaged models that the data cannot check.

    ``untestable_weight``: of models with no residual df (observable cells = parameters);
    ``not_identified_mass``: of models whose MLE of N (the same terms, fitted by maximum
    likelihood) does not exist or whose N is not identified: their posterior of N is set by
    the prior on the interactions; ``extended_weight``: of models whose MLE is on the boundary;
    ``unbounded_weight``: of models in either of the first two groups (they cannot bound N
    from above).
    Existence is checked (:func:`tipstat.models.poisson.check_existence`, cached by zero
    pattern) for the most probable models, at most :data:`EXISTENCE_MODELS`, until all but
    :data:`EXISTENCE_MASS` of the posterior is covered; the probability of models not checked
    is ``unchecked_mass`` in the caveat values. With covariates the existence shares are
    ``nan`` (the unobserved cells are one per stratum).
    """
    n_cells = int((~space.missing).sum())
    n_par = np.array([len(space.cols(m)) for m in models])
    untestable = n_par >= n_cells
    out = {"untestable_weight": float(probs[untestable].sum()),
           "not_identified_mass": math.nan, "extended_weight": math.nan,
           "unbounded_weight": float(probs[untestable].sum())}
    if len(space.variables) != space.k:
        return out
    from .design import loglinear_design
    from .poisson import check_existence_many

    y = space.y[~space.missing]
    order_ = np.argsort(-probs, kind="stable")
    checked: list[int] = []
    covered = 0.0
    for i in order_:
        if len(checked) >= EXISTENCE_MODELS or covered >= 1 - EXISTENCE_MASS:
            break
        checked.append(int(i))
        covered += probs[i]
    # largest models first: a model whose MLE exists with N identified passes both to every
    # submodel (its margins are a projection of the larger model's, in the relative interior
    # of the projected cone; its observable columns are a subset of a full-rank set), so a
    # submodel of a model found "ok" needs no linear program
    # by size, in rounds: the models of one size not implied "ok" by a larger model are
    # checked together (one linear program for their facial sets, check_existence_many)
    status: dict[int, str] = {}
    ok_models: list[frozenset[int]] = []
    by_size: dict[int, list[int]] = {}
    for i in checked:
        by_size.setdefault(len(models[i]), []).append(i)
    for size in sorted(by_size, reverse=True):
        todo = []
        for i in by_size[size]:
            if any(models[i] <= big for big in ok_models):
                status[i] = "ok"
            else:
                todo.append(i)
        designs = [loglinear_design(space.variables,
                                    tuple(sorted(models[i], key=lambda t: (t.bit_count(), t)))
                                    ).observable for i in todo]
        for i, ex in zip(todo, check_existence_many(designs, y), strict=True):
            status[i] = ex.status
            if ex.status == "ok":
                ok_models.append(models[i])
    bad = ext = 0.0
    for i in checked:
        st = status[i]
        no_mle = st in ("does_not_exist", "not_identifiable")
        bad += probs[i] if no_mle else 0.0
        ext += probs[i] if st == "extended" else 0.0
        untestable[i] |= no_mle
    out.update(not_identified_mass=float(bad), extended_weight=float(ext),
               unbounded_weight=float(probs[untestable].sum()),
               unchecked_mass=float(max(0.0, 1.0 - covered)))
    return out


def _shares_caveats(shares: dict[str, float]) -> tuple[list[Caveat], bool]:
    """Caveats of :func:`_rests_on`'s shares, and whether the answer is only a lower bound."""
    out: list[Caveat] = []
    untest, bad = shares["untestable_weight"], shares["not_identified_mass"]
    ext = shares["extended_weight"]
    if untest > UNTESTABLE_WARN:
        out.append(Caveat("untestable_weight", (
            f"{100 * untest:.0f}% of the posterior is on models whose fit cannot be tested (no "
            "residual df): they fit the observed cells exactly, as would a model with the "
            "interaction of all lists and any larger N"),
            {"share": untest, "threshold": UNTESTABLE_WARN}))
    if bad > NOT_IDENTIFIED_WARN:
        out.append(Caveat("not_identified_mass", (
            f"{100 * bad:.0f}% of the posterior is on models whose maximum-likelihood estimate "
            "of N does not exist or is not identified on this table: there the prior on the "
            "interactions, not the data, bounds N"),
            {"share": bad, "unchecked": shares.get("unchecked_mass", 0.0),
             "threshold": NOT_IDENTIFIED_WARN}))
    if ext > BOUNDARY_WARN:
        out.append(Caveat("boundary_weight", (
            f"{100 * ext:.0f}% of the posterior is on models whose MLE is on the boundary "
            "(some fitted cells zero): the prior shrinks their infinite interactions"),
            {"share": ext, "threshold": BOUNDARY_WARN}))
    unbounded = shares["unbounded_weight"]
    lower = unbounded > LOWER_BOUND_SHARE
    if lower:
        out.append(Caveat("lower_bound_only", (
            f"the data support only a lower bound on N: {100 * unbounded:.0f}% of the posterior "
            "is on models that cannot bound N from above (untestable, or no MLE of N)"),
            {"share": unbounded, "threshold": LOWER_BOUND_SHARE}))
    return out, lower


def _predictive_shares(kept: list[frozenset[int]], probs: np.ndarray,
                       cache: dict[frozenset[int], _ModelFit], posterior: Any, df: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Posterior draws of the observed-cell shares ``mu_c / sum mu`` for the predictive check
    (:func:`tipstat.models.posterior_checks.predictive_check`): :data:`PPP_DRAWS` models drawn
    by posterior probability, then for each model drawn ``r`` times, ``r`` parameter draws by
    sampling-importance-resampling from ``max(200, 4 r)`` draws of its importance proposal
    (the multivariate t at the mode, as :func:`_importance`). No new fit: the modes and
    covariances are the average's own.

    The random numbers are taken model by model in the order of a one-model loop (the
    proposal's normals and chi-squares, then the ``r`` uniforms of the resampling: what
    ``rng.choice(n, size=r, p=weights)`` draws, mapped here through the weights' cumulative sum
    as numpy maps them); the proposals and their log posteriors are then computed for stacks of
    models with as many parameters and draws (as :func:`_importance_many`), so the shares equal
    those of the one-model loop bit for bit.
    """
    picks = np.bincount(rng.choice(len(kept), size=PPP_DRAWS, p=probs), minlength=len(kept))
    chosen_models = np.flatnonzero(picks)
    drawn = []
    groups: dict[tuple[int, int], list[int]] = {}
    for j, i in enumerate(chosen_models):
        fit, r = cache[kept[i]], int(picks[i])
        p, n_prop = len(fit.mode), max(200, 4 * r)
        z = rng.standard_normal((n_prop, p))
        w = rng.chisquare(df, n_prop) / df
        drawn.append((z, w, rng.random(r)))
        groups.setdefault((p, n_prop), []).append(j)
    out: list[np.ndarray] = [np.empty(0)] * len(chosen_models)
    for (p, _), members in groups.items():
        posts = [posterior(kept[chosen_models[j]]) for j in members]
        fits = [cache[kept[chosen_models[j]]] for j in members]
        L = np.linalg.cholesky(np.stack([f.cov for f in fits]) * 1.2 + 1e-12 * np.eye(p))
        z = np.stack([drawn[j][0] for j in members])
        w = np.stack([drawn[j][1] for j in members])
        B = np.matmul(z, L.transpose(0, 2, 1))
        B /= np.sqrt(w)[:, :, None]
        B += np.stack([f.mode for f in fits])[:, None, :]
        lw = _logpost_stacked(posts, B) + 0.5 * (df + p) * np.log1p(
            np.sum(z**2, axis=2) / w / df)
        for k, j in enumerate(members):
            lk = np.exp(lw[k] - lw[k].max())
            pk = lk / lk.sum()
            if not np.all(np.isfinite(pk)):
                raise ValueError("probabilities contain NaN")  # as rng.choice would
            cdf = pk.cumsum()
            cdf /= cdf[-1]
            chosen = cdf.searchsorted(drawn[j][2], side="right")
            out[j] = softmax_rows(B[k][chosen] @ posts[k].Xo.T)
    return np.concatenate(out)


def _model_labels(space: ModelSpace, models: list[frozenset[int]]) -> list[str]:
    """:meth:`ModelSpace.model_label` of many models, each term's label made once.

    ``space.optional`` is ordered by order then mask, the order ``model_label`` sorts by.
    """
    label = {t: space.label(t) for t in space.optional}
    rank = {t: i for i, t in enumerate(space.optional)}
    return ["[" + ", ".join(label[t] for t in sorted(m, key=rank.__getitem__)) + "]" if m
            else "[independence]" for m in models]


def _metropolis_walk(space: ModelSpace, laplace: Any, steps: int,
                     rng: np.random.Generator) -> dict[frozenset[int], int]:
    """Visits of a Metropolis walk over the hierarchical models (Madigan & York's MC3).

    Not a search, so not on :func:`tipstat.models.search.climb`: a step proposes one model
    uniformly among the current model's add/drop neighbours (conting's moves) and accepts it
    with probability

    .. math::

        \\min\\Big(1, \\frac{p(y \\mid m')\\, |\\mathcal N(m)|}
                            {p(y \\mid m)\\, |\\mathcal N(m')|}\\Big)

    (Laplace evidences, equal prior model probabilities), also when ``m'`` is worse; the
    chain's visits sample the posterior over models instead of climbing to one best model.
    It starts at the better of the independence and the maximal model; ``laplace(model,
    near)`` is the caller's cached Laplace fit warm-started from a neighbour.

    Examples
    --------
    >>> import numpy as np, tipstat
    >>> space = bma_model_space(tipstat.datasets.load("UK_5"), "all2")
    >>> visits = _metropolis_walk(space, lambda m, near=None: type("F", (), {
    ...     "log_laplace": -len(m)})(), 50, np.random.default_rng(1))
    >>> sum(visits.values())
    50
    """
    current = max((frozenset(), frozenset(space.optional)),
                  key=lambda m: laplace(m).log_laplace if _hier_ok(space, m) else -math.inf)
    visits: dict[frozenset[int], int] = {}
    for _ in range(steps):
        moves = _moves(space, current)
        prop = moves[int(rng.integers(len(moves)))]
        back = len(_moves(space, prop))
        log_r = (laplace(prop, current).log_laplace - laplace(current).log_laplace
                 + math.log(len(moves)) - math.log(back))
        if math.log(rng.random()) < log_r:
            current = prop
        visits[current] = visits.get(current, 0) + 1
    return visits


def _hier_ok(space: ModelSpace, model: frozenset[int]) -> bool:
    return hierarchical(tuple(model))


def _moves(space: ModelSpace, model: frozenset[int]) -> list[frozenset[int]]:
    """Models one term away that stay hierarchical (conting's add/drop moves)."""
    return [frozenset(m) for m in space.space.neighbours(tuple(model))]


def _idata(draws: np.ndarray) -> Any:
    import arviz as az

    return az.from_dict(posterior={"N": draws[None, :].astype(float)})
