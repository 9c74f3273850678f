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
                 "warnings", "shown"}


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
    # row = line of the file; a value that is neither a number nor shaped like a code is
    # described, never shown (it could be a name typed in the wrong column)
    assert "column 'count', row 3: value '<text of 1 character>'" in err
    assert "Traceback" not in err
    code, data = run_json(capsys, "estimate", str(bad))
    assert code == 2 and data["ok"] is False and data["results"] == []
    assert data["error"]["kind"] == "input"
    assert data["error"]["problems"] == [{"column": "count", "row": 3,
                                          "value": "<text of 1 character>",
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
    # --debug: the traceback on standard error, the same exit code
    for argv in (["estimate", "UK_5", "--debug"], ["--debug", "estimate", "UK_5"]):
        code, _out, err = run(capsys, *argv)
        assert code == 1 and "Traceback" in err and "ZeroDivisionError: deliberate" in err
    # --debug --json still prints the JSON object
    code, data = run_json(capsys, "estimate", "UK_5", "--debug")
    assert code == 1 and data["error"]["kind"] == "internal" and not data["ok"]


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
    # every report: what the data cannot support, and the reliability check of the default
    assert '<section id="cannot-support">' in page and 'id="reliability-rating"' in page
    # one headline, first: the SDG table's total row, its method; the pooled one as a check
    total_line = (f"Estimated victims, detected and undetected: {total.total_est.iloc[0]:,.0f} "
                  f"[{total.total_lcl.iloc[0]:,.0f}; {total.total_ucl.iloc[0]:,.0f}], 95% "
                  "bootstrap interval, stratified log-linear MSE by sex x age x form")
    assert total_line in out
    assert out.index(total_line) < out.index("check (not published): pooled default estimate")
    assert out.index(total_line) < out.index("sensitivity: every method")


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
    out = tmp_path / "sdg"
    code, data = run_json(capsys, "indicator", *files, "--population", str(tmp_path / "pop.csv"),
                          "--entity-map", str(tmp_path / "lists.csv"), "--year", str(c.year),
                          "--country", c.ref_area, "--bootstrap", "20", "--seed", "1",
                          "--out", str(out), "--no-report")
    assert code == 0, data["error"]
    assert data["seed"] == 1
    total = [r for r in data["results"]
             if (r["sex"], r["age"], r["exploitation"]) == ("_T", "_T", "_T")]
    assert total[0]["detected"] == c.n_detected          # distinct persons after linkage
    assert total[0]["total_lcl"] <= total[0]["total_est"] <= total[0]["total_ucl"]
    assert total[0]["rate_per_100k"] == pytest.approx(
        1e5 * total[0]["total_est"] / total[0]["population"], rel=1e-9)
    assert len(pd.read_csv(out / "sdg_16_2_2.csv")) == len(data["results"])
    acc = data["input"]["accounting"]
    assert acc["read"] == len(c.records)
    with pytest.raises(SystemExit) as e:
        main(["indicator", *files, "--population", str(tmp_path / "pop.csv")])
    assert e.value.code == 2 and "--entity-map" in capsys.readouterr().err


# ------------------------------------------------------------------ agency exports end to end
@pytest.fixture(scope="module")
def mixed(tmp_path_factory, data_dir):
    from .test_pipeline import make_country

    return make_country(tmp_path_factory.mktemp("cli-mixed"), data_dir, n=1000, seed=12)


def indicator_args(m, out, *extra):
    c = m["country"]
    return ["indicator", *map(str, m["files"]), "--entity-map", str(m["entity_map"]),
            "--population", str(m["population"]), "--secret-file", str(m["key"]),
            "--country", c.ref_area, "--year", str(c.year), "--bootstrap", "25", "--out", str(out),
            *extra]


def assert_no_identifier(m, *texts):
    """No name or date of birth of the inputs as a word of the outputs (a short name inside a
    longer word or inside the report's base64 images is not a leak)."""
    blob = "\n".join(texts)
    found = [v for v in m["identifiers"]
             if re.search(rf"(?<![A-Za-z0-9+/]){re.escape(v)}(?![A-Za-z0-9+/])", blob)]
    assert found == []


def test_indicator_mixed_formats_same_bits_and_no_identifier(capsys, mixed, tmp_path):
    """IC-TIP CSV + HTCDS CSV + HTCDS Excel with clear identifiers and a key file, twice."""
    c = mixed["country"]
    code, out1, err1 = run(capsys, *indicator_args(mixed, tmp_path / "a", "--no-report"))
    assert code == 0, err1
    code, data = run_json(capsys, *indicator_args(mixed, tmp_path / "b", "--no-report"))
    assert code == 0, data["error"]
    written = {Path(f).name for f in data["output"]["files"]}
    assert {"sdg_16_2_2.csv", "sdg_16_2_2_glotip.csv", "sdg_16_2_2_sdmx.csv",
            "sdg_16_2_2_metadata.json", "sdg_16_2_2.xlsx"} <= written
    for name in ("sdg_16_2_2.csv", "sdg_16_2_2_glotip.csv", "sdg_16_2_2_sdmx.csv",
                 "sdg_16_2_2_metadata.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert data["input"]["formats"] == {"BORDER.csv": "ictip", "NGO_OUTREACH.xlsx": "htcds",
                                        "NGO_SHELTER.csv": "htcds", "POL_NORTH.csv": "ictip",
                                        "POL_SOUTH.csv": "ictip", "SOCIAL.csv": "ictip"}
    # one headline: JSON, console and the SDG table's total row agree and name the method
    head = data["headline"]
    total = next(r for r in data["results"]
                 if (r["sex"], r["age"], r["exploitation"]) == ("_T", "_T", "_T"))
    assert (head["n_hat"], head["lower"], head["upper"]) == (
        total["total_est"], total["total_lcl"], total["total_ucl"])
    assert head["source"] == "sdg_16_2_2 total row" and head["level"] == 0.95
    assert head["method"] == "stratified log-linear MSE by sex x age x form"
    assert total["detected"] == c.n_detected and data["seed"] == 2024
    assert data["pooled_check"]["role"].startswith("sensitivity check")
    assert (f"Estimated victims, detected and undetected: {head['n_hat']:,.0f} "
            f"[{head['lower']:,.0f}; {head['upper']:,.0f}], 95% bootstrap interval, stratified "
            "log-linear MSE by sex x age x form") in out1
    assert out1.index("Estimated victims") < out1.index("check (not published): pooled")
    meta = json.loads((tmp_path / "a" / "sdg_16_2_2_metadata.json").read_text())
    assert meta["seed"] == 2024 and meta["headline"]["n_hat"] == head["n_hat"]
    files = [p for p in (tmp_path / "a").iterdir() if p.suffix in (".csv", ".json", ".html")]
    assert_no_identifier(mixed, out1, err1, json.dumps(data),
                         *(p.read_text(encoding="utf-8") for p in files))
    # --debug prints no record value either (here on an error inside reading)
    bad = tmp_path / "bad"
    bad.mkdir()
    part = pd.read_csv(mixed["files"][0], dtype=str)
    part.loc[part.index[1], "sex"] = part.loc[part.index[1], "family_name"]
    part.to_csv(bad / mixed["files"][0].name, index=False)
    argv = indicator_args(mixed, tmp_path / "c")
    argv[1] = str(bad / mixed["files"][0].name)
    for extra in ((), ("--json",), ("--debug",), ("--debug", "--json")):
        code, out, err = run(capsys, *argv, *extra)
        assert code == 2, err
        if "--json" in extra:
            error = json.loads(out)["error"]
            assert error["kind"] == "input" and error["problems"][0]["column"] == "sex"
        else:
            assert "column 'sex'" in err
        if "--debug" in extra:
            assert "Traceback" in err
        assert_no_identifier(mixed, out, err)


@pytest.mark.slow  # the report runs every default method and draws its figures (~15-60 s)
def test_indicator_report_holds_no_identifier(capsys, mixed, tmp_path):
    code, out, err = run(capsys, *indicator_args(mixed, tmp_path / "r", "--by", "sex"))
    assert code == 0, err
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert '<section id="sdg">' in page and "Estimated victims" in out
    assert f"{len(mixed['country'].clear_records):,}" in page  # records read
    assert '<section id="cannot-support">' in page and 'id="reliability-rating"' in page
    assert_no_identifier(mixed, out, err, page)


def test_secret_comes_from_a_file_or_the_environment(capsys, mixed, tmp_path, monkeypatch):
    argv = [a for a in indicator_args(mixed, tmp_path / "o", "--by", "sex", "--no-report")]
    i = argv.index("--secret-file")
    without = argv[:i] + argv[i + 2:]
    monkeypatch.delenv("TIPSTAT_SECRET", raising=False)
    code, _out, err = run(capsys, *without)
    assert code == 2 and "--secret-file" in err and "TIPSTAT_SECRET" in err
    monkeypatch.setenv("TIPSTAT_SECRET", mixed["secret"])
    code, _out, err = run(capsys, *without)
    assert code == 0, err
    # never a command-line value (no abbreviation of --secret-file either)
    with pytest.raises(SystemExit) as e:
        main([*without, "--secret", "x" * 32])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--secret <value>" in err and "x" * 32 not in err  # not echoed back


def test_validate_mixed_exports(capsys, mixed, monkeypatch):
    monkeypatch.delenv("TIPSTAT_SECRET", raising=False)
    files = [*map(str, mixed["files"]), "--entity-map", str(mixed["entity_map"])]
    code, data = run_json(capsys, "validate", *files, "--secret-file", str(mixed["key"]))
    assert code == 0, data
    (res,) = data["results"]
    assert res["valid"] and res["formats"]["NGO_SHELTER.csv"] == "htcds"
    assert res["accounting"]["read"] == len(mixed["country"].clear_records)
    # without the key: one message saying how to give it, no name or DOB anywhere
    code, out, err = run(capsys, "validate", *files)
    assert code == 2 and "--secret-file" in out
    assert_no_identifier(mixed, out, err)


def test_histories_round_trip(capsys, mixed, tmp_path):
    c = mixed["country"]
    counts = tmp_path / "counts.csv"
    code, data = run_json(capsys, "histories", *map(str, mixed["files"]), "--entity-map",
                          str(mixed["entity_map"]), "--secret-file", str(mixed["key"]),
                          "--year", str(c.year), "--country", c.ref_area, "--out", str(counts))
    assert code == 0, data["error"]
    (res,) = data["results"]
    assert res["n_observed"] == c.n_detected
    assert res["strata"] == ["sex", "age_group", "exploitation"]
    table = pd.read_csv(counts)
    assert int(table["count"].sum()) == c.n_detected
    assert_no_identifier(mixed, counts.read_text())
    # estimate, compare and report read it: strata are recognised, the lists are the lists
    code, est = run_json(capsys, "estimate", str(counts), "--model", "independence")
    assert code == 0, est["error"]
    assert est["input"]["lists"] == list("PKRO") or sorted(est["input"]["lists"]) == list("KOPR")
    assert est["input"]["strata"] == ["sex", "age_group", "exploitation"]
    assert est["input"]["n_observed"] == c.n_detected


def test_records_given_as_a_count_table_are_refused_by_column_name(capsys, mixed):
    htcds = next(str(p) for p in mixed["files"] if p.name == "NGO_SHELTER.csv")
    for command in ("estimate", "compare", "validate"):
        for extra in ((), ("--json",)):
            code, out, err = run(capsys, command, htcds, *extra)
            assert code == 2, (command, err)
            assert "tipstat histories" in out + err or "--entity-map" in out + err
            assert_no_identifier(mixed, out, err)


def test_keygen(capsys, tmp_path):
    import stat

    path = tmp_path / "key.txt"
    code, out, _err = run(capsys, "keygen", "--out", str(path))
    assert code == 0 and str(path) in out
    key = path.read_text().strip()
    assert len(key) >= 43 and key not in out  # 32 random bytes; never printed with --out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    code, _out, err = run(capsys, "keygen", "--out", str(path))
    assert code == 2 and "--force" in err and path.read_text().strip() == key
    code, out, _err = run(capsys, "keygen")
    assert code == 0 and len(out.strip()) >= 43 and out.strip() != key


@pytest.mark.parametrize("mistake", ["empty", "ods", "no_openpyxl", "unmapped", "population"])
def test_input_mistakes_exit_2_naming_the_problem(capsys, mixed, tmp_path, monkeypatch, mistake):
    argv = indicator_args(mixed, tmp_path / "o", "--by", "sex", "--no-report")
    first = argv[1]
    if mistake == "empty":
        (tmp_path / "POL_NORTH.csv").write_text("")
        argv[1], expect = str(tmp_path / "POL_NORTH.csv"), "is empty"
    elif mistake == "ods":
        (tmp_path / "POL_NORTH.ods").write_bytes(b"PK\x03\x04 not really")
        argv[1], expect = str(tmp_path / "POL_NORTH.ods"), ".ods spreadsheets are not read"
    elif mistake == "no_openpyxl":
        import tipstat.pipeline

        real = tipstat.pipeline._has
        monkeypatch.setattr(tipstat.pipeline, "_has", lambda m: m != "openpyxl" and real(m))
        expect = "needs openpyxl"
    elif mistake == "unmapped":
        emap = pd.read_csv(mixed["entity_map"])
        emap[emap.entity_id != Path(first).stem].to_csv(tmp_path / "lists.csv", index=False)
        argv[argv.index("--entity-map") + 1], expect = str(tmp_path / "lists.csv"), "entity_id"
    else:
        pd.DataFrame({"sex": ["F"], "age": ["_T"]}).to_csv(tmp_path / "pop.csv", index=False)
        argv[argv.index("--population") + 1] = str(tmp_path / "pop.csv")
        expect = "['population'] missing"
    for extra in ((), ("--json",)):
        code, out, err = run(capsys, *argv, *extra)
        assert code == 2, (mistake, err)
        text = json.loads(out)["error"]["message"] if extra else err
        assert expect in text and "bug" not in text, (mistake, text)


def test_closed_pipe_exits_quietly(capsys, monkeypatch):
    from tipstat import cli

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "cmd_datasets", broken)
    code, _out, err = run(capsys, "datasets")
    assert code == 0 and err == ""
    # a real pipe whose reader has gone (as `tipstat datasets | head -c 0`): no traceback
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "tipstat.cli", "datasets"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child (still importing) writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == ""


def test_json_schema_is_documented():
    from tipstat.report.reproduce import COLUMNS as REPRODUCE_COLUMNS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    assert f"schema `{SCHEMA}`" in doc
    for key in ENVELOPE | ESTIMATE_KEYS | set(COLUMNS) | set(REPRODUCE_COLUMNS):
        assert re.search(rf"\b{key}\b", doc), key


def test_report_of_a_bundled_table_keys_its_lists(capsys, tmp_path):
    out = tmp_path / "uk5.html"
    code, _out, err = run(capsys, "report", "UK_5", "--out", str(out), "--methods", "default")
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    # every list of UK_5 is keyed to the agencies behind it (the catalogue's words)
    for words in tipstat.datasets.info("UK_5")["lists"].values():
        assert words in page
    # the reliability check of the default method is in the report, with its rating
    check = tipstat.internal_consistency(tipstat.datasets.load("UK_5"),
                                         tipstat.estimate_population)
    assert f'id="reliability-rating">Rating: <strong>{check.indicator["rating"]}<' in page
    assert '<section id="cannot-support">' in page


def test_report_without_reliability_says_so(capsys, tmp_path):
    out = tmp_path / "korea.html"
    code, _out, err = run(capsys, "report", "Korea_3", "--out", str(out), "--methods",
                          "independence", "--no-reliability")
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    assert "Reliability check: switched off (--no-reliability)." in page
    assert 'id="reliability-table"' not in page


def test_every_kind_of_table_file_gives_the_same_estimate(capsys, pattern_csv, tmp_path):
    """One reader for every table file: the same counts as CSV (comma or semicolon), TSV,
    Excel, ODS and Parquet give the same estimate, to the last digit."""
    path, df = pattern_csv
    expected = tipstat.estimate_population(tipstat.CaptureHistories.from_frame(df))
    files = [path, tmp_path / "semicolon.csv", tmp_path / "t.tsv", tmp_path / "t.xlsx",
             tmp_path / "t.ods", tmp_path / "t.parquet"]
    df.to_csv(files[1], sep=";", index=False)
    df.to_csv(files[2], sep="\t", index=False)
    df.to_excel(files[3], index=False)
    df.to_excel(files[4], index=False, engine="odf")
    df.to_parquet(files[5], index=False)
    for f in files:
        code, data = run_json(capsys, "estimate", str(f))
        assert code == 0, (f.name, data["error"])
        assert data["input"]["n_observed"] == 107.0 and data["input"]["lists"] == ["A", "B", "C"]
        assert data["results"][0]["n_hat"] == expected.n_hat, f.name


def test_an_unreadable_table_is_refused_as_records_are(capsys, tmp_path):
    # the count-table path and the records path share one reader, so one message
    bad = tmp_path / "utf16.csv"
    bad.write_bytes("A,B,count\n1,0,4\n".encode("utf-16"))
    code, _out, err = run(capsys, "estimate", str(bad))
    assert code == 2 and "UTF-16" in err and "save it as 'CSV UTF-8'" in err
    with pytest.raises(tipstat.InputError, match="UTF-16"):
        tipstat.read_records([bad], {"POL": "P"})


# ---------------------------------------------------------------------------- caveats (issue 16)
def _no_bare_numbers(text):
    for number in ("987", "5,555", "5555", "4,444", "6,666", "7,777", "7777"):
        assert number not in text, number


def test_estimate_shows_every_caveat_and_no_number_for_a_non_estimate(capsys, caveat_method):
    code, out, err = run(capsys, "estimate", "Korea_3", "--method", caveat_method,
                         "--no-reliability")
    assert code == 0, err
    _no_bare_numbers(out)
    assert "N           at least 321" in out and "not identifiable (no estimate)" in out
    assert "does not exist (no estimate)" in out
    for line in ("[lower_bound_only] only a lower bound on N is supported",
                 "[untestable_weight] 94% of the weight on models with no residual df",
                 "[not_identified_mass] 71% of the posterior where N is not identified",
                 "[note] a plain-text warning"):
        assert line in out
    assert "reliability check: switched off (--no-reliability)" in out
    code, data = run_json(capsys, "estimate", "Korea_3", "--method", caveat_method,
                          "--no-reliability")
    assert code == 0
    bound, nid, dne = data["results"]
    assert bound["status"] == "lower_bound" and bound["shown"] == "at least 321"
    assert bound["warnings"] == [
        {"code": "lower_bound_only", "message": "only a lower bound on N is supported",
         "values": {"bound": 321.0}},
        {"code": "untestable_weight", "message": "94% of the weight on models with no "
         "residual df", "values": {"share": 0.94}}]
    assert nid["shown"] == "not identifiable" and dne["shown"] == "does not exist"
    assert dne["warnings"] == [{"code": "note", "message": "a plain-text warning", "values": {}}]
    assert data["reliability"] == {"rating": "not_assessed",
                                   "note": "switched off (--no-reliability)"}


def test_estimate_shows_the_reliability_check_of_the_default(capsys):
    """UK_5: the default method refitted with each list as a known population. GP has 20
    members on the other lists (< 30): excluded as too_few_seen and counted. The CLI's
    numbers are the library's (same deterministic fits: equal to 1e-12)."""
    h = tipstat.datasets.load("UK_5")
    check = tipstat.internal_consistency(h, tipstat.estimate_population)
    code, data = run_json(capsys, "estimate", "UK_5")
    assert code == 0
    rel = data["reliability"]
    assert rel["rating"] == check.indicator["rating"]
    assert rel["mean_log_rel_bias"] == pytest.approx(check.summary["mean_log_rel_bias"],
                                                     rel=1e-12)
    assert rel["coverage"] == pytest.approx(check.summary["coverage"], rel=1e-12)
    # the default gives a lower bound for LA, PFNCA and GO (models without a finite N are in
    # its Occam window): no bias to measure, each bound below the list's size
    assert (rel["lists"], rel["evaluated"], rel["excluded"]) == (5, 1, 1)
    assert (rel["bounds"], rel["bounds_hold"]) == (check.summary["bounds"], 3) == (3, 3)
    per_list = {r["list"]: r for r in rel["per_list"]}
    assert per_list["GP"]["status"] == "too_few_seen" and per_list["GP"]["n_hat"] is None
    for _, r in check.table.iterrows():
        if math.isfinite(r["log_rel_bias"]):
            assert per_list[r["list"]]["log_rel_bias"] == pytest.approx(r["log_rel_bias"],
                                                                       rel=1e-12)
    assert rel["seconds"] >= 0
    code, out, _err = run(capsys, "estimate", "UK_5")
    assert code == 0
    assert "reliability check: how default" in out
    assert f"rating: {check.indicator['rating']} (mean log relative bias" in out
    assert "1 list(s) excluded as too_few_seen (fewer than 30 members" in out
    assert re.search(r"\n  GP +336 +20 +- +- +- +- +too_few_seen", out)


def test_estimate_reliability_needs_three_lists(capsys, tmp_path):
    path = tmp_path / "two.csv"
    pd.DataFrame({"A": [1, 0, 1], "B": [0, 1, 1], "count": [60, 40, 30]}).to_csv(path,
                                                                                index=False)
    code, data = run_json(capsys, "estimate", str(path))
    assert code == 0 and data["reliability"]["rating"] == "not_assessed"
    assert "at least 3 lists" in data["reliability"]["note"]


def test_compare_shows_caveat_codes_and_messages(capsys, tmp_path, caveat_method):
    out_csv = tmp_path / "cmp.csv"
    code, out, err = run(capsys, "compare", "Korea_3", "--methods",
                         f"{caveat_method},independence", "--csv", str(out_csv))
    assert code == 0, err
    _no_bare_numbers(out)
    assert "at least 321" in out and "[321, no upper bound]" in out
    assert "(1) lower_bound_only; untestable_weight" in out
    assert "(1) [untestable_weight] 94% of the weight on models with no residual df" in out
    assert "(3) [note] a plain-text warning" in out
    written = pd.read_csv(out_csv)
    assert written["warning_codes"].iloc[0] == "lower_bound_only; untestable_weight"
    code, data = run_json(capsys, "compare", "Korea_3", "--methods",
                          f"{caveat_method},independence")
    assert code == 0
    assert data["results"][0]["warning_codes"] == ["lower_bound_only", "untestable_weight"]
    assert data["results"][1]["warnings"] == [{"code": "not_identified_mass",
                                               "message": "71% of the posterior where N is "
                                               "not identified", "values": {"mass": 0.71}}]


def test_indicator_lines_show_the_caveats_of_the_fit_and_the_pooled_check():
    from types import SimpleNamespace

    from tipstat.cli import _headline_lines, _run_extra
    from tipstat.estimate import Caveat, Estimate

    pooled = Estimate(n_hat=987.0, ci=(321.0, 1900.0), level=0.95, n_observed=300.0,
                      method="default", model="[x]",
                      warnings=(Caveat("lower_bound_only", "only a bound"),)).as_lower_bound()
    fit = SimpleNamespace(warnings=(Caveat("sparse_table", "9 of 15 cells empty",
                                           {"empty": 9}),
                                    Caveat("sparse_table", "2 persons in stratum F")))
    run_ = SimpleNamespace(headline=SimpleNamespace(text=lambda: "headline", to_dict=dict),
                           pooled=pooled, fit=fit, pooled_note="note", warnings=[])
    text = "\n".join(_headline_lines(run_))
    _no_bare_numbers(text)
    assert "pooled default estimate at least 321 [321; no upper bound]" in text
    assert "caveat of the published fit: [sparse_table] 9 of 15 cells empty" in text
    assert "caveat of the pooled check: [lower_bound_only] only a bound" in text
    # a published run's caveats follow the small-count rule: "2 persons" reads "<5 persons"
    assert "[sparse_table] <5 persons in stratum F" in text and "2 persons" not in text
    extra = _run_extra(run_, [])
    assert extra["fit_warnings"] == [{"code": "sparse_table", "message": "9 of 15 cells empty",
                                      "values": {"empty": 9.0}},
                                     {"code": "sparse_table", "message": "<5 persons in "
                                      "stratum F", "values": {}}]
    assert extra["pooled_check"]["shown"] == "at least 321"
