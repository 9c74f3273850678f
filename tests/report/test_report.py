"""The HTML report: its numbers are the estimates', it is self-contained, small cells are
suppressed, and a real headless browser (Debian's chromium) renders it with every image loaded
and no console error."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tipstat

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")
from tipstat.comparison import leave_one_list_out
from tipstat.report.html import build_report, suppress_small_cells, write_report

SDG = pd.DataFrame({
    "sex": ["F", "M", "_T"], "age": ["_T", "_T", "_T"], "exploitation": ["_T", "_T", "_T"],
    "detected": [40, 3, 43], "undetected_est": [80.0, 7.0, 87.0],
    "total_est": [120.0, 10.0, 130.0], "total_lcl": [100.0, 6.0, 110.0],
    "total_ucl": [150.0, 19.0, 160.0], "population": [5e6, 5e6, 1e7],
    "rate_per_100k": [2.4, 0.2, 1.3], "rate_lcl": [2.0, 0.12, 1.1],
    "rate_ucl": [3.0, 0.38, 1.6],
})


def _independence(h):
    """The comparison a report is given: independence on the table pooled over strata."""
    return tipstat.compare(h.pooled(), ["independence"])


@pytest.fixture(scope="module")
def uk5_report(tmp_path_factory):
    h = tipstat.datasets.load("UK_5")
    table = tipstat.compare(h, ["independence", "all2"], seed=11)
    path = write_report(tmp_path_factory.mktemp("report") / "uk5.html", h, comparison=table,
                        sensitivity=leave_one_list_out(h, ["independence"], seed=11),
                        sdg_table=SDG, accounting={"records read": 3010, "records used": 2744,
                                                   "excluded: duplicate": 266},
                        seed=11, published=11313.0, title="UK <2013> test")
    return path, path.read_text(encoding="utf-8"), table


def _results_json(page):
    m = re.search(r'<script type="application/json" id="tipstat-results">(.*?)</script>', page, re.S)
    assert m, "the report embeds its results as JSON"
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_numbers_in_report_equal_the_estimates(uk5_report):
    _, page, table = uk5_report
    data = _results_json(page)
    assert data["schema"] == "tipstat-report/1" and data["seed"] == 11
    assert data["n_observed"] == 2744
    for rec, est in zip(data["estimates"], table.estimates, strict=True):
        assert rec["n_hat"] == pytest.approx(est.n_hat, rel=1e-12)
        assert [rec["lower"], rec["upper"]] == pytest.approx(list(est.ci), rel=1e-12)
        assert rec["status"] == est.status
    # the visible table: data-value attributes and the formatted numbers
    body = page.split('id="estimates-table"')[1].split("</table>")[0]
    values = [float(v) for v in re.findall(r'data-value="([^"]+)"', body)]
    expected = [x for est in table.estimates for x in (est.n_hat, *est.ci)]
    assert values == pytest.approx(expected, rel=1e-12)
    assert f"{table.estimates[0].n_hat:,.0f}" in body          # 13,444
    assert re.search(r'id="n-observed">2,744<', page)


def test_sections_and_accounting(uk5_report):
    _, page, _ = uk5_report
    for section in ("data", "overlaps", "estimates", "sensitivity", "diagnostics", "sdg"):
        assert f'<section id="{section}">' in page
    assert "UK &lt;2013&gt; test" in page                 # escaped
    acc = page.split('id="accounting"')[1].split("</table>")[0]
    assert "Records read" in acc and "3,010" in acc and "Excluded: duplicate" in acc
    sens = page.split('id="sensitivity-table"')[1].split("</table>")[0]
    assert sens.count("<tr") == 1 + 5                      # header + one row per list left out
    # leave GP out: independence on the 4 other lists, 2,428 observed (UK_4's table)
    uk4 = tipstat.fit_loglinear(tipstat.datasets.load("UK_4"), "independence")
    assert f"{uk4.n_hat:,.0f}" in sens and "2,428" in sens


def test_self_contained(uk5_report):
    _, page, _ = uk5_report
    srcs = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert srcs, "images are embedded"
    for s in srcs:
        assert s.startswith("data:image/png;base64,"), s[:40]
        png = base64.b64decode(s.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert len(srcs) >= 4              # overlaps, heatmap, forest, SDG rates
    assert "http://" not in page and "https://" not in page


def _table_rows(page, table_id):
    body = page.split(f'id="{table_id}"')[1].split("</table>")[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)
            for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S) if "<td" in r]


def _row(rows, *labels):
    return next(r for r in rows if r[: len(labels)] == list(labels))


def test_sdg_table_is_suppressed(uk5_report):
    _, page, _ = uk5_report
    rows = _table_rows(page, "sdg-table")
    male = _row(rows, "Male", "All", "All")
    # detected, estimated total, interval, rate, rate interval: none of the small cell's figures
    assert male[3:8] == ["x"] * 5 and male[8] == "withheld"
    # F is withheld too (a complement): otherwise M = total - F; the total stays published.
    # Small cells and complements carry the same marker, so the reader cannot tell which is
    # the small one
    female = _row(rows, "Female", "All", "All")
    assert female[3:9] == male[3:9]
    total = _row(rows, "All", "All", "All")
    assert total[3:8] == ["43", "130", "110–160", "1.30", "1.10–1.60"]
    assert "2 row(s) in all" in page


def test_suppress_small_cells_rules():
    out = suppress_small_cells(SDG)
    assert out.loc[1, "detected"] == "<5" and out.loc[1, "rate_per_100k"] == "suppressed"
    assert out.loc[0, "detected"] == "40" and len(out) == len(SDG)
    assert suppress_small_cells(SDG, threshold=50).detected.tolist() == ["<50", "<50", "<50"]
    with pytest.raises(tipstat.InputError, match="detected"):
        suppress_small_cells(SDG.drop(columns="detected"))


def test_bad_input():
    with pytest.raises(tipstat.InputError, match="CaptureHistories"):
        build_report(SDG)
    with pytest.raises(tipstat.InputError, match=r"tipstat\.compare"):   # it computes nothing
        build_report(tipstat.datasets.load("Korea_3"))


# ---------------------------------------------------------------------------- real browser
def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _DevTools:
    """Minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, exe):
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="tipstat-chromium-")

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--disable-extensions", f"--user-data-dir={self.profile}",
             "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events = []

    def _read(self, timeout):
        ready, _, _ = select.select([self._r], [], [], max(timeout, 0))
        if not ready:
            return
        chunk = os.read(self._r, 1 << 20)
        if not chunk:
            raise RuntimeError("chromium closed the DevTools pipe")
        self._buf += chunk
        while b"\0" in self._buf:
            raw, self._buf = self._buf.split(b"\0", 1)
            self.events.append(json.loads(raw))

    def send(self, method, params=None, session=None, timeout=60):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        end = time.time() + timeout
        while time.time() < end:
            for i, m in enumerate(self.events):
                if m.get("id") == self._id:
                    self.events.pop(i)
                    if "error" in m:
                        raise RuntimeError(m["error"])
                    return m["result"]
            self._read(end - time.time())
        raise TimeoutError(method)

    def wait(self, event, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if any(e.get("method") == event for e in self.events):
                return
            self._read(end - time.time())
        raise TimeoutError(event)

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            self.proc.kill()
        self.proc.wait(20)
        shutil.rmtree(self.profile, ignore_errors=True)


def _render(exe, path, width=None, media=None):
    tools = _DevTools(exe)
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for m in ("Page.enable", "Runtime.enable", "Log.enable"):
            tools.send(m, session=s)
        tools.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=s)
        tools.wait("Page.loadEventFired")

        def js(expr):
            return tools.send("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                              session=s)["result"]["value"]

        if width:
            tools.send("Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": 1000, "deviceScaleFactor": 1,
                        "mobile": False}, session=s)
        if media:
            tools.send("Emulation.setEmulatedMedia", {"media": media}, session=s)
        result = {
            "title": js("document.title"),
            # tables wider than their box (they would be cut off in print) and a page wider
            # than the window
            "overflow": js("Array.from(document.querySelectorAll('.table-wrap')).filter("
                           "w => w.scrollWidth > w.clientWidth).map(w => "
                           "w.firstElementChild.id + ':' + w.scrollWidth + '>' + w.clientWidth)"),
            "page_width": js("[document.documentElement.scrollWidth, "
                             "document.documentElement.clientWidth]"),
            "images": js("Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
                         "i.naturalHeight, i.getBoundingClientRect().width])"),
            "rows": js("document.querySelectorAll('#estimates-table tbody tr').length"),
            "height": js("document.body.scrollHeight"),
        }
        tools._read(0.5)
        result["errors"] = [
            e for e in tools.events
            if (e.get("method") == "Runtime.exceptionThrown")
            or (e.get("method") == "Runtime.consoleAPICalled"
                and e["params"].get("type") in ("error", "assert"))
            or (e.get("method") == "Log.entryAdded"
                and e["params"]["entry"].get("level") == "error")]
        return result
    finally:
        tools.close()


@pytest.fixture(scope="module")
def chromium():
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/install-system-deps.sh installs it")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return exe


def test_report_renders_in_headless_chromium(uk5_report, chromium):
    path, _, table = uk5_report
    out = _render(chromium, path)
    assert out["title"] == "UK <2013> test"
    assert out["rows"] == len(table)
    assert len(out["images"]) >= 4
    for complete, width, height, shown in out["images"]:
        assert complete and width > 100 and height > 100 and shown > 100
    assert out["height"] > 2000
    assert out["errors"] == []


def _wide_sdg():
    """A three-way SDG table with long labels and large numbers (60 rows)."""
    rows = []
    rng = np.random.default_rng(4)
    for sex in ("F", "M", "_T"):
        for age in ("Y0T17", "Y_GE18", "_U", "_T"):
            for form in ("SEX", "LAB", "MIX", "OTH", "_T"):
                det = int(rng.integers(5_000, 90_000))
                tot = det * 1.9
                pop = 12_345_678.0 if age != "_U" else float("nan")
                rows.append({"ref_area": "BEL", "time_period": 2024, "sex": sex, "age": age,
                             "exploitation": form, "detected": det, "undetected_est": tot - det,
                             "total_est": tot, "total_lcl": tot * 0.8, "total_ucl": tot * 1.3,
                             "population": pop, "rate_per_100k": 1e5 * tot / pop,
                             "rate_lcl": 8e4 * tot / pop, "rate_ucl": 1.3e5 * tot / pop,
                             "series_code": "VC_HTF_DETV", "obs_status": "estimated",
                             "notes": "no population at risk for unknown age" if age == "_U"
                             else ""})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory):
    h = tipstat.datasets.load("UK_5")
    # all2's note names long patterns (LA+NG+PFNCA+GO+GP), stepwise a long method name
    table = tipstat.compare(h, ["independence", "all2", "stepwise"], seed=1)
    key = {"LA": ["Local authority children's services of the northern region",
                  "Local authority adult social care"], "NG": "Non-governmental organisations",
           "PFNCA": "Police forces and National Crime Agency"}
    return write_report(tmp_path_factory.mktemp("wide") / "wide.html", h, comparison=table,
                        sensitivity=leave_one_list_out(h, ["independence"], seed=1),
                        sdg_table=_wide_sdg(), list_key=key, seed=1,
                        reliability=tipstat.internal_consistency(h, tipstat.estimate_population),
                        warnings=["[W1] " + "a long warning without spaces " * 8])


@pytest.mark.parametrize(("width", "media"), [(800, None), (1280, None), (718, "print")])
def test_tables_fit_the_page(chromium, wide_report, width, media):
    # 718 px: the printable width of an A4 page (210 mm less 1 cm margins at 96 px per inch)
    out = _render(chromium, wide_report, width=width, media=media)
    assert out["errors"] == []
    assert out["overflow"] == []
    scroll, client = out["page_width"]
    assert scroll <= client


def test_browser_check_catches_broken_pages(uk5_report, chromium, tmp_path):
    # the check above can fail: a page with a network image and a script error is caught
    _, page, _ = uk5_report
    bad = tmp_path / "bad.html"
    bad.write_text(page.replace("</body>", '<img src="https://example.invalid/x.png">'
                                           "<script>console.error('boom')</script></body>"))
    out = _render(chromium, bad)
    assert out["errors"] and out["overflow"] == []
    # a table too wide for its box is caught by the width check
    wide = tmp_path / "wide.html"
    wide.write_text(page.replace('<table id="sdg-table" class="wide">',
                                 '<table id="sdg-table" style="width:3000px">'))
    assert _render(chromium, wide, width=800)["overflow"]
    assert any(not c or w == 0 for c, w, _, _ in out["images"])


def test_reliability_and_model_search_sections(tmp_path):
    h = tipstat.datasets.load("NewOrleans_5")
    table = tipstat.compare(h, ["independence", "stepwise"], reliability=True)
    check = tipstat.internal_consistency(h, tipstat.estimate_population)
    page = build_report(h, comparison=table, reliability=check)
    note = re.search(r'<p id="reliability-note">(.*?)</p>', page).group(1)
    assert note == check.indicator["note"].replace("'", "&#39;")
    assert "sensitivity-table" not in page
    body = page.split('id="estimates-table"')[1].split("</table>")[0]
    assert "<th>Reliability</th>" in body and table.iloc[0].reliability in body
    # the stepwise search path is drawn in the diagnostics of the selection row
    diagnostics = page.split('<section id="diagnostics">')[1].split("</section>")[0]
    assert diagnostics.count("<img") >= 1


def test_rows_suppressed_by_the_indicator_stay_suppressed():
    h = tipstat.datasets.load("Korea_3")
    sdg = SDG.assign(obs_status=["estimated", "suppressed", "estimated"])
    sdg.loc[1, ["detected", "total_est", "rate_per_100k"]] = float("nan")
    page = build_report(h, comparison=_independence(h), sdg_table=sdg)
    male = _row(_table_rows(page, "sdg-table"), "Male")
    assert male[3] == "x" and "0.38" not in "".join(male) and "19" not in "".join(male)


def test_secondary_suppression_in_the_report():
    # an unsuppressed table: M (3 detected) would be total - F, so F is suppressed too, and the
    # grand total stays published
    h = tipstat.datasets.load("Korea_3")
    page = build_report(h, comparison=_independence(h), sdg_table=SDG)
    rows = _table_rows(page, "sdg-table")
    female = _row(rows, "Female")
    assert "withheld" in female and "120" not in female and "40" not in female
    assert _row(rows, "All")[3:5] == ["43", "130"]
    assert "2 row(s) in all" in page
    # rows the indicator marks as secondary stay suppressed, with no count shown
    sdg = SDG.assign(obs_status=["suppressed (secondary)", "suppressed", "estimated"])
    page = build_report(h, comparison=_independence(h), sdg_table=sdg)
    female = _row(_table_rows(page, "sdg-table"), "Female")
    assert "40" not in female and "120" not in female


# ---------------------------------------------------------------------------- publication rules
def _stratified(uk5):
    """UK_5 split into strata F / M and a tiny stratum _U (3 persons), with the same pooled
    table."""
    f = uk5.to_frame()
    f = f[f["count"] > 0].reset_index(drop=True)
    fem = f.assign(sex="F", count=f["count"] * 2 // 3)
    male = f.assign(sex="M", count=f["count"] - f["count"] * 2 // 3)
    male.loc[0, "count"] -= 3                      # LA only: 54 -> F 36, M 15, _U 3
    unk = f.iloc[[0]].assign(sex="_U", count=3)
    df = pd.concat([fem, male, unk], ignore_index=True)
    return tipstat.CaptureHistories.from_frame(df[df["count"] > 0], strata=["sex"])


def _cell_texts(page):
    """Text of every table cell outside the diagnostics (model fit numbers, not counts)."""
    main = page.split('<section id="diagnostics">')[0]
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", main, re.S)
    return [re.sub(r"<sup>.*?</sup>|<[^>]+>", "", c).strip() for c in cells]


def _small_counts(texts):
    """Whole numbers 1 to 4 (alone or as a bound of an interval) among cell texts."""
    out = []
    for t in texts:
        for part in re.split(r"–| to ", t):
            part = part.strip()
            if re.fullmatch(r"\d[\d,]*", part) and 0 < int(part.replace(",", "")) < 5:
                out.append(t)
    return out


@pytest.fixture(scope="module")
def small_report():
    uk5 = tipstat.datasets.load("UK_5")
    h = _stratified(uk5)
    table = tipstat.compare(h.pooled(), ["independence"], seed=3)
    acc = {"read": 3020, "used": 2744, "excluded: duplicate": 270, "excluded: bad date": 4,
           "excluded: not a victim": 2, "persons (distinct, detected)": 2744,
           "persons on 1 list(s)": 2523, "persons on 2 list(s)": 200, "persons on 3 list(s)": 18,
           "persons on 4 list(s)": 3}
    warns = ["[W4] 1 person(s) have conflicting age_group across their records",
             "[W1] 12 (stratum, list) pair(s) with fewer than 10 persons"]
    page = build_report(h, comparison=table, accounting=acc, warnings=warns, seed=3,
                        sensitivity=leave_one_list_out(h.pooled(), ["independence"], seed=3),
                        list_key="UK_5", reliability=tipstat.internal_consistency(
                            uk5, tipstat.estimate_population))
    return h, page


def test_no_count_from_1_to_4_in_any_table(small_report):
    _, page = small_report
    texts = _cell_texts(page)
    assert len(texts) > 100
    assert _small_counts(texts) == []
    # the check can fail: the unprotected numbers are there to be found
    assert _small_counts(["3", "12", "1,306–1,731", "2–9"]) == ["3", "2–9"]
    # the stratum of 3 persons is <5, and one more stratum is suppressed so that the total
    # (published) minus the others does not give it back
    rows = _table_rows(page, "strata-table")
    values = {r[0]: r[-1] for r in rows}
    assert values["Unknown / not recorded"] == "x"
    assert "x" in (values["Female"], values["Male"])
    assert values["All strata"] == "2,744"
    # accounting: the top of the persons-on-k-lists series is binned, small reasons pooled
    acc = dict(_table_rows_th(page, "accounting"))
    assert acc["Persons on 3 or more lists"] == "21"
    assert acc["Excluded: 2 other reasons"] == "6"      # 4 + 2: neither alone
    assert "Persons on 4 list(s)" not in acc


def _table_rows_th(page, table_id):
    body = page.split(f'id="{table_id}"')[1].split("</table>")[0]
    return re.findall(r"<tr><th>(.*?)</th><td[^>]*>(.*?)</td></tr>", body)


def test_small_numbers_in_warnings_are_masked(small_report):
    _, page = small_report
    items = re.findall(r'<li class="warn">(.*?)</li>', page)
    assert "[W4] &lt;5 person(s) have conflicting age_group across their records" in items
    assert any(i.startswith("[W1] 12 (stratum, list)") and "10 persons" in i for i in items)
    assert "No warning" not in page


def test_pattern_pool_leaves_no_sum_with_one_hidden_pattern():
    from tipstat.report.html import _pattern_pool

    h = tipstat.datasets.load("UK_5")
    counts = np.asarray(h.counts, dtype=float)
    pats = np.asarray(h.patterns, dtype=bool)
    pool, hide = _pattern_pool(h, 5)
    assert pool[(counts > 0) & (counts < 5)].all()           # every small pattern is pooled
    # every published sum (total, list sizes, overlaps of 5 or more, not hidden) holds no
    # pooled pattern, or two or more together holding 5 or more persons
    sums = [np.ones(len(counts), bool)]
    sums += [pats[:, i] & pats[:, j] for i in range(h.k) for j in range(i, h.k)
             if counts[pats[:, i] & pats[:, j]].sum() >= 5 and not hide[i, j]]
    for member in sums:
        hidden = member & pool & (counts > 0)
        assert hidden.sum() == 0 or (hidden.sum() >= 2 and counts[hidden].sum() >= 5)
    # the plain rule (pool the small patterns only) leaves sums with one pooled pattern
    plain = (counts > 0) & (counts < 5)
    assert any((m & plain).sum() == 1 for m in sums)
    assert hide.sum() <= 4 and (hide == hide.T).all()


def test_headline_is_the_sdg_total(uk5_report):
    _, page, _ = uk5_report
    assert re.search(r'id="headline-figure" data-value="130.0">130<', page)
    assert "95% interval: <span data-value=\"110.0\">110</span> to" in page
    method = re.search(r'id="headline-method">(.*?)</p>', page).group(1)
    assert method == "Method: stratified log-linear MSE by sex, 95% bootstrap interval."
    note = re.search(r'<p id="headline-note">(.*?)</p>', page, re.S).group(1)
    assert "13,444" in note and "SDG 16.2.2 total, 130" in note and "pooling assumes" in note
    assert page.index('id="headline"') < page.index('id="sdg"') < page.index('id="estimates"')
    assert _results_json(page)["headline"] == {"n_hat": 130.0, "lower": 110.0, "upper": 160.0,
                                               "level": 0.95, "method": method[8:-1]}


def test_headline_without_sdg_table_and_given():
    h = tipstat.datasets.load("Korea_3")
    table = tipstat.compare(h, ["independence", "all2"])
    page = build_report(h, comparison=table)
    first = table.estimates[0]
    assert f'data-value="{first.n_hat}">{first.n_hat:,.0f}<' in page
    assert "headline-note" not in page                     # one figure, nothing to reconcile
    assert 'class="headline-row"' in page
    given = {"n_hat": 1509.4, "lower": 1305.6, "upper": 1731.1, "level": 0.9,
             "method": "stratified log-linear MSE by sex, 90% bootstrap interval"}
    page = build_report(h, comparison=table, headline=given)
    assert re.search(r'id="headline-figure" data-value="1509.4">1,509<', page)
    assert "90% interval" in page and given["method"] in page
    assert f"{first.n_hat:,.0f}" in page.split('id="headline-note">')[1]
    with pytest.raises(tipstat.InputError, match="upper"):
        build_report(h, comparison=table, headline={"n_hat": 1.0, "lower": 1.0})


def test_no_number_where_there_is_none():
    h = tipstat.datasets.load("Korea_3")
    sdg = SDG.copy()
    sdg.loc[2, ["total_est", "total_lcl", "total_ucl"]] = float("nan")
    page = build_report(h, comparison=_independence(h), sdg_table=sdg)
    assert 'id="headline-figure">not estimable<' in page
    assert _results_json(page)["headline"]["n_hat"] is None
    assert _row(_table_rows(page, "sdg-table"), "All")[8] == "not estimable"


def test_list_key_in_every_form():
    h = tipstat.datasets.load("UK_5")
    table = tipstat.compare(h, ["independence"])
    kw = {"comparison": table}
    rows = _table_rows(build_report(h, list_key="UK_5", **kw), "list-sizes")
    assert rows[0] == ["LA", "local authorities", f"{h.list_sizes()['LA']:,.0f}"]
    assert [r[1] for r in rows] == list(tipstat.datasets.info("UK_5")["lists"].values())
    rows = _table_rows(build_report(h, list_key={"LA": ["Council A", "Council B"],
                                                 "NG": "Shelter"}, **kw), "list-sizes")
    assert rows[0][1] == "Council A; Council B" and rows[1][1] == "Shelter"
    assert rows[2][1] == "not given in the key"
    definition = pd.DataFrame({"entity_id": ["POL_N", "POL_S", "NGO1"],
                               "list_id": ["PFNCA", "PFNCA", "NG"]})
    entities = pd.DataFrame({"entity_id": ["POL_N", "POL_S", "NGO1"],
                             "entity_name": ["Police North", "Police South", "Shelter One"],
                             "entity_type": ["LE_POL", "LE_POL", "NGO"]})
    page = build_report(h, list_key=definition, entities=entities, **kw)
    rows = {r[0]: r for r in _table_rows(page, "list-sizes")}
    assert rows["PFNCA"][1:3] == ["Police North (POL_N); Police South (POL_S)", "Police"]
    assert rows["NG"][2] == "NGO / civil society service provider"
    assert 'id="no-key"' in build_report(h, **kw)
    with pytest.raises(tipstat.InputError, match="list_id"):
        build_report(h, list_key=definition.drop(columns="list_id"), **kw)


def test_readable_and_reproducible(uk5_report):
    _, page, _ = uk5_report
    h = tipstat.datasets.load("UK_5")
    table = tipstat.compare(h, ["independence", "all2"], seed=11)
    again = build_report(h, comparison=table, sdg_table=SDG,
                         sensitivity=leave_one_list_out(h, ["independence"], seed=11),
                         accounting={"records read": 3010, "records used": 2744,
                                     "excluded: duplicate": 266},
                         seed=11, published=11313.0, title="UK <2013> test")
    assert again == page                                  # same inputs, same bytes
    assert not re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d", page)   # no clock in the page
    assert 'id="seed">seed 11<' in page
    assert "created 2026-01-02" in build_report(h, comparison=table, created="created 2026-01-02")
    headers = re.findall(r"<th[^>]*>(.*?)</th>", page.split('<section id="diagnostics">')[0])
    for raw in ("undetected_est", "total_est", "n_hat", "rate_per_100k", "ci_method", "True"):
        assert raw not in headers and f">{raw}<" not in page


def test_suppressed_total_publishes_no_figure():
    h = tipstat.datasets.load("Korea_3")
    sdg = SDG.assign(detected=[2, 1, 3], obs_status=["suppressed", "suppressed", "suppressed"])
    page = build_report(h, comparison=_independence(h), sdg_table=sdg)
    head = page.split('<section id="headline">')[1].split("</section>")[0]
    assert 'id="headline-figure">suppressed<' in head
    assert not re.search(r">\s*[1-4]\s*<", head) and "130" not in head
    assert _small_counts(_cell_texts(page)) == []


def test_counts_in_warning_text():
    from tipstat.report.html import _mask_small_numbers

    assert _mask_small_numbers("3 records excluded; 2 victims; 12 persons", 5) == \
        "<5 records excluded; <5 victims; 12 persons"
    # thresholds and rates are not counts of persons
    for text in ("fewer than 3 persons", "at least 2 records", "1.4 persons per cell"):
        assert _mask_small_numbers(text, 5) == text


def test_headline_of_an_unstratified_sdg_table():
    h = tipstat.datasets.load("Korea_3")
    total = SDG.iloc[[2]].assign(method="MSE_LOGLINEAR")
    page = build_report(h, comparison=_independence(h), sdg_table=total)
    method = re.search(r'id="headline-method">(.*?)</p>', page).group(1)
    assert method == "Method: log-linear MSE, 95% interval."


# ---------------------------------------------------------------------------- caveats (issue 16)
def _visible(page):
    """The page without the embedded JSON results and the images."""
    page = re.sub(r'<script type="application/json".*?</script>', "", page, flags=re.S)
    return re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', page)


def test_caveats_are_shown_and_non_estimates_carry_no_number(caveat_method):
    # the comparison of the conftest's caveat_method (Caveats and statuses that are not
    # estimates; the report renders whatever the estimators attach)
    h = tipstat.datasets.load("Korea_3")
    table = tipstat.compare(h, [caveat_method, "independence"])
    assert table["warning_codes"].tolist()[:3] == [
        "lower_bound_only; untestable_weight", "not_identified_mass", "note"]
    page = build_report(h, comparison=table, reliability="switched off (--no-reliability)")
    visible = _visible(page)
    # no bare number for a non-estimate, anywhere a reader looks
    for number in ("987", "5,555", "5555", "4,444", "6,666", "7,777", "7777", "8,000"):
        assert number not in visible, number
    # the lower bound is "at least L" (L the interval's lower end), in the table and headline
    body = visible.split('id="estimates-table"')[1].split("</table>")[0]
    assert "at least 321" in body and "not identifiable" in body and "does not exist" in body
    assert 'id="headline-figure">at least 321<' in visible
    data = _results_json(page)
    assert data["headline"]["n_hat"] is None and data["headline"]["lower_bound"] == 321.0
    # the JSON keeps every number with its status and the caveats with their codes
    rec = data["estimates"][0]
    assert rec["status"] == "lower_bound" and rec["n_hat"] is None   # no point for a bound
    assert rec["warnings"][1] == {"code": "untestable_weight", "message": "94% of the weight "
                                  "on models with no residual df", "values": {"share": 0.94}}
    assert data["estimates"][2]["warning_codes"] == ["note"]
    # the block: one entry per estimate, each caveat with its code
    block = visible.split('<section id="cannot-support">')[1].split("</section>")[0]
    assert "What the data cannot support" in block
    assert block.count('class="caveats') == len(table)
    for code in ("lower_bound_only", "untestable_weight", "not_identified_mass", "note"):
        assert f"<code>{code}</code>" in block
    assert "lower bound only: at least 321" in block
    # the independence row carries the table checks every estimator attaches (Korea_3's
    # independence fit: unstable without one list, ...): each of them is in its block
    indep = [w for w in table["warnings"].iloc[-1]]
    assert indep and all(f"<code>{w.code}</code>" in block for w in indep)
    # the estimates table links each row's codes to its block
    assert '<a href="#caveats-0">lower_bound_only, untestable_weight</a>' in body
    # a report without the reliability check says why
    assert "Reliability check: switched off (--no-reliability)." in visible
    # with an SDG headline, a pooled default that is only a bound is not quoted as a figure
    with_sdg = _visible(build_report(h, comparison=table, sdg_table=SDG))
    assert 'id="headline-figure" data-value="130.0">130<' in with_sdg
    assert 'id="headline-note"' not in with_sdg and "987" not in with_sdg


def test_comparison_html_shows_codes_and_no_number_for_non_estimates(caveat_method):
    from tipstat.report.tables import comparison_html, comparison_records

    h = tipstat.datasets.load("Korea_3")
    table = tipstat.compare(h, [caveat_method, "independence"])
    page = comparison_html(table)
    for number in ("987", "5,555", "7,777"):
        assert number not in page, number
    assert "at least 321" in page and "[321, no upper bound]" in page
    assert "<code>untestable_weight</code> 94% of the weight" in page
    recs = comparison_records(table)
    assert recs[0]["warning_codes"] == ["lower_bound_only", "untestable_weight"]
    assert recs[1]["warnings"][0]["values"] == {"mass": 0.71}


def test_reliability_block_rating_and_excluded_lists():
    h = tipstat.datasets.load("UK_5")
    check = tipstat.internal_consistency(h, tipstat.estimate_population)
    page = build_report(h, comparison=_independence(h), reliability=check)
    rating = check.indicator["rating"]
    assert re.search(rf'id="reliability-rating">Rating: <strong>{rating}</strong>', page)
    # UK_5: GP has 20 members on the other lists (< 30): excluded as too few seen, counted
    assert check.summary["excluded"] == 1 and "1 list(s) with fewer than 30" in page
    rows = page.split('id="reliability-table"')[1].split("</table>")[0]
    assert "too few seen" in rows
    # two lists: the section says why there is no check
    h2 = tipstat.CaptureHistories(np.array([60.0, 40.0, 30.0]), ["A", "B"])
    page2 = build_report(h2, comparison=tipstat.compare(h2, ["independence"]))
    assert "it needs at least 3 lists; this table has 2" in page2


def test_the_survey_page_and_the_mse_report_share_one_head(uk5_report):
    """Both pages extend one base template: the same head (meta tags, content policy, styles)
    apart from the title, so a style changed once changes both."""
    from tipstat.report.survey import build_survey_report
    from tipstat.survey import run_survey

    sv = tipstat.datasets.load_survey()
    run = run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"], by=["sex"])
    survey_page = build_survey_report(run, title="Survey <test>")
    mse_page = uk5_report[1]

    def head(page):
        h = page[:page.index("</head>")]
        return re.sub(r"<title>.*?</title>", "", h, flags=re.S)

    assert head(survey_page) == head(mse_page)
    assert "<title>Survey &lt;test&gt;</title>" in survey_page
    assert head(mse_page).count("<style>") == 1 and "box-sizing" in head(mse_page)
