"""Linkage secrets that resist a dictionary attack (issue 14, item 4): weak, patterned and
published secrets are refused with a reason and a remedy; random keys are accepted; the secret is
read from a file or the environment and never shown."""

from __future__ import annotations

import json
import os
import random
import re
import stat
import warnings
from pathlib import Path

import pandas as pd
import pytest

from tipstat import InputError, TipstatWarning, simulate
from tipstat.ictip.keys import (
    MIN_SECRET_BITS,
    PUBLISHED_SECRETS,
    Secret,
    generate_secret,
    person_keys,
    read_secret,
    secret_strength,
)

ROOT = Path(__file__).resolve().parents[2]

WEAK = [
    "0123456789abcdef",                      # accepted before: 16 bytes
    b"\0" * 16,                              # accepted before: 16 NUL bytes
    "a" * 64,
    "abcabcabcabcabcabcabcabcabcabc",
    bytes(range(32)),
    "password1234567890!",
    "P@ssw0rdP@ssw0rdP@ssw0rd",
    "ministry-of-interior-2024-linkage-key",
    "correct horse battery staple",
    "the quick brown fox jumps over the lazy dog",
    "synthetic-7-0123456789abcdef",          # the simulator's kind of key
    "Kamira Dorlen 1990-01-01 Kamira",
    *sorted(PUBLISHED_SECRETS),
]


def _ids(v):
    return f"{type(v).__name__}{len(v)}"


@pytest.mark.parametrize("weak", WEAK, ids=_ids)
def test_weak_and_published_secrets_are_refused_saying_why_and_how(weak):
    with pytest.raises(InputError) as err:
        Secret(weak)
    msg = str(err.value)
    assert "tipstat keygen" in msg and "generate_secret" in msg  # how to make a good one
    assert re.search(r"at least 16 bytes|too weak.*about \d+ bits.*at least 128|"
                     r"published in tipstat's documentation", msg)
    shown = weak if isinstance(weak, str) else weak.decode("latin-1")
    assert shown not in msg  # never echoed
    assert "Kamira" not in msg and "1990" not in msg


def test_reasons_name_the_kind_of_weakness_not_the_content():
    cases = {
        "0123456789abcdef": "published",
        b"\0" * 16: "a run of 16 identical bytes",
        "x" * 40: "only 1 different character",
        "zyxwvutsrqponmlkjihgfedcba": "a sequence of 26 consecutive characters",
        "abcabcabcabcabcabcabcabcabcabc": "a repeated block of 27 characters",
        "password-letmein-welcome-123456789": "3 common words",
        "q7Vt3kR9xWz2LmP8sHc4NbJ6yFd1GaE5uTo0KiQw": "published",
    }
    for value, reason in cases.items():
        bits, why = secret_strength(value)
        assert bits < MIN_SECRET_BITS and any(reason in w for w in why), (reason, why)


def test_a_published_strong_looking_secret_is_refused_though_its_form_is_strong():
    published = "q7Vt3kR9xWz2LmP8sHc4NbJ6yFd1GaE5uTo0KiQw"  # docs/privacy.md shows it
    assert published in PUBLISHED_SECRETS
    assert secret_strength(published[::-1])[0] >= MIN_SECRET_BITS  # same form, not published
    with pytest.raises(InputError, match="published in tipstat's documentation"):
        Secret(published)
    with pytest.raises(InputError, match="published"):
        Secret(f"  {published.upper()}\n")
    with pytest.raises(InputError, match="contains a secret published"):
        Secret(f"my-{published}!")


def test_random_keys_are_accepted():
    # generate_secret: 256 bits; its estimate never came near 128 (minimum of 3,000: 200 bits)
    for _ in range(300):
        s = generate_secret()
        assert len(s) == 43 and secret_strength(s)[0] >= 180
        Secret(s)
    rng = random.Random(20261206)
    for _ in range(300):
        Secret(rng.randbytes(16))                       # 16 random bytes: 128 bits, accepted
        Secret(rng.randbytes(32).hex())                 # 64 hex digits: 256 bits
    # 32 hex digits hold exactly 128 bits, with no margin: a patterned one (a run, a sequence,
    # a repeated block of 4) is refused. Measured: 2.7% of 3,000 (binomial sd 0.3%); tolerance
    # 6% leaves a wide margin and would still catch a rule that refuses random keys wholesale.
    refused = sum(secret_strength(f"{rng.getrandbits(128):032x}")[0] < MIN_SECRET_BITS
                  for _ in range(1000))
    assert refused < 60


def test_the_secret_of_the_documentation_scan():
    """Every secret literal in tipstat's docs, docstrings, examples and tests is refused (a
    published secret is known to everyone); the scan finds the known ones, so it can fail."""
    patterns = [
        r"Secret\(\s*b?[\"']([^\"']+)[\"']",
        r"(?i)secret\s*=\s*b?[\"']([^\"'{}]+)[\"']",
        r"(?:pseudonymise|person_keys)\([^,()]+,\s*b?[\"']([^\"']+)[\"']",
        r"TIPSTAT_SECRET\s*=\s*[\"']?([^\s\"'$`()]+)",
    ]
    files = [*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("examples/*.py"),
             *ROOT.glob("tipstat/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py")]
    found = {}
    for f in files:
        text = f.read_text(encoding="utf-8")
        for pat in patterns:
            for m in re.finditer(pat, text):
                found.setdefault(m.group(1).encode().decode("unicode_escape"), f.name)
    nb = ROOT / "docs" / "tutorial.ipynb"
    if nb.exists():
        cells = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
        for pat in patterns:
            for m in re.finditer(pat, cells):
                found.setdefault(m.group(1), nb.name)
    assert "abcdefgh12345678" in found  # the Secret docstring's refused example
    assert "q7Vt3kR9xWz2LmP8sHc4NbJ6yFd1GaE5uTo0KiQw" in found  # the privacy guide's
    accepted = [where for value, where in found.items() if _accepted(value)]
    assert not accepted, f"secret literals accepted in {accepted}"


def _accepted(value: str) -> bool:
    try:
        Secret(value)
    except InputError:
        return False
    return True


def test_read_secret_from_file_and_environment(tmp_path, monkeypatch):
    key = generate_secret()
    df = pd.DataFrame({"family_name": ["Doe"], "given_name": ["Ann"],
                       "birth_date": ["1990-01-02"], "sex": ["F"]})
    want = person_keys(df, key)[0]
    for i, content in enumerate([key, key + "\n", key + "\r\n", "\ufeff" + key + "\n"]):
        f = tmp_path / f"key{i}.txt"
        f.write_bytes(content.encode("utf-8"))
        f.chmod(0o600)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a private file gives no warning
            s = read_secret(f)
        assert person_keys(df, s)[0] == want
    f = tmp_path / "two-newlines.txt"  # only one trailing newline is removed
    f.write_text(key + "\n\n")
    f.chmod(0o600)
    assert person_keys(df, read_secret(f))[0] != want
    monkeypatch.setenv("TIPSTAT_SECRET", key)
    assert person_keys(df, read_secret())[0] == want
    monkeypatch.setenv("OTHER_KEY", key + "\n")
    assert person_keys(df, read_secret(env="OTHER_KEY"))[0] == want


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_a_secret_file_others_can_read_gives_a_warning(tmp_path):
    f = tmp_path / "key.txt"
    f.write_text(generate_secret())
    f.chmod(0o644)
    with pytest.warns(TipstatWarning, match="chmod 600"):
        read_secret(f)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644  # only a warning: nothing is changed


def test_read_secret_errors_name_the_source_never_the_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("TIPSTAT_SECRET", raising=False)
    with pytest.raises(InputError, match=r"TIPSTAT_SECRET.*tipstat keygen"):
        read_secret()
    with pytest.raises(InputError, match=r"cannot read the secret file .*nope\.txt"):
        read_secret(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(InputError, match="empty"):
        read_secret(empty)
    weak = tmp_path / "weak.txt"
    weak.write_text("0123456789abcdef-demo\n")
    weak.chmod(0o600)
    with pytest.raises(InputError) as err:
        read_secret(weak)
    assert "weak.txt" in str(err.value) and "published" in str(err.value)
    assert "0123456789abcdef" not in str(err.value)
    monkeypatch.setenv("TIPSTAT_SECRET", "Kamira-Dorlen-1990")
    with pytest.raises(InputError) as err:
        read_secret()
    assert "TIPSTAT_SECRET" in str(err.value) and "Kamira" not in str(err.value)


def test_secret_is_never_shown_or_pickled():
    import pickle

    key = generate_secret()
    s = Secret(key)
    assert key not in repr(s) and key not in str(s) and key not in f"{s!r} {s}"
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert Secret(s)._value == s._value  # a Secret passes through unchanged


def test_only_the_simulator_derives_a_key_from_a_seed():
    c = simulate.country(200, seed=3)
    assert isinstance(c.secret, Secret)
    with pytest.raises(InputError):  # its seed-derived key would be refused anywhere else
        Secret(c.secret._value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs = c.read(clear=True, period=c.year)  # the simulator's own route still works
    assert recs.frame["person_key"].notna().all()
    users = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("tipstat/**/*.py"),
                                                      *ROOT.glob("examples/*.py"),
                                                      *ROOT.glob("benchmarks/*.py")]
                   if "_unchecked(" in p.read_text(encoding="utf-8"))
    assert users == [os.path.join("tipstat", "ictip", "keys.py"),
                     os.path.join("tipstat", "simulate.py")]
