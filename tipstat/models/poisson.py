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

from dataclasses import dataclass

import numpy as np
from scipy import linalg
from scipy.optimize import linprog

__all__ = ["Existence", "PoissonFit", "check_existence", "facial_set", "independent_columns",
           "poisson_newton"]

# A fitted value below this (relative to the largest count, with a floor of 1e-6) on a zero
# cell sends the fit to the exact linear-programming check.
_SMALL_FITTED = 1e-6


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

    ``X`` must have full column rank. Converges when the Newton decrement ``g' H^-1 g`` (twice
    the remaining gain in log-likelihood) is below ``1e-12``, then takes one more step.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    off = 0.0 if offset is None else offset
    if beta is None:
        eta0 = np.log(y + 0.5) - off
        beta = np.linalg.lstsq(X, eta0, rcond=None)[0]
    beta = np.array(beta, dtype=np.float64)
    eta = X @ beta + off
    mu = np.exp(eta)
    ll = float(y @ eta - mu.sum())
    converged = False
    extra = False
    it = 0
    hinv_factor = None
    for it in range(1, maxiter + 1):  # noqa: B007 - `it` is reported
        grad = X.T @ (y - mu)
        H = (X.T * mu) @ X
        try:
            hinv_factor = linalg.cho_factor(H, lower=True, check_finite=False)
            step = linalg.cho_solve(hinv_factor, grad, check_finite=False)
        except linalg.LinAlgError:
            hinv_factor = None
            step = np.linalg.lstsq(H, grad, rcond=None)[0]
        decrement = float(grad @ step)
        if extra:
            beta = beta + step
            eta = X @ beta + off
            mu = np.exp(eta)
            converged = True
            break
        t = 1.0
        while True:
            new_beta = beta + t * step
            new_eta = X @ new_beta + off
            with np.errstate(over="ignore"):
                new_mu = np.exp(new_eta)
            new_ll = float(y @ new_eta - new_mu.sum())
            if np.isfinite(new_ll) and new_ll >= ll - 1e-12 * (1.0 + abs(ll)):
                break
            t *= 0.5
            if t < 1e-10:
                break
        beta, eta, mu, ll = new_beta, new_eta, new_mu, new_ll
        if decrement < 1e-12:
            extra = True
    if hinv_factor is not None:
        H = (X.T * mu) @ X
        try:
            hinv = linalg.cho_solve(linalg.cho_factor(H, lower=True, check_finite=False),
                                    np.eye(len(beta)), check_finite=False)
        except linalg.LinAlgError:
            hinv = None
    else:
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

    Solved by linear programs: maximise the number of zero cells made positive (each capped
    at 1), repeated on the remaining zero cells until none can be added.
    """
    y = np.asarray(y, dtype=np.float64)
    in_f = y > 0
    n = len(y)
    scale = max(1.0, float(y.max()))
    A_eq_m = X.T / scale
    b_eq = X.T @ y / scale
    while True:
        z_idx = np.flatnonzero(~in_f)
        if len(z_idx) == 0:
            break
        nz = len(z_idx)
        # variables: m (n cells, >= 0), z (nz, 0..1); max sum z  s.t. X'm = X'y, z <= m
        c = np.concatenate([np.zeros(n), -np.ones(nz)])
        A_eq = np.hstack([A_eq_m, np.zeros((X.shape[1], nz))])
        A_ub = np.zeros((nz, n + nz))
        A_ub[np.arange(nz), z_idx] = -1.0
        A_ub[np.arange(nz), n + np.arange(nz)] = 1.0
        bounds = [(0, None)] * n + [(0, 1)] * nz
        res = linprog(c, A_ub=A_ub, b_ub=np.zeros(nz), A_eq=A_eq, b_eq=b_eq, bounds=bounds,
                      method="highs")
        if res.status != 0:  # pragma: no cover - the observed table is always feasible
            raise RuntimeError(f"existence LP failed: {res.message}")
        newly = z_idx[res.x[n:] > 1e-9]
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


def check_existence(X: np.ndarray, y: np.ndarray, cell_labels: list[str] | None = None,
                    facial: np.ndarray | None = None) -> Existence:
    """Existence of the MLE and identifiability of N for the observable design ``X`` (rows:
    observable cells, first column the intercept) and counts ``y``."""
    y = np.asarray(y, dtype=np.float64)
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
