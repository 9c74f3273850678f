"""The ``tipstat`` command line: exit codes, error messages without tracebacks, the stable JSON
schema, and numbers equal to the library's."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import tipstat
from tipstat.cli import SCHEMA, main
from tipstat.comparison import COLUMNS

ENVELOPE = {"schema", "command", "tipstat_version", "ok", "seed", "input", "results", "warnings",
            "error"}
ESTIMATE_KEYS = {"method", "model", "status", "n_observed", "n_hat", "undetected", "lower",
                 "upper", "level", "ci_method", "se", "deviance", "df", "aic", "bic", "seed",
                 "warnings"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, _err = run(capsys, *argv, "--json")
    data = json.loads(out)
    assert set(data) >= ENVELOPE and data["schema"] == SCHEMA
    return code, data


@pytest.fixture
def pattern_csv(tmp_path):
    df = pd.DataFrame({"A": [1, 0, 1, 0, 1, 0, 1], "B": [0, 1, 1, 0, 0, 1, 1],
                       "C": [0, 0, 0, 1, 1, 1, 1], "count": [40, 30, 6, 20, 5, 4, 2]})
    path = tmp_path / "patterns.csv"
    df.to_csv(path, index=False)
    return path, df


def test_estimate_text_and_json_equal_library(capsys, pattern_csv):
    path, df = pattern_csv
    expected = tipstat.fit_loglinear(tipstat.CaptureHistories.from_frame(df), "A:B")
    code, out, err = run(capsys, "estimate", str(path), "--model", "A:B")
    assert code == 0 and err == ""
    assert f"{expected.n_hat:,.1f}" in out and "3 lists (A, B, C)" in out
    code, data = run_json(capsys, "estimate", str(path), "--model", "A:B", "--seed", "4")
    assert code == 0 and data["ok"] and data["error"] is None and data["seed"] == 4
    assert data["input"] == {"source": str(path), "kind": "pattern table", "lists": ["A", "B", "C"],
                             "n_observed": 107.0, "strata": []}
    (res,) = data["results"]
    assert set(res) == ESTIMATE_KEYS
    assert res["n_hat"] == pytest.approx(expected.n_hat, rel=1e-12)
    assert [res["lower"], res["upper"]] == pytest.approx(list(expected.ci), rel=1e-12)


def test_estimate_bundled_table_matches_rcapture(capsys, r_reference):
    ref = r_reference[(r_reference.dataset == "UK_5") & (r_reference.method == "closedpCI")
                      & (r_reference.model == "Mt")].iloc[0]
    code, data = run_json(capsys, "estimate", "UK_5", "--model", "independence")
    assert code == 0
    # deterministic ML fit; the CLI passes the engine's number through (relative 1e-6 as R)
    assert data["results"][0]["n_hat"] == pytest.approx(ref.estimate, rel=1e-6)
    assert "Home Office" in data["input"]["citation"]


def test_estimate_without_model_is_the_default_estimator(capsys):
    code, data = run_json(capsys, "estimate", "Kosovo_4")
    assert code == 0
    res = data["results"][0]
    est = tipstat.estimate_population(tipstat.datasets.load("Kosovo_4"))
    assert res["n_hat"] == pytest.approx(est.n_hat, rel=1e-12)
    assert [res["lower"], res["upper"]] == pytest.approx(list(est.ci), rel=1e-12)
    assert res["method"].startswith("default (")
    code, _out, err = run(capsys, "estimate", "Kosovo_4", "--method", "default", "--model", "A:B")
    assert code == 2 and "--model is for --method loglinear" in err


def test_nonexistent_estimate_is_null_with_status(capsys):
    code, data = run_json(capsys, "estimate", "Korea_3", "--model", "all2")
    assert code == 0
    res = data["results"][0]
    assert res["status"] == "does_not_exist" and res["n_hat"] is None and res["warnings"]


def test_person_rows_and_strata(capsys, tmp_path):
    people = pd.DataFrame({"police": [1, 1, 0, 1, 0, 1], "ngo": [0, 1, 1, 1, 1, 0],
                           "sex": ["F", "F", "M", "M", "F", "M"]})
    path = tmp_path / "people.csv"
    people.to_csv(path, index=False)
    code, data = run_json(capsys, "estimate", str(path), "--strata", "sex", "--by-stratum")
    assert code == 0 and data["input"]["kind"] == "person rows"
    assert [r["stratum"] for r in data["results"]] == [{"sex": "F"}, {"sex": "M"}]
    code, data = run_json(capsys, "estimate", str(path), "--strata", "sex")
    assert len(data["results"]) == 1 and "pooled" in data["warnings"][0]


def test_bad_input_exit_2_names_row_and_value(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("A,B,count\n1,0,10\n0,1,x\n1,1,5\n")
    code, out, err = run(capsys, "estimate", str(bad))
    assert code == 2 and out == ""
    assert "column 'count', row 3: value 'x'" in err       # row = line of the file
    assert "Traceback" not in err
    code, data = run_json(capsys, "estimate", str(bad))
    assert code == 2 and data["ok"] is False and data["results"] == []
    assert data["error"]["kind"] == "input"
    assert data["error"]["problems"] == [{"column": "count", "row": 3, "value": "x",
                                          "expected": "a whole number >= 0"}]
    code, out, err = run(capsys, "estimate", str(tmp_path / "missing.csv"))
    assert code == 2 and "no such file" in err and "UK_5" in err
    code, out, err = run(capsys, "compare", "UK_5", "--methods", "independence,nope")
    assert code == 2 and "unknown method 'nope'" in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["estimate", "UK_5", "--level", "95"])
    assert e.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_internal_error_exit_1_without_traceback_unless_debug(capsys, monkeypatch):
    def broken(*a, **k):
        raise ZeroDivisionError("deliberate")

    monkeypatch.setattr(tipstat, "estimate_population", broken)
    code, _out, err = run(capsys, "estimate", "UK_5")
    assert code == 1
    assert "ZeroDivisionError: deliberate" in err and "--debug" in err
    assert "Traceback" not in err
    code, data = run_json(capsys, "estimate", "UK_5")
    assert code == 1 and data["error"]["kind"] == "internal"
    with pytest.raises(ZeroDivisionError):
        main(["estimate", "UK_5", "--debug"])
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "estimate", "UK_5"])


def test_compare_json_and_csv(capsys, tmp_path):
    out_csv = tmp_path / "cmp.csv"
    code, data = run_json(capsys, "compare", "Korea_3", "--methods", "independence,all2",
                          "--csv", str(out_csv))
    assert code == 0
    assert [set(r) for r in data["results"]] == [set(COLUMNS)] * 2
    expected = tipstat.compare(tipstat.datasets.load("Korea_3"), ["independence", "all2"])
    assert data["results"][0]["n_hat"] == pytest.approx(expected.n_hat.iloc[0], rel=1e-12)
    assert data["results"][1]["status"] == "does_not_exist"
    written = pd.read_csv(out_csv)
    assert written.n_hat.iloc[0] == pytest.approx(expected.n_hat.iloc[0], rel=1e-9)
    code, out, _err = run(capsys, "compare", "Korea_3", "--methods", "independence")
    assert code == 0 and f"{expected.n_hat.iloc[0]:,.0f}" in out


def test_reproduce_prints_published_beside_tipstat(capsys):
    code, out, err = run(capsys, "reproduce", "UK 2013", "--no-selection")
    assert code == 0
    assert "published     11,313  [9,884, 13,027]" in out
    assert "tipstat       11,313  [9,884, 13,027] (wald; ok)" in out
    assert "Bales, Hesketh & Silverman" in out
    code, data = run_json(capsys, "reproduce", "kosovo", "--no-selection")
    first = data["results"][0]
    assert first["published"] == 10357 and round(first["n_hat"]) == 10357
    assert abs(first["relative_difference"]) < 1e-3
    code, out, err = run(capsys, "reproduce")
    assert code == 0 and "uk-2013" in out and "new-orleans" in out
    code, out, err = run(capsys, "reproduce", "atlantis")
    assert code == 2 and "unknown study" in err


def test_validate_exit_codes(capsys, pattern_csv, tmp_path):
    path, _ = pattern_csv
    code, out, _err = run(capsys, "validate", str(path))
    assert code == 0 and "valid (pattern table, 3 lists, 107 persons observed)" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("A,B,count\n1,2,10\n0,1,3\n")
    code, data = run_json(capsys, "validate", str(path), str(bad))
    assert code == 2
    assert [r["valid"] for r in data["results"]] == [True, False]
    assert data["results"][1]["problems"][0] == {"column": "B", "row": 2, "value": 2,
                                                 "expected": "0 or 1"}


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "tipstat demo" in out and "exit codes" in out
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    assert 'tipstat reproduce "UK 2013"' in capsys.readouterr().out


def test_demo_writes_report_and_table(capsys, tmp_path, monkeypatch):
    pytest.importorskip("jinja2")
    from tipstat import cli

    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "demo", "--seed", "2")
    assert code == 0, err
    folder = tmp_path / "tipstat-output"
    table = pd.read_csv(folder / "estimates.csv")
    page = (folder / "report.html").read_text(encoding="utf-8")
    first = table.iloc[0]
    # the sensitivity table leads with tipstat's default estimator
    assert first.method == "default (BIC model average)" and first.status == "ok"
    assert first.model.startswith("BIC average of") and math.isfinite(first.aic)
    assert f"{first.n_hat:,.0f}" in page and f"{first.n_hat:,.0f}" in out
    # the full chain on synthetic agency exports with known truth: the truth is printed, linkage
    # finds exactly the detected persons, every export is written, the SDG total counts them all
    src = cli._demo_source()
    assert (f"truth of this synthetic country: {src['victims']:,} victims, "
            f"{src['detected']:,} detected") in out
    assert first.n_observed == src["detected"]
    exports = sorted(p.stem for p in (folder / "agency-exports").iterdir())
    assert exports == sorted(set(src["records"].entity_id))
    assert "<th>Records read</th>" in page and "Duplicate records merged within lists" in page
    sdg = pd.read_csv(folder / "sdg_16_2_2.csv", keep_default_na=False, na_values=[""])
    total = sdg[(sdg.sex == "_T") & (sdg.age == "_T") & (sdg.exploitation == "_T")]
    assert int(total.detected.iloc[0]) == src["detected"]
    assert "SDG 16.2.2: " in out and '<section id="sdg">' in page


def test_console_script_installed():
    exe = Path(sys.executable).with_name("tipstat")
    if not exe.exists():
        pytest.skip("the tipstat console script is not installed next to this Python")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"tipstat {tipstat.__version__}"


def test_validate_ictip_records(capsys, tmp_path):
    sim = pytest.importorskip("tipstat.simulate")
    pytest.importorskip("tipstat.ictip")
    c = sim.country(n_victims=400, seed=1,
                    lists={k: v for k, v in sim.DEFAULT_LISTS.items() if k in "PKO"})
    files = []
    for entity, part in c.records.groupby("entity_id"):
        files.append(tmp_path / f"{entity}.csv")
        part.to_csv(files[-1], index=False)
    lists = tmp_path / "lists.csv"
    c.list_definition.to_csv(lists, index=False)
    code, data = run_json(capsys, "validate", *map(str, files), "--entity-map", str(lists))
    assert code == 0
    (res,) = data["results"]
    acc = res["accounting"]
    assert res["kind"] == "IC-TIP records" and acc["read"] == len(c.records)
    assert acc["read"] == acc["used"] + sum(v for k, v in acc.items() if k.startswith("excluded"))
    bad = c.records[c.records.entity_id == "BORDER"].copy()
    bad.iloc[2, bad.columns.get_loc("sex")] = "Q"
    bad_file = tmp_path / "bad_BORDER.csv"
    bad.to_csv(bad_file, index=False)
    code, out, _err = run(capsys, "validate", str(files[0]), str(bad_file), "--entity-map",
                         str(lists))
    assert code == 2 and "INVALID" in out
    assert "column 'sex', row bad_BORDER.csv:4: value 'Q'" in out
    code, out, _err = run(capsys, "validate", str(files[0]))
    assert code == 2 and "--entity-map is required" in out


def test_reproduce_reruns_the_published_selection_rule(capsys):
    # Korea: BIC over the admissible models selects [12,23] -> 157 (Silverman, Chan & Vincent
    # 2024); published figures are rounded to the unit
    code, data = run_json(capsys, "reproduce", "korea")
    assert code == 0
    rule = [r for r in data["results"] if r["approach"] == "selection rule"]
    assert len(rule) == 1
    assert rule[0]["n_hat"] == pytest.approx(157, abs=0.5)
    assert rule[0]["tipstat_model"] == "[b:c, c:d]"
    assert "max_order=2" in rule[0]["note"]


def test_indicator_from_agency_files(capsys, tmp_path):
    sim = pytest.importorskip("tipstat.simulate")
    c = sim.country(n_victims=1500, seed=1,
                    lists={k: v for k, v in sim.DEFAULT_LISTS.items() if k in "PKOR"})
    files = []
    for entity, part in c.records.groupby("entity_id"):
        files.append(str(tmp_path / f"{entity}.csv"))
        part.to_csv(files[-1], index=False)
    c.list_definition.to_csv(tmp_path / "lists.csv", index=False)
    c.population.to_csv(tmp_path / "pop.csv", index=False)
    out = tmp_path / "sdg.csv"
    code, data = run_json(capsys, "indicator", *files, "--population", str(tmp_path / "pop.csv"),
                          "--entity-map", str(tmp_path / "lists.csv"), "--year", str(c.year),
                          "--country", c.ref_area, "--bootstrap", "20", "--seed", "1",
                          "--out", str(out), "--report", str(tmp_path / "r.html"))
    assert code == 0, data["error"]
    total = [r for r in data["results"]
             if (r["sex"], r["age"], r["exploitation"]) == ("_T", "_T", "_T")]
    assert total[0]["detected"] == c.n_detected          # distinct persons after linkage
    assert total[0]["total_lcl"] <= total[0]["total_est"] <= total[0]["total_ucl"]
    assert total[0]["rate_per_100k"] == pytest.approx(
        1e5 * total[0]["total_est"] / total[0]["population"], rel=1e-9)
    assert len(pd.read_csv(out)) == len(data["results"])
    acc = data["input"]["accounting"]
    assert acc["read"] == len(c.records)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<section id="sdg">' in page and f"{acc['read']:,}" in page
    code, _out_text, err = run(capsys, "indicator", *files, "--population",
                              str(tmp_path / "pop.csv"))
    assert code == 2 and "--entity-map is required" in err


def test_json_schema_is_documented():
    from tipstat.report.reproduce import COLUMNS as REPRODUCE_COLUMNS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    assert f"schema `{SCHEMA}`" in doc
    for key in ENVELOPE | ESTIMATE_KEYS | set(COLUMNS) | set(REPRODUCE_COLUMNS):
        assert re.search(rf"\b{key}\b", doc), key
