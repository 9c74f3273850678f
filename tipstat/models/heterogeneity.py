"""The closed-population models of Rcapture's ``closedp.t`` as log-linear designs.

Each model is a :class:`~tipstat.models.design.Design` (a name plus a matrix over the ``2**K``
capture patterns) fitted by the shared engine (:func:`tipstat.models.loglinear._fit`, with its
existence checks). With ``f`` the number of lists a pattern is on (Rivest & Baillargeon 2007,
Rcapture):

============== =================================================================================
M0             ``log mu = b0 + b f``
Mt             ``log mu = b0 + sum_j b_j x_j`` (the independence log-linear model)
Mh Chao (LB)   M0 plus ``eta_k max(f - k + 1, 0)``, ``k = 3..K``; a negative ``eta`` is set to 0
               (its column dropped, the leftmost first) and the model refitted, as Rcapture does
Mh Poisson2    M0 plus ``tau (2^f - 1)``
Mh Darroch     M0 plus ``tau f^2 / 2``
Mh Gamma3.5    M0 plus ``tau (log 3.5 - log(3.5 + f))``
Mth ...        the same heterogeneity columns added to Mt instead of M0
Mb             ``log mu = b0 + b1 a + b2 (f - 1)``, ``a`` = lists before the first one the
               pattern is on (list order = capture order); ``N = e^b0 (1 + e^b2)^K /
               (1 + e^b2 - e^b1)``
Mbh            Mb plus ``eta (1 - x_1)``; ``N = e^b0 (1 + e^b3)^(K-1)
               (1 + e^(b1 + b2) / (1 + e^b3 - e^b2))``
============== =================================================================================

For all but Mb and Mbh the unobserved pattern has only the intercept, so ``N = n + e^b0`` and
``SE = sqrt(mu0 + mu0^2 Var b0)``; Mb and Mbh use Rcapture's closed forms and delta-method SEs.
Where Rcapture prints nonsense (Mb's ``N = -3,763`` on UK_5: the unconstrained fit puts the
first-capture probability below 0) tipstat returns ``status="does_not_exist"`` and says why.

Heterogeneity can be combined with chosen interactions (Rcapture's ``closedpCI.t`` with
``mX`` and ``h``): :func:`heterogeneity_design` ``(lists, "Chao", terms="A:B + B:C")``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .._checks import check_ci, check_level
from ..errors import InputError
from ..estimate import Estimate, EstimateTable
from ..histories import CaptureHistories, pattern_matrix
from .checks import attach_checks
from .design import Design, loglinear_design, parse_terms, term_label
from .loglinear import CI_METHODS, Fit, _check_histories, _fit, estimate_from_fit

__all__ = ["CLOSEDP_MODELS", "HETEROGENEITY", "TWO_LIST_MODELS", "closedp", "closedp_design",
           "fit_closedp_model", "heterogeneity_design"]

#: Heterogeneity forms: name -> (label, theta)
HETEROGENEITY = {"Chao": ("Chao (LB)", None), "Poisson": ("Poisson", 2.0),
                 "Darroch": ("Darroch", None), "Gamma": ("Gamma", 3.5)}

#: Rcapture's closedp.t rows, in its order
CLOSEDP_MODELS = ("M0", "Mt", "Mh Chao (LB)", "Mh Poisson2", "Mh Darroch", "Mh Gamma3.5",
                  "Mth Chao (LB)", "Mth Poisson2", "Mth Darroch", "Mth Gamma3.5", "Mb", "Mbh")


def _nbcap(k: int) -> np.ndarray:
    return pattern_matrix(k, include_unobserved=True).sum(axis=1).astype(np.float64)


def _het_columns(k: int, h: str, theta: float | None) -> tuple[np.ndarray, list[str]]:
    f = _nbcap(k)
    if h == "Chao":
        if k < 3:
            return np.zeros((2**k, 0)), []
        cols = np.column_stack([np.maximum(f - j + 1, 0.0) for j in range(3, k + 1)])
        return cols, [f"eta{j}" for j in range(3, k + 1)]
    if h == "Poisson":
        a = 2.0 if theta is None else float(theta)
        return (a**f - 1.0)[:, None], ["tau"]
    if h == "Darroch":
        return (f**2 / 2.0)[:, None], ["tau"]
    if h == "Gamma":
        a = 3.5 if theta is None else float(theta)
        return (np.log(a) - np.log(a + f))[:, None], ["tau"]
    raise InputError(f"h={h!r} is not one of {tuple(HETEROGENEITY)}")


def _h_name(h: str, theta: float | None) -> str:
    if h == "Poisson":
        return f"Poisson{2.0 if theta is None else float(theta):g}"
    if h == "Gamma":
        return f"Gamma{3.5 if theta is None else float(theta):g}"
    return HETEROGENEITY[h][0]


def heterogeneity_design(lists: Sequence[str], h: str, *, theta: float | None = None,
                         terms: str | Sequence = (), base: str = "Mt") -> Design:
    """A heterogeneity design: ``base`` (``"Mt"``: main effects, ``"M0"``: one capture-count
    slope) plus the interaction ``terms`` plus the heterogeneity columns of ``h``.

    Parameters
    ----------
    lists : sequence of str
    h : {"Chao", "Poisson", "Darroch", "Gamma"}
        Columns in the number of captures ``f``: Chao ``max(f - k + 1, 0)`` for ``k = 3..K``;
        Poisson ``theta^f - 1`` (theta 2); Darroch ``f^2/2``; Gamma ``log(theta) -
        log(theta + f)`` (theta 3.5).
    terms : str or list
        Interactions as for :func:`tipstat.fit_loglinear` (needs ``base="Mt"``).

    Examples
    --------
    >>> heterogeneity_design(["A", "B", "C", "D"], "Darroch", terms="A:B").columns
    ('(Intercept)', 'A', 'B', 'C', 'D', 'A:B', 'tau')
    """
    lists = tuple(str(x) for x in lists)
    k = len(lists)
    hc, hn = _het_columns(k, h, theta)
    if base == "M0":
        if terms:
            raise InputError("terms need base='Mt' (M0 has no list-specific effects)")
        m = np.column_stack([np.ones(2**k), _nbcap(k), hc])
        return Design(name=f"Mh {_h_name(h, theta)}", columns=("(Intercept)", "beta", *hn),
                      matrix=m)
    if base != "Mt":
        raise InputError(f"base={base!r} is not 'Mt' or 'M0'")
    d = loglinear_design(lists, terms if terms else ())
    name = f"Mth {_h_name(h, theta)}" if not d.terms else \
        f"Mth {_h_name(h, theta)} + {', '.join(term_label(t, lists) for t in d.terms)}"
    return Design(name=name, columns=(*d.columns, *hn), matrix=np.column_stack([d.matrix, hc]),
                  terms=d.terms)


def closedp_design(lists: Sequence[str], model: str) -> Design:
    """The design of one of Rcapture's ``closedp.t`` models (see :data:`CLOSEDP_MODELS`).

    For Mb and Mbh row 0 (the unobserved pattern) holds the intercept only and is not used:
    their N is a closed-form function of the coefficients.

    The design depends only on the list names and the model, so it is built once per
    ``(lists, model)`` and the same (read-only) :class:`~tipstat.models.design.Design` is
    returned on every later call: its rank and whether it assumes independent lists are
    computed once.

    Examples
    --------
    >>> d = closedp_design(["A", "B", "C"], "Mh Darroch")
    >>> d.columns, d.matrix[7].tolist()
    (('(Intercept)', 'beta', 'tau'), [1.0, 3.0, 4.5])
    >>> d is closedp_design(("A", "B", "C"), "Mh Darroch")
    True
    """
    lists = tuple(str(x) for x in lists)
    if len(lists) > CACHE_MAX_LISTS:   # large designs are not kept alive by the cache
        return _build_closedp_design(lists, str(model))
    return _cached_closedp_design(lists, str(model))


#: Designs (and their Chao reductions) are cached up to this many lists (``2**K`` rows: at most
#: 1024 x 19 floats, ~150 kB each; the 64 most recent of each kind are kept); beyond, they are
#: rebuilt on every call, which costs little next to fitting them.
CACHE_MAX_LISTS = 10


def _build_closedp_design(lists: tuple[str, ...], model: str) -> Design:
    k = len(lists)
    f = _nbcap(k)
    if model == "M0":
        return Design("M0", ("(Intercept)", "beta"), np.column_stack([np.ones(2**k), f]))
    if model == "Mt":
        d = loglinear_design(lists, ())
        return Design("Mt", d.columns, d.matrix)
    if model.startswith("Mh ") or model.startswith("Mth "):
        base, rest = model.split(" ", 1)
        h = next((key for key in HETEROGENEITY if rest.startswith(key)), None)
        if h is None:
            raise InputError(f"model={model!r}: unknown heterogeneity form {rest!r}")
        theta = None
        num = rest[len(h):].strip()
        if num and not num.startswith("("):
            theta = float(num)
        d = heterogeneity_design(lists, h, theta=theta, base="M0" if base == "Mh" else "Mt")
        return Design(model, d.columns, d.matrix)
    if model in ("Mb", "Mbh"):
        pat = pattern_matrix(k, include_unobserved=True)
        first = np.where(pat.any(axis=1), pat.argmax(axis=1), 0).astype(np.float64)
        after = np.maximum(f - 1, 0.0)
        cols = [np.ones(2**k)]
        names = ["(Intercept)"]
        if model == "Mbh":
            inv1 = 1.0 - pat[:, 0]
            inv1[0] = 0.0
            cols.append(inv1)
            names.append("eta")
        cols += [first, after]
        names += ["beta1", "beta2"]
        m = np.column_stack(cols)
        m[0, 1:] = 0.0
        return Design(model, tuple(names), m)
    raise InputError(f"model={model!r} is not one of {CLOSEDP_MODELS}")


def _without_column(design: Design, j: int) -> Design:
    """``design`` without column ``j`` (a Chao ``eta`` set to 0); built once per design up to
    :data:`CACHE_MAX_LISTS` lists (designs compare by identity; the closedp designs are cached,
    so every table refits the same reduced ones)."""
    if design.matrix.shape[0] > 2**CACHE_MAX_LISTS:
        return _drop_column(design, j)
    return _cached_drop_column(design, j)


def _drop_column(design: Design, j: int) -> Design:
    keep = [i for i in range(design.n_params) if i != j]
    return Design(design.name, tuple(design.columns[i] for i in keep), design.matrix[:, keep],
                  design.terms)


_cached_closedp_design = lru_cache(maxsize=64)(_build_closedp_design)
_cached_drop_column = lru_cache(maxsize=64)(_drop_column)


@dataclass
class _Result:
    fit: Fit
    design: Design
    n_hat: float
    se: float
    status: str
    reason: str
    dropped: tuple[str, ...] = ()


def _fit_model(design: Design, y: np.ndarray, lists: Sequence[str], k: int, nca: int | None,
               kind: str) -> _Result:
    fit = _fit(design, y, lists)
    dropped: list[str] = []
    if nca is not None:  # Chao lower bound: drop negative eta's one at a time, leftmost first
        while fit.existence.finite:
            eta = fit.beta[nca:]
            # an eta not estimable on the facial set of a boundary fit runs to -inf (its cells,
            # the most-captured patterns, are empty): R's glm reports a large negative value
            boundary = np.isnan(eta) & (fit.existence.status == "extended")
            neg = np.flatnonzero((~np.isnan(eta) & (eta < 0)) | boundary)
            if len(neg) == 0:
                break
            j = nca + int(neg[0])
            dropped.append(design.columns[j])
            design = _without_column(design, j)
            fit = _fit(design, y, lists)
    status = fit.existence.status if (fit.converged or not fit.existence.finite) else \
        "not_converged"
    reason = fit.existence.reason
    n_hat, se = fit.n_hat, fit.se
    if kind in ("Mb", "Mbh") and fit.existence.finite:
        try:
            n_hat, se, status, reason = _behavioural(fit, k, kind, float(y.sum()), status, reason,
                                                     n_hat, se)
        except (ZeroDivisionError, OverflowError):
            # the first-capture probability is exactly 0 (denominator 0) or a parameter is so
            # large that exp overflows: no finite, valid N under the model
            status = "does_not_exist"
            reason = (f"the unconstrained {kind} fit puts the first-capture probability at the "
                      f"edge of (0, 1): no valid estimate under {kind}")
            n_hat, se = math.inf, math.nan
    return _Result(fit, design, n_hat, se, status, reason, tuple(dropped))


def _behavioural(fit: Fit, k: int, kind: str, n_obs: float, status: str, reason: str,
                 n_hat: float, se: float) -> tuple[float, float, str, str]:
    """N-hat and its SE under Mb / Mbh from the log-linear fit (Rcapture's closedp.t
    parametrisation); raises ZeroDivisionError or OverflowError at the edge of the parameter
    space, which the caller reports as no valid estimate."""
    b = fit.beta
    V = fit.cov if fit.cov is not None else np.full((len(b), len(b)), np.nan)
    if kind == "Mb":
        denom = 1 + math.exp(b[2]) - math.exp(b[1])
        n_raw = math.exp(b[0]) * (1 + math.exp(b[2])) ** k / denom
        v = n_raw * np.array([1.0, math.exp(b[1]) / denom,
                              k * math.exp(b[2]) / (1 + math.exp(b[2]))
                              - math.exp(b[2]) / denom])
        p_first = 1 - math.exp(b[1]) / (1 + math.exp(b[2]))
    else:
        denom = 1 + math.exp(b[3]) - math.exp(b[2])
        r = math.exp(b[1] + b[2]) / denom
        n_raw = math.exp(b[0]) * (1 + math.exp(b[3])) ** (k - 1) * (1 + r)
        v = math.exp(b[0]) * (1 + math.exp(b[3])) ** (k - 1) * np.array([
            1 + r, r, r + math.exp(b[1] + 2 * b[2]) / denom**2,
            (k - 1) * math.exp(b[3]) / (1 + math.exp(b[3]))
            - math.exp(b[1] + b[2] + b[3]) / denom**2])
        p_first = 1 - math.exp(b[2]) / (1 + math.exp(b[3]))
    var = float(v @ V @ v) - n_raw
    se = math.sqrt(var) if var > 0 else math.nan
    if denom <= 0 or not n_raw >= n_obs:
        status = "does_not_exist"
        reason = (f"the unconstrained {kind} fit puts the first-capture probability outside "
                  f"(0, 1) (p = {p_first:.3g}; its N-hat would be {n_raw:,.1f}, below the "
                  f"{n_obs:,.0f} observed): no valid estimate under {kind}")
        n_hat, se = math.inf, math.nan
    else:
        n_hat = n_raw
    return n_hat, se, status, reason


def fit_closedp_model(h: CaptureHistories, model: str = "Mth Chao (LB)", *,
                      level: float = 0.95, ci: str = "profile",
                      terms: str | Sequence = (), check: bool = True) -> Estimate:
    """Fit one closed-population model (a row of :func:`closedp`, optionally with interaction
    ``terms`` added to an Mth model, as Rcapture's ``closedpCI.t(mX=, h=)``).

    Parameters
    ----------
    h : CaptureHistories
        Unstratified capture histories.
    model : str
        The model specification: a row name of :func:`closedp` (``"M0"``, ``"Mt"``,
        ``"Mh Chao (LB)"``, ``"Mth Darroch"``, ``"Mb"``, ...).
    level : float
        Interval coverage.
    ci : {"profile", "profile_rcapture", "wald", "lognormal", "none"}
        Interval method, as in :func:`tipstat.fit_loglinear` (none for Mb and Mbh).
    terms : str or list of str
        Interaction terms added to an Mth model.
    check : bool
        Attach the checks of :func:`tipstat.validate.assumption_warnings` (lack of fit, sparse
        table, two lists; dependence and heterogeneity for M0 and Mt, whose designs assume
        independent lists). False for inner fits.

    Examples
    --------
    >>> import tipstat
    >>> est = tipstat.fit_closedp_model(tipstat.datasets.load("UK_5"), "Mb")
    >>> est.status
    'does_not_exist'
    >>> round(tipstat.fit_closedp_model(tipstat.datasets.load("UK_5"), "Mh Chao (LB)").n_hat, 2)
    14962.75
    """
    _check_histories(h)
    check_level(level, "fit_closedp_model")
    check_ci(ci, CI_METHODS, "fit_closedp_model")
    return _closedp_estimate(h, np.asarray(h.counts, dtype=np.float64), model, level=level, ci=ci,
                             terms=terms, check=check)


def _closedp_estimate(h: CaptureHistories, y: np.ndarray, model: str, *, level: float, ci: str,
                      terms: str | Sequence, check: bool) -> Estimate:
    """:func:`fit_closedp_model` after its input checks (``y``: the counts as floats)."""
    k = h.k
    if k == 2 and model not in TWO_LIST_MODELS:
        return attach_checks(_not_identifiable_two_lists(h, model, level, terms), h, check=check)
    if terms:
        if not model.startswith("Mth "):
            raise InputError(f"terms go with an Mth model (e.g. 'Mth Darroch'), not {model!r}")
        hname = model.split(" ", 1)[1]
        key = next((x for x in HETEROGENEITY if hname.startswith(x)), None)
        if key is None:
            raise InputError(f"model={model!r}: unknown heterogeneity form")
        num = hname[len(key):].strip()
        theta = float(num) if num and not num.startswith("(") else None
        design = heterogeneity_design(h.lists, key, theta=theta,
                                      terms=parse_terms(terms, h.lists))
    else:
        design = closedp_design(h.lists, model)
    kind = model if model in ("Mb", "Mbh") else ""
    nca = None
    if "Chao" in model:
        nca = 2 if model.startswith("Mh ") else design.n_params - max(k - 2, 0)
    res = _fit_model(design, y, h.lists, k, nca, kind)
    est = estimate_from_fit(res.fit, ci=ci if not kind else "none", level=level,
                            method="closedp")
    warns = est.warnings
    if res.status != "ok" and res.reason not in warns:
        warns = (*warns, res.reason)
    # the closedp fields and the checks' caveats in one copy (the checks read none of these)
    changes = {
        "model": model if not terms else design.name, "n_hat": res.n_hat, "se": res.se,
        "status": res.status, "warnings": warns,
        "ci": (math.nan, math.nan) if kind and res.status != "ok" else est.ci,
        "diagnostics": {**est.diagnostics, "reason": res.reason,
                        "eta_set_to_zero": res.dropped}}
    return attach_checks(est, h, check=check, changes=changes)


#: The models Rcapture's ``closedp.t`` fits with two lists (it declines the others).
TWO_LIST_MODELS = ("M0", "Mt", "Mb")


def _not_identifiable_two_lists(h: CaptureHistories, model: str, level: float,
                                terms: str | Sequence) -> Estimate:
    """A heterogeneity model or Mbh on two lists: N is not identified, nothing is fitted.

    Two lists give three observable cells. Chao's lower-bound columns start at three captures,
    so "Mh/Mth Chao (LB)" would be M0/Mt under another name; Poisson, Darroch and Gamma add a
    parameter that the cells cannot determine (two distinct capture counts ``f``), as does Mbh's
    ``eta`` to the saturated Mb. Rcapture's ``closedp.t`` fits only M0, Mt and Mb here.
    """
    if model not in CLOSEDP_MODELS and not model.startswith(("Mh ", "Mth ")):
        raise InputError(f"model={model!r} is not one of {CLOSEDP_MODELS}")
    what = ("Mbh adds a heterogeneity parameter to Mb, which already fits the three "
            "observable cells exactly" if model == "Mbh" else
            "a heterogeneity model needs at least three lists (Chao's lower-bound terms start "
            "at three captures; the other forms add a parameter that three cells cannot "
            "determine)")
    reason = (f"N is not identifiable under {model} with two lists: {what}; only M0, Mt and Mb "
              "are identifiable (Rcapture's closedp.t fits only these with two lists)")
    label = model if not terms else f"{model} + {terms}"
    return Estimate(n_hat=math.nan, ci=(math.nan, math.nan), level=level,
                    n_observed=float(h.n_observed), method="closedp", model=label,
                    status="not_identifiable", ci_method="none",
                    diagnostics={"reason": reason, "eta_set_to_zero": ()}, warnings=(reason,))


def closedp(h: CaptureHistories, *, check: bool = True) -> EstimateTable:
    """Rcapture's ``closedp.t`` table: the twelve classical closed-population models.

    Each model is fitted by :func:`fit_closedp_model` without an interval (as ``closedp.t``),
    with its checks (``check=True``: every row carries the caveats of
    :func:`tipstat.validate.assumption_warnings`).

    Returns
    -------
    EstimateTable
        One :class:`~tipstat.Estimate` per model, keyed by Rcapture's row names, in its order
        (``tab["Mt"]``). ``tab.to_frame()`` is Rcapture's table: index ``model``, columns
        ``abundance``, ``stderr``, ``deviance``, ``df``, ``AIC``, ``BIC`` (Rcapture's
        conventions: Poisson likelihood over the observable cells, BIC penalty ``log(n)`` per
        parameter), ``status`` (``ok``, ``extended``, ``does_not_exist``,
        ``not_identifiable``, ``not_converged``) and ``reason``. Where the model has no valid
        estimate the abundance is ``inf`` / ``nan`` instead of Rcapture's number (e.g. Mb's
        ``-3,763`` on UK_5). With two lists only M0, Mt and Mb are fitted (as Rcapture, which
        declines the others); the heterogeneity rows and Mbh are ``not_identifiable`` there,
        with the reason, and carry no number.

    Examples
    --------
    >>> import tipstat
    >>> tab = tipstat.closedp(tipstat.datasets.load("UK_5"))
    >>> round(tab["Mt"].n_hat, 4), tab["Mb"].status
    (13444.1312, 'does_not_exist')
    >>> round(float(tab.to_frame().loc["Mt", "abundance"]), 4)
    13444.1312
    """
    _check_histories(h)
    y = np.asarray(h.counts, dtype=np.float64)
    return EstimateTable([(model, _closedp_estimate(h, y, model, level=0.95, ci="none", terms=(),
                                                    check=check))
                          for model in CLOSEDP_MODELS])
