"""Stratified Multiple Systems Estimation: a joint log-linear model over strata, or separate fits.

Joint model (UNODC Netherlands study; van Dijk et al. 2017). With strata ``s`` (the cross of the
covariates, e.g. sex x age group x form) and lists ``j``, the expected count of persons with
capture pattern ``x`` in stratum ``s`` is

.. math::

    \\log \\mu_{s,x} = \\alpha_s + \\sum_j x_j \\Big(\\lambda_j + \\sum_{v} \\delta_{j,v(s)}\\Big)
                       + \\sum_{(j,l) \\in \\mathcal{P}} \\gamma_{jl}\\, x_j x_l ,

with a free stratum effect ``alpha_s`` (so the detected persons of every stratum are fitted
exactly), list main effects, the selected list x covariate interactions ``delta_{j,v}`` (a
list's capture probability differs by level of covariate ``v``) and the selected list x list
interactions. The unobserved pattern of stratum ``s`` has ``mu_{s,0} = exp(alpha_s)``, so

.. math::

    \\hat N_s = n_s + e^{\\hat\\alpha_s}, \\qquad \\hat N = \\sum_s \\hat N_s ,

and any margin is the sum of its cells: cells, margins and total add up by construction.
Terms are chosen by forward selection on AIC or BIC (``log n`` per parameter) from the
main-effects model, on the one search driver (:func:`tipstat.models.search.climb`).

Existence of the MLE and identifiability of every ``N_s`` are decided by the same exact rule as
every other estimator (Fienberg & Rinaldo 2012; :func:`~tipstat.models.poisson.
check_existence_strata`, the check of every estimator, on the joint design with one free
effect per stratum), with the same statuses: ``ok``, ``extended`` (empty cells outside
the facial set fitted 0, N finite), ``does_not_exist``, ``not_identifiable``. A Newton
certificate proves existence without linear programs in the usual case, and zero margins with
a certificate on the remaining cells prove most extended MLEs (``_fit_joint``). A search move is
admissible if its MLE exists or is extended and it puts no more observed cells outside the
facial set than the starting model has (from an interior main-effects fit, the search stays
in the interior); a fixed model (``terms=``) without a finite MLE gets the status and an
infinite (does not exist) or undefined (not identifiable) ``n_hat``, as ``fit_loglinear``.

The stratum effects are profiled out and the information is assembled from per-stratum sums
(see ``_Layout``): no design with a column per stratum, or a row per (stratum, pattern), is
built, so thousands of strata fit in seconds and little memory.

Separate fits (``pooling="separate"``): the same search with no covariate terms, in each stratum
on its own (fails in sparse strata; the joint model borrows strength).

Intervals: parametric bootstrap (after Buckland & Garthwaite 1991): ``B`` tables are drawn from
the fitted Poisson means of all cells, observed and unobserved, and the model is chosen again in
each (Buckland, Burnham & Augustin 1997), so that intervals carry model-selection uncertainty.
By default (``reselect="local"``) the replicate's search is a stepwise search started at the
selected model: at the replicate's fit of the current model, every one-term addition is scored
by its efficient score statistic and every deletion by its Wald statistic (one information
matrix of the design extended by all candidate columns, no refits), the three moves with the
lowest approximate criterion are refitted exactly (warm-started Newton) and the best is taken if
it lowers the AIC/BIC; this repeats to a local optimum. The search on the data is a forward
search from the main-effects model; in a replicate drawn from the selected model, the search
from that model reaches the same neighbourhood at a fraction of the cost (``reselect="full"``
repeats the whole forward search, ``"none"`` refits the selected model). In replicate ``b``
the prediction error of the
undetected count, ``d_b = m^*_{0} - mu-hat^*_{0}`` (drawn true undetected minus its
estimate), is recorded per stratum, and the interval of a cell, margin or total is
``N-hat + `` the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the summed ``d_b``, bounded
below by the detected count. The detected persons are known, so the interval is conditional on
them; cells, margins and total come from the same replicates and are coherent.

Partially observed covariates (``missing="em"``; van der Heijden, Whittaker, Cruyff, Bakker &
van der Vliet 2012, *Annals of Applied Statistics* 6(3), as in Cruyff's ``MSEincomplete``).
Persons whose covariate is unknown (``_U``) are shared out over the levels compatible with what
is known, within their capture pattern, in proportion to the current fitted values (E-step):

.. math::

    \\tilde y_{t,x} = y_{t,x} + \\sum_{i} z_{i,x}\\,
        \\frac{A_{it}\\, \\mu_{t,x}}{\\sum_{t'} A_{it'}\\, \\mu_{t',x}},

where ``z_{i,x}`` are the counts of incomplete stratum ``i`` and ``A_{it} = 1`` when complete
stratum ``t`` agrees with ``i`` on its known covariates; the model is refitted to
``tilde y`` (M-step) until the observed-data log-likelihood changes by less than ``1e-8``
(relative). The model search then runs on the table completed under the main-effects model and
EM is rerun with the chosen model: an approximation to selecting on the observed-data
likelihood, which would need a full EM per candidate. In a bootstrap replicate the local search
runs on the replicate's table completed under the selected model, and EM is rerun if it chooses
another model. Missingness may
depend on the lists (MAR given the capture pattern), which is the usual case: some agencies do
not record age.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._checks import DEFAULT_SEED, check_ci, check_level, check_seed
from ..errors import EstimationError, InputError
from ..estimate import Estimate, StratumCells
from ..histories import CaptureHistories, pattern_matrix
from ..parallel import generator, one_blas_thread
from .checks import attach_checks
from .intervals import equal_tailed
from .newton import count_scale, newton
from .poisson import _EXIST_RATIO, Existence, check_existence_strata, solve_spd
from .search import Decision, climb
from .terms import parse_terms, term_label

__all__ = ["StratifiedModel", "fit_stratified", "margins"]

UNKNOWN = "_U"


@dataclass(frozen=True)
class StratifiedModel:
    """A joint design over (stratum, pattern) cells.

    ``pairs``: list x list interactions as ``(j, l)`` index pairs; ``covs``: list x covariate
    interactions as ``(j, covariate name)``.
    """

    lists: tuple[str, ...]
    covariates: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...] = ()
    covs: tuple[tuple[int, str], ...] = ()

    def label(self) -> str:
        terms = [f"{self.lists[a]}:{self.lists[b]}" for a, b in self.pairs]
        terms += [f"{self.lists[j]}:{v}" for j, v in self.covs]
        base = "strata + lists"
        return base + (" + " + " + ".join(terms) if terms else "")

    def add(self, term: tuple) -> StratifiedModel:
        if isinstance(term[1], str):
            return StratifiedModel(self.lists, self.covariates, self.pairs,
                                   (*self.covs, term))
        return StratifiedModel(self.lists, self.covariates, (*self.pairs, term), self.covs)

    def drop(self, term: tuple) -> StratifiedModel:
        if isinstance(term[1], str):
            return StratifiedModel(self.lists, self.covariates, self.pairs,
                                   tuple(t for t in self.covs if t != term))
        return StratifiedModel(self.lists, self.covariates,
                               tuple(t for t in self.pairs if t != term), self.covs)

    @property
    def terms(self) -> tuple[tuple, ...]:
        return (*self.pairs, *self.covs)

    @property
    def n_terms(self) -> int:
        return len(self.pairs) + len(self.covs)

    def column_keys(self, dummies: dict[str, np.ndarray]) -> list[tuple]:
        """One key per design column (for warm starts across models)."""
        keys: list[tuple] = [("list", j) for j in range(len(self.lists))]
        keys += [("pair", a, b) for a, b in self.pairs]
        keys += [("cov", j, v, d) for j, v in self.covs for d in range(dummies[v].shape[1])]
        return keys


#: layouts with at most this many observed rows (strata x patterns) use dense products of the
#: stratum features in the information, and keep the dense design of a model (built for its
#: existence check only)
_DENSE_ROWS = 4096


class _Layout:
    """Observed rows (stratum, pattern >= 1) of the joint design and its building blocks.

    The stratum effects ``alpha_s`` are profiled out: given the other parameters, the Poisson
    MLE of ``alpha_s`` makes the fitted observed total of stratum ``s`` equal to ``n_s``, so the
    remaining parameters maximise the multinomial log-likelihood
    ``sum_s sum_x y_sx log p_sx`` with ``p_sx = exp(eta_sx) / sum_x' exp(eta_sx')``, and
    ``mu_s0 = exp(alpha_s) = n_s / sum_x exp(eta_sx)``.

    Every design column is a product ``f(s) g(x)`` of a stratum feature ``f`` (1, or a dummy of
    a covariate level) and a pattern feature ``g`` (a list ``x_j`` or a pair ``x_a x_b``), so
    the design over ``S (2^K - 1)`` rows is never built: with ``q`` pattern features,
    ``eta = B P'`` (``B`` the ``S x q`` per-stratum coefficients), the score is
    ``sum_s f(s) [(y_s - mu_s)' P]_g`` and the profiled information
    ``H_{(f,g),(f',g')} = sum_s f(s) f'(s) K_s[g, g']`` with the per-stratum
    ``K_s = P' diag(mu_s) P - m_s m_s' / n_s`` (``m_s = P' mu_s``): ``O(S q^2)`` per fit
    instead of ``O(S 2^K p^2)`` and no ``S 2^K x p`` matrix (5,000 strata, ~150 candidate
    columns: 90 MB per design, many designs per search).
    """

    def __init__(self, strata: pd.DataFrame, k: int) -> None:
        self.strata = strata.reset_index(drop=True)
        self.S = len(self.strata)
        self.k = k
        self.C = 2**k
        pat = pattern_matrix(k).astype(float)  # (C-1) x k, observable patterns
        self.s_of_row = np.repeat(np.arange(self.S), self.C - 1)
        self.pairs = list(itertools.combinations(range(k), 2))
        self.pair_index = {p: k + i for i, p in enumerate(self.pairs)}
        self.P = np.column_stack([pat] + [pat[:, a] * pat[:, b] for a, b in self.pairs])
        q = self.P.shape[1]
        self.PP = (self.P[:, :, None] * self.P[:, None, :]).reshape(self.C - 1, q * q)
        self.dummies: dict[str, np.ndarray] = {}
        feats = [np.ones((self.S, 1))]
        self.f_off: dict[str, int] = {}
        at = 1
        for v in self.strata.columns:
            levels = sorted(self.strata[v].astype(str).unique())
            ref = levels[0]
            cols = [(self.strata[v].astype(str) == lev).to_numpy(float) for lev in levels if lev != ref]
            self.dummies[v] = np.column_stack(cols) if cols else np.zeros((self.S, 0))
            self.f_off[v] = at
            at += self.dummies[v].shape[1]
            feats.append(self.dummies[v])
        self.F = np.column_stack(feats)
        # products of stratum features, (f, f') x strata, sparse: sum_s F_f(s) F_f'(s) w_s
        from scipy import sparse

        nf = self.F.shape[1]
        Fs = sparse.csr_matrix(self.F)
        pr, pc = [], []
        for s_ in range(self.S):
            nz = Fs.indices[Fs.indptr[s_]:Fs.indptr[s_ + 1]]
            pr.append((nz[:, None] * nf + nz[None, :]).ravel())
            pc.append(np.full(len(nz) ** 2, s_))
        pr_ = np.concatenate(pr) if pr else np.zeros(0, dtype=np.int64)
        pc_ = np.concatenate(pc) if pc else np.zeros(0, dtype=np.int64)
        self.FF_T = sparse.csr_matrix((np.ones(len(pr_)), (pr_, pc_)), shape=(nf * nf, self.S))
        if self.S * (self.C - 1) <= _DENSE_ROWS:  # few strata: dense rows are cheaper to pick
            self.FF_T = self.FF_T.toarray()
        self._cache: dict = {}  # column structures of models (bounded)
        self._exist: dict = {}  # existence checks by model and zero pattern (bounded)
        self._lgam: dict = {}  # sum log y! of the last tables
        self._rows = None  # F and P repeated over the observed rows (small layouts)
        self._xcol: dict = {}  # dense design columns f(s) g(x) by (f, g) (small layouts)
        self._xmat: dict = {}  # dense designs of models, for existence checks (small layouts)
        self._tspec: dict = {}  # term_spec by term
        self._feat: dict = {}  # products of pairs of features (_features)

    @property
    def list_cols(self) -> np.ndarray:
        return np.tile(self.P[:, :self.k], (self.S, 1))

    def __getstate__(self) -> dict:  # sent to worker processes without the caches
        state = self.__dict__.copy()
        state["_cache"], state["_exist"], state["_lgam"], state["_rows"] = {}, {}, {}, None
        state["_xcol"], state["_xmat"], state["_tspec"], state["_feat"] = {}, {}, {}, {}
        return state

    def term_spec(self, term: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Stratum and pattern feature indices of one term's columns (cached; read-only)."""
        out = self._tspec.get(term)
        if out is None:
            if isinstance(term[1], str):
                j, v = term
                w = self.dummies[v].shape[1]
                out = (self.f_off[v] + np.arange(w), np.full(w, j))
            else:
                out = (np.zeros(1, dtype=np.int64), np.array([self.pair_index[term]]))
            for a in out:
                a.flags.writeable = False
            self._tspec[term] = out
        return out

    def spec(self, model: StratifiedModel, cols: np.ndarray | None = None) -> _Spec:
        """Column structure of ``model`` (optionally only the columns ``cols``), cached."""
        key = (model, None if cols is None else cols.tobytes())
        sp = self._cache.get(key)
        if sp is None:
            fi = [np.zeros(self.k, dtype=np.int64)]
            gi = [np.arange(self.k)]
            for t in model.terms:
                f, g = self.term_spec(t)
                fi.append(f)
                gi.append(g)
            sp = self.spec_of(np.concatenate(fi), np.concatenate(gi), cols)
            if len(self._cache) > (512 if self.S * (self.C - 1) <= _DENSE_ROWS else 64):
                self._cache.clear()
            self._cache[key] = sp
        return sp

    def spec_of(self, fi: np.ndarray, gi: np.ndarray, cols: np.ndarray | None = None) -> _Spec:
        p = len(fi)
        cols = np.arange(p) if cols is None else np.asarray(cols, dtype=np.int64)
        # the features the columns use, and the products of those only
        nf = self.F.shape[1]
        uf, lf = _unique_inverse(fi, nf)
        ug, lg = _unique_inverse(gi, self.P.shape[1])
        Pm, PPx, qa, qb, q_at = self._features("g", ug)
        FFm, Fm, f_at = self._features("f", uf)
        # where each column's score and each pair's information sit in the products of the
        # features (see score_info), for all columns and for the used ones
        qm = len(ug)
        gflat = lf * qm + lg
        hflat = f_at[lf[:, None], lf[None, :]] * len(qa) + q_at[lg[:, None], lg[None, :]]
        lfu, lgu = lf[cols], lg[cols]
        hflat_u = f_at[lfu[:, None], lfu[None, :]] * len(qa) + q_at[lgu[:, None], lgu[None, :]]
        return _Spec(fi, gi, cols, p, np.ascontiguousarray(self.F[:, fi[cols]]),
                     gi[cols], len(cols) == p, uf, ug, lf, lg, Pm, PPx, FFm, Fm, gflat,
                     hflat.ravel(), gflat[cols], hflat_u.ravel(),
                     np.ascontiguousarray(self.P[:, gi[cols]].T), qa, qb)

    def _features(self, kind: str, u: np.ndarray) -> tuple:
        """The products of the unordered pairs of the pattern (``kind="g"``) or stratum
        (``"f"``) features ``u`` (products are symmetric) and each ordered pair's position
        among them, cached (a search meets a few sets of features in thousands of models).
        ``"g"``: ``P[:, u]``, ``P[:, u]`` and its pair products side by side, the pairs
        ``(a <= b)``, the positions;
        ``"f"``: the rows of ``FF_T`` of the pairs, ``F[:, u]``, the positions."""
        key = (kind, u.tobytes())
        out = self._feat.get(key)
        if out is not None:
            return out
        a, b = np.triu_indices(len(u))
        at = np.empty((len(u), len(u)), dtype=np.int64)
        at[a, b] = at[b, a] = np.arange(len(a))
        if kind == "g":
            Pm = np.ascontiguousarray(self.P[:, u])
            out = (Pm, np.hstack([Pm, Pm[:, a] * Pm[:, b]]), a, b, at)
        else:
            nf = self.F.shape[1]
            out = (self.FF_T[u[a] * nf + u[b]], np.ascontiguousarray(self.F[:, u]), at)
        if len(self._feat) > 1024:
            self._feat.clear()
        self._feat[key] = out
        return out

    def _dense(self, fi: np.ndarray, gi: np.ndarray) -> np.ndarray:
        """The dense design ``F[s, fi] P[x, gi]`` over the observed rows (read-only), from the
        columns computed so far (a search meets a few dozen distinct columns in thousands of
        models; every entry is an exact 0 or 1)."""
        if self._rows is None:
            self._rows = (self.F[self.s_of_row], np.tile(self.P, (self.S, 1)))
        X = np.empty((self.S * (self.C - 1), len(fi)), order="F")  # as numpy lays out the product
        cols = self._xcol
        for j, fg in enumerate(zip(fi.tolist(), gi.tolist(), strict=True)):
            c = cols.get(fg)
            if c is None:
                c = cols[fg] = self._rows[0][:, fg[0]] * self._rows[1][:, fg[1]]
            X[:, j] = c
        X.flags.writeable = False
        return X

    def keys(self, model: StratifiedModel) -> list[tuple]:
        """``model.column_keys`` (warm starts across models), cached."""
        key = ("keys", model)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = model.column_keys(self.dummies)
        return out

    def eta(self, sp: _Spec, beta: np.ndarray) -> np.ndarray:
        """Linear predictors, strata x observable patterns: ``B P'`` with ``B`` the per-stratum
        coefficients of the pattern features (``S x q``), without the design."""
        return (sp.T * beta[sp.cols]) @ sp.PgT

    def score_info(self, sp: _Spec, Y: np.ndarray, mu: np.ndarray,
                   extra: tuple[np.ndarray, np.ndarray] | None = None,
                   used: bool = False,
                   yp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Score and profiled information over the columns of ``sp`` (then the columns of the
        stratum and pattern features ``extra = (fi, gi)``; with ``used``, over the columns
        ``sp.cols`` in use only). ``yp``: ``Y P[:, sp.ug]`` when known (a Newton run).

        ``g = X'(y - mu)``, ``H = X' diag(mu) X - sum_s m_s m_s' / n_s``, ``m_s`` the
        ``mu``-weighted column sums of stratum ``s`` (the Schur complement of the stratum
        block), without the design: every unordered pair of the stratum features ``{f, f'}``
        and of the pattern features ``{a, b}`` the columns use gets ``G[{f, f'}, {a, b}] =
        sum_s F_f(s) F_f'(s) K_s[a, b]`` by one product (sparse for many strata; ``F`` is 0/1),
        and ``H`` is read off ``G`` (exactly symmetric); ``g`` likewise off ``F' (Y - mu) P``.
        ``O(S (C + f^2) q^2 / 2)`` for ``f`` stratum and ``q`` pattern features, against
        ``O(S C p^2)`` for ``X' diag(mu) X`` over the ``S C`` rows (the README demo: ~5x
        fewer operations).
        """
        if extra is not None:
            key = ("with", sp.fi.tobytes(), sp.gi.tobytes(), extra[0].tobytes(),
                   extra[1].tobytes())
            both = self._cache.get(key)
            if both is None:
                both = self._cache[key] = self.spec_of(np.concatenate([sp.fi, extra[0]]),
                                                       np.concatenate([sp.gi, extra[1]]))
            sp = both
        n_s = mu.sum(axis=1)
        qm = sp.Pm.shape[1]
        MK = mu @ sp.PPx  # [M | K]: mu P[:, ug] and mu times the pair products, one product
        M, K = MK[:, :qm], MK[:, qm:]
        K -= M[:, sp.qa] * (M / np.where(n_s > 0, n_s, 1.0)[:, None])[:, sp.qb]
        G = np.asarray(sp.FFm @ K).ravel()
        gf = (sp.Fm.T @ ((Y @ sp.Pm if yp is None else yp) - M)).ravel()
        if used:
            k = len(sp.cols)
            return gf[sp.gflat_u], G[sp.hflat_u].reshape(k, k)
        return gf[sp.gflat], G[sp.hflat].reshape(sp.p, sp.p)

    def forced_zero(self, sp: _Spec, Y: np.ndarray) -> np.ndarray:
        """:func:`~tipstat.models.poisson.forced_zero` of the design of ``sp`` on the table
        ``Y`` (strata x observable patterns), without the design: the columns ``f(s) g(x)``
        are 0/1, so a column with margin ``sum_s f(s) [Y P]_{s,g} = 0`` (a sum of non-negative
        terms: exactly 0 iff every term is) forces empty the cells with ``f(s) g(x) = 1``."""
        t = (sp.Fm.T @ (Y @ sp.Pm)).ravel()[sp.gflat]
        z = np.flatnonzero(t == 0)
        if not len(z):
            return np.zeros(Y.shape, dtype=bool)
        return (self.F[:, sp.fi[z]] @ self.P[:, sp.gi[z]].T) > 0

    def loglik(self, Y: np.ndarray, mu: np.ndarray) -> float:
        """:func:`_poisson_loglik` with ``sum log y!`` computed once per table."""
        from scipy.special import gammaln, xlogy

        key = ("lgam", hash(Y.tobytes()))
        c = self._lgam.get(key)
        if c is None:
            if len(self._lgam) > 4:
                self._lgam.clear()
            c = self._lgam[key] = gammaln(Y + 1)
        return float(np.sum(xlogy(Y, mu) - mu - c))

    def matrix(self, model: StratifiedModel) -> np.ndarray:
        """The dense design over observed rows (for baselines and checks; fits never build it,
        except on small layouts, whose fits already hold it)."""
        sp = self.spec(model)
        if self.S * (self.C - 1) > _DENSE_ROWS:
            return self.F[self.s_of_row][:, sp.fi] * np.tile(self.P, (self.S, 1))[:, sp.gi]
        X = self._xmat.get(model)
        if X is None:
            if len(self._xmat) > 256:
                self._xmat.clear()
            X = self._xmat[model] = self._dense(sp.fi, sp.gi)
        return X

    def term_columns(self, term: tuple) -> np.ndarray:
        """The dense design columns of one list x list or list x covariate term."""
        f, g = self.term_spec(term)
        return self.F[self.s_of_row][:, f] * np.tile(self.P, (self.S, 1))[:, g]


def _unique_inverse(a: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.unique(a, return_inverse=True)`` for indices ``0 <= a < size`` (a few dozen
    small integers: no sort)."""
    present = np.zeros(size, dtype=bool)
    present[a] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[a]


@dataclass(frozen=True)
class _Spec:
    """Columns ``f(s) g(x)`` of a design: ``fi``/``gi`` feature indices of all ``p`` columns,
    ``cols`` the columns in use."""

    fi: np.ndarray
    gi: np.ndarray
    cols: np.ndarray
    p: int
    T: np.ndarray  # F[:, fi[cols]], strata x used columns
    gi_used: np.ndarray  # gi[cols]
    full: bool  # every column used
    uf: np.ndarray  # stratum features of the columns
    ug: np.ndarray  # pattern features of the columns
    lf: np.ndarray  # each column's index into uf
    lg: np.ndarray  # each column's index into ug
    Pm: np.ndarray  # P[:, ug]
    PPx: np.ndarray  # [Pm | products of the unordered pairs of columns of Pm]
    FFm: object  # FF_T rows of the unordered pairs of uf (sparse for many strata, else dense)
    Fm: np.ndarray  # F[:, uf]
    gflat: np.ndarray  # each column's entry in F[:, uf]' R P[:, ug], flat
    hflat: np.ndarray  # each pair of columns' entry in G (see _Layout.score_info), flat
    gflat_u: np.ndarray  # gflat of the used columns
    hflat_u: np.ndarray  # hflat of the pairs of used columns
    PgT: np.ndarray  # P[:, gi[cols]]', used columns x observable patterns
    qa: np.ndarray  # the unordered pairs (qa <= qb) of pattern features in PPx
    qb: np.ndarray


@dataclass
class _JointFit:
    model: StratifiedModel
    beta: np.ndarray
    mu: np.ndarray  # S x C: column 0 the unobserved cell of each stratum
    loglik: float
    n_params: int
    ok: bool
    status: str = "ok"
    existence: Existence | None = None
    n_boundary: int = 0  # observed cells of non-empty strata outside the facial set


def _poisson_loglik(y: np.ndarray, mu: np.ndarray) -> float:
    from scipy.special import gammaln, xlogy

    return float(np.sum(xlogy(y, mu) - mu - gammaln(y + 1)))


def _existence(layout: _Layout, Y: np.ndarray, model: StratifiedModel) -> Existence:
    """The exact check (:func:`~tipstat.models.poisson.check_existence_strata`) of ``model`` on
    the table ``Y`` (strata x observable patterns), cached by model and zero pattern (it
    depends on the counts only through which cells are empty)."""
    key = ("exist", model, (Y > 0).tobytes())
    ex = layout._exist.get(key)
    if ex is None:
        ex = check_existence_strata(layout.matrix(model), Y.ravel(), layout.s_of_row)
        _remember(layout, key, ex)
    return ex


def _remember(layout: _Layout, key: tuple, ex: Existence) -> None:
    if len(layout._exist) > 4096:
        layout._exist.clear()
    layout._exist[key] = ex


def _fit_facial(layout: _Layout, Y: np.ndarray, model: StratifiedModel, ex: Existence,
                beta0: np.ndarray, maxiter: int, boundary_ok: bool) -> _JointFit:
    """The extended MLE: the fit on the facial set ``ex.facial`` (cells of empty strata kept,
    others fitted 0) with the estimable columns ``ex.columns``."""
    S, C1 = layout.S, layout.C - 1
    keep = ex.facial.reshape(S, C1) | (Y.sum(axis=1) == 0)[:, None]
    fe = _newton_joint(layout, Y, model, beta0, maxiter, boundary_ok, keep=keep,
                       cols=np.asarray(ex.columns))
    fe.existence = ex
    fe.n_boundary = int((~keep).sum())
    return fe


def _proved_extended(layout: _Layout, Y: np.ndarray, model: StratifiedModel,
                     beta0: np.ndarray | tuple | None, maxiter: int,
                     boundary_ok: bool) -> _JointFit | None:
    """The extended MLE without linear programs and without a fit of the whole table, when it
    can be proved; else None.

    The cells :func:`~tipstat.models.poisson.forced_zero` finds (a zero margin of a 0/1
    column) are outside the facial set ``F`` of every table with these margins, so ``F`` lies
    within the other cells ``G``. If the fit restricted to ``G`` converges with Newton's
    existence certificate, a positive table on ``G`` has the observed margins, so ``G`` lies
    within ``F``: ``G = F``, and the fit is the one the linear programs would lead to (the same
    facial set, columns and refit). Identifiability on ``G`` is linear algebra
    (:func:`~tipstat.models.poisson.check_existence_strata` given ``facial``, cached by model
    and ``G``: it depends on nothing else); only an extended MLE is taken from here, any other
    case goes to the linear programs. A forced empty cell means the MLE itself does not exist
    (no positive table has these margins), so a Newton run on the whole table could only
    stall on the boundary: the fit on ``G`` is started directly from ``beta0``.
    """
    live = (Y.sum(axis=1) > 0)[:, None]
    if not np.any(live & (Y == 0)):
        return None
    forced = live & layout.forced_zero(layout.spec(model), Y)
    if not forced.any():
        return None
    guess = (live & ~forced).ravel()
    key = ("given", model, guess.tobytes())
    ex = layout._exist.get(key)
    if ex is None:
        ex = check_existence_strata(layout.matrix(model), Y.ravel(), layout.s_of_row,
                                    facial=guess)
        _remember(layout, key, ex)
    if ex.status != "extended":
        return None
    fe = _fit_facial(layout, Y, model, ex, beta0, maxiter, boundary_ok)
    if fe.status != "ok":  # converged without the certificate: not proved
        return None
    _remember(layout, ("exist", model, (Y > 0).tobytes()), ex)
    fe.status = "extended"
    return fe


def _fit_joint(layout: _Layout, y_obs: np.ndarray, model: StratifiedModel,
               beta0: np.ndarray | tuple | None = None, maxiter: int = 100,
               boundary_ok: bool = False) -> _JointFit:
    """Profiled Newton-Raphson for the joint model (stratum effects profiled out), with the
    existence check every other estimator uses.

    The MLE is proved to exist without linear programs when the Newton decrement at an iterate
    is below ``1e-4`` times the smallest fitted value of an empty cell (the certificate of
    :func:`~tipstat.models.poisson.newton_batch`, which holds for the profiled likelihood:
    its decrement is the full likelihood's at the profiled stratum effects). An extended MLE
    is proved without them too when the cells forced empty by zero margins are the whole
    complement of the facial set (:func:`_proved_extended`, the usual case in sparse strata;
    tried first, as is the facial set of a zero pattern already checked: no Newton run on the
    whole table then, which would only stall on the boundary). Otherwise the exact check
    decides: ``"extended"`` fits are refitted on the facial set with the estimable columns
    (empty cells outside it fitted 0), ``"does_not_exist"`` and ``"not_identifiable"`` fits
    are not admissible (``ok`` is False). With ``boundary_ok`` (bootstrap replicates) the
    Newton iteration also stops when the log-likelihood stalls.
    """
    S, C1 = layout.S, layout.C - 1
    Y = np.asarray(y_obs, dtype=float).reshape(S, C1)
    known = layout._exist.get(("exist", model, (Y > 0).tobytes()))
    if known is None:
        fe = _proved_extended(layout, Y, model, beta0, maxiter, boundary_ok)
        if fe is not None:
            return fe
    elif known.status == "extended":
        fe = _fit_facial(layout, Y, model, known, beta0, maxiter, boundary_ok)
        if fe.ok:
            fe.status = "extended"
            return fe
    fit = _newton_joint(layout, Y, model, beta0, maxiter, boundary_ok)
    if fit.status == "ok":
        return fit
    ex = _existence(layout, Y, model)
    if ex.status == "ok":
        fit.status = "ok" if fit.ok else "not_converged"
        return fit
    if ex.status != "extended":
        fit.ok, fit.status, fit.existence, fit.loglik = False, ex.status, ex, -np.inf
        return fit
    fe = _fit_facial(layout, Y, model, ex, fit.beta, maxiter, boundary_ok)
    fe.status = "extended" if fe.ok else "not_converged"
    return fe


def _newton_joint(layout: _Layout, Y: np.ndarray, model: StratifiedModel,
                  beta0: np.ndarray | tuple | None, maxiter: int, boundary_ok: bool,
                  keep: np.ndarray | None = None, cols: np.ndarray | None = None) -> _JointFit:
    """Newton iterations of :func:`_fit_joint` on the cells ``keep`` (others fitted 0) and the
    columns ``cols`` (others 0). ``status`` is ``"ok"`` when converged with the existence
    certificate, ``"unproven"`` otherwise."""
    sp = layout.spec(model, cols)
    p = sp.p
    n_s = Y.sum(axis=1)
    pos = n_s > 0
    beta = np.zeros(p)
    if isinstance(beta0, tuple):  # (model, beta) of another model: match columns by key
        old = dict(zip(layout.keys(beta0[0]), beta0[1], strict=True))
        beta = np.array([old.get(k, 0.0) for k in layout.keys(model)])
    elif beta0 is not None and len(beta0) == p:
        beta = np.array(beta0, dtype=float)
    used = np.zeros(p, dtype=bool)
    used[sp.cols] = True
    beta[~used] = 0.0
    zero = (Y == 0) & pos[:, None] if keep is None else (Y == 0) & pos[:, None] & keep
    any_zero = bool(zero.any())
    # cells outside ``keep`` get eta = -inf (fitted 0); they are empty, so Y is 0 there and
    # the log-likelihood sums Y log p over the kept cells with the finite log p of the design
    neg = None if keep is None else np.where(keep, 0.0, -np.inf)
    y_flat = Y.ravel()
    yp = Y @ sp.Pm  # the observed margins of the pattern features, per stratum

    def state(b: np.ndarray):
        """Shares ``p_sx`` of the observable cells (0 outside ``keep``), ``log sum_x exp(eta)``
        per stratum and the profiled log-likelihood ``sum y log p``."""
        eta = layout.eta(sp, b)
        en = eta if neg is None else eta + neg
        mx = en.max(axis=1, keepdims=True)
        e = np.exp(en - mx)
        tot = e.sum(axis=1, keepdims=True)
        lse = mx + np.log(tot)
        # sum_sx y_sx (eta_sx - lse_s) = y . eta - n . lse
        ll = float(y_flat @ eta.ravel()) - float(n_s @ lse[:, 0])
        return e / tot, lse, ll

    live = np.broadcast_to(pos[:, None], Y.shape)
    if keep is not None:
        live = live & keep

    last: dict = {}

    def value(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, tuple]:
        P, lse, ll = state(x[0])
        return np.array([ll]), (P[None], lse[None])

    def direction(x: np.ndarray, aux: tuple, rows: np.ndarray, certified: np.ndarray):
        """Newton step at the shares ``P``; whether the existence certificate holds there (see
        newton_batch): the decrement bounds, from below, the fitted value of an empty cell
        along any recession direction, so a decrement far below every empty cell's fitted
        value (and a step that moves no cell's share by more than 1%) proves the MLE."""
        P = aux[0][0]
        mu = n_s[:, None] * P
        g, H = layout.score_info(sp, Y, mu, used=True, yp=yp)
        last["H"] = H
        step_u = solve_spd(H, g)
        if step_u is None:
            if not boundary_ok:
                return np.zeros_like(x), np.array([np.nan]), None
            step_u = np.linalg.lstsq(H, g, rcond=None)[0]
        step = np.zeros(p)
        step[sp.cols] = step_u
        dec = float(g @ step_u)
        proven = not any_zero or bool(certified[0])
        if not proven and np.isfinite(dec) and dec * _EXIST_RATIO < mu[zero].min():
            d = layout.eta(sp, step)
            move = np.abs(d - np.sum(P * d, axis=1, keepdims=True))
            proven = bool(move[live].max() <= 0.01)
        return step[None], np.array([dec]), np.array([proven])

    # the one Newton iteration (tipstat.models.newton): the profiled likelihood, its score and
    # information grow with the counts and the step does not, so the decrement is measured in
    # count scales; bootstrap replicates on the boundary also stop when the likelihood stalls
    run = newton(value, direction, beta[None], scale=count_scale(y_flat), maxiter=maxiter,
                 stall=boundary_ok)
    beta, P, lse = run.x[0], run.aux[0][0], run.aux[1][0][:, 0]
    converged, proven = bool(run.converged[0]), bool(run.certified[0])
    H = last.get("H")
    mu_o = n_s[:, None] * P
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        mu0 = np.where(pos, n_s * np.exp(-lse), 0.0)  # n_s / sum_x exp(eta_sx)
    mu = np.column_stack([mu0, mu_o])
    ok = bool(converged and np.all(np.isfinite(mu)))
    if ok and H is not None:
        # the 2-norm condition number of the symmetric H (numpy.linalg.cond's, from its
        # eigenvalues: the singular values are their absolute values; half the cost of an SVD)
        try:
            ev = np.abs(np.linalg.eigvalsh(H))
            with np.errstate(divide="ignore", invalid="ignore"):
                cond = float(ev.max() / ev.min()) if len(ev) else 1.0
        except np.linalg.LinAlgError:
            cond = np.inf
        ok = bool(cond < 1e12)
    loglik = layout.loglik(Y, mu_o) if ok else -np.inf
    status = "ok" if ok and proven else "unproven"
    return _JointFit(model, beta, mu, loglik, len(sp.cols) + int(pos.sum()), ok, status)


def _criterion(fit: _JointFit, n: float, criterion: str) -> float:
    pen = 2.0 if criterion == "aic" else math.log(max(n, 2.0))
    return -2.0 * fit.loglik + pen * fit.n_params


def _candidates(model: StratifiedModel, layout: _Layout, use_covs: bool) -> list[tuple]:
    k = layout.k
    out: list[tuple] = [p for p in itertools.combinations(range(k), 2) if p not in model.pairs]
    if use_covs:
        out += [(j, v) for j in range(k) for v in model.covariates
                if (j, v) not in model.covs and layout.dummies[v].shape[1] > 0]
    return out


def _search(layout: _Layout, y_obs: np.ndarray, start: StratifiedModel, criterion: str,
            use_covs: bool, max_terms: int) -> tuple[_JointFit, list[tuple[str, float]]]:
    """Forward search from ``start`` (the main-effects model): the best one-term addition while
    it lowers the criterion (:func:`_climb` with every addition refitted exactly)."""
    fit = _fit_joint(layout, y_obs, start)
    if not fit.ok:
        why = fit.existence.reason if fit.existence is not None else "the fit did not converge"
        raise EstimationError(f"the main-effects model has no admissible fit ({why}): merge "
                              "sparse strata or lists")

    def moves(f: _JointFit) -> list[tuple[str, tuple]]:
        return [("add", t) for t in _candidates(f.model, layout, use_covs)]

    return _climb(layout, y_obs, fit, criterion, moves, max_terms=max_terms)


def _climb(layout: _Layout, y_obs: np.ndarray, fit: _JointFit, criterion: str, moves,
           max_terms: int, max_steps: int | None = None,
           boundary_ok: bool = False) -> tuple[_JointFit, list[tuple[str, float]]]:
    """The greedy rule of the stratified searches on the one search driver
    (:func:`tipstat.models.search.climb`): from ``fit``, refit the moves ``moves(fit)``
    proposes (``("add" | "drop", term)``; additions only below ``max_terms`` terms), take the
    one with the lowest criterion if it lowers the criterion, and repeat (at most
    ``max_steps`` times). A move is admissible if its fit is (the MLE exists or is extended)
    and it puts no more observed cells outside the facial set than the starting fit has: a
    search from an interior MLE stays in the interior. Returns the final fit and the path
    ``(model label, criterion)`` from the start."""
    n = float(np.sum(y_obs))
    nb0 = fit.n_boundary
    proposals = 0

    def propose(model: StratifiedModel, f: _JointFit) -> list[tuple[str, tuple]]:
        nonlocal proposals
        proposals += 1
        if max_steps is not None and proposals > max_steps:
            return []
        return [(kind, term) for kind, term in moves(f)
                if kind != "add" or model.n_terms < max_terms]

    def refit(cands: Sequence[tuple[str, tuple]], model: StratifiedModel,
              f: _JointFit) -> list[_JointFit | None]:
        out: list[_JointFit | None] = []
        for kind, term in cands:
            m = model.add(term) if kind == "add" else model.drop(term)
            g = _fit_joint(layout, y_obs, m, (model, f.beta), boundary_ok=boundary_ok)
            out.append(g if g.ok and g.n_boundary <= nb0 else None)
        return out

    def choose(model: StratifiedModel, f: _JointFit, cands: Sequence,
               fitted: list[_JointFit | None]) -> Decision:
        trials = [(_criterion(g, n, criterion), g) for g in fitted if g is not None]
        if not trials:
            return Decision.end()
        crit, g = min(trials, key=lambda t: t[0])
        if crit >= _criterion(f, n, criterion) - 1e-9:
            return Decision.end()
        return Decision(g.model, g, rows=[(g.model.label(), crit)])

    start = [(fit.model.label(), _criterion(fit, n, criterion))]
    out = climb(fit.model, fit, propose, refit, choose, path=start)
    return out.fit, out.path


def _quadratic(v: np.ndarray, M: np.ndarray) -> float:
    """``v' M^{-1} v`` for a small symmetric ``M`` (a term's block); ``inf`` if singular."""
    if len(v) == 1:
        d = float(M[0, 0])
        return float(v[0] ** 2 / d) if d > 1e-12 else math.inf
    try:
        return float(v @ np.linalg.solve(M, v))
    except np.linalg.LinAlgError:
        return math.inf


def _screen_moves(layout: _Layout, Y: np.ndarray, fit: _JointFit, use_covs: bool,
                  max_terms: int, pen: float) -> list[tuple[float, str, tuple]]:
    """Approximate criterion change of every one-term move from ``fit``, without refitting.

    Additions by the efficient score statistic, deletions by the Wald statistic, both from the
    profiled information of the design extended by every candidate column at the current fit:
    with ``I`` the information and ``U`` the score (``U_M = 0`` at the MLE),

    .. math::

        S_T = u_T^\\top K_{TT}^{-1} u_T, \\quad K = I_{CC} - I_{CM} I_{MM}^{-1} I_{MC},
        \\quad u = U_C - I_{CM} I_{MM}^{-1} U_M, \\qquad
        W_T = \\hat\\beta_T^\\top [I_{MM}^{-1}]_{TT}^{-1} \\hat\\beta_T ,

    and the criterion changes by about ``-S_T + pen df_T`` (adding ``T``) or ``W_T - pen df_T``
    (dropping it). Score, Wald and likelihood-ratio statistics agree to first order; the
    caller refits the best few moves exactly. Pseudo-inverses keep extended MLEs (singular
    information on the boundary) usable. Returns ``(approx change, "add" | "drop", term)``
    sorted by the approximate change.
    """
    model = fit.model
    spM = layout.spec(model)
    pM = spM.p
    adds = _candidates(model, layout, use_covs) if model.n_terms < max_terms else []
    specs = [layout.term_spec(t) for t in adds]
    blocks = [f for f, _ in specs]
    extra = ((np.concatenate([f for f, _ in specs]), np.concatenate([g for _, g in specs]))
             if specs else None)
    U, info = layout.score_info(spM, Y, fit.mu[:, 1:], extra)
    cov = np.linalg.pinv(info[:pM, :pM], rcond=1e-10, hermitian=True)
    moves: list[tuple[float, str, tuple]] = []
    # deletions: Wald statistics from the columns of each term in the current design
    at = len(model.lists)
    for term in model.terms:
        w = len(layout.term_spec(term)[0])
        idx = slice(at, at + w)
        at += w
        wald = _quadratic(fit.beta[idx], cov[idx, idx])
        moves.append((wald - pen * w, "drop", term))
    if blocks:
        ICM = info[pM:, :pM]
        K = info[pM:, pM:] - ICM @ cov @ ICM.T
        u = U[pM:] - ICM @ (cov @ U[:pM])
        at = 0
        for term, blk in zip(adds, blocks, strict=True):
            w = len(blk)
            idx = slice(at, at + w)
            at += w
            score = _quadratic(u[idx], K[idx, idx])
            moves.append((-score + pen * w, "add", term))
    moves.sort(key=lambda m: m[0])
    return moves


def _local_search(layout: _Layout, y_obs: np.ndarray, fit: _JointFit, criterion: str,
                  use_covs: bool, max_terms: int, n_confirm: int = 3,
                  slack: float = 1.0, max_steps: int = 10) -> _JointFit:
    """Stepwise AIC/BIC search started at ``fit`` (a bootstrap replicate of the chosen model).

    Every step screens all one-term additions and deletions with :func:`_screen_moves`, refits
    exactly (warm-started, extended MLE allowed) the ``n_confirm`` moves whose approximate
    criterion change is lowest and below ``slack``, and takes the exactly best one if it lowers
    the criterion; it stops when none does (a local optimum, like the forward search's result)
    or after ``max_steps`` moves. A move may not put more zero cells on the boundary than the
    starting fit has (the search's admissibility rule, relative to the replicate).
    """
    S, C1 = layout.S, layout.C - 1
    Y = np.asarray(y_obs, dtype=float).reshape(S, C1)
    pen = 2.0 if criterion == "aic" else math.log(max(float(Y.sum()), 2.0))

    def moves(f: _JointFit) -> list[tuple[str, tuple]]:
        return [(kind, term) for approx, kind, term in
                _screen_moves(layout, Y, f, use_covs, max_terms, pen)
                if approx < slack][:n_confirm]

    fit, _ = _climb(layout, y_obs, fit, criterion, moves, max_terms=max_terms,
                    max_steps=max_steps, boundary_ok=True)
    return fit


# ---------------------------------------------------------------------------------- EM
def _split_unknown(h: CaptureHistories) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame,
                                                 np.ndarray, np.ndarray]:
    """Complete strata (product of known levels), their counts, incomplete strata, their counts,
    and the compatibility matrix A (incomplete x complete)."""
    idx = h.strata_index.astype(str)
    counts = np.asarray(h.stratum_counts, dtype=float)
    covs = list(idx.columns)
    levels = {v: sorted(x for x in idx[v].unique() if x != UNKNOWN) for v in covs}
    empty = [v for v, lv in levels.items() if not lv]
    if empty:
        raise InputError(f"covariate(s) {empty} are unknown for every person; drop them from by=")
    complete = pd.DataFrame(list(itertools.product(*[levels[v] for v in covs])), columns=covs)
    pos = {tuple(r): i for i, r in enumerate(complete.itertuples(index=False, name=None))}
    has_u = (idx == UNKNOWN).any(axis=1).to_numpy()
    y = np.zeros((len(complete), counts.shape[1]))
    for r, row in zip(np.flatnonzero(~has_u), idx[~has_u].itertuples(index=False, name=None),
                      strict=True):
        y[pos[row]] += counts[r]
    inc = idx[has_u].reset_index(drop=True)
    z = counts[has_u]
    A = np.ones((len(inc), len(complete)), dtype=bool)
    for v in covs:
        known = (inc[v] != UNKNOWN).to_numpy()
        A &= ~known[:, None] | (inc[v].to_numpy()[:, None] == complete[v].to_numpy()[None, :])
    return complete, y, inc, z, A.astype(float)


def _em(layout: _Layout, y_known: np.ndarray, z: np.ndarray, A: np.ndarray,
        model: StratifiedModel, max_iter: int = 500, tol: float = 1e-8,
        beta0: np.ndarray | tuple | None = None, boundary_ok: bool = False,
        mu_start: np.ndarray | None = None) -> tuple[_JointFit, np.ndarray, int]:
    """EM for the complete table: returns the fit, the completed observed counts (S x C-1) and
    the number of iterations. ``mu_start``: fitted observed cells (S x C-1) for the first
    E-step (default: the known counts + 0.5)."""
    if len(z) == 0:
        f = _fit_joint(layout, y_known.ravel(), model, beta0, boundary_ok=boundary_ok)
        return f, y_known, 0
    # start: share the unknowns in proportion to the known counts (+0.5) of compatible strata
    mu = (y_known + 0.5) if mu_start is None else mu_start
    prev = -np.inf
    fit = None
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is returned
        # E-step: z_{i,c} shared over compatible t in proportion to mu_{t,c}
        w = A[:, :, None] * mu[None, :, :]  # I x T x (C-1)
        tot = w.sum(axis=1, keepdims=True)
        tot[tot == 0] = 1.0
        y_full = y_known + np.einsum("ic,itc->tc", z, w / tot)
        fit = _fit_joint(layout, y_full.ravel(), model, fit.beta if fit is not None else beta0,
                         boundary_ok=boundary_ok)
        mu = fit.mu[:, 1:]
        # observed-data log-likelihood: known cells Poisson(mu), incomplete cells Poisson(A mu)
        ll = _poisson_loglik(y_known.ravel(), mu.ravel()) + _poisson_loglik(z.ravel(), (A @ mu).ravel())
        if abs(ll - prev) < tol * max(1.0, abs(ll)):
            break
        prev = ll
    fit.loglik = ll
    return fit, y_full, it


# ---------------------------------------------------------------------------------- main
def fit_stratified(
    h: CaptureHistories,
    *,
    level: float = 0.95,
    ci: str = "percentile",
    seed: int = DEFAULT_SEED,
    n_boot: int = 200,
    pooling: str = "joint",
    criterion: str = "aic",
    terms: Sequence[str] | None = None,
    missing: str = "stratum",
    reselect: str | bool = "local",
    max_terms: int = 30,
    check: bool = True,
) -> Estimate:
    """Stratified MSE: cell, margin and total estimates that add up, with bootstrap intervals.

    Parameters
    ----------
    h : CaptureHistories
        With strata (e.g. from :func:`tipstat.ictip.capture_histories`).
    level : float
        Interval level.
    ci : ``"percentile"``
        Interval method: percentiles of the parametric bootstrap (none with ``n_boot=0``).
    seed : int
        Seed of the bootstrap (default :data:`tipstat.models.DEFAULT_SEED`).
    n_boot : int
        Parametric bootstrap replicates (0: no intervals).
    pooling : ``"joint"`` or ``"separate"``
        One log-linear model over all strata with list x covariate interactions (default), or a
        separate model per stratum.
    criterion : ``"aic"`` or ``"bic"``
        Forward selection of list x list and list x covariate terms.
    terms : str or list of str, optional
        A fixed model instead of the search, e.g. ``["P:K", "I:exploitation"]`` or
        ``"P:K + I:exploitation"`` (joint only; the formulas of :func:`tipstat.fit_loglinear`
        over the lists and the covariates, two-way terms only).
    missing : ``"stratum"`` or ``"em"``
        Unknown covariate values (``_U``): an explicit stratum level (default), or shared out
        over the known levels by the EM algorithm (van der Heijden et al. 2012; joint only).
    reselect : ``"local"``, ``"full"`` or ``"none"``
        Model selection in the bootstrap replicates, so that intervals carry model-selection
        uncertainty. ``"local"`` (default): a stepwise search started at the selected model
        (one-term additions screened by score tests and deletions by Wald tests, the best few
        refitted exactly, repeated to a local optimum of the criterion). ``"full"`` (or
        ``True``): the whole forward search from the main-effects model, as on the data (several
        times slower). ``"none"`` (or ``False``): refit the selected model (narrower intervals
        that ignore selection; the earlier default). With ``terms=`` the model is
        fixed and never re-selected.
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` to the result
        (on the pooled table: lack of fit of the stratified model, sparse table, two lists).
        False for inner fits.

    Returns
    -------
    Estimate
        Total ``n_hat`` with percentile ``ci``; ``draws`` the bootstrap totals;
        ``cells`` (:class:`tipstat.estimate.StratumCells`): ``cells.table`` one row per stratum
        (covariates, ``observed``, ``n_hat``, ``undetected``, ``lower``, ``upper``,
        ``status``), ``cells.replicates`` the ``B x n_strata`` replicates (for :func:`margins`;
        ``cells.draws`` labelled); ``diagnostics["path"]`` the selection path (step, model, criterion);
        ``diagnostics["completed_counts"]`` the
        (EM-completed) observed counts, strata x patterns; ``diagnostics["model_frequencies"]``
        how many kept replicates chose each model (label -> count) and
        ``diagnostics["reselected"]`` the share of them whose model differs from the selected
        one.

    Raises
    ------
    InputError
        Bad histories or options (named).
    EstimationError
        Not even the main-effects model has an admissible fit (its MLE is on the boundary or
        does not converge on the stratified table): the message says to merge sparse strata or
        lists. No estimate is returned rather than one the data cannot carry.

    Examples
    --------
    >>> import warnings
    >>> from tipstat import simulate
    >>> from tipstat.ictip import capture_histories
    >>> from tipstat.linkage import persons
    >>> c = simulate.country(3000, seed=4, lists={k: v for k, v in
    ...     simulate.DEFAULT_LISTS.items() if k in "PKIO"})
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     h = capture_histories(persons(c.read(period=c.year)), by=["sex"])
    >>> est = fit_stratified(h, n_boot=50, seed=1)
    >>> cells = est.cells.table
    >>> bool(abs(cells.n_hat.sum() - est.n_hat) < 1e-6)
    True
    """
    if not isinstance(h, CaptureHistories):
        raise InputError(f"expected CaptureHistories, got {type(h).__name__}")
    if pooling not in ("joint", "separate"):
        raise InputError(f"pooling={pooling!r}; expected 'joint' or 'separate'")
    if criterion not in ("aic", "bic"):
        raise InputError(f"criterion={criterion!r}; expected 'aic' or 'bic'")
    if missing not in ("stratum", "em"):
        raise InputError(f"missing={missing!r}; expected 'stratum' or 'em'")
    check_level(level, "fit_stratified")
    check_ci(ci, ("percentile",), "fit_stratified")
    seed = check_seed(seed, "fit_stratified")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 0:
        raise InputError(f"fit_stratified: n_boot={n_boot!r}; expected an integer >= 0")
    modes = {True: "full", False: "none", "full": "full", "none": "none", "local": "local"}
    if not isinstance(reselect, (bool, str)) or reselect not in modes:
        raise InputError(f"reselect={reselect!r}; expected 'local', 'full' or 'none'")
    reselect = modes[reselect]
    if pooling == "separate" and (missing == "em" or terms is not None):
        raise InputError("missing='em' and terms= apply to pooling='joint' only")
    with one_blas_thread():
        est = _fit_stratified(h, pooling, criterion, terms, missing, int(n_boot), level, seed,
                              reselect, max_terms)
    return attach_checks(est, h, check=check)


def _fit_stratified(h, method, criterion, terms, missing, bootstrap, level, seed, reselect,
                    max_terms) -> Estimate:
    rng = generator(seed)
    covs = tuple(h.strata)
    lists = h.lists
    if method == "separate":
        return _fit_separate(h, criterion, bootstrap, level, rng, seed, max_terms, reselect)

    em = missing == "em" and bool(covs) and bool((h.strata_index.astype(str) == UNKNOWN).any().any())
    if em:
        complete, y_known, _inc, z, A = _split_unknown(h)
        layout = _Layout(complete, h.k)
    else:
        complete = h.strata_index if covs else pd.DataFrame(index=range(1))
        y_known = np.asarray(h.stratum_counts, dtype=float)
        z = np.zeros((0, y_known.shape[1]))
        A = np.zeros((0, len(complete)))
        layout = _Layout(complete, h.k)
    start = StratifiedModel(lists, covs)
    jobs = _replicate_jobs(bootstrap if reselect != "full" else 0, layout.S)
    if jobs > 1:  # the workers start (and import) while this process searches
        from .. import parallel

        parallel.prestart(jobs, __name__)

    def select(yk: np.ndarray, zz: np.ndarray) -> tuple[_JointFit, np.ndarray, list]:
        if terms is not None:
            model = _model_of_terms(terms, start)
            fit, y_full, _ = _em(layout, yk, zz, A, model)
            if not fit.ok and fit.existence is None:
                raise EstimationError(f"model {model.label()} has no admissible fit (the "
                                      "Newton fit did not converge)")
            return fit, y_full, [(model.label(), math.nan)]
        if len(zz):
            # search on the completed table under the main-effects model, then EM for the choice
            _f0, y_full, _ = _em(layout, yk, zz, A, start)
            fit, path = _search(layout, y_full.ravel(), start, criterion, bool(covs), max_terms)
            fit, y_full, _ = _em(layout, yk, zz, A, fit.model, beta0=fit.beta)
            return fit, y_full, path
        fit, path = _search(layout, yk.ravel(), start, criterion, bool(covs), max_terms)
        return fit, yk, path

    fit, y_full, path = select(y_known, z)
    if not fit.ok:  # a fixed model whose MLE does not exist or whose N is not identified
        return _no_estimate(h, fit, complete, y_full, path, level, seed, em, covs, lists,
                            criterion, missing, bootstrap, reselect)
    S, C = layout.S, layout.C
    mu = fit.mu
    observed = y_full.sum(axis=1)
    n_hat_cells = observed + mu[:, 0]
    draws = None
    cell_draws = None
    replicate_models: dict[str, int] = {}
    reselected = math.nan
    if bootstrap:
        cell_draws = np.full((bootstrap, S), np.nan)
        chosen: list[StratifiedModel | None] = [None] * bootstrap
        share = None
        if len(z):  # probability that a person of (t, c) is in incomplete stratum i
            alloc = A[:, :, None] * mu[None, :, 1:]
            tot = alloc.sum(axis=1, keepdims=True)
            tot[tot == 0] = 1.0
            moved = z[:, None, :] * alloc / tot  # I x T x (C-1)
            denom = np.where(y_full > 0, y_full, 1.0)
            share = moved / denom[None]
        items, undetected = [], []
        for _b in range(bootstrap):  # every table first: the draws never depend on the fits
            ystar = rng.poisson(mu)
            yo = ystar[:, 1:].astype(float)
            zb = np.zeros_like(z)
            if share is not None:
                # split each (t, c) count over the incomplete strata and "stays complete" by
                # sequential binomials (a multinomial draw, vectorised over cells)
                remaining = yo.astype(np.int64)
                left = np.ones_like(yo)
                for i in range(share.shape[0]):
                    p = np.clip(share[i] / np.maximum(left, 1e-300), 0.0, 1.0)
                    moved = rng.binomial(remaining, p)
                    zb[i] = moved.sum(axis=0)
                    remaining -= moved
                    left = np.maximum(left - share[i], 0.0)
                yk = remaining.astype(float)
            else:
                yk = yo
            items.append((yk, zb))
            undetected.append(ystar[:, 0])
        if reselect == "full":
            results = []
            for yk, zb in items:
                try:
                    fb, _, _ = select(yk, zb)
                except EstimationError:
                    fb = None
                results.append((fb.model, fb.mu[:, 0]) if fb is not None and fb.ok else None)
        else:
            rep = _Replicate(layout, A, fit, reselect == "local" and terms is None, criterion,
                             bool(covs), max_terms)
            results = _map_replicates(rep, items, jobs)
        for b, res in enumerate(results):
            if res is None:
                continue
            chosen[b] = res[0]
            # prediction error of the undetected count in the bootstrap world: the true
            # undetected m0* (drawn) minus its estimate mu0* (pivot interval, conditional on n)
            cell_draws[b] = n_hat_cells + (undetected[b] - res[1])
        good = np.all(np.isfinite(cell_draws), axis=1)
        cell_draws = cell_draws[good]
        draws = cell_draws.sum(axis=1)
        kept = [m for m, g in zip(chosen, good, strict=True) if g and m is not None]
        for m in kept:
            label = m.label()
            replicate_models[label] = replicate_models.get(label, 0) + 1
        reselected = (sum(m != fit.model for m in kept) / len(kept)) if kept else math.nan
    cells = complete.reset_index(drop=True).copy() if covs else pd.DataFrame(index=range(1))
    cells["observed"] = observed
    cells["n_hat"] = n_hat_cells
    cells["undetected"] = mu[:, 0]
    if cell_draws is not None and len(cell_draws):
        cells["lower"], cells["upper"] = equal_tailed(cell_draws, level, floor=observed, axis=0)
        ci = equal_tailed(draws, level, floor=float(observed.sum()))
        se = float(np.std(draws, ddof=1)) if len(draws) > 1 else math.nan
    else:
        cells["lower"] = cells["upper"] = np.nan
        ci, se = (math.nan, math.nan), math.nan
    cells["status"] = fit.status
    n_obs_total = float(h.n_observed)
    warn = [fit.existence.reason] if fit.status == "extended" and fit.existence else []
    if cell_draws is not None and bootstrap and len(cell_draws) < bootstrap:
        warn.append(f"{bootstrap - len(cell_draws)} of {bootstrap} bootstrap replicates had no "
                    "admissible fit and were left out")
    n_cells = S * (C - 1)
    return Estimate(
        n_hat=float(n_hat_cells.sum()), ci=ci, level=level, n_observed=n_obs_total,
        method="stratified_loglinear" + ("_em" if em else ""), model=fit.model.label(),
        status=fit.status, ci_method="percentile" if bootstrap else "none", se=se,
        deviance=math.nan, df=float(n_cells - fit.n_params), loglik=fit.loglik,
        aic=-2 * fit.loglik + 2 * fit.n_params,
        bic=-2 * fit.loglik + math.log(max(n_obs_total, 2)) * fit.n_params,
        n_params=fit.n_params,
        diagnostics={"path": _path_frame(path, criterion),
                     "model_obj": fit.model, "completed_counts": y_full,
                     "criterion": criterion,
                     "n_boot": bootstrap, "reselect": reselect,
                     "model_frequencies": replicate_models, "reselected": reselected},
        draws=draws, seed=seed, warnings=tuple(warn),
        cells=StratumCells(cells, cell_draws, strata=covs, lists=lists, missing=missing),
    )


class _Replicate:
    """The fit of one bootstrap table of the chosen model (picklable, so replicates can run in
    worker processes): EM from the chosen fit, then (``local``) the stepwise re-selection.
    Returns ``(model, undetected mu0* per stratum)``, or None without an admissible fit."""

    def __init__(self, layout: _Layout, A: np.ndarray, fit: _JointFit, local: bool,
                 criterion: str, use_covs: bool, max_terms: int) -> None:
        self.layout, self.A, self.local = layout, A, local
        self.model, self.beta, self.mu_obs = fit.model, fit.beta, fit.mu[:, 1:]
        self.criterion, self.use_covs, self.max_terms = criterion, use_covs, max_terms

    def __call__(self, item: tuple[np.ndarray, np.ndarray]):
        yk, zb = item
        layout, A = self.layout, self.A
        with one_blas_thread():
            try:
                # (the fixed-model path keeps its EM start: results as before)
                fb, yfb, _ = _em(layout, yk, zb, A, self.model, beta0=self.beta,
                                 boundary_ok=True, mu_start=self.mu_obs if self.local else None)
                if self.local and fb.ok:
                    # search on the table completed under the selected model, then EM
                    # again for a new choice (as on the data: search, then EM)
                    fl = _local_search(layout, yfb.ravel(), fb, self.criterion, self.use_covs,
                                       self.max_terms)
                    if fl.model != fb.model:
                        if len(zb):
                            fl, _, _ = _em(layout, yk, zb, A, fl.model,
                                           beta0=(fl.model, fl.beta), boundary_ok=True,
                                           mu_start=fl.mu[:, 1:])
                        fb = fl
            except EstimationError:
                return None
        return (fb.model, fb.mu[:, 0]) if fb.ok else None


#: replicates x strata above which the bootstrap also runs on the other local cores. A
#: replicate's fits cost ~1.3 ms per stratum (the README demo: 31 strata, 200 replicates,
#: ~8 s in one process; ~4 ms before the fits skipped their stalled runs), a worker process
#: ~2 s of imports; this process keeps working beside the workers
#: (``parallel.map(share=True)``), so below this (~13 s of fits) the start-up is not worth it:
#: 20 strata x 200 replicates with one worker on an idle 2-core machine took 13.6 s wall and
#: 1.4 s more CPU, serially 11.2 s. Only cores free of other work are used
#: (``parallel.free_cores``): on a busy machine workers wait for a core and add their start-up
#: to the work.
_PARALLEL_ABOVE = 10_000


def _replicate_jobs(n_boot: int, n_strata: int) -> int:
    """Processes for the bootstrap fits: the free local cores for large runs, else 1."""
    if n_boot * n_strata < _PARALLEL_ABOVE:
        return 1
    from .. import parallel

    return parallel.free_cores()


def _map_replicates(rep: _Replicate, items: list, jobs: int) -> list:
    """``rep`` over the bootstrap tables in ``jobs`` processes: this process and ``jobs - 1``
    worker processes share the tables (the workers from the first, this process from the
    last). The tables are drawn beforehand and each fit is deterministic, so the result does
    not depend on where the fits run."""
    from .. import parallel

    if jobs < 2:
        return parallel.map(rep, items, backend="serial")
    # small chunks (~4 replicates) balance the two ends; the function is sent once per worker
    return parallel.map(rep, items, backend="auto", n_jobs=jobs, share=True,
                        chunks_per_worker=max(1, len(items) // (4 * jobs)))


def _path_frame(path: list, criterion: str) -> pd.DataFrame:
    """The search path (model label, criterion value per step) as the documented table."""
    return pd.DataFrame([(i, m, c) for i, (m, c) in enumerate(path)],
                        columns=["step", "model", criterion])


def _no_estimate(h, fit, complete, y_full, path, level, seed, em, covs, lists, criterion,
                 missing, bootstrap, reselect) -> Estimate:
    """The Estimate of a fixed model without a finite MLE of N (as fit_loglinear reports it:
    ``n_hat`` infinite when the MLE does not exist, undefined when N is not identifiable)."""
    value = math.inf if fit.status == "does_not_exist" else math.nan
    observed = y_full.sum(axis=1)
    cells = complete.reset_index(drop=True).copy() if covs else pd.DataFrame(index=range(1))
    cells["observed"] = observed
    cells["n_hat"] = value
    cells["undetected"] = value
    cells["lower"] = cells["upper"] = math.nan
    cells["status"] = fit.status
    return Estimate(
        n_hat=value, ci=(math.nan, math.nan), level=level, n_observed=float(h.n_observed),
        method="stratified_loglinear" + ("_em" if em else ""), model=fit.model.label(),
        status=fit.status, ci_method="none", se=math.nan,
        diagnostics={"path": _path_frame(path, criterion),
                     "model_obj": fit.model, "completed_counts": y_full,
                     "criterion": criterion, "n_boot": bootstrap, "reselect": reselect,
                     "model_frequencies": {}, "reselected": math.nan,
                     "existence": fit.existence.sparsemse_code,
                     "reason": fit.existence.reason},
        cells=StratumCells(cells, None, strata=covs, lists=lists, missing=missing),
        draws=None, seed=seed, warnings=(fit.existence.reason,),
    )


def _model_of_terms(terms: str | Sequence[str], start: StratifiedModel) -> StratifiedModel:
    """The model of a ``terms=`` specification, read by :func:`~tipstat.models.terms.
    parse_terms` over the lists followed by the covariates: two-way terms of two lists are list
    x list interactions, of a list and a covariate list x covariate interactions; terms of
    covariates only are already in the free stratum effects (ignored); three-way and higher
    terms are not part of the joint model (an :class:`~tipstat.errors.InputError`)."""
    names = (*start.lists, *start.covariates)
    k = len(start.lists)
    model = start
    for mask in parse_terms(terms, names):
        bits = [i for i in range(len(names)) if mask >> i & 1]
        if len(bits) > 2:
            raise InputError(f"terms: {term_label(mask, names)!r} has order {len(bits)}; the "
                             "stratified model takes 'list:list' and 'list:covariate' terms")
        a, b = bits
        if b < k:
            model = model.add((a, b))
        elif a < k:
            model = model.add((a, names[b]))
    return model


def _fit_separate(h: CaptureHistories, criterion: str, bootstrap: int, level: float,
                  rng: np.random.Generator, seed: int | None, max_terms: int,
                  reselect: str = "none") -> Estimate:
    covs = tuple(h.strata)
    rows = []
    draws_all = []
    for _s, (values, hs) in enumerate(h.by_stratum()):
        layout = _Layout(pd.DataFrame(index=range(1)), h.k)
        y = np.asarray(hs.counts, dtype=float)
        start = StratifiedModel(h.lists, ())
        row = dict(zip(covs, values, strict=True)) if covs else {}
        row["observed"] = float(y.sum())
        try:
            fit, _ = _search(layout, y, start, criterion, False, max_terms)
        except EstimationError:
            f0 = _fit_joint(layout, y, start)
            value = math.inf if f0.status == "does_not_exist" else math.nan
            row.update(n_hat=value, undetected=value, lower=math.nan, upper=math.nan,
                       status=f0.status if f0.status != "ok" else "not_converged", model="")
            rows.append(row)
            draws_all.append(np.full(bootstrap, math.inf))
            continue
        mu = fit.mu.ravel()
        row.update(n_hat=float(y.sum() + mu[0]), undetected=float(mu[0]), status=fit.status,
                   model=fit.model.label())
        d = np.full(bootstrap, np.nan)
        for b in range(bootstrap):
            ys = rng.poisson(mu)
            yb = ys[1:].astype(float)
            if reselect == "full":
                try:
                    fb, _ = _search(layout, yb, start, criterion, False, max_terms)
                except EstimationError:
                    continue
            else:
                fb = _fit_joint(layout, yb, fit.model, fit.beta, boundary_ok=True)
                if fb.ok and reselect == "local":
                    fb = _local_search(layout, yb, fb, criterion, False, max_terms)
            if fb.ok:
                d[b] = row["n_hat"] + ys[0] - fb.mu[0, 0]
        draws_all.append(d)
        ok = np.isfinite(d)
        row["lower"], row["upper"] = (equal_tailed(d[ok], level, floor=row["observed"])
                                      if ok.any() else (math.nan, math.nan))
        rows.append(row)
    cells = pd.DataFrame(rows)
    cell_draws = np.column_stack(draws_all) if bootstrap else None
    # the total is as good as its worst stratum
    st = set(cells["status"])
    status = next((x for x in ("does_not_exist", "not_identifiable", "not_converged",
                               "extended") if x in st), "ok")
    finite = status in ("ok", "extended")
    n_hat = (float(cells["n_hat"].sum()) if finite
             else math.inf if status == "does_not_exist" else math.nan)
    if cell_draws is not None:
        good = np.all(np.isfinite(cell_draws), axis=1)
        cell_draws = cell_draws[good] if finite else cell_draws
        draws = cell_draws.sum(axis=1)
        nobs = float(h.n_observed)
        ci = (equal_tailed(draws, level, floor=nobs)
              if finite and len(draws) else (math.nan, math.nan))
    else:
        draws, ci = None, (math.nan, math.nan)
    return Estimate(n_hat=n_hat, ci=ci, level=level, n_observed=float(h.n_observed),
                    method="stratified_separate", model=f"separate per stratum ({criterion})",
                    status=status, ci_method="percentile" if bootstrap else "none",
                    diagnostics={"criterion": criterion, "n_boot": bootstrap,
                                 "reselect": reselect},
                    draws=draws, seed=seed,
                    cells=StratumCells(cells, cell_draws, strata=covs, lists=h.lists))


def margins(est: Estimate, by: Sequence[str] = (), level: float | None = None) -> pd.DataFrame:
    """Sum cell estimates of a stratified :class:`Estimate` over the strata not in ``by``.

    Intervals come from the same bootstrap replicates summed the same way, so margins are
    coherent with cells and total: ``n_hat`` of the margins adds up to the total.

    Examples
    --------
    >>> import pandas as pd
    >>> from tipstat import CaptureHistories
    >>> df = pd.DataFrame({"sex": ["F"] * 3 + ["M"] * 3, "A": [1, 0, 1] * 2,
    ...                    "B": [0, 1, 1] * 2, "count": [60, 50, 20, 40, 30, 10]})
    >>> est = fit_stratified(CaptureHistories.from_frame(df, strata="sex"), n_boot=0)
    >>> m = margins(est, ["sex"])
    >>> bool(abs(m.n_hat.sum() - est.n_hat) < 1e-9)
    True
    """
    if est.cells is None:
        raise InputError("margins() needs a stratified Estimate (from fit_stratified)")
    cells = est.cells.table
    by = list(by)
    bad = [b for b in by if b not in est.cells.strata]
    if bad:
        raise InputError(f"margins: {bad} are not strata of the estimate {list(est.cells.strata)}")
    level = est.level if level is None else level
    cd = est.cells.replicates
    groups = cells.groupby(by, sort=True).indices if by else {(): np.arange(len(cells))}
    rows = []
    for key, idx in groups.items():
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True))
        row["observed"] = float(cells["observed"].iloc[idx].sum())
        row["n_hat"] = float(cells["n_hat"].iloc[idx].sum())
        row["undetected"] = row["n_hat"] - row["observed"]
        if cd is not None and len(cd):
            d = cd[:, idx].sum(axis=1)
            row["lower"], row["upper"] = equal_tailed(d, level, floor=row["observed"])
        else:
            row["lower"] = row["upper"] = math.nan
        rows.append(row)
    return pd.DataFrame(rows)
