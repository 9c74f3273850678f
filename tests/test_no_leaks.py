"""No value that could identify a person reaches any output of the command line.

An auditor's sweep (issue "safe to publish"): agency exports with clear identifiers (invented
names and dates of birth, each carrying a marker no code list or number can contain), and the
usual mistakes of a task force's files (a name typed into a coded column, a date of birth in the
age column, record ids built from name + date of birth, a raw list given where a count table is
expected). Every command is run in text, ``--json`` and ``--debug`` mode; standard output,
standard error, tracebacks and every file written are searched for the markers.
"""

from __future__ import annotations

import secrets
import traceback
from pathlib import Path

import pandas as pd
import pytest

from tipstat import simulate
from tipstat.cli import main

MARK = "Qzxw"            # in every invented name: no code, number or word of tipstat has it
DOB_MARK = "1917-0"      # every invented date of birth is in 1917 (month 01-09)


def _leaks(text: str) -> list[str]:
    found = []
    for token in (MARK, MARK.lower(), MARK.upper(), DOB_MARK, DOB_MARK.replace("-", "")):
        if token in text:
            i = text.index(token)
            found.append(text[max(0, i - 60): i + 60])
    return found


@pytest.fixture(scope="module")
def country(tmp_path_factory):
    """Agency exports of a small synthetic country with clear identifiers and a strong key."""
    root = tmp_path_factory.mktemp("leaks")
    c = simulate.country(300, seed=11, lists={k: v for k, v in simulate.DEFAULT_LISTS.items()
                                              if k in "PKIO"})
    rec = c.records.copy()
    persons = {k: i for i, k in enumerate(dict.fromkeys(rec.person_key))}
    idx = rec.person_key.map(persons).to_numpy()
    rec["family_name"] = [f"{MARK}family{i}" for i in idx]
    rec["given_name"] = [f"{MARK}given{i}" for i in idx]
    rec["birth_date"] = [f"1917-0{1 + i % 9}-{1 + i % 28:02d}" for i in idx]
    rec = rec.drop(columns=["person_key", "person_key_scheme", "age_at_identification"],
                   errors="ignore")
    files = []
    for entity, part in rec.groupby("entity_id"):
        path = root / f"{entity}.csv"
        part.to_csv(path, index=False)
        files.append(path)
    key = root / "key.txt"
    key.write_text(secrets.token_urlsafe(32) + "\n")
    key.chmod(0o600)
    entity_map = root / "map.csv"
    c.list_definition.to_csv(entity_map, index=False)
    population = root / "population.csv"
    c.population.to_csv(population, index=False)
    return {"root": root, "files": files, "key": key, "map": entity_map, "pop": population,
            "records": rec, "c": c}


def _corrupted(country, how: str) -> list[Path]:
    """The exports with one kind of mistake typed into the first file."""
    root = country["root"] / how
    root.mkdir(exist_ok=True)
    out = []
    for i, path in enumerate(country["files"]):
        df = pd.read_csv(path, dtype=object, keep_default_na=False)
        if i == 0:
            name = df["family_name"] + " " + df["given_name"]
            n = min(5, len(df))
            if how in ("sex", "citizenship", "exploitation", "identification_status",
                       "country_of_identification", "entity_id"):
                df.loc[df.index[:n], how] = name.iloc[:n]
            elif how == "age":
                df["age_at_identification"] = ""
                df.loc[df.index[:n], "age_at_identification"] = df["birth_date"].iloc[:n]
            elif how == "record_id":
                df["source_record_id"] = name + df["birth_date"]
            elif how == "birth_date":
                df.loc[df.index[:n], "birth_date"] = name.iloc[:n]
        path = root / path.name
        df.to_csv(path, index=False)
        out.append(path)
    return out


def _run(capsys, argv: list[str], out_dir: Path) -> str:
    """Everything a user would see or get: stdout, stderr, the traceback under --debug, files."""
    seen = []
    try:
        code = main(argv)
        seen.append(f"exit {code}")
    except SystemExit as exc:  # argparse
        seen.append(f"exit {exc.code}")
    except Exception as exc:  # --debug re-raises: the traceback is what the user sees
        seen.append("".join(traceback.format_exception(exc)))
    out, err = capsys.readouterr()
    seen += [out, err]
    for f in sorted(out_dir.rglob("*")) if out_dir.exists() else []:
        if f.is_file():
            seen.append(f.read_bytes().decode("utf-8", "replace"))
    return "\n".join(seen)


MODES = [[], ["--json"], ["--debug"], ["--debug", "--json"]]
MISTAKES = ["none", "sex", "citizenship", "exploitation", "identification_status",
            "country_of_identification", "entity_id", "age", "record_id", "birth_date"]


@pytest.mark.parametrize("mistake", MISTAKES)
def test_records_commands_never_show_identifiers(capsys, country, mistake):
    files = [str(p) for p in (country["files"] if mistake == "none"
                              else _corrupted(country, mistake))]
    for mode in MODES:
        out_dir = country["root"] / f"out-{mistake}-{'-'.join(mode) or 'text'}"
        commands = [
            ["validate", *files, "--entity-map", str(country["map"])],
            ["histories", *files, "--entity-map", str(country["map"]),
             "--secret-file", str(country["key"]), "--out", str(out_dir / "counts.csv")],
            ["indicator", *files, "--entity-map", str(country["map"]),
             "--population", str(country["pop"]), "--secret-file", str(country["key"]),
             "--bootstrap", "5", "--out", str(out_dir)],
        ]
        for argv in commands:
            seen = _run(capsys, [*argv, *mode], out_dir)
            assert not _leaks(seen), (argv[0], mode, _leaks(seen)[:3])
            # the sweep must reach what it claims to test: clean exports run to the end (and
            # write their files), a name or date typed into a checked column stops the run
            first = seen.split("\n", 1)[0]
            if argv[0] == "indicator" and "--debug" not in mode:
                assert first == ("exit 0" if mistake in ("none", "record_id") else "exit 2"), \
                    (mistake, mode, first)
    if mistake == "none":
        assert (country["root"] / "out-none-text" / "sdg_16_2_2.csv").exists()


@pytest.mark.parametrize("command", ["validate", "estimate", "compare", "report"])
def test_a_raw_list_given_as_a_count_table_is_refused_by_column_name(capsys, country, command):
    raw = country["root"] / "raw_list.csv"
    country["records"].to_csv(raw, index=False)
    for mode in MODES:
        out_dir = country["root"] / f"raw-{command}-{'-'.join(mode) or 'text'}"
        argv = [command, str(raw)] + (["--out", str(out_dir / "r.html")] if command == "report"
                                      else [])
        mode = [m for m in mode if not (command == "report" and m == "--json")]
        seen = _run(capsys, [*argv, *mode], out_dir)
        assert not _leaks(seen), (command, mode, _leaks(seen)[:3])
        if "--debug" not in mode:
            assert "exit 2" in seen, (command, mode, seen[:300])
