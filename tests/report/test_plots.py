"""tipstat.report.plots: each function draws what it says, returns the Axes, keeps no state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tipstat

mpl = pytest.importorskip("matplotlib")
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tipstat.report import plots  # noqa: E402


@pytest.fixture(scope="module")
def uk5():
    return tipstat.datasets.load("UK_5")


def _pyplot_figures():
    import matplotlib.pyplot as plt

    return plt.get_fignums()


def test_overlaps_bars_are_the_pattern_counts(uk5):
    before = _pyplot_figures()  # other tests may have left pyplot figures open
    ax = plots.plot_overlaps(uk5)
    assert isinstance(ax, Axes)
    heights = [p.get_height() for p in ax.patches]
    nonzero = sorted((c for c in uk5.counts if c > 0), reverse=True)
    assert heights == nonzero                      # every non-empty pattern, largest first
    matrix = ax.child_axes[0]
    assert [t.get_text().split(" ")[0] for t in matrix.get_yticklabels()] == list(uk5.lists)
    small = plots.plot_overlaps(uk5, max_patterns=5)
    assert len(small.patches) == 5 and "13 smaller patterns not shown" in small.get_title()
    assert _pyplot_figures() == before  # nothing registered with pyplot


def test_overlaps_into_given_axes(uk5):
    fig = Figure()
    ax = fig.add_subplot()
    assert plots.plot_overlaps(uk5, ax=ax) is ax


def test_heatmap_is_the_overlap_matrix(uk5):
    ax = plots.plot_overlap_heatmap(uk5)
    np.testing.assert_array_equal(ax.images[0].get_array(), uk5.overlap_matrix().to_numpy())
    jac = plots.plot_overlap_heatmap(uk5, normalize="jaccard").images[0].get_array()
    assert np.allclose(np.diag(jac), 1.0)
    with pytest.raises(tipstat.InputError, match="normalize"):
        plots.plot_overlap_heatmap(uk5, normalize="z")


def test_forest_draws_each_interval_and_flags_nonexistent():
    table = tipstat.compare(tipstat.datasets.load("Korea_3"), ["independence", "all2"])
    ax = plots.plot_forest(table, published=157)
    first = table.iloc[0]
    lines = [ln for ln in ax.lines if len(ln.get_xdata()) == 2 and ln.get_ydata()[0] == ln.get_ydata()[1]]
    assert [round(v, 6) for v in lines[0].get_xdata()] == [round(first.lower, 6), round(first.upper, 6)]
    notes = [t.get_text().strip() for t in ax.texts]
    assert "does not exist" in notes                     # the all-two-way model, shown as such
    assert any("published 157" in t.get_text() for t in ax.get_legend().get_texts())
    est_ax = plots.plot_forest([table.estimates[0]])
    assert len(est_ax.get_yticklabels()) == 1
    with pytest.raises(tipstat.InputError, match="lacks column"):
        plots.plot_forest(pd.DataFrame({"x": [1]}))


def _estimate(draws, kind):
    return tipstat.Estimate(n_hat=float(np.median(draws[np.isfinite(draws)])),
                            ci=(900.0, 1100.0), level=0.95, n_observed=600, method="m",
                            model="-", ci_method=kind, draws=draws)


def test_posterior_and_bootstrap_histograms_hold_every_draw():
    rng = np.random.default_rng(5)
    draws = rng.normal(1000, 50, 3000)
    ax = plots.plot_posterior(_estimate(draws, "posterior"), bins=40)
    assert sum(p.get_height() for p in ax.patches[:40]) == 3000
    reps = np.r_[draws[:999], np.inf, np.nan]
    ax = plots.plot_bootstrap(_estimate(reps, "bca"), bins=30)
    assert sum(p.get_height() for p in ax.patches[:30]) == 999
    assert ax.get_title() == "bootstrap distribution of N-hat: 999 replicates (2 not finite)"
    with pytest.raises(tipstat.InputError, match="no draws"):
        plots.plot_posterior(tipstat.fit_loglinear(tipstat.datasets.load("UK_5")))


def test_model_search_marks_the_minimum():
    t = pd.DataFrame({"model": ["a", "b", "c", "d"], "n_hat": [100.0, 150.0, 130.0, np.inf],
                      "aic": [12.0, 10.0, 11.0, 9.0], "step": [0, 2, 1, 3]})
    ax = plots.plot_model_search(t)
    star = next(ln for ln in ax.lines if ln.get_marker() == "*")
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (10.0, 150.0)   # d has no finite N-hat
    assert "1 models without a finite estimate" in ax.get_title()
    with pytest.raises(tipstat.InputError, match="n_hat"):
        plots.plot_model_search(pd.DataFrame({"aic": [1.0]}))


def test_sdg_rates_show_suppressed_rows():
    t = pd.DataFrame({"sex": ["F", "M", "_T"], "age": ["Y0T17", "Y_GE18", "_T"],
                      "rate_per_100k": [3.1, np.nan, 2.5], "rate_lcl": [2.0, np.nan, 2.0],
                      "rate_ucl": [4.0, np.nan, 3.2]})
    ax = plots.plot_sdg_rates(t)
    labels = [x.get_text() for x in ax.get_yticklabels()]
    assert labels == ["sex=F, age=Y0T17", "sex=M, age=Y_GE18", "sex=_T, age=_T"]
    assert [x.get_text().strip() for x in ax.texts] == ["suppressed"]
    with pytest.raises(tipstat.InputError, match="rate_lcl"):
        plots.plot_sdg_rates(t.drop(columns="rate_lcl"))


def test_import_tipstat_does_not_import_matplotlib():
    import subprocess
    import sys

    code = ("import sys, tipstat; tipstat.compare; "
            "print(any(m.split('.')[0] in ('matplotlib', 'jinja2') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _small(texts):
    return [t for t in texts if t.replace(",", "").isdigit() and 0 < int(t.replace(",", "")) < 5]


def test_overlaps_for_publication_show_no_small_count(uk5):
    counts = np.asarray(uk5.counts, dtype=float)
    assert ((counts > 0) & (counts < 5)).sum() == 6          # UK_5 has six patterns of 1-4
    ax = plots.plot_overlaps(uk5, suppress_below=5)
    heights = [p.get_height() for p in ax.patches]
    assert not [v for v in heights if 0 < v < 5]
    # the grey bar pools the small patterns: every person is in some bar
    assert sum(heights) == uk5.n_observed and heights[-1] == counts[counts < 5].sum()
    assert _small([t.get_text() for t in ax.texts]) == []
    # a pool given by a disclosure rule: those patterns join the grey bar, hidden sizes are "x"
    pool = (counts > 0) & (counts < 20)
    ax = plots.plot_overlaps(uk5, pool=pool, hide_sizes=[True, False, False, False, False],
                             suppress_below=5)
    assert ax.patches[-1].get_height() == counts[pool].sum()
    assert ax.child_axes[0].get_yticklabels()[0].get_text() == "LA (x)"
    with pytest.raises(tipstat.InputError, match="pool"):
        plots.plot_overlaps(uk5, pool=[True])


def test_heatmap_for_publication_shows_no_small_count(uk5):
    ov = uk5.overlap_matrix().to_numpy()
    assert ((ov > 0) & (ov < 5)).any()                       # there are small overlaps to hide
    hide = np.zeros(ov.shape, bool)
    hide[3, 4] = hide[4, 3] = True
    ax = plots.plot_overlap_heatmap(uk5, suppress_below=5, hide=hide)
    texts = [t.get_text() for t in ax.texts]
    assert _small(texts) == [] and texts.count("<5") == ((ov > 0) & (ov < 5)).sum()
    assert texts.count("x") == 2
    shown = ax.images[0].get_array()
    assert shown.mask[(ov > 0) & (ov < 5)].all() and shown.mask[hide].all()  # no colour either


def test_forest_shows_a_lower_bound_as_at_least_without_a_point():
    """Status lower_bound: a bar at the interval's lower end (321) and an arrow to the edge,
    labelled "at least 321"; its point (987, not an estimate) is never drawn."""

    from tipstat import Estimate
    from tipstat.report.plots import plot_forest

    ok = tipstat.fit_loglinear(tipstat.datasets.load("Korea_3"), "independence")
    lb = Estimate(n_hat=987.0, ci=(321.0, 1900.0), level=0.95, n_observed=123.0,
                  method="b", model="[b]").as_lower_bound()
    ax = plot_forest([ok, lb])
    xs = [float(x) for line in ax.lines for x in line.get_xdata()]
    assert 321.0 in xs and 987.0 not in xs
    assert any(t.get_text() == "at least 321" for t in ax.texts)
    assert ax.get_xlim()[1] > 321.0 * 1.2     # room for the arrow
