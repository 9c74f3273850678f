"""The one damped Newton iteration behind every maximum-likelihood and posterior-mode fit.

Every fit of tipstat that maximises a smooth concave objective ``f(x)`` (the Poisson
log-likelihood of a stack of log-linear models, the profiled likelihood of the stratified
joint model, the moment-based fit of many lists, a log posterior of the Bayesian model
average) runs :func:`newton`: from ``x``, the caller's Newton direction ``s = H^-1 g`` and
decrement ``d = g' H^-1 g`` (twice the gain the step promises); the step ``x + t s`` with ``t``
halved until ``f`` does not fall by more than ``1e-12 (1 + |f|)`` (at most 40 halvings);
stop *after* the step taken where

    ``d < 1e-12 * scale``

(``scale`` the count scale of the data, :func:`count_scale`: 1 for
every published table, ``max(y) / 1e4`` above counts of ``1e6``). ``f``, ``g`` and ``H`` of a
likelihood grow in proportion to the counts while the step does not, so this test stops a fit of
the counts ``c y`` at the same iterate, after the same number of iterations, whatever ``c``
above the published range. The step taken from ``d < 1e-12`` count scales leaves an error of
order ``1e-12`` standard errors in ``x`` (quadratic convergence).

The caller supplies only its linear algebra: ``value(x, rows)`` (the objective of problems
``rows`` at the points ``x``, and any arrays the direction needs there, e.g. the fitted values)
and ``direction(x, aux, rows, certified)`` (the step, the decrement and optionally a
*certificate*: a sticky per-problem flag, e.g. the proof that the MLE exists, without which a
fit may not stop as converged). Problems are handled as a stack (rows of ``x``), compacted as
they finish, so a fit of thousands of models is one vectorised iteration (``rows`` is the same
object until a problem finishes, so a caller may keep per-row slices taken for it); a single fit
is a stack of one, run by the same rules with Python scalars.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["DEC_STOP", "NewtonRun", "count_scale", "newton"]

#: Stop after the step taken where the Newton decrement was below this many count scales.
DEC_STOP = 1e-12
#: Most step halvings of one line search.
HALVINGS = 40
#: Fits that need a certificate give up (not converged) after this many iterations without one.
GIVE_UP = 15
#: A step is accepted when the objective does not fall by more than this, relative.
_ACCEPT = 1e-12
#: With ``stall=True``, a step changing the objective by less than this (relative) ends the fit.
_STALL = 1e-10
#: Counts above this are fitted as if their largest count were ``_SCALE_TO`` (every published
#: table lies below, and its fits are unchanged).
_SCALE_ABOVE = 1e6
_SCALE_TO = 1e4


def count_scale(y: np.ndarray) -> np.ndarray:
    """The count scale of a table (last axis): the unit of the Newton decrement in :func:`newton`.

    ``s = max(y) / 1e4`` when ``max(y) > 1e6``, else ``s = 1``. The MLE for ``y / s`` is the MLE
    for ``y`` with the intercept lowered by ``log s`` (``mu(c y) = c mu(y)``), and the decrement
    of a likelihood at counts ``c y`` is ``c`` times that at ``y``; so measuring the decrement
    in count scales (or fitting ``y / s``) makes the stopping rule, set for counts up to
    thousands, mean the same at any scale: for counts ``c y`` above ``1e6`` a fit, its iterates
    and its number of iterations do not depend on ``c``; every published table has ``s = 1``.

    >>> float(count_scale(np.array([3.0, 2e9])))
    200000.0
    """
    top = np.max(y, axis=-1, initial=0.0)
    return np.where(top > _SCALE_ABOVE, top / _SCALE_TO, 1.0)


@dataclass
class NewtonRun:
    """Outcome of :func:`newton` for a stack of ``B`` problems.

    ``x`` (B, p) the last iterates, ``f`` (B,) the objective there and ``aux`` the caller's
    arrays there (each with leading axis B); ``converged`` the stopping test was met (with the
    certificate where one is required); ``certified`` the certificate was seen at some iterate;
    ``iterations`` the Newton directions computed; ``failed`` the direction was not finite or no
    halving of the step raised the objective (the fit stopped where it was).
    """

    x: np.ndarray
    f: np.ndarray
    aux: tuple
    converged: np.ndarray
    certified: np.ndarray
    iterations: np.ndarray
    failed: np.ndarray


Value = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, tuple]]
Direction = Callable[[np.ndarray, tuple, np.ndarray, np.ndarray],
                     tuple[np.ndarray, np.ndarray, np.ndarray | None]]


def _take(aux: tuple, idx) -> tuple:
    return tuple(a[idx] for a in aux)


def _put(dst: tuple, idx, src: tuple) -> None:
    for a, b in zip(dst, src, strict=True):
        a[idx] = b


def newton(value: Value, direction: Direction, x0: np.ndarray, *,
           scale: np.ndarray | float = 1.0, maxiter: int = 100, certify: bool = False,
           give_up: int | None = None, stall: bool = False) -> NewtonRun:
    """Damped Newton ascent of a stack of concave objectives with the one stopping rule.

    Parameters
    ----------
    value : callable
        ``value(x, rows) -> (f, aux)``: objective ``f`` (m,) of the problems ``rows`` (m,) at
        ``x`` (m, p) (``-inf`` or ``nan`` where undefined) and a tuple of arrays with leading
        axis m that ``direction`` needs at those points.
    direction : callable
        ``direction(x, aux, rows, certified) -> (step, dec, cert)``: Newton step (m, p),
        decrement ``g' H^-1 g`` (m,) (not finite: the fit stops, failed) and the certificate at
        ``x`` (m,) bool, or ``None``. ``certified`` says which problems already hold it.
    x0 : numpy.ndarray
        Starting points (B, p).
    scale : float or numpy.ndarray
        Count scale per problem: the fit stops after the step taken where
        ``dec < DEC_STOP * scale``.
    maxiter : int
        Most Newton directions per problem.
    certify : bool
        Stop as converged only once the certificate holds.
    give_up : int, optional
        Stop (not converged) after this many iterations without the certificate.
    stall : bool
        Also stop, as converged, after a step that changed ``f`` by less than ``1e-10``
        relative (fits on the boundary of the parameter space, where the decrement need not
        vanish); the certificate is then taken at the point reached.

    Returns
    -------
    NewtonRun

    Examples
    --------
    The Poisson mean of the counts 3 and 5 (``f(b) = 8 b - 2 exp(b)``, maximum ``log 4``):

    >>> import numpy as np
    >>> def value(x, rows):
    ...     return 8 * x[:, 0] - 2 * np.exp(x[:, 0]), ()
    >>> def direction(x, aux, rows, certified):
    ...     g, h = 8 - 2 * np.exp(x[:, 0]), 2 * np.exp(x[:, 0])
    ...     return (g / h)[:, None], g * g / h, None
    >>> run = newton(value, direction, np.zeros((1, 1)))
    >>> bool(run.converged[0]), round(float(np.exp(run.x[0, 0])), 12), int(run.iterations[0])
    (True, 4.0, 5)
    """
    x_all = np.array(x0, dtype=np.float64)
    B = len(x_all)
    if B == 1:
        return _newton_single(value, direction, x_all,
                              scale if scale.__class__ is float else float(np.ravel(scale)[0]),
                              maxiter, certify, give_up, stall)
    scale_all = np.broadcast_to(np.asarray(scale, dtype=np.float64), (B,))
    rows_all = np.arange(B)
    f_all, aux_all = value(x_all, rows_all)
    f_all = np.array(f_all, dtype=np.float64)
    aux_all = tuple(np.array(a) for a in aux_all)
    converged = np.zeros(B, dtype=bool)
    certified = np.zeros(B, dtype=bool)
    failed = np.zeros(B, dtype=bool)
    iterations = np.zeros(B, dtype=np.int64)
    act = rows_all
    x, f, aux = x_all, f_all, aux_all
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for it in range(1, maxiter + 1):
            if not len(act):
                break
            step, dec, cert = direction(x, aux, act, certified[act])
            dec = np.asarray(dec, dtype=np.float64)
            if cert is not None:
                certified[act[np.asarray(cert, dtype=bool)]] = True
            bad = ~np.isfinite(dec)
            if bad.any():
                step = np.where(bad[:, None], 0.0, step)
            # damped step: halve until the objective does not fall
            t = np.ones(len(act))
            cand = x + step
            fc, auxc = value(cand, act)
            fc = np.array(fc, dtype=np.float64)
            auxc = tuple(np.array(a) for a in auxc)
            ok = (np.isfinite(fc) & (fc >= f - _ACCEPT * (1.0 + np.abs(f)))) | bad
            for _ in range(HALVINGS):
                if ok.all():
                    break
                wi = np.flatnonzero(~ok)
                t[wi] *= 0.5
                cand[wi] = x[wi] + t[wi, None] * step[wi]
                fw, auxw = value(cand[wi], act[wi])
                fc[wi] = fw
                _put(auxc, wi, auxw)
                ok[wi] = np.isfinite(fw) & (fw >= f[wi] - _ACCEPT * (1.0 + np.abs(f[wi])))
            lost = ~ok  # no halving helped: stay where the fit is
            if lost.any():
                li = np.flatnonzero(lost)
                cand[li] = x[li]
                fc[li] = f[li]
                _put(auxc, li, _take(aux, li))
            stalled = np.zeros(len(act), dtype=bool)
            if stall:
                stalled = (np.abs(fc - f) < _STALL * (1.0 + np.abs(f))) & ~bad & ~lost
            small = (dec < DEC_STOP * scale_all[act]) & ~bad
            cert_now = certified[act]
            conv = small & (cert_now | (not certify))
            fin = conv | bad | lost | stalled
            if give_up is not None and it >= give_up:
                fin |= ~cert_now
            x_all[act], f_all[act] = cand, fc
            _put(aux_all, act, auxc)
            iterations[act] = it
            converged[act] = conv | stalled
            failed[act] = bad | (lost & ~conv)
            if stall and (stalled & ~cert_now).any():
                # the certificate at the point reached by a stalled fit
                si = np.flatnonzero(stalled & ~cert_now)
                cert_s = direction(cand[si], _take(auxc, si), act[si], cert_now[si])[2]
                if cert_s is not None:
                    certified[act[si[np.asarray(cert_s, dtype=bool)]]] = True
            if fin.any():  # compact (else the caller sees the same ``rows`` object again)
                keep = ~fin
                act = act[keep]
                x, f, aux = cand[keep], fc[keep], _take(auxc, keep)
            else:
                x, f, aux = cand, fc, auxc
    return NewtonRun(x_all, f_all, aux_all, converged, certified, iterations, failed)


def _newton_single(value: Value, direction: Direction, x: np.ndarray, scale: float,
                   maxiter: int, certify: bool, give_up: int | None, stall: bool) -> NewtonRun:
    """:func:`newton` for a stack of one, step for step the same rules with Python scalars
    (a single small fit spends most of its time in the bookkeeping of the stack)."""
    rows = np.zeros(1, dtype=np.int64)
    f_arr, aux = value(x, rows)
    f = float(f_arr[0])
    certified = converged = failed = False
    cert_in = np.zeros(1, dtype=bool)
    it = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for it in range(1, maxiter + 1):
            cert_in[0] = certified
            step, dec, cert = direction(x, aux, rows, cert_in)
            # a single-problem direction may return its decrement and certificate as scalars
            d = dec if dec.__class__ is float else float(dec[0])
            if cert is not None and (cert if cert.__class__ is bool else bool(cert[0])):
                certified = True
            if not math.isfinite(d):
                failed = True
                break
            floor = f - _ACCEPT * (1.0 + abs(f))
            t = 1.0
            lost = True
            for _ in range(HALVINGS + 1):
                cand = x + t * step if t != 1.0 else x + step
                fc_arr, auxc = value(cand, rows)
                fc = float(fc_arr[0])
                if math.isfinite(fc) and fc >= floor:
                    lost = False
                    break
                t *= 0.5
            if lost:  # no halving helped: stay where the fit is
                cand, fc, auxc = x, f, aux
            stalled = stall and not lost and abs(fc - f) < _STALL * (1.0 + abs(f))
            conv = d < DEC_STOP * scale and (certified or not certify)
            x, f, aux = cand, fc, auxc
            converged = conv or stalled
            failed = lost and not conv
            if stalled and not certified:  # the certificate at the point reached
                cert_in[0] = False
                cert_s = direction(x, aux, rows, cert_in)[2]
                certified = cert_s is not None and bool(
                    cert_s if cert_s.__class__ is bool else cert_s[0])
            if conv or lost or stalled or (give_up is not None and it >= give_up
                                           and not certified):
                break
    return NewtonRun(x, np.array([f]), aux, np.array([converged]), np.array([certified]),
                     np.array([it], dtype=np.int64), np.array([failed]))
