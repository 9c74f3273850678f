"""``tipstat survey`` end to end on the bundled synthetic country: text and JSON equal the
library, files and report written, bad input exits 2 naming column and row, never a value."""

from __future__ import annotations

import json
import re
import shutil
import traceback
from pathlib import Path

import pandas as pd
import pytest

from tipstat import datasets
from tipstat.cli import main
from tipstat.survey import run_survey

MARK = "Qzxw"   # in every invented free-text answer: no code, number or word of tipstat has it
BY = "sex,age_group"


def _run(capsys, argv: list[str], out_dir: Path | None = None) -> tuple[str, str, str]:
    """Exit line, stdout, stderr + every file written (what a user sees or gets)."""
    try:
        code = f"exit {main(argv)}"
    except SystemExit as exc:
        code = f"exit {exc.code}"
    except Exception as exc:   # --debug re-raises
        code = "".join(traceback.format_exception(exc))
    out, err = capsys.readouterr()
    files = [f.read_bytes().decode("utf-8", "replace") for f in sorted(out_dir.rglob("*"))
             if f.is_file()] if out_dir is not None and out_dir.exists() else []
    return code, out, err + "\n".join(files)


@pytest.fixture(scope="module")
def mse_json(tmp_path_factory):
    """An MSE estimate as 'tipstat estimate --json' writes it (a bundled table)."""
    path = tmp_path_factory.mktemp("mse") / "estimate.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["estimate", "UK_5", "--json", "--no-reliability"]) == 0
    path.write_text(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def demo_json(tmp_path_factory, mse_json):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("survey") / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["survey", "--demo", "--by", BY, "--format", "json", "--out", str(out),
                     "--mse", str(mse_json), "--population", "116536"])
    assert code == 0
    return json.loads(buf.getvalue()), out


@pytest.fixture(scope="module")
def library():
    sv = datasets.load_survey()
    return run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"],
                      by=BY.split(","))


def test_json_equals_the_library(demo_json, library):
    obj, _ = demo_json
    assert obj["schema"] == "tipstat-cli/1" and obj["command"] == "survey" and obj["ok"]
    rows = pd.DataFrame(obj["results"])
    expected = library.published.table
    assert len(rows) == len(expected)
    assert list(rows["obs_status"]) == list(expected["obs_status"])
    both = rows["proportion"].notna()
    assert both.sum() >= 10
    assert (rows.loc[both, "proportion"].to_numpy()
            == pytest.approx(expected.loc[both, "proportion"].to_numpy(), rel=1e-12))
    total = rows[(rows.indicator == "forced_labour") & (rows.sex == "_T")
                 & (rows.age_group == "_T")].iloc[0]
    assert total["n_cases"] == library.table[0].n_cases
    # exclusions counted by stage; withheld rows carry no value in the JSON either
    assert obj["excluded"]["estimates"]["missing_indicator:forced_labour"] > 0
    withheld = rows[rows.obs_status == "suppressed"]
    assert len(withheld) and withheld[["n_cases", "proportion", "total"]].isna().all().all()
    assert obj["design"]["strata"] == 6 and obj["design"]["psu"] == 90


def test_side_by_side_and_files(demo_json):
    obj, out = demo_json
    side = obj["side_by_side"]
    assert [r["source"] for r in side][-2:] == ["multiple systems estimation",
                                                "network scale-up (survey)"]
    assert all("different quantities" in r["note"] for r in side)
    names = {Path(f).name for f in obj["output"]["files"]}
    assert {"survey_prevalence.csv", "side_by_side.csv"} <= names
    written = pd.read_csv(out / "survey_prevalence.csv")
    assert (written["obs_status"] == "suppressed").sum() == sum(
        r["obs_status"] == "suppressed" for r in obj["results"])
    if "survey_report.html" in names:
        page = (out / "survey_report.html").read_text()
        for marker in ('<section id="survey-prevalence">', "<h2>Survey prevalence</h2>",
                       '<section id="side-by-side">', "<h2>Side by side with MSE</h2>",
                       'id="side-note"', "multiple systems estimation", "withheld"):
            assert marker in page, marker


def test_text_output(capsys):
    code, out, _ = _run(capsys, ["survey", "--demo", "--by", "sex"])
    assert code == "exit 0"
    assert "synthetic_country_survey.csv: 4,408 respondents, 6 strata, 90 PSUs" in out
    assert "definition tipstat-prov-1" in out and "reference period" in out
    assert "forced_labour: per 100,000" in out and "excluded (estimates)" in out
    assert "  total " in out and "warning: [note] definition tipstat-prov-1 is provisional" in out


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """The bundled survey as a statistics office would hold it: data, design and mapping
    files."""
    root = tmp_path_factory.mktemp("user")
    sv = datasets.load_survey()
    for key in ("data", "design", "mapping"):
        shutil.copy(sv["paths"][key], root / Path(sv["paths"][key]).name)
    return {"root": root, "data": root / Path(sv["paths"]["data"]).name,
            "design": root / Path(sv["paths"]["design"]).name,
            "mapping": root / Path(sv["paths"]["mapping"]).name}


def test_user_files_give_the_demo_numbers(capsys, user_files, library):
    code, out, _ = _run(capsys, ["survey", str(user_files["data"]), "--design",
                                 str(user_files["design"]), "--mapping",
                                 str(user_files["mapping"]), "--by", "none", "--json"])
    assert code == "exit 0"
    rows = json.loads(out)["results"]
    fl = next(r for r in rows if r["indicator"] == "forced_labour")
    assert fl["proportion"] == pytest.approx(library.table[0].proportion, rel=1e-12)


def _corrupt(user_files, name: str, column: str, value: str) -> Path:
    df = pd.read_csv(user_files["data"], dtype=object)
    df.loc[5, column] = value
    path = user_files["root"] / name
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("column", ["weight", "know_teacher"])
@pytest.mark.parametrize("mode", [[], ["--json"], ["--debug"]])
def test_a_bad_number_exits_2_naming_column_and_row_not_the_value(capsys, user_files, mode,
                                                                   column):
    """A design weight and a scale-up answer that are not numbers: exit 2, the column and the
    1-based row named (label 5 is row 6), the value never shown (not even with --debug)."""
    bad = _corrupt(user_files, f"bad_{column}.csv", column, f"{MARK} 12")
    code, out, err = _run(capsys, ["survey", str(bad), "--design", str(user_files["design"]),
                                   "--mapping", str(user_files["mapping"]), "--by", "none",
                                   *mode])
    seen = code + out + err
    assert MARK not in seen and MARK.lower() not in seen
    if "--debug" not in mode:
        assert code == "exit 2"
        assert column in out + err
        assert re.search(r"row\W+6\b", out + err), out + err


def test_a_free_text_answer_is_never_shown(capsys, user_files, tmp_path):
    bad = _corrupt(user_files, "free_text.csv", "q201", f"{MARK} my employer kept my passport")
    for mode in ([], ["--json"]):
        code, out, err = _run(capsys, ["survey", str(bad), "--design", str(user_files["design"]),
                                       "--mapping", str(user_files["mapping"]), "--by", "none",
                                       "--out", str(tmp_path / "o"), *mode], tmp_path / "o")
        assert code == "exit 0"
        assert MARK not in out + err and "passport" not in out + err


@pytest.mark.parametrize("argv, expected", [
    (["survey"], "--demo"),
    (["survey", "--demo", "--by", "shoe_size"], "shoe_size"),
    (["survey", "--demo", "--mse", "x.json"], "--population"),
    (["survey", "--demo", "--indicators", "happiness"], "happiness"),
])
def test_bad_options_exit_2(capsys, argv, expected):
    code, _, err = _run(capsys, argv)
    assert code == "exit 2" and expected in err


def test_bad_design_files_exit_2(capsys, user_files, tmp_path):
    no_weights = tmp_path / "d1.toml"
    no_weights.write_text('[design]\nstrata = "stratum"\n')
    broken = tmp_path / "d2.toml"
    broken.write_text(f'[design\nweights = "{MARK}\n')
    unknown = tmp_path / "d3.toml"
    unknown.write_text('[design]\nweights = "weight"\nclusters = "psu"\n')
    for path, expected in ((no_weights, "weights"), (broken, "not a valid TOML"),
                           (unknown, "clusters")):
        for mode in ([], ["--json"]):
            code, out, err = _run(capsys, ["survey", str(user_files["data"]), "--design",
                                           str(path), *mode])
            assert code == "exit 2", (path.name, out, err)
            assert expected in out + err and MARK not in out + err


def test_the_example_script_runs_on_the_bundled_country(tmp_path, capsys):
    """examples/survey_prevalence.py (tests/test_examples.py runs its --help): the totals'
    intervals cover the synthetic country's truth, and it writes what it says."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "examples" / "survey_prevalence.py"
    spec = importlib.util.spec_from_file_location("example_survey_prevalence", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    res = module.main(["--by", "sex", "--out", str(tmp_path / "out")])
    capsys.readouterr()
    truth = res["truth"].set_index("domain").loc["total"]
    for r in res["run"].table:
        if not r.domain and r.indicator in ("forced_labour", "trafficking_forced_labour"):
            assert r.total_ci[0] <= truth[f"true_{r.indicator}"] <= r.total_ci[1], r.indicator
    assert list(res["side"]["source"].iloc[-2:]) == ["multiple systems estimation",
                                                    "network scale-up (survey)"]
    nsum = res["run"].nsum          # the scale-up covers the true number in forced labour
    assert nsum.ci[0] <= truth["true_forced_labour"] <= nsum.ci[1]
    assert res["mse"].ok and res["mse"].n_hat > 443          # more than the 443 listed
    for name in ("survey_prevalence.csv", "side_by_side.csv", "survey_report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 500, name


def test_the_demo_shows_the_scale_up(demo_json, library):
    """The bundled design file's [nsum] table: the JSON, the side-by-side row and the report
    carry the scale-up estimate, equal to fit_nsum on the same design and seed, its interval
    covering the synthetic country's true number in forced labour, nsum_bias always shown."""
    from tipstat.survey import fit_nsum, read_design_spec

    obj, out = demo_json
    sv = datasets.load_survey()
    spec = read_design_spec(sv["paths"]["design"])["nsum"]
    est = fit_nsum(library.design, spec["hidden"], known=spec["known"],
                   population=spec["population"], seed=2024)
    ns = obj["nsum"]
    assert ns["n_hat"] == est.n_hat and (ns["lower"], ns["upper"]) == est.ci
    truth = int(sv["truth"].loc[0, "true_forced_labour"])
    assert ns["lower"] <= truth <= ns["upper"]
    assert ns["status"] == "ok" and "nsum_bias" in [w["code"] for w in ns["warnings"]]
    row = next(r for r in obj["side_by_side"] if r["source"] == "network scale-up (survey)")
    assert row["indicator"] == spec["label"] and "networks" in row["counts"]
    assert "nsum_bias" in row["caveats"]
    # the rate is per 100,000 of --population (here the survey's 116,536)
    assert row["rate_per_100k"] == pytest.approx(1e5 * est.n_hat / 116536, rel=1e-12)
    page = (out / "survey_report.html").read_text()
    for marker in ('<section id="nsum">', "Hidden population: network scale-up",
                   '<ul id="nsum-caveats">', "<code>nsum_bias</code>", 'href="#nsum"'):
        assert marker in page, marker


def test_the_scale_up_in_the_text_output(capsys):
    code, out, _ = _run(capsys, ["survey", "--demo", "--by", "none"])
    assert code == "exit 0"
    assert "network scale-up: people in forced labour" in out
    assert "caveat: [nsum_bias]" in out and "network scale-up (survey):" in out


def _nsum_design(user_files, name: str, table: str) -> Path:
    text = user_files["design"].read_text()
    path = user_files["root"] / name
    path.write_text(text[:text.index("[nsum]")] + table)
    return path


@pytest.mark.parametrize("table, expected", [
    ('[nsum]\nhidden = "know_forced_labour"\n[nsum.known]\nknow_nurse = 380\n', "population"),
    ('[nsum]\nhidden = "know_forced_labour"\npopulation = 116536\nknown = 3\n', "[nsum.known]"),
    ('[nsum]\nhidden = "know_forced_labour"\npopulation = 116536\nfriends = 2\n'
     '[nsum.known]\nknow_nurse = 380\n', "friends"),
    ('[nsum]\nhidden = "know_forced_labour"\npopulation = 116536\n[nsum.known]\n'
     'know_nurse = "many"\n', "know_nurse"),
    ('[nsum]\nhidden = "know_slavery"\npopulation = 116536\n[nsum.known]\nknow_nurse = 380\n',
     "know_slavery"),
    ('[nsum]\nhidden = "know_forced_labour"\npopulation = 116536\n[nsum.known]\n'
     'know_nurse = 200000\n', "below the population"),
])
def test_a_bad_nsum_table_exits_2(capsys, user_files, table, expected):
    design = _nsum_design(user_files, "nsum_bad.toml", table)
    for mode in ([], ["--json"]):
        code, out, err = _run(capsys, ["survey", str(user_files["data"]), "--design",
                                       str(design), "--mapping", str(user_files["mapping"]),
                                       "--by", "none", *mode])
        assert code == "exit 2", (out, err)
        assert expected in out + err


def test_a_scale_up_on_too_few_reports_is_withheld(capsys, user_files, tmp_path):
    """Two respondents report knowing anyone in the hidden population (threshold 5): the total
    is withheld in the JSON, the side-by-side table and the report; caveats still shown."""
    df = pd.read_csv(user_files["data"])
    df["know_forced_labour"] = 0
    df.loc[[10, 20], "know_forced_labour"] = 3
    data = user_files["root"] / "few_reports.csv"
    df.to_csv(data, index=False)
    out_dir = tmp_path / "o"
    code, out, err = _run(capsys, ["survey", str(data), "--design", str(user_files["design"]),
                                   "--mapping", str(user_files["mapping"]), "--by", "none",
                                   "--json", "--out", str(out_dir)])
    assert code == "exit 0", err
    obj = json.loads(out)
    ns = obj["nsum"]
    assert ns["status"] == "suppressed" and ns["n_hat"] is None and ns["lower"] is None
    assert "nsum_bias" in [w["code"] for w in ns["warnings"]]
    row = next(r for r in obj["side_by_side"] if r["source"] == "network scale-up (survey)")
    assert row["shown"] == "suppressed" and row["estimate"] is None
    page = (out_dir / "survey_report.html").read_text()
    section = page[page.index('<section id="nsum">'):page.index('<section id="side-by-side">')]
    assert 'id="nsum-withheld"' in section and "<code>nsum_bias</code>" in section
    assert "know_teacher" not in section      # no known-population check beside it either
    assert any("withheld" in w for w in obj["warnings"])
