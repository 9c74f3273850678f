"""Synthetic data with known truth.

Record-level simulation (this module's first part): :func:`country` builds a synthetic country —
population by sex and age, victims by sex, age and form of exploitation, reporting entities
grouped into MSE lists with stratum-specific capture probabilities and list dependence — and the
IC-TIP coded records each entity would export, with missing covariates, within-list duplicates,
identifier typos and out-of-scope records. :func:`records` is a shortcut for the records alone.

Capture model. For a victim in stratum ``s = (sex, age, form)`` the capture pattern
``x in {0,1}^K`` (including the all-zero pattern, "not detected") has probability

.. math::

    P(x \\mid s) \\propto \\exp\\Big(\\sum_j x_j (a_j + b_{j,sex} + b_{j,age} + b_{j,form})
                 + \\sum_{j<l} \\gamma_{jl}\\, x_j x_l\\Big),

a log-linear model with list x covariate and list x list interactions: the model family that
:func:`tipstat.models.stratified.fit_stratified` searches, so the truth is inside it.

All names are synthetic (random syllables); nothing here describes a real person.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import InputError
from .parallel import generator

if TYPE_CHECKING:
    from .ictip.keys import Secret

__all__ = ["DEFAULT_LISTS", "SyntheticCountry", "country", "records"]

#: Default lists: list_id -> (entities, entity_type, base log-odds a_j).
DEFAULT_LISTS = {
    "P": (("POL_NORTH", "POL_SOUTH"), "LE_POL", -1.6),
    "K": (("BORDER",), "LE_BORD", -2.6),
    "I": (("LABOUR_INSP",), "LE_LAB", -2.4),
    "R": (("SOCIAL",), "SOC", -2.2),
    "O": (("NGO_SHELTER", "NGO_OUTREACH"), "NGO", -1.9),
    "Z": (("HEALTH",), "HLTH", -2.8),
}
FORMS = ("SEX", "LAB", "MIX", "ORG", "OTH")
#: Form codes written on records for each stratum (a record gets one or two of them).
FORM_CODES = {"SEX": ("SEX", "SEX.PROS", "SEX.PORN"), "LAB": ("LAB", "LAB.DOM", "LAB.OTH"),
              "MIX": ("SEX;LAB", "SEX.PROS;LAB.OTH"), "ORG": ("ORG",),
              "OTH": ("OTH.CRIM", "OTH.BEG", "OTH.MAR", "OTH")}
_SYL = np.array(["ka", "ri", "mo", "sa", "len", "dor", "vi", "ta", "ne", "bu", "zo", "la", "mir",
                 "ko", "an", "el", "pa", "ru", "si", "te", "gar", "no", "hu", "be", "ya", "fi",
                 "ost", "ul", "me", "da", "wen", "jo"])


@dataclass
class SyntheticCountry:
    """A synthetic country with known truth (see :func:`country`).

    Attributes
    ----------
    ref_area, year : str, int
    population : DataFrame
        ``ref_area, year, sex, age_group, population`` with ``_T`` totals.
    victims : DataFrame
        One row per true victim: ``sex``, ``age_group`` (level 1), ``age``, ``exploitation``
        (stratum), ``pattern`` (capture code, 0 = undetected), one 0/1 column per list.
    entities, list_definition : DataFrame
        The ``reporting_entity`` table and the entity -> list mapping.
    records : DataFrame
        Pseudonymised IC-TIP records of all entities (``person_key`` = HMAC-SHA-256 under
        :attr:`secret`), including out-of-scope records and duplicates.
    clear_records : DataFrame
        The same records with synthetic clear identifiers instead of the key (for the
        pseudonymisation path).
    secret : Secret
        The linkage secret of this synthetic country, derived from the seed (for demos and tests
        only: a real secret is never derived from a seed, and this one would be refused).
    params : dict
        Every parameter of the simulation.
    """

    ref_area: str
    year: int
    population: pd.DataFrame
    victims: pd.DataFrame
    entities: pd.DataFrame
    list_definition: pd.DataFrame
    records: pd.DataFrame
    clear_records: pd.DataFrame
    secret: Secret
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def lists(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.list_definition["list_id"]))

    @property
    def n_victims(self) -> int:
        return len(self.victims)

    @property
    def n_detected(self) -> int:
        """True number of distinct detected victims (on at least one list)."""
        return int((self.victims["pattern"] > 0).sum())

    def truth(self, by: list[str] | tuple[str, ...] = ("sex", "age_group", "exploitation")) -> pd.DataFrame:
        """True number of victims (``N``) and of detected victims, by ``by``."""
        v = self.victims.assign(detected=(self.victims["pattern"] > 0).astype(int), N=1)
        if not by:
            return v[["N", "detected"]].sum().to_frame().T
        return v.groupby(list(by), as_index=False)[["N", "detected"]].sum()

    def read(self, clear: bool = False, **kwargs: Any):
        """:func:`tipstat.ictip.read_records` on this country's records (today = end of year+1)."""
        from .ictip.records import read_records

        kw = {"ref_area": self.ref_area, "today": f"{self.year + 1}-12-31",
              "entities": self.entities}
        kw.update(kwargs)
        if clear:
            return read_records(self.clear_records, self.list_definition, secret=self.secret, **kw)
        return read_records(self.records, self.list_definition, **kw)


def _names(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    parts = rng.choice(_SYL, size=(n, k))
    out = parts[:, 0].astype(object)
    for j in range(1, k):
        out = out + parts[:, j]
    return np.array([s.capitalize() for s in out], dtype=object)


def _typo(rng: np.random.Generator, names: np.ndarray) -> np.ndarray:
    out = names.copy()
    for i, s in enumerate(names):
        pos = int(rng.integers(1, len(s)))
        out[i] = s[:pos] + str(rng.choice(list("aeioukrst"))) + s[pos + 1:]
        if out[i] == s:
            out[i] = s + "e"
    return out


def country(
    n_victims: int = 5000,
    *,
    seed: int | None = None,
    year: int = 2024,
    ref_area: str = "NLD",
    population_total: int = 17_000_000,
    lists: dict[str, tuple[tuple[str, ...], str, float]] | None = None,
    p_female: float = 0.6,
    p_child: float = 0.25,
    form_probs: dict[str, tuple[float, ...]] | None = None,
    sex_effect: dict[str, float] | None = None,
    child_effect: dict[str, float] | None = None,
    form_effect: dict[str, dict[str, float]] | None = None,
    dependence: dict[tuple[str, str], float] | None = None,
    missing: dict[str, dict[str, float]] | None = None,
    dup_rate: float = 0.05,
    typo_rate: float = 0.0,
    conflict_rate: float = 0.0,
    n_not_victim: int | None = None,
    n_out_of_period: int | None = None,
) -> SyntheticCountry:
    """Simulate a country's trafficking victims and the records its agencies hold.

    Parameters
    ----------
    n_victims : int
        True number of victims in the reference year (detected and undetected).
    seed : int
        Seed of every random step (``numpy.random.default_rng(seed)``).
    lists : dict, optional
        ``{list_id: (entity_ids, entity_type, a_j)}``; default :data:`DEFAULT_LISTS` (6 lists,
        8 entities).
    p_female, p_child, form_probs
        Victims' sex and age (child = under 18) shares, and ``{sex: probabilities of FORMS}``
        (``SEX, LAB, MIX, ORG, OTH``).
    sex_effect, child_effect : dict, optional
        Log-linear list x covariate effects ``b_{j,M}`` (male vs female) and ``b_{j,child}``.
    form_effect : dict, optional
        ``{list_id: {form: b}}`` list x form effects (``SEX`` is the reference).
    dependence : dict, optional
        ``{(list_a, list_b): gamma}`` list x list interactions (default ``{("P", "K"): 0.8,
        ("R", "O"): 0.6}``).
    missing : dict, optional
        ``{list_id: {"sex" | "age" | "exploitation": probability not recorded}}``.
    dup_rate : float
        Probability that a capture gives a second record on the same list.
    typo_rate : float
        Probability that a record's family name has a typo (its key then differs: a missed link).
    conflict_rate : float
        Probability that a record's sex is recorded as the other sex.
    n_not_victim, n_out_of_period : int, optional
        Extra records of other persons with status ``NOT_VICTIM`` or identified the year before
        (out of scope; default 2% of the victims each).

    Returns
    -------
    SyntheticCountry

    Examples
    --------
    >>> c = country(n_victims=1000, seed=7)
    >>> c.lists
    ('P', 'K', 'I', 'R', 'O', 'Z')
    >>> int(c.truth(by=[])["N"].iloc[0])
    1000
    """
    if n_victims < 1:
        raise InputError(f"n_victims={n_victims}; expected a positive number")
    rng = generator(seed)
    lists = dict(lists or DEFAULT_LISTS)
    names = list(lists)
    k = len(names)
    if k < 2:
        raise InputError("a synthetic country needs at least two lists")
    form_probs = form_probs or {"F": (0.55, 0.22, 0.08, 0.02, 0.13), "M": (0.10, 0.62, 0.05, 0.04, 0.19)}
    sex_effect = sex_effect if sex_effect is not None else \
        dict(zip(names, [0.3, 0.4, 0.6, -0.4, -0.5, 0.0][:k] + [0.0] * max(0, k - 6), strict=True))
    child_effect = child_effect if child_effect is not None else \
        dict(zip(names, [-0.3, 0.2, -0.8, 0.9, 0.3, 0.2][:k] + [0.0] * max(0, k - 6), strict=True))
    if form_effect is None:
        form_effect = {n: {} for n in names}
        if "I" in lists:
            form_effect["I"] = {"LAB": 1.0, "MIX": 0.6, "OTH": 0.3}
        if "O" in lists:
            form_effect["O"] = {"LAB": -0.5, "OTH": -0.3}
    if dependence is None:
        dependence = {pair: g for pair, g in {("P", "K"): 0.8, ("R", "O"): 0.6}.items()
                      if pair[0] in lists and pair[1] in lists}
    if missing is None:
        missing = {n: {} for n in names}
        defaults = {"O": {"age": 0.25, "exploitation": 0.1}, "Z": {"age": 0.4},
                    "P": {"exploitation": 0.1}}
        for n, d in defaults.items():
            if n in missing:
                missing[n] = d
    params = dict(n_victims=n_victims, seed=seed, year=year, ref_area=ref_area, lists=lists,
                  p_female=p_female, p_child=p_child, form_probs=form_probs,
                  sex_effect=sex_effect, child_effect=child_effect, form_effect=form_effect,
                  dependence=dependence, missing=missing, dup_rate=dup_rate, typo_rate=typo_rate,
                  conflict_rate=conflict_rate)

    # --- victims ---------------------------------------------------------------------------
    sex = np.where(rng.random(n_victims) < p_female, "F", "M")
    child = rng.random(n_victims) < p_child
    age = np.where(child, rng.integers(8, 18, n_victims), rng.integers(18, 61, n_victims))
    form = np.empty(n_victims, dtype=object)
    for s in ("F", "M"):
        m = sex == s
        form[m] = rng.choice(FORMS, size=int(m.sum()), p=np.asarray(form_probs[s]) / sum(form_probs[s]))
    # --- capture patterns by stratum --------------------------------------------------------
    codes = np.arange(2**k)
    X = (codes[:, None] >> np.arange(k)[None, :]) & 1
    pair_term = np.zeros(2**k)
    for (a, b), g in dependence.items():
        pair_term += g * X[:, names.index(a)] * X[:, names.index(b)]
    pattern = np.zeros(n_victims, dtype=np.int64)
    strata = pd.DataFrame({"sex": sex, "child": child, "form": form})
    for (s, c, f), idx in strata.groupby(["sex", "child", "form"]).indices.items():
        theta = np.array([lists[n][2] + (sex_effect.get(n, 0.0) if s == "M" else 0.0)
                          + (child_effect.get(n, 0.0) if c else 0.0)
                          + form_effect.get(n, {}).get(f, 0.0) for n in names])
        logp = X @ theta + pair_term
        p = np.exp(logp - logp.max())
        pattern[idx] = rng.choice(2**k, size=len(idx), p=p / p.sum())
    victims = pd.DataFrame({"sex": sex, "age_group": np.where(child, "Y0T17", "Y_GE18"),
                            "age": age, "exploitation": form, "pattern": pattern})
    for j, n in enumerate(names):
        victims[n] = (pattern >> j) & 1
    victims.index.name = "victim"

    # --- identities (synthetic) -------------------------------------------------------------
    family = _names(rng, n_victims, 3)
    given = _names(rng, n_victims, 2)
    start = pd.Timestamp(f"{year}-01-01")
    first_id = start + pd.to_timedelta(rng.integers(0, 365, n_victims), unit="D")
    birth = first_id - pd.to_timedelta(age * 365.25 + rng.integers(1, 360, n_victims), unit="D")

    # --- records: one per capture, plus duplicates ------------------------------------------
    ent_rows = []
    for n in names:
        for e in lists[n][0]:
            ent_rows.append((e, e.replace("_", " ").title(), lists[n][1], ref_area, n))
    entities = pd.DataFrame([r[:4] for r in ent_rows],
                            columns=["entity_id", "entity_name", "entity_type", "country"])
    entities["admin_level"] = "NAT"
    list_definition = pd.DataFrame({"entity_id": [r[0] for r in ent_rows],
                                    "list_id": [r[4] for r in ent_rows]})
    list_definition["period_start"] = f"{year}-01-01"
    list_definition["period_end"] = f"{year}-12-31"
    vic_idx, list_idx = np.nonzero(victims[names].to_numpy())
    dup = rng.random(len(vic_idx)) < dup_rate
    vic_idx = np.concatenate([vic_idx, vic_idx[dup]])
    list_idx = np.concatenate([list_idx, list_idx[dup]])
    m = len(vic_idx)
    ent = np.empty(m, dtype=object)
    for j, n in enumerate(names):
        sel = np.flatnonzero(list_idx == j)
        ent[sel] = rng.choice(np.array(lists[n][0], dtype=object), size=len(sel))
    offs = pd.to_timedelta(rng.integers(0, 120, m), unit="D")
    id_date = first_id[vic_idx] + offs
    end = pd.Timestamp(f"{year}-12-31")
    id_date = pd.DatetimeIndex(np.where(id_date > end, end, id_date))
    rec = pd.DataFrame({"victim": vic_idx, "entity_id": ent, "list_id": np.array(names)[list_idx]})
    rec["identification_date"] = id_date.strftime("%Y-%m-%d")
    rec["identification_status"] = rng.choice(["PRESUMED", "IDENTIFIED"], size=m, p=[0.6, 0.4])
    rec["country_of_identification"] = ref_area
    rec_sex = sex[vic_idx].astype(object)
    flip = rng.random(m) < conflict_rate
    rec_sex[flip] = np.where(rec_sex[flip] == "F", "M", "F")
    rec["sex"] = rec_sex
    b = birth[vic_idx]
    agey = (id_date.year - b.year - ((id_date.month * 100 + id_date.day) < (b.month * 100 + b.day)))
    rec["age_at_identification"] = np.asarray(agey, dtype=float)
    rec["citizenship"] = rng.choice([ref_area, "ROU", "NGA", "CHN", "BGR", "VNM"], size=m,
                                    p=[0.35, 0.2, 0.15, 0.1, 0.1, 0.1])[0:m]
    rec["citizenship"] = pd.Series(rec["citizenship"]).groupby(rec["victim"]).transform("first")
    fcodes = np.empty(m, dtype=object)
    vform = form[vic_idx]
    for f in FORMS:
        sel = np.flatnonzero(vform == f)
        fcodes[sel] = rng.choice(np.array(FORM_CODES[f], dtype=object), size=len(sel))
    rec["exploitation"] = fcodes
    for n, miss in missing.items():
        on = (rec["list_id"] == n).to_numpy()
        for var, p in miss.items():
            drop = on & (rng.random(m) < p)
            col = {"age": "age_at_identification", "sex": "sex", "exploitation": "exploitation"}[var]
            rec.loc[drop, col] = np.nan if col == "age_at_identification" else ""
    fam = family[vic_idx].copy()
    typo = rng.random(m) < typo_rate
    fam[typo] = _typo(rng, fam[typo])
    rec["family_name"] = fam
    rec["given_name"] = given[vic_idx]
    rec["birth_date"] = b.strftime("%Y-%m-%d")

    # --- out-of-scope records of other persons ----------------------------------------------
    extra = []
    n_nv = round(0.02 * n_victims) if n_not_victim is None else n_not_victim
    n_op = round(0.02 * n_victims) if n_out_of_period is None else n_out_of_period
    for n_extra, kind in ((n_nv, "nv"), (n_op, "op")):
        if n_extra <= 0:
            continue
        e = pd.DataFrame({"victim": -1, "entity_id": rng.choice(entities.entity_id, n_extra)})
        e["list_id"] = e["entity_id"].map(dict(zip(list_definition.entity_id,
                                                   list_definition.list_id, strict=True)))
        d0 = start if kind == "nv" else start - pd.Timedelta(days=365)
        e["identification_date"] = (d0 + pd.to_timedelta(rng.integers(0, 360, n_extra), unit="D")
                                    ).strftime("%Y-%m-%d")
        e["identification_status"] = "NOT_VICTIM" if kind == "nv" else "PRESUMED"
        e["country_of_identification"] = ref_area
        e["sex"] = rng.choice(["F", "M"], n_extra)
        e["age_at_identification"] = rng.integers(18, 60, n_extra).astype(float)
        e["citizenship"] = ref_area
        e["exploitation"] = "LAB"
        e["family_name"] = _names(rng, n_extra, 4)
        e["given_name"] = _names(rng, n_extra, 3)
        e["birth_date"] = (pd.Timestamp(f"{year - 30}-01-01")
                           + pd.to_timedelta(rng.integers(0, 9000, n_extra), unit="D")).strftime("%Y-%m-%d")
        extra.append(e)
    rec = pd.concat([rec, *extra], ignore_index=True)
    rec = rec.iloc[rng.permutation(len(rec))].reset_index(drop=True)
    rec["source_record_id"] = rec.groupby("entity_id").cumcount().add(1).map(lambda i: f"R{i:06d}")
    from .ictip.keys import Secret, normalise_date, normalise_name

    # A key derived from the seed, so that a synthetic country repeats bit for bit: allowed here
    # only (it is public, hence weak: Secret() would refuse it; nothing else uses _unchecked).
    secret = Secret._unchecked(f"synthetic-{seed}-" + "0123456789abcdef")
    key = secret._value

    person_key = [hmac.new(key, "|".join((normalise_name(f), normalise_name(g), normalise_date(d),
                                          "" if s in ("", None) or s != s else s)).encode("ascii"),
                           hashlib.sha256).hexdigest()
                  for f, g, d, s in zip(rec.family_name, rec.given_name, rec.birth_date, rec["sex"],
                                        strict=True)]
    base_cols = ["entity_id", "source_record_id", "identification_date", "identification_status",
                 "country_of_identification", "sex", "citizenship", "exploitation"]
    clear = rec[[*base_cols, "family_name", "given_name", "birth_date"]].copy()
    pseudo = rec[base_cols].copy()
    pseudo.insert(2, "person_key", person_key)
    pseudo.insert(3, "person_key_scheme", "HMAC_SHA256")
    pseudo["age_at_identification"] = rec["age_at_identification"].astype("Int64")
    params["n_records"] = len(rec)
    params["record_victim"] = rec["victim"].to_numpy()

    # --- population -------------------------------------------------------------------------
    shares = {("F", "Y0T17"): 0.095, ("M", "Y0T17"): 0.10, ("F", "Y_GE18"): 0.41, ("M", "Y_GE18"): 0.395}
    pop = [(ref_area, year, s, a, round(population_total * w)) for (s, a), w in shares.items()]
    pop = pd.DataFrame(pop, columns=["ref_area", "year", "sex", "age_group", "population"])
    tot = []
    for s in ("F", "M"):
        tot.append((ref_area, year, s, "_T", int(pop.loc[pop.sex == s, "population"].sum())))
    for a in ("Y0T17", "Y_GE18"):
        tot.append((ref_area, year, "_T", a, int(pop.loc[pop.age_group == a, "population"].sum())))
    tot.append((ref_area, year, "_T", "_T", int(pop["population"].sum())))
    population = pd.concat([pop, pd.DataFrame(tot, columns=pop.columns)], ignore_index=True)
    population["source"] = "synthetic"
    return SyntheticCountry(ref_area, year, population, victims.reset_index(drop=True), entities,
                            list_definition, pseudo, clear, secret, params)


def records(n_victims: int = 5000, *, seed: int | None = None, clear: bool = False,
            **kwargs: Any) -> pd.DataFrame:
    """The agency records of a synthetic country (:func:`country`), pseudonymised by default.

    Examples
    --------
    >>> r = records(500, seed=2)
    >>> sorted(r.columns)[:4]
    ['age_at_identification', 'citizenship', 'country_of_identification', 'entity_id']
    """
    c = country(n_victims, seed=seed, **kwargs)
    return c.clear_records if clear else c.records
from .simulate_populations import populations  # noqa: E402, F401  (known-truth capture histories, issue 7)

# Survey side (issue 17): defined in tipstat.survey.simulate, re-exported here on first use so
# that importing this module stays light.
_SURVEY = ("simulate_survey_population", "draw_survey_sample")


def __getattr__(name: str) -> Any:
    if name in _SURVEY:
        from .survey import simulate as _survey_simulate

        return getattr(_survey_simulate, name)
    raise AttributeError(f"module 'tipstat.simulate' has no attribute {name!r}")
