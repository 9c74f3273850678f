"""The dictionary attack on weak linkage keys, measured (issue 14, item 4; docs/privacy.md).

The threat: a pseudonymised record file (``person_key`` beside sex, age, form of exploitation and
the agencies that met the person) is leaked or published. The attacker knows the identity of some
victims (family and given name, birth date, sex: from a court record, the press, a social network)
and holds a dictionary of likely secrets. For each candidate secret the attacker computes the
HMAC-SHA-256 key of ONE known identity and looks it up among the leaked keys; a hit gives the
secret, and with it the record of every victim the attacker knows (their agencies, their form of
exploitation). This script plays the attacker against

* weak secrets that the old rule (at least 16 bytes) accepted and that ``Secret`` now refuses, and
* a strong secret from ``generate_secret()`` (256 bits), which no dictionary contains.

It prints the dictionary size, the measured rate of HMACs per second on one core, the position
and time at which each weak secret falls, the victims re-identified, and what the strong secret
would cost to brute-force at the same rate. Run: ``python benchmarks/attack_keys.py`` (a few
seconds; no argument).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import time
import warnings

import numpy as np
import pandas as pd

from tipstat import simulate
from tipstat.errors import InputError
from tipstat.ictip.keys import (
    PUBLISHED_SECRETS,
    Secret,
    generate_secret,
    normalise_date,
    normalise_name,
    person_keys,
    secret_strength,
)

N_KNOWN = 100
WEAK_KEYS = {  # each is >= 16 bytes, so the old rule accepted it
    "the example of the old docstrings": "0123456789abcdef",
    "a demo key of the simulator, reused": "synthetic-2024-0123456789abcdef",
    "a word, a year and a symbol": "Trafficking2024!",
    "16 NUL bytes": "\0" * 16,
}
WORDS = ["password", "secret", "linkage", "trafficking", "victim", "police", "ministry", "interior",
         "justice", "tipstat", "ictip", "welcome", "letmein", "admin", "changeme", "national",
         "taskforce", "unodc", "statistics", "migration", "border", "shelter", "labour", "qwerty"]


def identities(frame: pd.DataFrame) -> list[bytes]:
    """The message HMAC'd for each record: FAMILY|GIVEN|YYYYMMDD|SEX (tipstat's key scheme)."""
    return ["|".join((normalise_name(f), normalise_name(g), normalise_date(d), s)).encode("ascii")
            for f, g, d, s in zip(frame.family_name, frame.given_name, frame.birth_date,
                                  frame["sex"], strict=True)]


def hmac_keys(messages: list[bytes], secret: bytes) -> list[str]:
    return [hmac.digest(secret, m, hashlib.sha256).hex() for m in messages]


def dictionary() -> list[bytes]:
    """A small attacker's dictionary (about 0.5 million candidates): published example secrets,
    runs and sequences, words with case variants, years, digits and symbols, and the
    simulator's seed-derived keys. Real cracking lists hold billions."""
    out: list[str] = sorted(PUBLISHED_SECRETS)
    seq = "0123456789abcdefghijklmnopqrstuvwxyz"
    out += [seq[:n] for n in range(8, len(seq) + 1)] + [seq[:16] + "-demo"]
    out += [chr(c) * n for c in range(0, 128) for n in (16, 24, 32, 64)]
    for w in WORDS:
        for form in (w, w.capitalize(), w.upper()):
            for tail in itertools.chain([""], map(str, range(1000)), map(str, range(1950, 2031))):
                for sym in ("", "!", "#", "@", "-key", "_secret"):
                    out.append(form + tail + sym)
    out += [f"synthetic-{seed}-0123456789abcdef" for seed in range(100_000)]
    return [s.encode("utf-8") for s in dict.fromkeys(out)]


def attack(candidates: list[bytes], probe: bytes, leaked: set[str]) -> tuple[bytes | None, int, float]:
    """Try every candidate on one known identity; (secret found, candidates tried, seconds)."""
    t0 = time.perf_counter()
    for i, cand in enumerate(candidates, start=1):
        if hmac.digest(cand, probe, hashlib.sha256).hex() in leaked:
            return cand, i, time.perf_counter() - t0
    return None, len(candidates), time.perf_counter() - t0


def main() -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = simulate.country(3000, seed=11)
    clear = c.clear_records
    pseudo = c.records[["person_key", "entity_id", "sex", "exploitation"]]
    # the attacker's knowledge: 100 victims' identities (one record of each of 100 persons)
    rng = np.random.default_rng(11)
    messages = identities(clear)
    first = pd.Series(range(len(clear))).groupby(pd.Series(messages)).first().to_numpy()
    known = sorted(rng.choice(first, N_KNOWN, replace=False).tolist())
    known_msgs = [messages[i] for i in known]
    # sanity: this script's HMAC is tipstat's key (checked with a strong secret)
    strong = generate_secret()
    assert hmac_keys(messages[:5], strong.encode()) == person_keys(clear.iloc[:5], strong).tolist()

    cands = dictionary()
    t0 = time.perf_counter()
    for cand in cands[:200_000]:
        hmac.digest(cand, known_msgs[0], hashlib.sha256)
    rate = 200_000 / (time.perf_counter() - t0)
    print(f"attacker: {N_KNOWN} known victims (name, birth date, sex) among {len(clear)} records "
          f"of {pseudo.entity_id.nunique()} agencies; dictionary of {len(cands):,} secrets; "
          f"{rate:,.0f} HMAC-SHA-256 per second on one core")
    results = {"n_records": len(clear), "n_known": N_KNOWN, "dictionary": len(cands),
               "hmac_per_second": rate, "keys": []}
    for label, key in [*WEAK_KEYS.items(), ("generate_secret() (256 bits)", strong)]:
        raw = key.encode("utf-8")
        leaked_keys = hmac_keys(messages, raw)  # the leaked file, pseudonymised under this key
        leaked = set(leaked_keys)
        try:
            Secret(key)
            verdict = "accepted"
        except InputError:
            verdict = "refused"
        bits = secret_strength(key)[0]
        found, tried, secs = attack(cands, known_msgs[0], leaked)
        reidentified = 0
        forms = set()
        if found is not None:
            by_key = dict(zip(leaked_keys, range(len(leaked_keys)), strict=True))
            for m in known_msgs:
                row = by_key.get(hmac.digest(found, m, hashlib.sha256).hex())
                if row is not None:
                    reidentified += 1
                    forms.add(pseudo.exploitation.iloc[row])
        true_bits = min(bits, 256.0)  # generate_secret draws 256 random bits
        brute = 2 ** (true_bits - 1) / rate / 3.156e7  # years, half the space on average
        print(f"- {label}: {len(raw)} bytes, old rule accepted it: {len(raw) >= 16}; "
              f"Secret(): {verdict} (estimated {bits:.0f} bits)")
        if found is not None:
            print(f"    secret found after {tried:,} candidate{'s' if tried != 1 else ''} in {secs:.2f} s; "
                  f"{reidentified}/{N_KNOWN} known victims re-identified (each one's agencies "
                  f"and form of exploitation; {len(forms)} different forms)")
        else:
            print(f"    not in the dictionary ({tried:,} candidates, {secs:.2f} s, 0/{N_KNOWN} "
                  f"re-identified); brute force of {true_bits:.0f} bits at this rate: "
                  f"about 10^{math.log10(brute):.0f} years on one core")
        results["keys"].append({"key": label, "bytes": len(raw), "secret_accepts": verdict,
                                "bits": bits, "tried": tried, "seconds": secs,
                                "found": found is not None, "reidentified": reidentified,
                                "brute_force_years": brute if found is None else None})
    return results


if __name__ == "__main__":
    main()
