"""The scripts in examples/ run end to end and produce the numbers they claim."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import tipstat

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_is_a_script_with_help(script):
    out = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_reproduce_uk_2013(capsys, published):
    res = _load("reproduce_uk_2013").main(["--n-boot", "40", "--seed", "1",
                                           "--methods", "independence,all2"])
    out = capsys.readouterr().out
    pub = published[(published.dataset == "UK_5") & published.method.str.startswith("forward")]
    pub = pub.iloc[0]
    refit = res["refit"]
    # the published model refitted: the Home Office figure to the unit (deterministic fit)
    assert refit.n_hat == pytest.approx(pub.estimate, abs=0.5)
    assert refit.ci == pytest.approx((pub.lower, pub.upper), abs=0.5)
    assert "published   11,313  [9,884, 13,027]" in out
    assert res["rule"].n_hat == pytest.approx(pub.estimate, abs=0.5)
    boot = res["bootstrap"]
    assert len(boot.draws) == 40 and boot.ci[0] < boot.n_hat < boot.ci[1]
    table = res["comparison"]
    assert table.iloc[0].model == "independence"
    assert table.iloc[0].n_hat == pytest.approx(13444.1312, rel=1e-6)   # Rcapture Mt


def test_sensitivity_analysis(tmp_path, capsys):
    out = tmp_path / "sens"
    res = _load("sensitivity_analysis").main(["Korea_3", "--out", str(out)])
    capsys.readouterr()
    for name in ("compare.csv", "leave_one_out.csv", "forest.png", "report.html"):
        assert (out / name).stat().st_size > 100, name
    loo = res["leave_one_out"]
    h = tipstat.datasets.load("Korea_3")
    for lst in h.lists:
        with pytest.warns(tipstat.TipstatWarning):
            sub = h.drop_lists([lst])
        row = loo[(loo.left_out == lst) & (loo.model == "independence")].iloc[0]
        assert row.observed == sub.n_observed
        assert row.n_hat == pytest.approx(tipstat.fit_loglinear(sub).n_hat, rel=1e-9)
    written = pd.read_csv(out / "compare.csv")
    assert written.n_hat.iloc[0] == pytest.approx(res["comparison"].n_hat.iloc[0], rel=1e-9,
                                                  nan_ok=True)  # nan where only a bound


def test_bayesian_analysis_graphical(tmp_path, capsys, r_reference):
    out = tmp_path / "bayes"
    res = _load("bayesian_analysis").main(["UK_4", "--out", str(out), "--no-latent-class"])
    capsys.readouterr()
    est = res["graphical"]
    ref = r_reference[(r_reference.dataset == "UK_4") & r_reference.package.str.startswith("dga")]
    ref = ref.iloc[0]
    # dga's posterior is on a grid: median and interval within 1% (as the graphical tests)
    assert est.n_hat == pytest.approx(ref.estimate, rel=0.01)
    assert est.ci == pytest.approx((ref.lower, ref.upper), rel=0.01)
    assert len(res["delta_sensitivity"]) == 3
    assert res["delta_sensitivity"][1].n_hat == est.n_hat
    assert {"posterior_graphical.png", "forest.png"} <= {p.name for p in out.iterdir()}


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(tipstat, "fit_latent_class"), reason="needs fit_latent_class")
def test_bayesian_analysis_with_latent_class(tmp_path, capsys):
    res = _load("bayesian_analysis").main(["Korea_3", "--out", str(tmp_path), "--draws", "300"])
    capsys.readouterr()
    lc = res["latent_class"]
    assert lc.ci[0] <= lc.n_hat <= lc.ci[1] and lc.n_hat >= 123     # at least the observed
    assert (tmp_path / "posterior_latent_class.png").exists()


def test_agency_exports_to_sdg(tmp_path, capsys):
    out = tmp_path / "sdg"
    res = _load("agency_exports_to_sdg").main(["--out", str(out), "--bootstrap", "30",
                                                "--seed", "3"])
    capsys.readouterr()
    detected, table = int(res["truth"]["detected"].sum()), res["sdg"].table
    # linkage on the exact key recovers the detected persons of the simulation exactly
    assert res["histories"].n_observed == detected
    total = table[(table.sex == "_T") & (table.age == "_T") & (table.exploitation == "_T")]
    assert int(total.detected.iloc[0]) == detected
    assert math.isfinite(res["fit"].n_hat) and res["fit"].n_hat > detected
    for name in ("sdg_16_2_2.csv", "sdg_16_2_2_glotip.csv", "report.html"):
        assert (out / name).exists(), name


def test_every_example_is_documented():
    guide = (EXAMPLES.parent / "docs" / "examples.md").read_text()
    for script in EXAMPLES.glob("*.py"):
        assert f"`{script.name}`" in guide, script.name
