"""Poisson log-linear maximum likelihood, existence of the MLE and identifiability of N.

Fitting is Newton-Raphson on the Poisson log-likelihood ``sum(y * eta - exp(eta))`` with
``eta = X @ beta`` (the canonical link, so Newton equals Fisher scoring / IRLS), with step
halving and a Newton-decrement stopping rule, so a fit converges to machine precision in a few
iterations.

Existence (Fienberg & Rinaldo 2012): the MLE exists iff the observed margins ``X' y`` lie in the
relative interior of the cone spanned by the rows of ``X``. The *facial set* ``F`` is the set of
cells that some non-negative table with the same margins makes positive; cells outside ``F``
have fitted value 0 in the extended MLE. It is found with linear programs (HiGHS). ``N`` is then
identified iff the unobserved-cell row ``a0 = (1, 0, ..., 0)`` lies in the row space of
``X[F]``; otherwise the recession directions of the likelihood say whether ``N`` runs to
infinity ("does not exist") or is undetermined ("not identifiable").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dgelsd as _dgelsd
from scipy.linalg.lapack import dgelsd_lwork as _dgelsd_lwork
from scipy.linalg.lapack import dgesv as _dgesv
from scipy.linalg.lapack import dpocon as _dpocon
from scipy.linalg.lapack import dposv as _dposv
from scipy.optimize import linprog

from .newton import _SCALE_ABOVE, GIVE_UP, count_scale, newton

__all__ = ["Existence", "PoissonFit", "check_existence", "check_existence_many",
           "check_existence_strata", "facial_set", "facial_sets",
           "independent_columns", "poisson_newton"]

# exp() argument cap: a trial step beyond it is rejected by the line search, without overflow
_ETA_MAX = 700.0
# Batched fits: an iterate whose Newton decrement times this is below the smallest fitted value of
# a kept empty cell proves the MLE exists (see newton_batch).
_EXIST_RATIO = 1e4


@dataclass
class PoissonFit:
    beta: np.ndarray
    mu: np.ndarray
    converged: bool
    iterations: int
    hessian_inv: np.ndarray | None


def poisson_newton(X: np.ndarray, y: np.ndarray, beta: np.ndarray | None = None, *,
                   offset: np.ndarray | None = None, maxiter: int = 100) -> PoissonFit:
    """Maximise ``sum(y * eta - exp(eta))``, ``eta = X @ beta + offset``, by Newton's method.

    ``X`` must have full column rank. This is :func:`newton_batch` on a stack of one model:
    ``converged`` is its ``exact`` (the decrement fell below ``1e-12`` count scales, see
    :func:`~tipstat.models.newton.newton`, and the existence proof held: a fit whose MLE does
    not exist gives up unconverged and the caller runs the exact linear-programming check),
    ``hessian_inv`` its ``cov``. The ``offset`` (profile likelihoods) enters every linear
    predictor; the count scaling and the proof are unchanged by it.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> fit = poisson_newton(X, np.array([4.0, 6.0]))
    >>> bool(fit.converged), np.round(np.exp(fit.beta), 12).tolist()
    (True, [4.0, 1.5])
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1 and y.size and not float(y.max()) > _SCALE_ABOVE:
        # what newton_batch does for one model at counts in the published range, without its
        # stack bookkeeping (the common single fit)
        b, mu, cov, _, ok, it = _fit_one(
            np.ascontiguousarray(X), y, beta, maxiter,
            None if offset is None else np.asarray(offset, dtype=np.float64))
        return PoissonFit(beta=b, mu=mu, converged=ok, iterations=it,
                          hessian_inv=cov if ok else None)
    start = None if beta is None else np.asarray(beta, dtype=np.float64)[None]
    bf = newton_batch(X, y, np.ones((1, X.shape[1]), dtype=bool), beta0=start,
                      maxiter=maxiter, offset=offset)
    ok = bool(bf.exact[0])
    return PoissonFit(beta=bf.beta[0], mu=bf.mu[0], converged=ok,
                      iterations=int(bf.iterations[0]), hessian_inv=bf.cov[0] if ok else None)


def independent_columns(X: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Indices of a maximal set of linearly independent columns, chosen greedily left to right
    (so the intercept and main effects are kept before interactions).

    Column ``j`` is kept when its distance to the span of the columns kept before it exceeds
    ``tol * max(1, ||x_j||)``. That distance is ``|R_jj|`` of the unpivoted QR factorisation
    of the kept columns followed by ``x_j`` (LAPACK), so the greedy choice is a few
    factorisations: one per rejected column (a rejected column is dropped and the
    factorisation redone, its arbitrary Householder direction never enters a later distance).
    A tall ``X`` is first reduced to its ``R`` factor (``X = Q R`` with the same inner
    products between columns, hence the same distances).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [1, 1, 1, 2.0]])  # column 3 = column 1 + 2
    >>> independent_columns(X).tolist()
    [0, 1, 2]
    """
    X = np.asarray(X, dtype=np.float64)
    return _independent_r(_r_factor(X), tol * np.maximum(1.0, np.linalg.norm(X, axis=0)))


def _geqrf(A: np.ndarray) -> np.ndarray:
    """LAPACK's ``dgeqrf`` of ``A`` with its optimal workspace (what ``scipy.linalg.qr`` calls,
    without its wrapper: ~4x faster on the existence checks' small matrices; the same numbers):
    ``R`` in the upper triangle of the result, the Householder vectors below it."""
    from scipy.linalg import lapack

    lwork = int(lapack.dgeqrf_lwork(A.shape[0], A.shape[1])[0])
    qr, _, _, info = lapack.dgeqrf(A, lwork=max(lwork, 1))
    if info != 0:  # pragma: no cover - only for invalid arguments
        raise np.linalg.LinAlgError(f"dgeqrf failed (info {info})")
    return qr


def _r_factor(X: np.ndarray) -> np.ndarray:
    """``R`` of the thin QR of a tall ``X`` (``X' X = R' R``: the same column geometry in
    ``p x p``), else ``X`` itself."""
    if X.shape[0] > X.shape[1] > 0:
        return np.triu(_geqrf(X)[:X.shape[1]])
    return X


def _independent_r(R: np.ndarray, thresh: np.ndarray) -> np.ndarray:
    """:func:`independent_columns` of a matrix with the column geometry of ``R``, column ``j``
    kept when its distance to the kept columns before it exceeds ``thresh[j]``."""
    p = R.shape[1]
    if R.shape[0] == 0:  # no rows: every distance is 0 (and LAPACK's QR of SciPy 1.11 fails)
        return np.zeros(0, dtype=np.int64)
    cand = np.arange(p)
    done = 0  # cand[:done] are proved kept
    while done < len(cand):
        r = _geqrf(R[:, cand])  # only its diagonal is read: R's
        k = min(r.shape)
        dist = np.abs(np.diagonal(r))[:k]
        bad = np.flatnonzero(dist[done:] <= thresh[cand[done:k]])
        if len(bad) == 0:
            if k == len(cand):
                break
            # the first k columns span the whole column space: the rest are dependent
            cand = cand[:k]
            break
        j = done + int(bad[0])
        cand = np.delete(cand, j)
        done = j
    return cand.astype(np.int64)


def facial_set(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the cells that can be positive in a non-negative table with margins
    ``X' y`` (the facial set of Fienberg & Rinaldo). Cells with ``y > 0`` are always in it.

    One linear program on the cone: variables ``m >= 0`` (a table), ``lam >= 0`` (a scale) and
    ``0 <= z_c <= min(1, m_c)`` for the empty cells; ``X'm = lam X'y``; maximise ``sum z``. The
    facial set is a face of the marginal cone, so a positive multiple of the average of the
    tables that make each facial cell positive makes them all ``>= 1`` at once: at the optimum
    ``z_c = 1`` exactly on the facial empty cells (the repeated programs of a fixed-scale
    formulation are not needed). Repeated only as a safeguard against a fractional solution.
    Empty cells that :func:`forced_zero` finds (a non-negative column with margin 0 covers
    them) are outside the facial set of every table with these margins: they are left out of
    the program, and when they are all the empty cells no program is solved.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=float)  # 1, A, B, A:B
    >>> facial_set(X, np.array([5.0, 4, 0])).tolist()  # the A:B margin 0 forces the cell
    [True, True, False]
    """
    return facial_sets([X], y)[0]


def facial_sets(designs: list, y: np.ndarray) -> list[np.ndarray]:
    """:func:`facial_set` of several designs (dense or SciPy sparse) on the same counts, in
    one linear program.

    The programs of the designs share no variable or constraint, so their sum, one program
    with block-diagonal constraints, is optimal exactly when each block is: a block's part of
    an optimum is an optimum of its own program, and ``z_c = 1`` on its facial empty cells.
    One call to HiGHS instead of one a design (whose set-up, not the solve, was most of the
    time of a model-averaging fit's existence checks). Cells forced empty by a margin of 0
    (:func:`forced_zero`) are left out as in :func:`facial_set`; a block that finds new cells
    is solved again, as there.

    Examples
    --------
    >>> import numpy as np
    >>> pat = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1],
    ...                 [1, 1, 1]], dtype=float)  # lists A, B, C: the observable patterns
    >>> X1 = np.column_stack([np.ones(7), pat])  # independence
    >>> X2 = np.column_stack([X1, pat[:, 0] * pat[:, 1]])  # with A:B
    >>> y = np.array([5.0, 4, 3, 0, 2, 1, 0])  # nobody on both A and B
    >>> [f.tolist() for f in facial_sets([X1, X2], y)]
    [[True, True, True, True, True, True, True], [True, True, True, False, True, True, False]]
    """
    from scipy import sparse

    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    scale = max(1.0, float(y.max())) if n else 1.0
    in_f = [y > 0 for _ in designs]
    forced = [forced_zero(X, y) for X in designs]
    active = list(range(len(designs)))
    while True:
        z_of = {i: np.flatnonzero(~in_f[i] & ~forced[i]) for i in active}
        active = [i for i in active if len(z_of[i])]
        if not active:
            break
        c_parts, eq_blocks, ub_blocks, offsets = [], [], [], []
        start = 0
        for i in active:
            X, z_idx = designs[i], z_of[i]
            nz = len(z_idx)
            # block variables: m (n), lam (1), z (nz); X'm - lam t = 0, z <= m, max sum z
            # (sparse: HiGHS reads sparse matrices anyway; a many-strata design is mostly 0)
            t = np.asarray(X.T @ y, dtype=np.float64).ravel() / scale
            eq_blocks.append(sparse.hstack([sparse.csr_matrix(X.T),
                                            sparse.csr_matrix(-t[:, None]),
                                            sparse.csr_matrix((X.shape[1], nz))], format="csr"))
            ub_blocks.append(sparse.csr_matrix(
                (np.concatenate([-np.ones(nz), np.ones(nz)]),
                 (np.concatenate([np.arange(nz), np.arange(nz)]),
                  np.concatenate([z_idx, n + 1 + np.arange(nz)]))), shape=(nz, n + 1 + nz)))
            c_parts.append(np.concatenate([np.zeros(n + 1), -np.ones(nz)]))
            offsets.append(start)
            start += n + 1 + nz
        A_eq = sparse.block_diag(eq_blocks, format="csr")
        A_ub = sparse.block_diag(ub_blocks, format="csr")
        # m, lam >= 0; 0 <= z <= 1
        bounds = np.vstack([np.column_stack([np.zeros(n + 1 + len(z_of[i])),
                                             np.r_[np.full(n + 1, np.inf),
                                                   np.ones(len(z_of[i]))]])
                            for i in active])
        res = linprog(np.concatenate(c_parts), A_ub=A_ub, b_ub=np.zeros(A_ub.shape[0]),
                      A_eq=A_eq, b_eq=np.zeros(A_eq.shape[0]), bounds=bounds, method="highs")
        if res.status != 0:  # pragma: no cover - the observed table is always feasible
            raise RuntimeError(f"existence LP failed: {res.message}")
        again = []
        for i, off in zip(active, offsets, strict=True):
            z_idx = z_of[i]
            newly = z_idx[res.x[off + n + 1:off + n + 1 + len(z_idx)] > 1e-9]
            if len(newly):
                in_f[i][newly] = True
                again.append(i)
        active = again
    return in_f


@dataclass(frozen=True)
class Existence:
    """Outcome of the existence / identifiability check of one model on one table.

    Attributes
    ----------
    status : str
        ``"ok"`` (MLE exists, N identified), ``"extended"`` (the MLE is on the boundary: some
        fitted cells are 0, but the extended MLE of N is finite and unique),
        ``"does_not_exist"`` (the likelihood keeps increasing as N grows without bound),
        ``"not_identifiable"`` (N is not determined by the data under this model).
    facial : numpy.ndarray
        Boolean mask over observable cells: those with positive fitted value.
    columns : numpy.ndarray
        Design columns estimable on the facial set (the others are aliased / infinite).
    reason : str
        Plain-language explanation.
    sparsemse_code : int
        The code SparseMSE's ``checkident`` / MultipleSystemsEstimation's
        ``check_extended_MLE`` would give: 0 ok, 1 MLE does not exist, 2 not identifiable.
    """

    status: str
    facial: np.ndarray
    columns: np.ndarray
    reason: str

    @property
    def finite(self) -> bool:
        return self.status in ("ok", "extended")

    @property
    def sparsemse_code(self) -> int:
        return {"ok": 0, "extended": 0, "does_not_exist": 1, "not_identifiable": 2}[self.status]


_REDUCED_RANK: dict[bytes, bool] = {}


def reduced_full_rank(X: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> bool:
    """Whether ``X[rows][:, cols]`` has more rows than columns and full column rank.

    The question of a zero-margin reduction (cells and columns dropped): a property of the design
    and the dropped sets only, asked again for every table and model with the same zero pattern,
    so the answers are cached (bounded).
    """
    rows = np.asarray(rows, dtype=bool)
    cols = np.asarray(cols)
    if cols.dtype == bool:
        cols = np.flatnonzero(cols)
    if rows.sum() <= len(cols):
        return False
    key = _rank_key(_digest(X), rows, cols)
    ok = _REDUCED_RANK.get(key)
    if ok is None:
        ok = bool(np.linalg.matrix_rank(X[np.ix_(rows, cols)]) == len(cols))
        _remember_rank(key, ok)
    return ok


def _digest(X: np.ndarray) -> bytes:
    """A 32-byte digest of a design (its shape and values), for cache keys."""
    import hashlib

    X = np.ascontiguousarray(X, dtype=np.float64)
    return hashlib.blake2b(np.asarray(X.shape, dtype=np.int64).tobytes() + X.tobytes(),
                           digest_size=32).digest()


def _rank_key(x_digest: bytes, rows: np.ndarray, cols: np.ndarray) -> bytes:
    """The cache key of :func:`reduced_full_rank` (``cols`` as indices or a mask)."""
    if cols.dtype == bool:
        cols = np.flatnonzero(cols)
    return x_digest + b"|" + rows.tobytes() + b"|" + cols.astype(np.int64).tobytes()


#: answers kept by reduced_full_rank (cleared when full)
RANK_CACHE_SIZE = 4096


def _remember_rank(key: bytes, ok: bool) -> None:
    if len(_REDUCED_RANK) > RANK_CACHE_SIZE:
        _REDUCED_RANK.clear()
    _REDUCED_RANK[key] = ok


def check_existence(X: np.ndarray, y: np.ndarray, cell_labels: list[str] | None = None,
                    facial: np.ndarray | None = None) -> Existence:
    """Existence of the MLE and identifiability of N for the observable design ``X`` (rows:
    observable cells, first column the intercept) and counts ``y``.

    The one existence check of the package: :func:`check_existence_strata` with a single
    stratum, whose free effect is the intercept (``columns`` index ``X`` itself, so 0 is the
    intercept). Both answers depend on the counts only through which cells are empty (the
    facial set is the smallest face of the marginal cone holding the rows of the non-empty
    cells), so results are cached by design and zero pattern: bootstrap replicates and model
    searches that meet the same pattern again skip the linear programs. ``facial``: a facial
    set already known (no linear program for it, no caching).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]], dtype=float)  # intercept, A, B
    >>> check_existence(X, np.array([30.0, 20, 10])).status
    'ok'
    """
    y = np.asarray(y, dtype=np.float64)
    X = _intercept_design(X)
    key = None
    if facial is None:
        key = _existence_key(X, y, cell_labels)
        hit = _EXISTENCE_CACHE.get(key)
        if hit is not None:
            return hit
    return _existence_one(X, y, cell_labels, facial, key)


def check_existence_many(designs: list[np.ndarray], y: np.ndarray) -> list[Existence]:
    """:func:`check_existence` of several designs (each with its intercept first) on the same
    counts: the same answers, the same cache, the facial sets of the designs not in the cache
    found by one linear program (:func:`facial_sets`).

    Examples
    --------
    >>> import numpy as np
    >>> pat = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1],
    ...                 [1, 1, 1]], dtype=float)  # lists A, B, C
    >>> X1 = np.column_stack([np.ones(7), pat])  # independence
    >>> X2 = np.column_stack([X1, pat[:, 0] * pat[:, 1]])  # with A:B
    >>> y = np.array([5.0, 4, 3, 0, 2, 1, 0])
    >>> [e.status for e in check_existence_many([X1, X2], y)]
    ['ok', 'extended']
    """
    y = np.asarray(y, dtype=np.float64)
    Xs = [_intercept_design(X) for X in designs]
    keys = [_existence_key(X, y, None) for X in Xs]
    out: list[Existence | None] = [_EXISTENCE_CACHE.get(k) for k in keys]
    todo = [i for i, e in enumerate(out) if e is None]
    if todo:
        found = facial_sets([Xs[i] for i in todo], y) if np.any(y == 0) else [None] * len(todo)
        for i, f in zip(todo, found, strict=True):
            out[i] = _existence_one(Xs[i], y, None, f, keys[i])
    return out  # type: ignore[return-value]


def _intercept_design(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] == 0 or not np.all(X[:, 0] == 1.0):
        raise ValueError("check_existence: the first column of X must be the intercept (1)")
    return X


def _existence_key(X: np.ndarray, y: np.ndarray, cell_labels: list[str] | None) -> tuple:
    return (X.shape, hash(X.tobytes()), (y > 0).tobytes(),
            None if cell_labels is None else tuple(cell_labels))


def _existence_one(X: np.ndarray, y: np.ndarray, cell_labels: list[str] | None,
                   facial: np.ndarray | None, key: tuple | None) -> Existence:
    """The check of one design (``facial`` when known), kept under ``key`` unless None."""
    one = check_existence_strata(X[:, 1:], y, np.zeros(len(y), dtype=np.int64), cell_labels,
                                 facial=facial)
    cols = np.concatenate([[0], one.columns + 1]).astype(np.int64)
    out = Existence(one.status, one.facial, cols, one.reason)
    if key is not None:
        if len(_EXISTENCE_CACHE) >= _EXISTENCE_CACHE_SIZE:
            _EXISTENCE_CACHE.clear()
        for arr in (out.facial, out.columns):
            arr.setflags(write=False)
        _EXISTENCE_CACHE[key] = out
    return out


_EXISTENCE_CACHE: dict = {}
_EXISTENCE_CACHE_SIZE = 50_000


def forced_zero(X, y: np.ndarray) -> np.ndarray:
    """Cells every non-negative table with the margins ``X'y`` leaves empty (``X`` dense or SciPy
    sparse), found without a linear program: a column ``k`` with non-negative entries and margin
    ``sum_c x_ck y_c = 0`` forces ``m_c = 0`` wherever ``x_ck > 0`` (a sum of non-negative terms
    is 0 only if each is). The facial set lies within the other cells; in the usual sparse table
    of 0/1 designs (a list never meeting a covariate level, a pair of lists never both catching
    a person in some strata) it is exactly the other cells, which a Newton fit on them can prove
    (a converged fit with its existence certificate is a positive table with the same margins).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]], dtype=float)  # A, B, A:B
    >>> forced_zero(X, np.array([5.0, 4, 0])).tolist()
    [False, False, True]
    """
    from scipy import sparse

    y = np.asarray(y, dtype=np.float64)
    if sparse.issparse(X):  # a many-strata design: the same rule on its non-zero entries
        Xc = X.tocsc()
        t = np.asarray(Xc.T @ y).ravel()
        nonneg = np.asarray(Xc.min(axis=0).toarray()).ravel() >= 0
        cover = abs(Xc[:, np.flatnonzero(nonneg & (t == 0))])
        return np.asarray(cover.sum(axis=1)).ravel() > 0
    X = np.asarray(X, dtype=np.float64)
    t = X.T @ y
    nonneg = (X >= 0).all(axis=0)
    return (X[:, nonneg & (t == 0)] > 0).any(axis=1)


def check_existence_strata(X: np.ndarray, y: np.ndarray, group: np.ndarray,
                           cell_labels: list[str] | None = None, *,
                           facial: np.ndarray | None = None) -> Existence:
    """:func:`check_existence` for a stratified design: one free intercept per stratum.

    Row ``c`` of ``X`` (observable cells of every stratum, no intercept or stratum columns) is
    in stratum ``group[c]``; the full Poisson design is ``[D, X]`` with ``D`` the stratum
    indicators, and stratum ``s``'s unobserved cell has row ``(e_s, 0)``, so
    ``N_s = n_s + exp(alpha_s)``. The same rules as :func:`check_existence`, stratum by
    stratum: the facial set ``F`` of ``[D, X]`` (one linear program, sparse); ``N_s`` is
    identified iff ``(e_s, 0)`` lies in the row space of ``[D, X]_F``, which holds for every
    stratum at once iff ``X_F`` centred within strata has the rank of ``X_F``; otherwise the
    recession directions ``d = (a, b)`` (``[D, X]_F d = 0``, ``[D, X]_Z d <= -1`` on the cells
    outside ``F``) say whether ``alpha_s = -x_c' b`` (``c`` in ``F_s``) must grow (N runs to
    infinity: ``"does_not_exist"``), must fall (``"does_not_exist"``: N-hat = observed) or
    may do either (``"not_identifiable"``); eliminating ``a`` leaves linear programs in ``b``
    only. Strata with no observed person carry no information and are left out of the question
    (their cells are outside ``F``; their estimate is 0). ``columns`` indexes the columns of
    ``X`` estimable given the stratum effects. ``facial``: the facial set when already known
    (e.g. proved by :func:`forced_zero` and a Newton certificate): no linear program for it.
    With one stratum this is :func:`check_existence` (the stratum effect is the intercept).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 0], [0, 1], [1, 1]] * 2, dtype=float)  # lists A, B in two strata
    >>> g = np.repeat([0, 1], 3)
    >>> check_existence_strata(X, np.array([5, 4, 2, 6, 3, 1.0]), g).status
    'ok'
    >>> check_existence_strata(np.column_stack([X, X * (g == 1)[:, None]]),
    ...                        np.array([5, 4, 2, 6, 3, 0.0]), g).status  # A, B by stratum
    'does_not_exist'
    """
    from scipy import sparse

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    n, p = X.shape
    n_groups = int(group.max()) + 1 if n else 0
    n_s = np.bincount(group, weights=y, minlength=n_groups)
    live = n_s[group] > 0
    rows = np.flatnonzero(live)
    # the live strata numbered 0, 1, ... in order (numpy.unique's inverse, without a sort)
    present = np.zeros(n_groups, dtype=bool)
    present[group[rows]] = True
    gl = (np.cumsum(present) - 1)[group[rows]]
    yl = y[rows]
    if len(rows) == 0:
        return Existence("not_identifiable", np.zeros(n, dtype=bool), np.zeros(0, dtype=np.int64),
                         "N is not identifiable: no person is observed")
    if facial is not None:
        f_live = np.asarray(facial, dtype=bool)[rows]
        facial = np.zeros(n, dtype=bool)
    elif np.any(yl == 0):
        facial = np.zeros(n, dtype=bool)
        Xl = X[rows]
        n_live = int(gl.max()) + 1
        if len(rows) * (n_live + p) <= 500_000:  # small: the design built dense
            D = np.zeros((len(rows), n_live))
            D[np.arange(len(rows)), gl] = 1.0
            f_live = facial_set(np.hstack([D, Xl]), yl)
        else:
            D = sparse.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), gl)))
            f_live = facial_set(sparse.hstack([D, sparse.csr_matrix(Xl)], format="csr"), yl)
    else:
        facial = np.zeros(n, dtype=bool)
        f_live = np.ones(len(rows), dtype=bool)
    facial[rows] = f_live
    XF, gF = X[rows[f_live]], gl[f_live]
    # within-stratum centring over the facial cells removes the stratum effects
    cnt = np.bincount(gF, minlength=gl.max() + 1 if len(gl) else 0).astype(float)
    if len(gF) and np.all(gF[1:] >= gF[:-1]):  # rows by stratum: sums of runs of rows
        sums = np.zeros((len(cnt), p))
        starts = np.flatnonzero(np.r_[True, gF[1:] != gF[:-1]])
        sums[gF[starts]] = np.add.reduceat(XF, starts, axis=0) if p else 0.0
    else:
        ind = sparse.csr_matrix((np.ones(len(gF)), (gF, np.arange(len(gF)))),
                                shape=(len(cnt), len(gF)))
        sums = np.asarray(ind @ XF)
    means = sums / np.maximum(cnt, 1.0)[:, None]
    Xc = XF - means[gF]
    # the column geometry of Xc in p x p (its R factor: the same singular values and right
    # singular vectors, the same distances between columns) for both questions below
    Rc = _r_factor(Xc) if p else Xc
    cols = (_independent_r(Rc, 1e-9 * np.maximum(1.0, np.linalg.norm(Xc, axis=0))) if p
            else np.zeros(0, dtype=np.int64))
    # null space of the centred design: b with X_F b constant within every stratum
    if p:
        # only V is needed: the thin SVD unless there are fewer rows than columns (then the
        # full V spans the null space the thin one leaves out)
        _, sv, vt = np.linalg.svd(Rc, full_matrices=Rc.shape[0] < Rc.shape[1])
        tol = max(Xc.shape) * np.finfo(float).eps * (sv[0] if len(sv) else 1.0)
        null = vt[int(np.sum(sv > tol)):].T  # p x r
    else:
        null = np.zeros((0, 0))
    # stratum s is identified iff alpha_s = -x_c' b = 0 for every such b
    first = np.zeros(len(cnt), dtype=np.int64)
    first[gF[::-1]] = np.arange(len(gF))[::-1]
    rep = XF[first]  # one facial row per stratum
    a_null = rep @ null if null.size else np.zeros((len(cnt), 0))
    unident = np.flatnonzero(np.abs(a_null).max(axis=1, initial=0.0) > 1e-9)
    zero_cells = np.flatnonzero(live & ~facial)
    outside = ", ".join(cell_labels[i] if cell_labels else str(i + 1)
                        for i in zero_cells[:12]) + (
        ", ..." if len(zero_cells) > 12 else "")
    if len(unident) == 0:
        if len(zero_cells) == 0:
            return Existence("ok", facial, cols, "the MLE exists and N is identified")
        return Existence(
            "extended", facial, cols,
            f"the MLE is on the boundary: empty cells {outside} have fitted value 0 (their "
            "interaction parameters are infinite); the extended MLE of N is finite and unique")
    if len(zero_cells):
        of_stratum = " of a stratum" if n_groups > 1 else ""
        Xl_z = X[rows[~f_live]]
        gz = gl[~f_live]
        A_eq = XF - rep[gF]
        A_ub = Xl_z - rep[gz]
        for s in unident:
            ends = []
            for sign in (1.0, -1.0):  # alpha_s = -rep_s' b: minimise, then maximise
                res = linprog(-sign * rep[s], A_ub=A_ub, b_ub=-np.ones(len(A_ub)), A_eq=A_eq,
                              b_eq=np.zeros(len(A_eq)), bounds=[(-1e6, 1e6)] * p,
                              method="highs")
                ends.append(res)
            lo, hi = ends
            if lo.status != 0:  # pragma: no cover - the facial set guarantees a direction
                continue
            if lo.fun > 1e-9:
                return Existence(
                    "does_not_exist", facial, cols,
                    f"the MLE does not exist: fitting the empty cells {outside} to zero drives "
                    f"the unobserved cell{of_stratum} to infinity, so N-hat is infinite under "
                    "this model")
            if -hi.fun < -1e-9:
                return Existence(
                    "does_not_exist", facial, cols,
                    f"the MLE does not exist: fitting the empty cells {outside} to zero drives "
                    f"the unobserved cell{of_stratum} to zero (N-hat would equal the observed "
                    "count)")
        reason = (f"N is not identifiable: the empty cells {outside} leave the model with more "
                  "free parameters than the remaining cells determine; any N fits equally well")
    else:
        reason = ("N is not identifiable: the model has more free parameters than the "
                  "observable cells determine (design rank deficient)")
    return Existence("not_identifiable", facial, cols, reason)


@dataclass
class BatchFit:
    """Newton fits of many models sharing one full design (see :func:`newton_batch`).

    ``beta`` (B, p) is 0 on masked-out columns; ``mu`` (B, n) is 0 on dropped cells; ``cov``
    (B, p, p) is the inverse Fisher information (0 on masked rows and columns); ``kernel`` is
    ``sum(y * eta - mu)`` over the kept cells; ``exact`` says the fit converged with every kept
    zero cell's fitted value above the small-value floor, which proves the MLE exists on the kept
    cells (otherwise the caller must run the exact check).
    """

    beta: np.ndarray
    mu: np.ndarray
    cov: np.ndarray
    kernel: np.ndarray
    exact: np.ndarray
    iterations: np.ndarray


def newton_batch(X: np.ndarray, y: np.ndarray, col_mask: np.ndarray,
                 cell_mask: np.ndarray | None = None, beta0: np.ndarray | None = None, *,
                 maxiter: int = 60, chunk: int = 4096, full_cov: bool = True,
                 offset: np.ndarray | None = None) -> BatchFit:
    """Fit many Poisson log-linear models at once by vectorised Newton-Raphson.

    Model ``b`` uses the columns ``col_mask[b]`` of the full design ``X`` (n, p) and the cells
    ``cell_mask[b]`` (the others are fixed at fitted value 0, as for cells that a zero margin
    forces to be empty). Its Hessian ``sum_c w_bc mu_bc x_c x_c'`` is computed for all models by
    one matrix product of the fitted values with the precomputed products ``x_ci x_cj`` (upper
    triangle); masked parameters get an identity block so that one batched solve serves every
    model. The iteration is :func:`~tipstat.models.newton.newton` on the stack: each model stops
    after the step taken where its Newton decrement ``g' H^-1 g`` was below ``1e-12`` and its
    existence is proved (its certificate; a model without the proof after 15 iterations gives up
    unconverged). Counts above ``1e6`` are fitted rescaled
    (:func:`~tipstat.models.newton.count_scale`), so convergence does not depend on the scale
    of the counts. ``offset`` (n,) or (B, n) enters every linear predictor.

    ``y`` is (n,) (one table) or (B, n) (one table per model, e.g. bootstrap replicates);
    ``beta0`` (B, p) are starting values (e.g. the fit of a neighbouring model). With
    ``full_cov=False`` only the first row and column of the inverse information (what the SE of
    N-hat needs) are computed.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    col_mask = np.asarray(col_mask, dtype=bool)
    B, p = col_mask.shape
    y = np.asarray(y, dtype=np.float64)
    big = (float(y.max()) > _SCALE_ABOVE) if y.ndim == 1 and y.size else \
        bool(np.any(count_scale(y) > 1.0))
    if big and p and np.all(X[:, 0] == 1.0) and col_mask[:, 0].all():
        scale = count_scale(y)
        # counts above the published range: fit y / s (see count_scale), so the stopping and
        # existence rules below are invariant to the scale of the counts
        shift = np.broadcast_to(np.log(scale), (B,))
        Ys = y / (scale[:, None] if y.ndim == 2 else scale)
        start = None
        if beta0 is not None:
            start = np.array(beta0, dtype=np.float64)
            start[:, 0] -= shift
        res = newton_batch(X, Ys, col_mask, cell_mask, start, maxiter=maxiter, chunk=chunk,
                           full_cov=full_cov, offset=offset)
        sc = np.broadcast_to(scale, (B,))
        w = np.ones((B, X.shape[0])) if cell_mask is None else np.asarray(cell_mask, float)
        ysum = np.sum(w * np.broadcast_to(Ys, w.shape), axis=1)
        res.beta[:, 0] += shift
        res.mu *= sc[:, None]
        res.cov /= sc[:, None, None]
        # kernel sum(w (y eta - mu)) at counts s y: s (kernel(y / s) + log(s) sum(w y / s))
        res.kernel = sc * (res.kernel + shift * ysum)
        return res
    if B == 1 and np.asarray(y).ndim == 1:
        return _newton_one(X, np.asarray(y, dtype=np.float64), col_mask[0],
                           None if cell_mask is None else np.asarray(cell_mask[0], dtype=bool),
                           None if beta0 is None else np.asarray(beta0[0], dtype=np.float64),
                           maxiter, full_cov,
                           None if offset is None else np.asarray(offset, dtype=np.float64))
    n = X.shape[0]
    y = np.asarray(y, dtype=np.float64)
    Y = np.broadcast_to(y, (B, n)) if y.ndim == 1 else y
    W = None if cell_mask is None else np.asarray(cell_mask, dtype=np.float64)
    Off = None if offset is None else np.broadcast_to(np.asarray(offset, dtype=np.float64), (B, n))
    prods, where = _products(X)
    XT = np.ascontiguousarray(X.T)
    out_beta = np.zeros((B, p))
    out_mu = np.zeros((B, n))
    out_cov = np.zeros((B, p, p))
    out_kernel = np.full(B, -np.inf)
    out_exact = np.zeros(B, dtype=bool)
    out_iter = np.zeros(B, dtype=np.int64)
    eye_idx = np.arange(p)

    def hess(mu, cm, cm2):
        H = np.take(mu @ prods, where, axis=1).reshape(-1, p, p)  # take: 2x fancy indexing
        H *= cm2
        H[:, eye_idx, eye_idx] += 1.0 - cm
        return H

    def solve(H, g):
        try:
            return np.linalg.solve(H, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            out = np.empty_like(g)
            for i in range(len(g)):
                try:
                    out[i] = np.linalg.solve(H[i], g[i])
                except np.linalg.LinAlgError:
                    out[i] = np.nan
            return out

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for lo in range(0, B, chunk):
            hi = min(B, lo + chunk)
            nb = hi - lo
            cm_all = col_mask[lo:hi].astype(np.float64)
            w_all = np.ones((nb, n)) if W is None else W[lo:hi]
            y_all = np.ascontiguousarray(Y[lo:hi])
            off_all = None if Off is None else Off[lo:hi]
            if beta0 is None:
                z = np.log(y_all + 0.5) if off_all is None else np.log(y_all + 0.5) - off_all
                z *= w_all
                cm2 = cm_all[:, :, None] * cm_all[:, None, :]
                beta_all = solve(hess(w_all, cm_all, cm2), (z @ X) * cm_all)
                beta_all = np.nan_to_num(beta_all)
            else:
                beta_all = np.array(beta0[lo:hi], dtype=np.float64) * cm_all
            rows_of = _RowCache(y_all, w_all, cm_all, off_all)

            def value(b, rows, rows_of=rows_of):
                yy, w, _, off = rows_of.get(rows)
                eta = b @ XT
                if off is not None:
                    eta += off
                mu = np.exp(eta) * w
                return np.sum(w * yy * eta - mu, axis=1), (mu,)

            def direction(b, aux, rows, certified, rows_of=rows_of):
                yy, w, cm, _ = rows_of.get(rows)
                mu = aux[0]
                grad = ((yy - mu) @ X) * cm
                step = solve(hess(mu, cm, rows_of.cm2(rows)), grad)
                dec = np.sum(grad * step, axis=1)
                # Existence proof. If the MLE did not exist there would be a direction d with
                # X d = 0 on the cells the fit keeps positive and X d = -a_z < 0 on a set Z of
                # empty cells; then at *every* beta, by Cauchy-Schwarz in the H metric, the
                # Newton decrement g'H^-1 g >= (g'd)^2 / d'Hd = (sum_Z mu_z a_z)^2 /
                # sum_Z mu_z a_z^2 >= min_z mu_z * min(a) / max(a). So one iterate whose
                # decrement is below 1e-4 x the smallest fitted value of a kept empty cell
                # (a_max / a_min of a 0/1 design's extreme rays is a small integer) proves the
                # MLE exists, however small the fitted values are (8 sparse lists have legitimate
                # fitted values of 1e-12).
                zmin = np.where((yy == 0) & (w > 0), mu, np.inf).min(axis=1)
                # consistency of the proof: dec = s'Hs >= mu_c (x_c's)^2 for every kept cell
                # c, so at a proving iterate no kept cell's eta moves by more than
                # sqrt(dec / mu_z) < 0.01; a larger move means the decrement was lost to
                # rounding (fitted values of 1e-30 deep in a recession direction)
                eta_step = np.max(np.abs(step @ XT) * (w > 0), axis=1)
                proven = (dec * _EXIST_RATIO < zmin) & (eta_step <= 0.01) & np.isfinite(dec)
                return step, dec, proven

            run = newton(value, direction, beta_all, maxiter=maxiter, certify=True,
                         give_up=GIVE_UP)
            beta_all, ll_all, mu_all = run.x, run.f, run.aux[0]
            iter_all = run.iterations
            exact_all = run.converged & np.isfinite(ll_all) & run.certified
            cm2 = cm_all[:, :, None] * cm_all[:, None, :]
            Hf = hess(mu_all, cm_all, cm2)
            if full_cov:
                try:
                    cov = np.linalg.inv(Hf)
                except np.linalg.LinAlgError:
                    cov = np.full_like(Hf, np.nan)
                    for i in range(nb):
                        try:
                            cov[i] = np.linalg.inv(Hf[i])
                        except np.linalg.LinAlgError:
                            exact_all[i] = False
                cov *= cm2
            else:  # only Var(b0) = (H^-1)[0, 0] is needed for SE(N-hat)
                e0 = np.zeros((nb, p))
                e0[:, 0] = 1.0
                col0 = solve(Hf, e0)
                exact_all &= np.isfinite(col0[:, 0])
                cov = np.zeros((nb, p, p))
                cov[:, :, 0] = col0
                cov[:, 0, :] = col0
            out_beta[lo:hi] = beta_all
            out_mu[lo:hi] = mu_all
            out_cov[lo:hi] = cov
            out_kernel[lo:hi] = ll_all
            out_exact[lo:hi] = exact_all
            out_iter[lo:hi] = iter_all
    return BatchFit(out_beta, out_mu, out_cov, out_kernel, out_exact, out_iter)


#: Designs whose distinct column products :func:`_products` keeps (the searches fit thousands of
#: stacks of models on the same design, one call of :func:`newton_batch` per step).
_PRODUCTS: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_PRODUCTS_KEEP = 4


def _products(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct products of the columns of ``X`` (n, p): ``U`` (n, d) and ``where`` (p * p,)
    with ``X[:, i] * X[:, j] == U[:, where[i * p + j]]`` exactly.

    A Hessian ``sum_c mu_c x_ci x_cj`` of many models is then ``(mu @ U)[:, where]``: one matrix
    product over ``d`` columns instead of ``p * p``. For a 0/1 log-linear design the product of
    two columns is the column of the union of their lists, so ``d`` is the number of sets of
    lists of up to twice the model order: 12 lists with two-way terms, ``p = 79``, have 794
    distinct products against 6,241 (the Hessian products were three quarters of a greedy
    search's time). Candidates for equal columns are found by a random projection and compared
    exactly. The last few designs are kept (a search calls :func:`newton_batch` once per step
    on the same design).

    >>> X = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    >>> U, where = _products(X)
    >>> U.shape[1], bool(np.array_equal(U[:, where], (X[:, :, None] * X[:, None, :]).reshape(3, 9)))
    (4, True)
    """
    n, p = X.shape
    hit = _PRODUCTS.get((id(X), n, p))  # the same array again (a search's design)
    if hit is not None and np.array_equal(hit[0], X):
        return hit[1], hit[2]
    key = (n, p, hash(X.tobytes()))
    hit = _PRODUCTS.get(key)
    if hit is not None and np.array_equal(hit[0], X):
        _remember((id(X), n, p), hit)
        return hit[1], hit[2]
    XT = np.ascontiguousarray(X.T)
    # whole-number weights: for a 0/1 design every projection is a whole number below 2^53,
    # exact in any order of summation, so equal columns always meet
    r = np.random.default_rng(0).integers(1, 2**20, n).astype(np.float64)
    index: dict[float, list[int]] = {}  # projection -> distinct products with it
    rows: list[np.ndarray] = []
    pos = np.empty((p, p), dtype=np.int64)
    for i in range(p):
        block = XT[i] * XT[i:]  # products of column i with columns i, ..., p - 1
        for j, (row, key) in enumerate(zip(block, (block @ r).tolist(), strict=True)):
            same = index.setdefault(key, [])
            k = next((m for m in same if np.array_equal(rows[m], row)), -1)  # exact
            if k < 0:
                k = len(rows)
                rows.append(row)
                same.append(k)
            pos[i, i + j] = pos[i + j, i] = k
    U = np.ascontiguousarray(np.array(rows).T)
    where = pos.ravel()
    entry = (X.copy(), U, where)
    _remember(key, entry)
    _remember((id(X), n, p), entry)
    return U, where


def _remember(key: tuple, entry: tuple) -> None:
    if len(_PRODUCTS) >= 2 * _PRODUCTS_KEEP:  # oldest first (tolerant of another thread)
        try:
            _PRODUCTS.pop(next(iter(_PRODUCTS)), None)
        except (StopIteration, RuntimeError):  # pragma: no cover
            pass
    _PRODUCTS[key] = entry


class _RowCache:
    """The per-model arrays of a chunk of :func:`newton_batch` at the models a Newton callback
    is asked about, taken again only when :func:`~tipstat.models.newton.newton` passes another
    ``rows`` object (it passes the same one until a model finishes)."""

    def __init__(self, y: np.ndarray, w: np.ndarray, cm: np.ndarray, off: np.ndarray | None):
        self._all = (y, w, cm, off)
        self._rows: np.ndarray | None = None
        self._cur: tuple = ()
        self._rows2: np.ndarray | None = None
        self._cm2 = np.zeros((0, 0, 0))

    def get(self, rows: np.ndarray) -> tuple:
        if rows is not self._rows:
            self._rows = rows
            self._cur = tuple(None if a is None else a[rows] for a in self._all)
        return self._cur

    def cm2(self, rows: np.ndarray) -> np.ndarray:
        if rows is not self._rows2:
            cm = self._all[2][rows]
            self._rows2, self._cm2 = rows, cm[:, :, None] * cm[:, None, :]
        return self._cm2


def _newton_one(X: np.ndarray, y: np.ndarray, cols: np.ndarray, cells: np.ndarray | None,
                beta0: np.ndarray | None, maxiter: int, full_cov: bool,
                offset: np.ndarray | None = None) -> BatchFit:
    """:func:`newton_batch` for one model (less overhead: the reduced design is fitted
    directly, by the same iteration with the same existence proof)."""
    n, p = X.shape
    if (cells is None or bool(cells.all())) and bool(cols.all()):
        # the whole design (the common case): no fancy-indexed copy
        b, mu, cov, ll, exact, it = _fit_one(X, y, beta0, maxiter, offset)
        return BatchFit(b[None], mu[None], cov[None], np.array([ll]), np.array([exact]),
                        np.array([it]))
    keep = np.ones(n, dtype=bool) if cells is None else cells
    ci = np.flatnonzero(cols)
    b, mu, inv, ll, exact, it = _fit_one(
        np.ascontiguousarray(X[np.ix_(keep, ci)]), y if cells is None else y[keep],
        None if beta0 is None else beta0[ci], maxiter, None if offset is None else offset[keep])
    beta = np.zeros(p)
    beta[ci] = b
    mu_full = np.zeros(n)
    mu_full[keep] = mu
    cov = np.zeros((p, p))
    cov[np.ix_(ci, ci)] = inv
    return BatchFit(beta[None], mu_full[None], cov[None], np.array([ll]), np.array([exact]),
                    np.array([it]))


def _fit_one(X: np.ndarray, y: np.ndarray, beta0: np.ndarray | None, maxiter: int,
             offset: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float,
                                                 bool, int]:
    """One model on its whole (C-contiguous, full column rank) design ``X``: the iteration of
    :func:`newton_batch` with its existence proof, as ``(beta, mu, cov, kernel, exact,
    iterations)``; ``cov`` is 0 where no Newton direction was computed."""
    XT = np.ascontiguousarray(X.T)
    zi = (y == 0).nonzero()[0]
    z0 = int(zi[0]) if len(zi) else -1
    if beta0 is None:
        b = _start(X, np.log(y + 0.5) if offset is None else np.log(y + 0.5) - offset)
    else:
        b = np.array(beta0, dtype=np.float64)
    computed = False

    def value(bb, rows):
        eta = bb @ XT
        if offset is not None:
            eta += offset
        mu = np.exp(eta)
        return eta @ y - np.add.reduce(mu, axis=1), (mu,)  # = mu.sum(axis=1)

    def direction(bb, aux, rows, certified):
        nonlocal computed
        mu = aux[0][0]
        g = XT @ (y - mu)
        H = (XT * mu) @ X
        step = solve_spd(H, g)
        if step is None:
            return np.zeros_like(bb), math.nan, None
        computed = True
        dec = float(g @ step)
        proven = z0 < 0
        # see newton_batch; the first empty cell bounds the smallest fitted value of all from
        # above, so where it fails the proof fails (and costs no gather)
        if not proven and not certified[0] and math.isfinite(dec) \
                and dec * _EXIST_RATIO < mu[z0]:
            proven = bool(dec * _EXIST_RATIO < float(mu[zi].min())
                          and float(np.max(np.abs(X @ step))) <= 0.01)
        # Python scalars: newton's single-problem loop takes them as they are
        return step[None], dec, proven

    run = newton(value, direction, b[None], maxiter=maxiter, certify=True, give_up=GIVE_UP)
    ll = float(run.f[0])
    mu = run.aux[0][0]
    exact = bool(run.converged[0] and run.certified[0]) and math.isfinite(ll)
    p = X.shape[1]
    cov = None
    if computed:
        with np.errstate(over="ignore", invalid="ignore"):
            H = (XT * mu) @ X
        cov = _inv(H)
        if cov is None:
            exact = False
    if cov is None:
        cov = np.zeros((p, p))
    return run.x[0], mu, cov, ll, exact, int(run.iterations[0])


#: The normal equations give the start where LAPACK's estimate of their reciprocal condition
#: number is above this (their solution is then accurate to ``1e-6`` relative at worst, which the
#: Newton iteration corrects in its first step); below it, the SVD least squares of ``dgelsd``.
_START_RCOND = 1e-10


def _start(X: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The least-squares start ``argmin ||X b - z||`` of a single fit.

    By the normal equations ``X'X b = X'z`` (Cholesky, LAPACK ``dposv``: a third of the cost of
    an SVD on these small designs) where ``X'X`` is well conditioned (reciprocal condition
    number estimated by ``dpocon`` above ``1e-10``), else by :func:`_lstsq` (SVD, minimum-norm
    for a rank-deficient ``X``).

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    >>> np.round(_start(X, np.array([1.0, 2.0, 4.0])), 12).tolist()
    [1.0, 2.0]
    """
    XT = X.T
    G = XT @ X
    c, b, info = _dposv(G, XT @ z)
    if info == 0:
        rcond, info = _dpocon(c, float(np.abs(G).sum(axis=0).max()))
        if info == 0 and rcond > _START_RCOND:
            return b
    return _lstsq(X, z)


_LWORK: dict[tuple[int, int], tuple[int, int]] = {}
_RCOND = float(np.finfo(np.float64).eps)


def _lstsq(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.linalg.lstsq(A, b, rcond=None)[0]`` for a 1-D ``b`` (the same LAPACK ``dgelsd``
    with the same ``rcond = eps * max(m, n)``, without numpy's per-call overhead: a third of a
    small single fit's start)."""
    m, n = A.shape
    if m < n:  # fewer cells than parameters (dgelsd wants b padded): numpy's own call
        return np.linalg.lstsq(A, b, rcond=None)[0]
    work = _LWORK.get((m, n))
    if work is None:
        lw, liw, info = _dgelsd_lwork(m, n, 1, -1)
        work = _LWORK[(m, n)] = (int(lw), int(liw))
    x, _, _, info = _dgelsd(A, b, work[0], work[1], _RCOND * max(m, n), False, False)
    if info != 0:  # pragma: no cover - SVD did not converge
        return np.linalg.lstsq(A, b, rcond=None)[0]
    return x[:n].copy()


def solve_spd(H: np.ndarray, g: np.ndarray) -> np.ndarray | None:
    """``H^{-1} g`` for a symmetric ``H`` (a Newton step) by LAPACK: Cholesky (``dposv``) when
    ``H`` is positive definite, else LU (``dgesv``, what ``numpy.linalg.solve`` calls); None
    if singular. Called directly: little overhead on the small systems of single fits.

    >>> import numpy as np
    >>> solve_spd(np.array([[4.0, 0.0], [0.0, 1.0]]), np.array([2.0, 2.0])).tolist()
    [0.5, 2.0]
    """
    _, x, info = _dposv(H, g)
    if info == 0:
        return x
    _, _, x, info = _dgesv(H, g)
    return x if info == 0 else None


def _inv(H: np.ndarray) -> np.ndarray | None:
    """``np.linalg.inv(H)`` (LAPACK ``dgesv`` against the identity, as numpy computes it) without
    numpy's per-call overhead; ``None`` where ``H`` is singular."""
    _, _, x, info = _dgesv(H, np.eye(H.shape[0]))
    if info != 0:
        return None
    return x
