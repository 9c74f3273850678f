"""Plots for MSE results: every function takes an optional matplotlib ``Axes`` and returns it.

No global state: when ``ax`` is not given, a new :class:`matplotlib.figure.Figure` is created
directly (not through ``pyplot``), so nothing is registered with pyplot's figure manager and no
style is changed. Pass ``ax`` from ``plt.subplots()`` to show a plot in a notebook.

Needs matplotlib (``pip install "tipstat[plot]"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..estimate import Estimate
from ..histories import CaptureHistories

__all__ = [
    "plot_bootstrap",
    "plot_forest",
    "plot_model_search",
    "plot_overlap_heatmap",
    "plot_overlaps",
    "plot_posterior",
    "plot_sdg_rates",
]

_OK = ("ok", "extended")
_BLUE = "#2b6cb0"
_GREY = "#888888"
_RED = "#b83232"


def _new_axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def _check_histories(h: Any, where: str) -> CaptureHistories:
    if not isinstance(h, CaptureHistories):
        raise InputError(f"{where}: expected tipstat.CaptureHistories, got {type(h).__name__}")
    return h


def _count_text(value: float, suppress_below: int | None) -> str:
    """A count as published: ``"<5"`` for 1 to ``suppress_below - 1``
    (:func:`tipstat._format.count`, the report's own rule)."""
    from .._format import count, number

    return number(value) if suppress_below is None else count(value, suppress_below)


# ---------------------------------------------------------------------------- overlaps
def plot_overlaps(h: CaptureHistories, ax: Any = None, *, max_patterns: int = 30,
                  sort: str = "count", suppress_below: int | None = None,
                  pool: Sequence[bool] | np.ndarray | None = None,
                  hide_sizes: Sequence[bool] | np.ndarray | None = None) -> Any:
    """UpSet-style plot of the capture patterns: a bar per pattern (its count) above a dot
    matrix showing which lists the pattern is on, and list sizes on the left of the matrix.

    Parameters
    ----------
    h : CaptureHistories
        Histories (pooled over strata).
    ax : matplotlib Axes, optional
        The bar chart goes in ``ax``; the dot matrix is an inset Axes below it (a child of
        ``ax``, so it moves with it).
    max_patterns : int
        Show the largest ``max_patterns`` non-empty patterns; the title says how many are left
        out.
    sort : {"count", "degree"}
        Order patterns by count (largest first) or by number of lists, then count.
    suppress_below : int, optional
        For publication: no bar, label or list size shows a count from 1 to
        ``suppress_below - 1``. Patterns with fewer persons (or those in ``pool``) are drawn as
        one bar "other patterns" (with the patterns beyond ``max_patterns``), list sizes below
        it as "<5".
    pool : sequence of bool, optional
        Which of the ``2**K - 1`` observable patterns (cell ``c`` at position ``c - 1``) to pool
        into the "other patterns" bar, e.g. those a disclosure rule hides; default with
        ``suppress_below``: the patterns with 1 to ``suppress_below - 1`` persons.
    hide_sizes : sequence of bool, optional
        Lists whose size is not shown (``"x"``), e.g. because it would reveal a pooled pattern.

    Returns
    -------
    matplotlib Axes
        The bar-chart Axes; the matrix is ``ax.child_axes[0]``.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.report.plots import plot_overlaps
    >>> ax = plot_overlaps(tipstat.datasets.load("UK_5"))
    >>> len(ax.patches)          # one bar per non-empty pattern (UK_5 has 18)
    18
    """
    h = _check_histories(h, "plot_overlaps")
    if sort not in ("count", "degree"):
        raise InputError(f"plot_overlaps: sort={sort!r}; expected 'count' or 'degree'")
    if max_patterns < 1:
        raise InputError(f"plot_overlaps: max_patterns={max_patterns!r}; expected >= 1")
    counts = np.asarray(h.counts, dtype=float)
    pats = h.patterns
    if suppress_below is not None and suppress_below < 1:
        raise InputError(f"plot_overlaps: suppress_below={suppress_below!r}; expected >= 1")
    if pool is None:
        pooled = np.zeros(len(counts), dtype=bool)
        if suppress_below is not None:
            pooled = (counts > 0) & (counts < suppress_below)
    else:
        pooled = np.asarray(pool, dtype=bool)
        if pooled.shape != counts.shape:
            raise InputError(f"plot_overlaps: pool has {pooled.size} entries; expected one per "
                             f"observable pattern ({counts.size})")
    nz = np.flatnonzero((counts > 0) & ~pooled)
    if sort == "count":
        order = nz[np.lexsort((pats[nz].sum(axis=1), -counts[nz]))]
    else:
        order = nz[np.lexsort((-counts[nz], pats[nz].sum(axis=1)))]
    left_out = max(len(order) - max_patterns, 0)
    order = order[:max_patterns]
    other = float(h.n_observed - counts[order].sum())
    if suppress_below is None and pool is None:
        other = 0.0           # the classic plot: the title says how many patterns are left out
    ax = _new_axes(ax, (max(6.0, 0.3 * (len(order) + (other > 0)) + 2), 5.0))
    x = np.arange(len(order))
    heights = counts[order]
    if other > 0:
        x = np.arange(len(order) + 1)
        heights = np.r_[heights, other]
    ax.bar(x, heights, color=[_BLUE] * len(order) + [_GREY] * (len(x) - len(order)), width=0.7)
    for xi, c in zip(x, heights, strict=True):
        ax.annotate(_count_text(c, suppress_below), (xi, c), ha="center", va="bottom",
                    fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.set_xticks([])
    ax.set_ylabel("persons with this pattern")
    title = f"capture patterns ({h.n_observed:,.0f} persons observed on {h.k} lists)"
    if other > 0:
        title += "\ngrey bar: the other patterns together (small patterns pooled"
        title += f"; beyond the largest {max_patterns})" if left_out else ")"
    elif left_out:
        title += f"; {left_out} smaller patterns not shown"
    ax.set_title(title, fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    mat = ax.inset_axes((0.0, -0.08 - 0.07 * h.k, 1.0, 0.07 * h.k), sharex=ax)
    xs = x[: len(order)]
    for j in range(h.k):
        on = pats[order, j] == 1
        mat.scatter(xs[~on], np.full((~on).sum(), j), s=30, color="#dddddd")
        mat.scatter(xs[on], np.full(on.sum(), j), s=30, color="#222222")
    for xi, c in zip(xs, order, strict=True):
        rows = np.flatnonzero(pats[c] == 1)
        if len(rows) > 1:
            mat.plot([xi, xi], [rows.min(), rows.max()], color="#222222", lw=1.5)
    if other > 0:
        mat.annotate("other", (x[-1], (h.k - 1) / 2), ha="center", va="center", fontsize=7,
                     rotation=90, color=_GREY)
    sizes = h.list_sizes()
    mat.set_yticks(range(h.k))
    hidden = np.zeros(h.k, dtype=bool) if hide_sizes is None else np.asarray(hide_sizes, bool)
    mat.set_yticklabels([f"{name} (x)" if hidden[j] else
                         f"{name} ({_count_text(float(sizes[name]), suppress_below)})"
                         for j, name in enumerate(h.lists)], fontsize=8)
    mat.set_ylim(h.k - 0.5, -0.5)
    mat.tick_params(axis="x", bottom=False, labelbottom=False)
    for side in ("top", "right", "bottom", "left"):
        mat.spines[side].set_visible(False)
    return ax


def plot_overlap_heatmap(h: CaptureHistories, ax: Any = None, *, normalize: str | None = None,
                         cmap: str = "Blues", suppress_below: int | None = None,
                         hide: np.ndarray | None = None) -> Any:
    """Pairwise overlap heatmap: cell (i, j) is the number of persons on both lists i and j
    (the diagonal is the list size).

    Parameters
    ----------
    normalize : {None, "jaccard", "row"}
        ``None``: counts; ``"jaccard"``: ``|i & j| / |i or j|``; ``"row"``: share of list i's
        persons who are also on list j.
    suppress_below : int, optional
        For publication: a cell with 1 to ``suppress_below - 1`` persons is grey and labelled
        ``"<5"`` (its colour would tell its value), whatever ``normalize`` says.
    hide : K x K array of bool, optional
        Further cells not to show (grey, ``"x"``), e.g. to protect a small pattern.

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.report.plots import plot_overlap_heatmap
    >>> ax = plot_overlap_heatmap(tipstat.datasets.load("Korea_3"))
    >>> ax.images[0].get_array().shape
    (3, 3)
    """
    h = _check_histories(h, "plot_overlap_heatmap")
    if normalize not in (None, "jaccard", "row"):
        raise InputError(f"plot_overlap_heatmap: normalize={normalize!r}; expected None, "
                         "'jaccard' or 'row'")
    ov = h.overlap_matrix().to_numpy(dtype=float)
    size = np.diag(ov).copy()
    values = ov.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        if normalize == "jaccard":
            values = ov / (size[:, None] + size[None, :] - ov)
        elif normalize == "row":
            values = ov / size[:, None]
    small = np.zeros(ov.shape, dtype=bool)
    if suppress_below is not None:
        small = (ov > 0) & (ov < suppress_below)
    hidden = np.zeros(ov.shape, dtype=bool) if hide is None else np.asarray(hide, dtype=bool)
    if hidden.shape != ov.shape:
        raise InputError(f"plot_overlap_heatmap: hide has shape {hidden.shape}; expected "
                         f"{ov.shape}")
    values = np.where(small | hidden, np.nan, values)
    ax = _new_axes(ax, (1.0 + 0.7 * h.k, 0.8 + 0.6 * h.k))
    import matplotlib as mpl

    colours = mpl.colormaps[cmap].with_extremes(bad="#e2e2e2")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=colours)
    vmax = np.nanmax(values) if np.isfinite(values).any() else 1.0
    for i in range(h.k):
        for j in range(h.k):
            v = values[i, j]
            if small[i, j]:
                text = f"<{suppress_below}"
            elif hidden[i, j]:
                text = "x"
            else:
                text = f"{ov[i, j]:,.0f}" if normalize is None else f"{v:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if np.isfinite(v) and v > 0.6 * vmax else "black")
    ax.set_xticks(range(h.k))
    ax.set_xticklabels(h.lists, rotation=45, ha="right")
    ax.set_yticks(range(h.k))
    ax.set_yticklabels(h.lists)
    label = {None: "persons on both lists", "jaccard": "Jaccard overlap",
             "row": "share of row list also on column list"}[normalize]
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    ax.set_title("pairwise list overlaps", fontsize=10)
    return ax


# ---------------------------------------------------------------------------- estimates
def _forest_rows(results: Any) -> pd.DataFrame:
    if isinstance(results, Estimate):
        results = [results]
    if isinstance(results, pd.DataFrame):
        need = {"n_hat", "lower", "upper", "status"}
        missing = need - set(results.columns)
        if missing:
            raise InputError(f"plot_forest: the table lacks column(s) {sorted(missing)}; pass the "
                             "result of tipstat.compare() or a list of Estimate")
        df = results.copy()
        if "label" not in df:
            df["label"] = [f"{m}: {mod}" if str(mod) not in str(m) else str(m)
                           for m, mod in zip(df.get("method", df.index), df.get("model", ""),
                                             strict=True)]
        return df.reset_index(drop=True)
    rows = []
    for est in results:
        if not isinstance(est, Estimate):
            raise InputError(f"plot_forest: expected Estimate objects, got {type(est).__name__}")
        rows.append({"label": f"{est.method}: {est.model}", "n_hat": est.n_hat,
                     "lower": est.ci[0], "upper": est.ci[1], "status": est.status,
                     "ci_method": est.ci_method, "n_observed": est.n_observed})
    if not rows:
        raise InputError("plot_forest: nothing to plot (no estimates)")
    return pd.DataFrame(rows)


def plot_forest(results: Any, ax: Any = None, *, observed: float | None = None,
                published: float | None = None, log: bool = False,
                max_label: int = 60) -> Any:
    """Forest plot of N-hat and its interval for several methods or models.

    Rows whose estimate does not exist or is not identifiable are listed with their status
    instead of a point, so that they are seen, not silently left out; a row whose status is
    ``lower_bound`` is a bar at the lower end of its interval with an arrow to the right edge
    ("at least L"), without a point.

    Parameters
    ----------
    results : ComparisonTable, DataFrame, Estimate or list of Estimate
        The result of :func:`tipstat.compare` (columns ``n_hat``, ``lower``, ``upper``,
        ``status``), or estimates.
    observed : float, optional
        Persons observed (a vertical dashed line); taken from the table when present.
    published : float, optional
        A published figure to show as a vertical line.
    log : bool
        Logarithmic N axis (useful when estimates differ by orders of magnitude).

    Examples
    --------
    >>> import tipstat
    >>> from tipstat.report.plots import plot_forest
    >>> t = tipstat.compare(tipstat.datasets.load("UK_5"), ["independence", "all2"])
    >>> ax = plot_forest(t)
    >>> [round(v) for v in ax.lines[0].get_xdata()]   # the first interval
    [11985, 15166]
    """
    df = _forest_rows(results)
    ax = _new_axes(ax, (7.0, 1.0 + 0.45 * len(df)))
    y = np.arange(len(df))[::-1]
    finite_x: list[float] = []
    for yi, (_, r) in zip(y, df.iterrows(), strict=True):
        ok = r["status"] in _OK and math.isfinite(r["n_hat"])
        if ok:
            lo, hi = r["lower"], r["upper"]
            if math.isfinite(lo) and math.isfinite(hi):
                ax.plot([lo, hi], [yi, yi], color=_BLUE, lw=2, solid_capstyle="butt")
                finite_x += [lo, hi]
            ax.plot([r["n_hat"]], [yi], "o", color="#1a365d", ms=6)
            finite_x.append(r["n_hat"])
        elif r["status"] == "lower_bound" and math.isfinite(r["lower"]):
            # drawn as "at least" once the axis range is known; room for its arrow
            finite_x += [r["lower"], 1.3 * r["lower"]]
    n_obs = observed
    if n_obs is None and "n_observed" in df and df["n_observed"].notna().any():
        n_obs = float(df["n_observed"].dropna().iloc[0])
    if n_obs is not None and math.isfinite(n_obs):
        ax.axvline(n_obs, color=_GREY, ls="--", lw=1, label=f"observed {n_obs:,.0f}")
        finite_x.append(n_obs)
    if published is not None:
        ax.axvline(published, color=_RED, ls=":", lw=1.5, label=f"published {published:,.0f}")
        finite_x.append(published)
    if log:
        ax.set_xscale("log")
    else:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    if finite_x:
        lo, hi = min(finite_x), max(finite_x)
        pad = 0.05 * (hi - lo) if hi > lo else max(1.0, 0.05 * hi)
        ax.set_xlim(lo / 1.1 if log else max(lo - pad, 0), hi * 1.1 if log else hi + pad)
    for yi, (_, r) in zip(y, df.iterrows(), strict=True):
        if r["status"] == "lower_bound" and math.isfinite(r["lower"]):
            # only a lower bound: a bar at the bound and an arrow to the edge, no point
            ax.plot([r["lower"]], [yi], "|", color=_BLUE, ms=10, mew=2)
            ax.annotate("", xy=(1.0, yi), xycoords=("axes fraction", "data"),
                        xytext=(r["lower"], yi), textcoords="data",
                        arrowprops={"arrowstyle": "->", "color": _BLUE, "lw": 2})
            ax.annotate(f"at least {r['lower']:,.0f}", (r["lower"], yi), xytext=(4, 5),
                        textcoords="offset points", fontsize=8, color=_BLUE)
        elif not (r["status"] in _OK and math.isfinite(r["n_hat"])):
            ax.annotate(f"  {r['status'].replace('_', ' ')}", (0.0, yi),
                        xycoords=("axes fraction", "data"), va="center", fontsize=8, color=_RED)
    labels = [str(s) if len(str(s)) <= max_label else str(s)[: max_label - 1] + "…"
              for s in df["label"]]
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(-0.7, len(df) - 0.3)
    ax.set_xlabel("population size N (estimate and interval)")
    if n_obs is not None or published is not None:
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax


def _draws_of(est: Estimate) -> np.ndarray:
    if est.draws is not None and len(est.draws):
        return np.asarray(est.draws, dtype=float).ravel()
    idata = est.idata
    if idata is not None and hasattr(idata, "posterior"):
        for name in ("N", "n", "N_total"):
            if name in idata.posterior:
                return np.asarray(idata.posterior[name]).astype(float).ravel()
    raise InputError(f"{est.method}: this estimate has no draws of N (no bootstrap replicates or "
                     "posterior); use plot_forest for a point and interval")


def _interval_lines(ax: Any, est: Estimate, label_kind: str) -> None:
    if math.isfinite(est.n_hat):
        ax.axvline(est.n_hat, color="#1a365d", lw=2, label=f"N-hat {est.n_hat:,.0f}")
    lo, hi = est.ci
    if math.isfinite(lo) and math.isfinite(hi):
        ax.axvspan(lo, hi, color=_BLUE, alpha=0.15,
                   label=f"{100 * est.level:g}% {label_kind or est.ci_method} [{lo:,.0f}, {hi:,.0f}]")
    ax.axvline(float(est.n_observed), color=_GREY, ls="--", lw=1,
               label=f"observed {float(est.n_observed):,.0f}")


def plot_posterior(est: Estimate, ax: Any = None, *, bins: int = 60) -> Any:
    """Posterior distribution of N: a histogram of the posterior draws with the posterior
    median (``n_hat``) and the credible interval.

    Draws come from ``est.draws`` or from the variable ``N`` of ``est.idata``.

    Examples
    --------
    >>> import numpy as np, tipstat
    >>> from tipstat.report.plots import plot_posterior
    >>> draws = np.random.default_rng(1).normal(1000, 50, 4000)
    >>> est = tipstat.Estimate(n_hat=1000.0, ci=(902.0, 1098.0), level=0.95, n_observed=600,
    ...                        method="example", model="-", ci_method="posterior", draws=draws)
    >>> ax = plot_posterior(est)
    >>> int(sum(p.get_height() for p in ax.patches[:60]))   # every draw is in a bar
    4000
    """
    draws = _draws_of(est)
    ax = _new_axes(ax, (6.5, 3.0))
    ax.hist(draws, bins=bins, color="#90b4d8", edgecolor="white", linewidth=0.3)
    _interval_lines(ax, est, "credible interval")
    ax.set_xlabel("population size N")
    ax.set_ylabel("posterior draws")
    ax.set_title(f"posterior of N: {est.method} ({len(draws):,} draws)", fontsize=10)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    return ax


def plot_bootstrap(est: Estimate, ax: Any = None, *, bins: int = 50) -> Any:
    """Bootstrap distribution of N-hat: a histogram of the replicates with the estimate and
    its bootstrap interval (percentile or BCa, as in ``est.ci_method``).

    Non-finite replicates (where a resampled table has no finite estimate) are counted in
    the title, not silently dropped.

    Examples
    --------
    >>> import numpy as np, tipstat
    >>> from tipstat.report.plots import plot_bootstrap
    >>> reps = np.r_[np.random.default_rng(2).normal(500, 40, 999), np.inf]
    >>> est = tipstat.Estimate(n_hat=500.0, ci=(420.0, 580.0), level=0.95, n_observed=300,
    ...                        method="bootstrap", model="-", ci_method="bca", draws=reps)
    >>> plot_bootstrap(est).get_title()
    'bootstrap distribution of N-hat: 999 replicates (1 not finite)'
    """
    draws = _draws_of(est)
    finite = np.isfinite(draws)
    ax = _new_axes(ax, (6.5, 3.0))
    ax.hist(draws[finite], bins=bins, color="#a7c4a0", edgecolor="white", linewidth=0.3)
    _interval_lines(ax, est, f"{est.ci_method} interval" if est.ci_method else "interval")
    title = f"bootstrap distribution of N-hat: {finite.sum():,} replicates"
    if (~finite).any():
        title += f" ({(~finite).sum():,} not finite)"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("N-hat in bootstrap replicate")
    ax.set_ylabel("replicates")
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    return ax


def _search_table(search: Any) -> pd.DataFrame:
    if isinstance(search, Estimate):
        d = search.diagnostics or {}
        for key in ("path", "models", "table"):
            if isinstance(d.get(key), pd.DataFrame):
                table = d[key].copy()
                if key == "path" and "step" not in table:
                    table["step"] = np.arange(len(table))
                return table
        raise InputError(f"{search.method}: this estimate has no model-search table in its "
                         "diagnostics (expected 'path' or 'models')")
    if isinstance(search, pd.DataFrame):
        return search.copy()
    raise InputError(f"plot_model_search: expected a model-selection Estimate or a DataFrame, got "
                     f"{type(search).__name__}")


def plot_model_search(search: Any, ax: Any = None, *, criterion: str | None = None,
                      top: int = 10) -> Any:
    """The model search: each candidate model's information criterion against its N-hat,
    with the search path (if the table has a ``step`` column) drawn in order and the selected
    model highlighted.

    This shows how much N-hat moves between models that fit almost equally well.

    Parameters
    ----------
    search : Estimate or DataFrame
        A model-selection result (``diagnostics["path"]`` or ``["models"]``) or a table
        with columns ``n_hat`` and ``aic`` / ``bic`` (optionally ``model``, ``step``).
    criterion : {"aic", "bic"}, optional
        Default: the one the table has (``bic`` first).
    top : int
        Label the ``top`` best models.

    Examples
    --------
    >>> import pandas as pd
    >>> from tipstat.report.plots import plot_model_search
    >>> t = pd.DataFrame({"model": ["a", "b", "c"], "n_hat": [100.0, 150.0, 130.0],
    ...                   "bic": [12.0, 10.0, 11.0], "step": [0, 2, 1]})
    >>> ax = plot_model_search(t)
    >>> ax.get_xlabel()
    'BIC'
    """
    table = _search_table(search)
    table.columns = [str(c).lower() if str(c) in ("AIC", "BIC") else c for c in table.columns]
    if criterion is None:
        criterion = "bic" if "bic" in table else "aic"
    if criterion not in table or "n_hat" not in table:
        raise InputError(f"plot_model_search: the table needs columns 'n_hat' and {criterion!r}; "
                         f"it has {list(table.columns)}")
    finite = np.isfinite(table["n_hat"].astype(float)) & np.isfinite(table[criterion].astype(float))
    shown = table[finite]
    ax = _new_axes(ax, (6.5, 4.0))
    ax.scatter(shown[criterion], shown["n_hat"], s=14, color="#9ab", alpha=0.7,
               label=f"{len(shown):,} candidate models")
    if "step" in shown:
        path = shown.sort_values("step")
        ax.plot(path[criterion], path["n_hat"], "-o", color=_BLUE, ms=4, lw=1.2,
                label="search path")
    if len(shown):
        best = shown.loc[shown[criterion].astype(float).idxmin()]
        ax.plot([best[criterion]], [best["n_hat"]], "*", color=_RED, ms=14,
                label=f"selected: N-hat {best['n_hat']:,.0f}")
        if "model" in shown:
            for _, r in shown.nsmallest(top, criterion).iterrows():
                ax.annotate(str(r["model"])[:40], (r[criterion], r["n_hat"]), fontsize=6,
                            xytext=(3, 2), textcoords="offset points")
    left = int((~finite).sum())
    title = f"model search by {criterion.upper()}"
    if left:
        title += f" ({left} models without a finite estimate not shown)"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(criterion.upper())
    ax.set_ylabel("N-hat")
    ax.legend(loc="best", fontsize=7, frameon=False)
    return ax


# ---------------------------------------------------------------------------- SDG
def plot_sdg_rates(table: pd.DataFrame, ax: Any = None, *,
                   by: Sequence[str] = ("sex", "age", "exploitation"),
                   rate: str = "rate_per_100k", lower: str = "rate_lcl",
                   upper: str = "rate_ucl", labels: Sequence[str] | None = None) -> Any:
    """SDG 16.2.2 rates (victims per 100,000) by stratum with their intervals.

    Parameters
    ----------
    table : DataFrame
        The SDG 16.2.2 table (one row per stratum: columns in ``by``, ``rate``, ``lower``,
        ``upper``; the ``tipstat.sdg_16_2_2`` layout). Suppressed rows (rate missing) are
        listed as "suppressed", not dropped.
    by : sequence of str
        Stratum columns used to label rows (those present in the table).
    labels : sequence of str, optional
        One label per row instead (e.g. readable names of the codes).

    Examples
    --------
    >>> import pandas as pd
    >>> from tipstat.report.plots import plot_sdg_rates
    >>> t = pd.DataFrame({"sex": ["F", "M", "_T"], "rate_per_100k": [3.1, 2.0, None],
    ...                   "rate_lcl": [2.5, 1.4, None], "rate_ucl": [3.9, 2.8, None]})
    >>> ax = plot_sdg_rates(t)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['sex=F', 'sex=M', 'sex=_T']
    """
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"plot_sdg_rates: expected a DataFrame, got {type(table).__name__}")
    missing = [c for c in (rate, lower, upper) if c not in table]
    if missing:
        raise InputError(f"plot_sdg_rates: the table lacks column(s) {missing}; it has "
                         f"{list(table.columns)}")
    keys = [c for c in by if c in table]
    if not len(table):
        raise InputError("plot_sdg_rates: the table has no rows")
    if labels is None:
        labels = [", ".join(f"{c}={r[c]}" for c in keys) or str(i) for i, r in table.iterrows()]
    elif len(labels) != len(table):
        raise InputError(f"plot_sdg_rates: {len(labels)} labels for {len(table)} rows")
    ax = _new_axes(ax, (6.5, 1.0 + 0.35 * len(table)))
    y = np.arange(len(table))[::-1]
    vals = pd.to_numeric(table[rate], errors="coerce").to_numpy(dtype=float)
    lo = pd.to_numeric(table[lower], errors="coerce").to_numpy(dtype=float)
    hi = pd.to_numeric(table[upper], errors="coerce").to_numpy(dtype=float)
    for yi, v, a, b in zip(y, vals, lo, hi, strict=True):
        if math.isfinite(v):
            if math.isfinite(a) and math.isfinite(b):
                ax.plot([a, b], [yi, yi], color=_BLUE, lw=2)
            ax.plot([v], [yi], "o", color="#1a365d", ms=5)
        else:
            ax.annotate("  suppressed", (0.0, yi), xycoords=("axes fraction", "data"),
                        va="center", fontsize=8, color=_GREY)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("victims per 100,000 population (estimate and interval)")
    ax.set_xlim(left=0)
    ax.set_title("SDG 16.2.2 by stratum", fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax


def figure_png(ax: Any, dpi: int = 110) -> bytes:
    """The PNG bytes of the figure holding ``ax`` (for embedding in reports)."""
    import io

    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()
