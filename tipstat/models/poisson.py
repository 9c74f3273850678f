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
from scipy.linalg.lapack import dposv as _dposv
from scipy.optimize import linprog

__all__ = ["Existence", "PoissonFit", "check_existence", "check_existence_strata", "facial_set",
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


#: Counts above this are fitted rescaled to a largest count of ``_SCALE_TO``
#: (:func:`poisson_newton`); every published table lies below, and fits there are unchanged.
_SCALE_ABOVE = 1e6
_SCALE_TO = 1e4
#: Stopping threshold of the Newton decrement for fits of a stack of models (counts rescaled by
#: :func:`_count_scale`): the step taken from there leaves an error in beta of order
#: ``1e-12 * SE``, the precision of :func:`poisson_newton` (1e-8 left 1e-10 relative in N-hat).
_DEC_STOP = 1e-12


def _count_scale(y: np.ndarray) -> np.ndarray:
    """The factor every Newton fit divides the counts by, per table (last axis).

    ``s = max(y) / 1e4`` when ``max(y) > 1e6``, else ``s = 1``. The MLE for ``y / s`` is the MLE
    for ``y`` with the intercept lowered by ``log s`` (``mu(c y) = c mu(y)``), so fitting ``y / s``
    makes the decrement and step thresholds, set for counts up to thousands, mean the same at any
    scale: for counts ``c y`` above ``1e6`` the fit, its iterates and its number of iterations do
    not depend on ``c``; every published table has ``s = 1`` and is fitted unchanged.

    >>> float(_count_scale(np.array([3.0, 2e9])))
    200000.0
    """
    top = np.max(y, axis=-1, initial=0.0)
    return np.where(top > _SCALE_ABOVE, top / _SCALE_TO, 1.0)


def _newton_stops(decrement: np.ndarray | float, tol: float = _DEC_STOP) -> np.ndarray | bool:
    """The one test on the Newton decrement ``g' H^-1 g`` (twice the remaining gain in
    log-likelihood) used by every Newton loop: ``decrement < tol``, on counts rescaled by
    :func:`_count_scale` so that it is invariant to the scale of the counts.

    >>> bool(_newton_stops(5e-13)), bool(_newton_stops(5e-9))
    (True, False)
    """
    return decrement < tol


def poisson_newton(X: np.ndarray, y: np.ndarray, beta: np.ndarray | None = None, *,
                   offset: np.ndarray | None = None, maxiter: int = 100,
                   detect_divergence: bool = True) -> PoissonFit:
    """Maximise ``sum(y * eta - exp(eta))``, ``eta = X @ beta + offset``, by Newton's method.

    ``X`` must have full column rank. Without ``offset`` this is :func:`newton_batch` on a stack
    of one model (``converged`` is its ``exact``: the decrement fell below ``1e-12`` count scales
    and the existence proof held; ``hessian_inv`` its ``cov``), so the single and batched fits are
    one iteration with one stopping rule. With an ``offset`` (profile likelihoods) the loop below
    runs: the fit has *converged* when the Newton decrement
    ``g' H^-1 g`` (twice the remaining gain in log-likelihood) is below ``1e-12`` **and** the
    last step moved no linear predictor by more than ``1e-7``. The second condition is what tells
    a maximum from a divergence: when the MLE does not exist, the decrement also vanishes (the
    gradient and curvature in the divergent direction both shrink with the fitted values) but the
    steps stay of order one, so such a fit returns ``converged=False`` after a few iterations and
    the caller runs the exact linear-programming check. With an ``offset``, pass
    ``detect_divergence=False`` where the MLE is known to exist (a facial set), so that very small
    fitted values are pursued; without one the existence proof of :func:`newton_batch` decides.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if offset is None and X.shape[1]:
        # the one engine: a stack of one model (its existence proof replaces the divergence
        # test below; pinned outputs moved by <= 2.5e-11 relative when this was switched on)
        bf = newton_batch(X, y, np.ones((1, X.shape[1]), dtype=bool),
                          None if beta is None else np.asarray(beta, dtype=np.float64)[None],
                          maxiter=maxiter)
        ok = bool(bf.exact[0])
        return PoissonFit(beta=bf.beta[0], mu=bf.mu[0], converged=ok,
                          iterations=int(bf.iterations[0]), hessian_inv=bf.cov[0] if ok else None)
    scale = float(_count_scale(y))
    if scale > 1.0 and X.shape[1] and np.all(X[:, 0] == 1.0):
        # Counts far above those of any published table: fit y / c, whose MLE is the same with
        # the intercept lowered by log c (mu(c y) = c mu(y)), so that the convergence and
        # divergence thresholds below, set for counts up to thousands, mean the same thing at
        # any scale. The Hessian scales with c, its inverse with 1 / c.
        start = None if beta is None else np.array(beta, dtype=np.float64)
        if start is not None:
            start[0] -= math.log(scale)
        res = poisson_newton(X, y / scale, start, offset=offset, maxiter=maxiter,
                             detect_divergence=detect_divergence)
        b = res.beta.copy()
        b[0] += math.log(scale)
        return PoissonFit(beta=b, mu=res.mu * scale, converged=res.converged,
                          iterations=res.iterations,
                          hessian_inv=None if res.hessian_inv is None else res.hessian_inv / scale)
    XT = X.T
    off = 0.0 if offset is None else offset
    if beta is None:
        # least-squares start on log(y + 1/2) by the normal equations (X has full column rank;
        # a Cholesky solve costs a tenth of an SVD-based lstsq on these small designs)
        eta0 = np.log(y + 0.5) - off
        _, beta, info = _dposv(XT @ X, XT @ eta0)
        if info != 0:
            beta = np.linalg.lstsq(X, eta0, rcond=None)[0]
    beta = np.array(beta, dtype=np.float64)
    eta = X @ beta + off
    mu = np.exp(np.minimum(eta, _ETA_MAX))
    ll = float(y @ eta - mu.sum())
    converged = False
    flat_steps = 0
    it = 0
    H = None
    for it in range(1, maxiter + 1):  # noqa: B007 - `it` is reported
        grad = XT @ (y - mu)
        H = (XT * mu) @ X
        _, step, info = _dposv(H, grad)  # Cholesky solve (LAPACK, little call overhead)
        if info != 0:
            step = np.linalg.lstsq(H, grad, rcond=None)[0]
        decrement = float(grad @ step)
        eta_step = X @ step
        move = float(np.abs(eta_step).max())
        if _newton_stops(decrement, 1e-12) and move < 1e-7:
            beta = beta + step
            eta = eta + eta_step
            mu = np.exp(eta)
            converged = True
            break
        if detect_divergence and _newton_stops(decrement, 1e-6) and move > 0.5:
            # almost no gain from steps of order one: the likelihood rises towards a limit at
            # infinity. Stopping here is always safe: a non-converged fit goes to the exact check.
            flat_steps += 1
            if flat_steps >= 3:
                break
        else:
            flat_steps = 0
        t = 1.0
        while True:
            new_eta = eta + t * eta_step
            new_mu = np.exp(np.minimum(new_eta, _ETA_MAX))
            new_ll = float(y @ new_eta - new_mu.sum())
            if new_ll >= ll - 1e-12 * (1.0 + abs(ll)) or t < 1e-10:
                break
            t *= 0.5
        beta = beta + t * step
        eta, mu, ll = new_eta, new_mu, new_ll
    hinv = None
    if converged:
        H = (XT * mu) @ X
        try:
            hinv = np.linalg.inv(H)
        except np.linalg.LinAlgError:
            hinv = None
    return PoissonFit(beta=beta, mu=mu, converged=converged, iterations=it, hessian_inv=hinv)


def independent_columns(X: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Indices of a maximal set of linearly independent columns, chosen greedily left to right
    (so the intercept and main effects are kept before interactions)."""
    keep: list[int] = []
    basis = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        col = X[:, j]
        if basis.shape[1]:
            resid = col - basis @ (basis.T @ col)
        else:
            resid = col.copy()
        norm = np.linalg.norm(resid)
        if norm > tol * max(1.0, np.linalg.norm(col)):
            keep.append(j)
            basis = np.column_stack([basis, resid / norm])
    return np.asarray(keep, dtype=np.int64)


def facial_set(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the cells that can be positive in a non-negative table with margins
    ``X' y`` (the facial set of Fienberg & Rinaldo). Cells with ``y > 0`` are always in it.

    One linear program on the cone: variables ``m >= 0`` (a table), ``lam >= 0`` (a scale) and
    ``0 <= z_c <= min(1, m_c)`` for the empty cells; ``X'm = lam X'y``; maximise ``sum z``. The
    facial set is a face of the marginal cone, so a positive multiple of the average of the
    tables that make each facial cell positive makes them all ``>= 1`` at once: at the optimum
    ``z_c = 1`` exactly on the facial empty cells (the repeated programs of a fixed-scale
    formulation are not needed). Repeated only as a safeguard against a fractional solution.
    """
    from scipy import sparse

    y = np.asarray(y, dtype=np.float64)
    in_f = y > 0
    n = len(y)
    scale = max(1.0, float(y.max()))
    is_sparse = sparse.issparse(X)
    A_m = X.T.tocsr() if is_sparse else X.T
    t = np.asarray(X.T @ y).ravel() / scale
    while True:
        z_idx = np.flatnonzero(~in_f)
        if len(z_idx) == 0:
            break
        nz = len(z_idx)
        # variables: m (n), lam (1), z (nz); max sum z s.t. X'm - lam t = 0, z <= m
        c = np.concatenate([np.zeros(n + 1), -np.ones(nz)])
        # z_c <= m_c has two non-zeros a row: always sparse (a dense (nz, n + nz) block is
        # what made the stratified existence check slow: HiGHS reads sparse matrices anyway)
        rows = np.concatenate([np.arange(nz), np.arange(nz)])
        cols = np.concatenate([z_idx, n + 1 + np.arange(nz)])
        vals = np.concatenate([-np.ones(nz), np.ones(nz)])
        A_ub = sparse.csr_matrix((vals, (rows, cols)), shape=(nz, n + 1 + nz))
        if is_sparse:  # many strata: the joint design is mostly zeros
            A_eq = sparse.hstack([A_m, sparse.csr_matrix(-t[:, None]),
                                  sparse.csr_matrix((X.shape[1], nz))], format="csr")
        else:
            A_eq = np.hstack([A_m, -t[:, None], np.zeros((X.shape[1], nz))])
        bounds = [(0, None)] * (n + 1) + [(0, 1)] * nz
        res = linprog(c, A_ub=A_ub, b_ub=np.zeros(nz), A_eq=A_eq, b_eq=np.zeros(len(t)),
                      bounds=bounds, method="highs")
        if res.status != 0:  # pragma: no cover - the observed table is always feasible
            raise RuntimeError(f"existence LP failed: {res.message}")
        newly = z_idx[res.x[n + 1:] > 1e-9]
        if len(newly) == 0:
            break
        in_f[newly] = True
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


def _recession_d0_range(X_f: np.ndarray, X_z: np.ndarray) -> tuple[bool, bool]:
    """Can the intercept component of a recession direction be <= 0 / >= 0?

    Recession directions: ``X_f d = 0`` (fitted values on the facial set unchanged) and
    ``X_z d <= -1`` (cells outside it driven to zero); box ``|d| <= 1e6`` keeps the LP bounded.
    """
    p = X_f.shape[1]
    results = []
    for sign in (1.0, -1.0):
        c = np.zeros(p)
        c[0] = sign  # minimise d0 (sign=1) or maximise it (sign=-1)
        res = linprog(c, A_ub=X_z if len(X_z) else None,
                      b_ub=-np.ones(len(X_z)) if len(X_z) else None,
                      A_eq=X_f, b_eq=np.zeros(X_f.shape[0]),
                      bounds=[(-1e6, 1e6)] * p, method="highs")
        results.append(res)
    lo, hi = results
    feasible = lo.status == 0
    if not feasible:  # pragma: no cover - the facial set guarantees a recession direction
        return False, False
    d0_min = lo.fun
    d0_max = -hi.fun
    return d0_min <= 1e-9, d0_max >= -1e-9


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
    key = X.tobytes() + b"|" + rows.tobytes() + b"|" + cols.astype(np.int64).tobytes()
    ok = _REDUCED_RANK.get(key)
    if ok is None:
        ok = bool(np.linalg.matrix_rank(X[np.ix_(rows, cols)]) == len(cols))
        if len(_REDUCED_RANK) > 4096:
            _REDUCED_RANK.clear()
        _REDUCED_RANK[key] = ok
    return ok


def check_existence(X: np.ndarray, y: np.ndarray, cell_labels: list[str] | None = None,
                    facial: np.ndarray | None = None) -> Existence:
    """Existence of the MLE and identifiability of N for the observable design ``X`` (rows:
    observable cells, first column the intercept) and counts ``y``.

    Both depend on the counts only through which cells are empty (the facial set is the smallest
    face of the marginal cone holding the rows of the non-empty cells), so results are cached by
    design and zero pattern: bootstrap replicates and model searches that meet the same
    pattern again skip the linear programs.
    """
    y = np.asarray(y, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    key = None
    if facial is None:
        key = (X.shape, hash(X.tobytes()), (y > 0).tobytes(),
               None if cell_labels is None else tuple(cell_labels))
        hit = _EXISTENCE_CACHE.get(key)
        if hit is not None:
            return hit
    out = _check_existence(X, y, cell_labels, facial)
    if key is not None:
        if len(_EXISTENCE_CACHE) >= _EXISTENCE_CACHE_SIZE:
            _EXISTENCE_CACHE.clear()
        for arr in (out.facial, out.columns):
            arr.setflags(write=False)
        _EXISTENCE_CACHE[key] = out
    return out


_EXISTENCE_CACHE: dict = {}
_EXISTENCE_CACHE_SIZE = 50_000


def _check_existence(X: np.ndarray, y: np.ndarray, cell_labels: list[str] | None,
                     facial: np.ndarray | None) -> Existence:
    if facial is None:
        facial = facial_set(X, y) if np.any(y == 0) else np.ones(len(y), dtype=bool)
    X_f = X[facial]
    cols = independent_columns(X_f)
    a0 = np.zeros(X.shape[1])
    a0[0] = 1.0
    # a0 in the row space of X_f  <=>  rank([X_f; a0]) == rank(X_f)
    in_rowspace = np.linalg.matrix_rank(np.vstack([X_f, a0])) == np.linalg.matrix_rank(X_f)
    zero_cells = np.flatnonzero(~facial)
    labels = cell_labels or [str(i + 1) for i in range(len(y))]
    outside = ", ".join(labels[i] for i in zero_cells[:12]) + (
        ", ..." if len(zero_cells) > 12 else "")
    if in_rowspace:
        if facial.all():
            return Existence("ok", facial, cols, "the MLE exists and N is identified")
        return Existence(
            "extended", facial, cols,
            f"the MLE is on the boundary: empty cells {outside} have fitted value 0 (their "
            "interaction parameters are infinite); the extended MLE of N is finite and unique",
        )
    can_le0, can_ge0 = _recession_d0_range(X_f, X[~facial])
    if not facial.all() and not can_le0:
        return Existence(
            "does_not_exist", facial, cols,
            f"the MLE does not exist: fitting the empty cells {outside} to zero drives the "
            "unobserved cell to infinity, so N-hat is infinite under this model",
        )
    if not facial.all() and not can_ge0:
        return Existence(
            "does_not_exist", facial, cols,
            f"the MLE does not exist: fitting the empty cells {outside} to zero drives the "
            "unobserved cell to zero (N-hat would equal the observed count)",
        )
    if facial.all():
        reason = ("N is not identifiable: the model has more free parameters than the "
                  "observable cells determine (design rank deficient)")
    else:
        reason = (f"N is not identifiable: the empty cells {outside} leave the model with more "
                  "free parameters than the remaining cells determine; any N fits equally well")
    return Existence("not_identifiable", facial, cols, reason)


def check_existence_strata(X: np.ndarray, y: np.ndarray, group: np.ndarray,
                           cell_labels: list[str] | None = None) -> Existence:
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
    ``X`` estimable given the stratum effects.

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
    gl = np.unique(group[rows], return_inverse=True)[1]
    Xl, yl = X[rows], y[rows]
    facial = np.zeros(n, dtype=bool)
    if np.any(yl == 0):
        n_live = int(gl.max()) + 1
        if len(rows) * (n_live + p) <= 500_000:  # small: dense LP matrices (less overhead)
            D = np.zeros((len(rows), n_live))
            D[np.arange(len(rows)), gl] = 1.0
            f_live = facial_set(np.hstack([D, Xl]), yl)
        else:
            D = sparse.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), gl)))
            f_live = facial_set(sparse.hstack([D, sparse.csr_matrix(Xl)], format="csr"), yl)
    else:
        f_live = np.ones(len(rows), dtype=bool)
    facial[rows] = f_live
    XF, gF = Xl[f_live], gl[f_live]
    # within-stratum centring over the facial cells removes the stratum effects
    cnt = np.bincount(gF, minlength=gl.max() + 1 if len(gl) else 0).astype(float)
    means = np.zeros((len(cnt), p))
    np.add.at(means, gF, XF)
    means /= np.maximum(cnt, 1.0)[:, None]
    Xc = XF - means[gF]
    cols = independent_columns(Xc) if p else np.zeros(0, dtype=np.int64)
    # null space of the centred design: b with X_F b constant within every stratum
    if p:
        # only V is needed: the thin SVD unless there are fewer rows than columns (then the
        # full V spans the null space the thin one leaves out); a full U would be n x n
        _, sv, vt = np.linalg.svd(Xc, full_matrices=Xc.shape[0] < Xc.shape[1])
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
    labels = cell_labels or [str(i + 1) for i in range(n)]
    zero_cells = np.flatnonzero(live & ~facial)
    outside = ", ".join(labels[i] for i in zero_cells[:12]) + (
        ", ..." if len(zero_cells) > 12 else "")
    if len(unident) == 0:
        if len(zero_cells) == 0:
            return Existence("ok", facial, cols, "the MLE exists and N is identified")
        return Existence(
            "extended", facial, cols,
            f"the MLE is on the boundary: empty cells {outside} have fitted value 0 (their "
            "interaction parameters are infinite); the extended MLE of N is finite and unique")
    if len(zero_cells):
        Xl_z = Xl[~f_live]
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
                    "the unobserved cell of a stratum to infinity, so N-hat is infinite under "
                    "this model")
            if -hi.fun < -1e-9:
                return Existence(
                    "does_not_exist", facial, cols,
                    f"the MLE does not exist: fitting the empty cells {outside} to zero drives "
                    "the unobserved cell of a stratum to zero (N-hat would equal the observed "
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
                 maxiter: int = 60, chunk: int = 4096, full_cov: bool = True) -> BatchFit:
    """Fit many Poisson log-linear models at once by vectorised Newton-Raphson.

    Model ``b`` uses the columns ``col_mask[b]`` of the full design ``X`` (n, p) and the cells
    ``cell_mask[b]`` (the others are fixed at fitted value 0, as for cells that a zero margin
    forces to be empty). Its Hessian ``sum_c w_bc mu_bc x_c x_c'`` is computed for all models by
    one matrix product of the fitted values with the precomputed products ``x_ci x_cj`` (upper
    triangle); masked parameters get an identity block so that one batched solve serves every
    model. Each model stops after the step taken where its Newton decrement ``g' H^-1 g`` was
    below ``1e-12`` (:func:`_newton_stops`, as :func:`poisson_newton`) and its existence
    is proved. Counts above ``1e6`` are fitted rescaled (:func:`_count_scale`), so convergence
    does not depend on the scale of the counts.

    ``y`` is (n,) (one table) or (B, n) (one table per model, e.g. bootstrap replicates);
    ``beta0`` (B, p) are starting values (e.g. the fit of a neighbouring model). With
    ``full_cov=False`` only the first row and column of the inverse information (what the SE of
    N-hat needs) are computed.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    col_mask = np.asarray(col_mask, dtype=bool)
    B, p = col_mask.shape
    y = np.asarray(y, dtype=np.float64)
    scale = _count_scale(y)
    if np.any(scale > 1.0) and p and np.all(X[:, 0] == 1.0) and col_mask[:, 0].all():
        # counts above the published range: fit y / s (see _count_scale, poisson_newton), so the
        # stopping and existence rules below are invariant to the scale of the counts
        shift = np.broadcast_to(np.log(scale), (B,))
        Ys = y / (scale[:, None] if y.ndim == 2 else scale)
        start = None
        if beta0 is not None:
            start = np.array(beta0, dtype=np.float64)
            start[:, 0] -= shift
        res = newton_batch(X, Ys, col_mask, cell_mask, start, maxiter=maxiter, chunk=chunk,
                           full_cov=full_cov)
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
                           maxiter, full_cov)
    n = X.shape[0]
    y = np.asarray(y, dtype=np.float64)
    Y = np.broadcast_to(y, (B, n)) if y.ndim == 1 else y
    W = None if cell_mask is None else np.asarray(cell_mask, dtype=np.float64)
    outer = (X[:, :, None] * X[:, None, :]).reshape(n, p * p)
    XT = np.ascontiguousarray(X.T)
    out_beta = np.zeros((B, p))
    out_mu = np.zeros((B, n))
    out_cov = np.zeros((B, p, p))
    out_kernel = np.full(B, -np.inf)
    out_exact = np.zeros(B, dtype=bool)
    out_iter = np.zeros(B, dtype=np.int64)
    eye_idx = np.arange(p)

    def hess(mu, cm, cm2):
        H = (mu @ outer).reshape(-1, p, p)
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
            if beta0 is None:
                z = np.log(y_all + 0.5) * w_all
                cm2 = cm_all[:, :, None] * cm_all[:, None, :]
                beta_all = solve(hess(w_all, cm_all, cm2), (z @ X) * cm_all)
                beta_all = np.nan_to_num(beta_all)
            else:
                beta_all = np.array(beta0[lo:hi], dtype=np.float64) * cm_all
            eta = beta_all @ XT
            mu_all = np.exp(eta) * w_all
            ll_all = np.sum(w_all * y_all * eta - mu_all, axis=1)
            exact_all = np.zeros(nb, dtype=bool)
            proven_all = np.zeros(nb, dtype=bool)
            iter_all = np.zeros(nb, dtype=np.int64)
            # active (compacted) working copies
            act = np.arange(nb)
            beta, mu, ll = beta_all, mu_all, ll_all
            yy, w, cm = y_all, w_all, cm_all
            cm2 = cm[:, :, None] * cm[:, None, :]
            for it in range(1, maxiter + 1):
                if len(act) == 0:
                    break
                grad = ((yy - mu) @ X) * cm
                step = solve(hess(mu, cm, cm2), grad)
                dec = np.sum(grad * step, axis=1)
                bad_model = ~np.isfinite(dec)
                step[bad_model] = 0.0
                t = np.ones(len(act))
                new_b = beta + step
                new_eta = new_b @ XT
                new_mu = np.exp(new_eta) * w
                new_ll = np.sum(w * yy * new_eta - new_mu, axis=1)
                for _ in range(40):
                    worse = ~(np.isfinite(new_ll) & (new_ll >= ll - 1e-12 * (1 + np.abs(ll))))
                    worse &= ~bad_model
                    if not worse.any():
                        break
                    wi = np.flatnonzero(worse)
                    t[wi] *= 0.5
                    new_b[wi] = beta[wi] + t[wi, None] * step[wi]
                    new_eta_w = new_b[wi] @ XT
                    new_mu[wi] = np.exp(new_eta_w) * w[wi]
                    new_ll[wi] = np.sum(w[wi] * yy[wi] * new_eta_w - new_mu[wi], axis=1)
                # Existence proof. If the MLE did not exist there would be a direction d with
                # X d = 0 on the cells the fit keeps positive and X d = -a_z < 0 on a set Z of
                # empty cells; then at *every* beta, by Cauchy-Schwarz in the H metric, the
                # Newton decrement g'H^-1 g >= (g'd)^2 / d'Hd = (sum_Z mu_z a_z)^2 /
                # sum_Z mu_z a_z^2 >= min_z mu_z * min(a) / max(a). So one iterate whose
                # decrement is below 1e-4 x the smallest fitted value of a kept empty cell
                # (a_max / a_min of a 0/1 design's extreme rays is a small integer) proves the
                # MLE exists, however small the fitted values are (8 sparse lists have legitimate
                # fitted values of 1e-12).
                zk = (yy == 0) & (w > 0)
                zmin = np.where(zk, mu, np.inf).min(axis=1)
                # consistency of the proof: dec = s'Hs >= mu_c (x_c's)^2 for every kept cell
                # c, so at a proving iterate no kept cell's eta moves by more than
                # sqrt(dec / mu_z) < 0.01; a larger move means the decrement was lost to
                # rounding (fitted values of 1e-30 deep in a recession direction)
                eta_step = np.max(np.abs(step @ XT) * (w > 0), axis=1)
                proven = (dec * _EXIST_RATIO < zmin) & (eta_step <= 0.01) & ~bad_model
                proven_all[act[proven]] = True
                # the step just taken from a point with decrement < 1e-12 leaves ~1e-24
                conv = _newton_stops(dec) & ~bad_model & proven_all[act]
                fin = conv | bad_model | ((it >= 15) & ~proven_all[act])
                beta_all[act] = new_b
                mu_all[act] = new_mu
                ll_all[act] = new_ll
                iter_all[act] = it
                exact_all[act[conv]] = True
                keep = ~fin
                act = act[keep]
                beta, mu, ll = new_b[keep], new_mu[keep], new_ll[keep]
                yy, w, cm, cm2 = yy[keep], w[keep], cm[keep], cm2[keep]
            exact_all &= np.isfinite(ll_all) & proven_all
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


def _newton_one(X: np.ndarray, y: np.ndarray, cols: np.ndarray, cells: np.ndarray | None,
                beta0: np.ndarray | None, maxiter: int, full_cov: bool) -> BatchFit:
    """:func:`newton_batch` for one model (less overhead: the reduced design is fitted
    directly, with the same stopping and existence-proof rules)."""
    n, p = X.shape
    keep = np.ones(n, dtype=bool) if cells is None else cells
    ci = np.flatnonzero(cols)
    Xr = np.ascontiguousarray(X[np.ix_(keep, ci)])
    yr = y[keep]
    zero = yr == 0
    if beta0 is None:
        b = np.linalg.lstsq(Xr, np.log(yr + 0.5), rcond=None)[0]
    else:
        b = beta0[ci].copy()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        eta = Xr @ b
        mu = np.exp(eta)
        ll = float(yr @ eta - mu.sum())
        proven = not zero.any()
        exact = False
        it = 0
        H = None
        for it in range(1, maxiter + 1):
            g = Xr.T @ (yr - mu)
            H = (Xr.T * mu) @ Xr
            try:
                step = np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                break
            dec = float(g @ step)
            if not math.isfinite(dec):
                break
            if (not proven and dec * _EXIST_RATIO < float(mu[zero].min())
                    and float(np.max(np.abs(Xr @ step))) <= 0.01):  # see newton_batch
                proven = True
            t = 1.0
            while True:
                nb_ = b + t * step
                ne = Xr @ nb_
                nm = np.exp(ne)
                nl = float(yr @ ne - nm.sum())
                if math.isfinite(nl) and nl >= ll - 1e-12 * (1 + abs(ll)):
                    break
                t *= 0.5
                if t < 1e-12:
                    break
            b, eta, mu, ll = nb_, ne, nm, nl
            if _newton_stops(dec) and proven:  # the step just taken leaves ~dec^2
                exact = True
                break
            if it >= 15 and not proven:
                break
        beta = np.zeros(p)
        beta[ci] = b
        mu_full = np.zeros(n)
        mu_full[keep] = mu
        cov = np.zeros((p, p))
        if H is not None:
            H = (Xr.T * mu) @ Xr
            try:
                inv = np.linalg.inv(H)
                cov[np.ix_(ci, ci)] = inv
            except np.linalg.LinAlgError:
                exact = False
    exact = exact and math.isfinite(ll)
    return BatchFit(beta[None], mu_full[None], cov[None], np.array([ll]), np.array([exact]),
                    np.array([it]))
