"""A synthetic country with forced labour, and complex household samples drawn from it.

:func:`simulate_survey_population` builds persons (aged 5 and over) in households in enumeration
areas (EAs) in regions, with forced labour varying by domain and clustered within EAs, and the
answers each person would give to the questionnaire items of the provisional definition
``tipstat-prov-1`` (under the items' own names). :func:`draw_survey_sample` draws a stratified
two-stage sample (regions = strata; EAs = PSUs by PPS or SRS; households by SRS; every person of
a responding household interviewed) with household non-response and a weighting-class
adjustment.

Truth. Each person gets a latent status (in forced labour or not; for those in forced labour,
trafficked or not, commercial sexual exploitation or not) and answers consistent with it; the
``true_<flag>`` columns come from the latent status (``true_involuntary`` and ``true_coercion``
from the items drawn for them), not from :func:`tipstat.survey.classify`. Answers carry "noise"
that is not a classification error: people who are not in forced labour may report involuntary
items only, or coercion only (adults), or coercion by their own parents only (children), or
voluntary commercial sex work, or migration through an intermediary; the definition rules all of
these out, so ``classify(population)`` reproduces the truth exactly (unless ``item_missing`` > 0,
which blanks answers and leaves the truth as it was). Intervals computed on samples are therefore
about sampling error only.

All persons are synthetic; no value describes a real person.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._checks import DEFAULT_SEED, check_seed
from ..errors import InputError

__all__ = ["COERCION_ITEMS", "INVOLUNTARY_ITEMS", "draw_survey_sample",
           "simulate_survey_population"]

INVOLUNTARY_ITEMS = ("work_without_consent", "unfree_recruitment", "deceived_nature",
                     "deceived_conditions", "forced_overtime", "hazardous_without_consent",
                     "no_or_very_low_wages", "degrading_living_conditions", "other_employer",
                     "longer_than_agreed", "cannot_leave_job")
COERCION_ITEMS = ("threats_violence", "restricted_movement", "debt_bondage", "withheld_wages",
                  "withheld_documents", "threat_dismissal_deportation")
CHILD_ITEMS = ("parent_in_forced_labour", "slavery_like_practice", "illicit_activities")
ACT_ITEMS = ("recruited_by_intermediary", "moved_for_work", "housed_by_employer")
MEANS_ITEMS = ("recruit_deceived", "recruit_coerced", "recruit_payment", "recruit_vulnerability")
YES_NO_ITEMS = ("worked_in_period", *INVOLUNTARY_ITEMS, *COERCION_ITEMS, "coercer_third_party",
                *CHILD_ITEMS, "commercial_sex", *ACT_ITEMS, *MEANS_ITEMS)
FLAGS = ("involuntary", "coercion", "adult_forced_labour", "child_forced_labour",
         "forced_labour", "forced_commercial_sexual_exploitation", "trafficking_forced_labour")

#: Default regions: name -> (number of EAs, share of foreign citizens, log-odds effect on
#: forced labour, household response probability).
DEFAULT_REGIONS = {
    "North": (60, 0.04, -0.3, 0.90),
    "South": (80, 0.08, 0.4, 0.85),
    "East": (50, 0.05, 0.0, 0.88),
    "West": (70, 0.12, 0.2, 0.80),
    "Capital": (90, 0.18, -0.2, 0.70),
    "Coast": (40, 0.10, 0.6, 0.82),
}
SECTORS = ("agriculture", "manufacturing", "construction", "domestic_work", "services")
#: Log-odds effect of each sector on forced labour.
SECTOR_EFFECT = {"agriculture": 0.4, "manufacturing": 0.0, "construction": 0.6,
                 "domestic_work": 0.9, "services": -0.4}
AGE_GROUPS = ("5-17", "18-29", "30-44", "45-64", "65+")


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _at_least_one(rng: np.random.Generator, rows: np.ndarray, k: int, q: float) -> np.ndarray:
    """(n_rows, k) booleans: each True w.p. ``q`` where ``rows``, then one forced True per row
    of ``rows`` that has none; all False elsewhere."""
    n = rows.size
    out = (rng.random((n, k)) < q) & rows[:, None]
    empty = rows & ~out.any(axis=1)
    pick = rng.integers(0, k, size=n)
    out[np.flatnonzero(empty), pick[empty]] = True
    return out


def simulate_survey_population(
    *,
    seed: int = DEFAULT_SEED,
    regions: Mapping[str, tuple[int, float, float, float]] | None = None,
    households_per_ea: float = 100.0,
    persons_per_household: float = 3.0,
    prevalence: float = 0.02,
    child_prevalence: float = 0.02,
    ea_sd: float = 0.8,
    foreign_effect: float = 0.7,
    female_effect: float = 0.0,
    trafficked_share: tuple[float, float] = (0.3, 0.7),
    item_missing: float = 0.0,
) -> pd.DataFrame:
    """Simulate the persons (aged 5+) of a synthetic country and their questionnaire answers.

    Model. EA sizes are ``20 + Poisson(households_per_ea - 20)`` households; households have
    ``1 + Poisson(persons_per_household - 1)`` persons aged 5+ sharing the household's
    citizenship (foreign w.p. the region's share). Persons: sex 50/50; age group 5-17 / 18-29 /
    30-44 / 45-64 / 65+ with probabilities .25/.2/.25/.2/.1; work in the reference period w.p.
    .15 / .7 / .8 / .7 / .25 by age group; workers get a sector (domestic work more often for
    women). For a worker ``i`` in EA ``e`` of region ``r``

    .. math::

        \\operatorname{logit} P(\\text{forced labour}_i) = \\operatorname{logit}(p_0)
            + \\alpha_r + \\beta_{\\text{sector}} + \\gamma\\,[\\text{foreign}]
            + \\delta\\,[\\text{female}] + u_e,\\qquad u_e \\sim N(0, \\sigma^2_{EA}),

    with ``p0 = prevalence`` for adults and ``child_prevalence`` for children, ``alpha`` the
    regions' effects, ``beta`` :data:`SECTOR_EFFECT`, ``gamma = foreign_effect``,
    ``delta = female_effect``, ``sigma = ea_sd`` (clustering within EAs).

    Answers (1 = yes, 0 = no, missing where the questionnaire skips: every work item for
    non-workers; the child items for adults; ``coercer_third_party`` unless some coercion item is
    yes). Adults in forced labour: at least one involuntary and one coercion item; commercial sex
    w.p. .2 (women) / .05 (men). Children in forced labour: by a third party's coercion (1/2),
    parents in forced labour (1/4) or a worst form (1/4: slavery-like, commercial sex or illicit
    activities). Trafficked (w.p. ``trafficked_share`` = (nationals, foreigners)): at least one
    act item and, for adults, one means item; others in forced labour have no act item, or
    (adults) an act without a means. Non-victims carry the noise described in the module
    docstring.

    Parameters
    ----------
    seed : int
        Seed of every random step.
    regions : dict, optional
        ``{name: (n_EAs, foreign share, log-odds effect, household response probability)}``;
        default :data:`DEFAULT_REGIONS` (6 regions, 390 EAs, about 39,000 households and
        117,000 persons). The response probability is used by :func:`draw_survey_sample`.
    households_per_ea, persons_per_household : float
        Mean EA size (households) and mean persons aged 5+ per household.
    prevalence, child_prevalence : float
        Baseline probability of forced labour of adult and child workers (exaggerated against
        real rates so that samples of a few thousand hold cases).
    ea_sd, foreign_effect, female_effect : float
        See the model.
    trafficked_share : (float, float)
        Share of persons in forced labour who were trafficked, nationals and foreigners.
    item_missing : float
        Probability that a worker's answer to an item is blanked (truth unchanged).

    Returns
    -------
    DataFrame
        One row per person: ``person, household, ea, region, sex, age_years, age_group,
        citizenship, sector`` (``"not_working"`` for non-workers), the items (nullable Int8
        0/1; ``age_years`` int), ``true_<flag>`` (bool) for the flags of ``tipstat-prov-1``.
        ``attrs["response_probability"]`` holds the regions' response probabilities and
        ``attrs["seed"]`` the seed.

    Examples
    --------
    >>> from tipstat.survey import classify, simulate_survey_population
    >>> pop = simulate_survey_population(seed=1)
    >>> len(pop) > 100_000
    True
    >>> c = classify(pop)
    >>> bool((c.flags["forced_labour"] == pop["true_forced_labour"]).all())
    True
    """
    seed = check_seed(seed, "simulate_survey_population")
    regions = dict(DEFAULT_REGIONS if regions is None else regions)
    if not regions:
        raise InputError("simulate_survey_population: regions must name at least one region")
    for name, spec in regions.items():
        if len(spec) != 4 or int(spec[0]) < 1 or not (0 <= spec[1] <= 1) \
                or not (0 < spec[3] <= 1):
            raise InputError(f"simulate_survey_population: region {name!r}: expected (n_EAs >= 1,"
                             " foreign share in [0, 1], log-odds effect, response probability in"
                             " (0, 1])")
    for label, p in (("prevalence", prevalence), ("child_prevalence", child_prevalence)):
        if not 0 < p < 1:
            raise InputError(f"simulate_survey_population: {label}={p!r}; expected 0 < p < 1")
    if not 0 <= item_missing < 1:
        raise InputError("simulate_survey_population: item_missing must be in [0, 1)")
    if households_per_ea < 21 or persons_per_household < 1:
        raise InputError("simulate_survey_population: households_per_ea must be > 20 and "
                         "persons_per_household >= 1")
    rng = np.random.default_rng(seed)
    names = list(regions)
    n_ea = np.array([int(regions[r][0]) for r in names])
    ea_region = np.repeat(np.arange(len(names)), n_ea)
    ea_size = 20 + rng.poisson(households_per_ea - 20, size=ea_region.size)
    ea_effect = rng.normal(0.0, ea_sd, size=ea_region.size)
    hh_ea = np.repeat(np.arange(ea_region.size), ea_size)
    foreign_share = np.array([regions[r][1] for r in names])
    hh_foreign = rng.random(hh_ea.size) < foreign_share[ea_region[hh_ea]]
    hh_n = 1 + rng.poisson(persons_per_household - 1, size=hh_ea.size)
    hh = np.repeat(np.arange(hh_ea.size), hh_n)
    n = hh.size
    ea = hh_ea[hh]
    reg = ea_region[ea]
    foreign = hh_foreign[hh]
    female = rng.random(n) < 0.5
    ag = rng.choice(len(AGE_GROUPS), size=n, p=[0.25, 0.2, 0.25, 0.2, 0.1])
    lo = np.array([5, 18, 30, 45, 65])
    hi = np.array([17, 29, 44, 64, 90])
    age = rng.integers(lo[ag], hi[ag] + 1)
    child = ag == 0
    works = rng.random(n) < np.array([0.15, 0.7, 0.8, 0.7, 0.25])[ag]
    sector_p = np.array([[0.25, 0.2, 0.05, 0.15, 0.35],    # women
                         [0.3, 0.25, 0.2, 0.03, 0.22]])    # men
    u = rng.random(n)
    cum = np.cumsum(sector_p, axis=1)[np.where(female, 0, 1)]
    sector = (u[:, None] > cum).sum(axis=1).clip(0, len(SECTORS) - 1)
    sec_eff = np.array([SECTOR_EFFECT[s] for s in SECTORS])[sector]
    reg_eff = np.array([regions[r][2] for r in names])[reg]
    eta = (np.where(child, _logit(child_prevalence), _logit(prevalence)) + reg_eff + sec_eff
           + foreign_effect * foreign + female_effect * female + ea_effect[ea])
    fl = works & (rng.random(n) < 1 / (1 + np.exp(-eta)))
    adult = ~child
    fl_a, fl_c = fl & adult, fl & child
    nf_a = works & adult & ~fl

    items: dict[str, np.ndarray] = {}
    # children in forced labour: mechanism 0 third-party coercion, 1 parents, 2 worst form
    mech = np.where(fl_c, rng.choice(3, size=n, p=[0.5, 0.25, 0.25]), -1)
    worst = np.where(mech == 2, rng.choice(3, size=n, p=[0.4, 0.35, 0.25]), -1)
    # non-victims' noise: 1 involuntary only, 2 coercion only (adults) / by parents (children)
    noise = np.where(works & ~fl, rng.choice(3, size=n, p=[0.84, 0.1, 0.06]), 0)
    inv_rows = fl_a | (noise == 1)
    inv = _at_least_one(rng, inv_rows, len(INVOLUNTARY_ITEMS), 0.3)
    inv |= (rng.random((n, len(INVOLUNTARY_ITEMS))) < 0.3) & (fl_c & (mech == 0))[:, None]
    coer_rows = fl_a | (fl_c & (mech == 0)) | (noise == 2)
    coer = _at_least_one(rng, coer_rows, len(COERCION_ITEMS), 0.25)
    for k, name in enumerate(INVOLUNTARY_ITEMS):
        items[name] = inv[:, k]
    for k, name in enumerate(COERCION_ITEMS):
        items[name] = coer[:, k]
    any_coer = coer.any(axis=1)
    third = np.where(child, mech == 0, rng.random(n) < 0.9)
    items["coercer_third_party"] = third
    items["parent_in_forced_labour"] = mech == 1
    items["slavery_like_practice"] = worst == 0
    cs_adult = fl_a & (rng.random(n) < np.where(female, 0.2, 0.05))
    cs_voluntary = nf_a & (rng.random(n) < 0.01)
    items["commercial_sex"] = (worst == 1) | cs_adult | cs_voluntary
    items["illicit_activities"] = worst == 2
    # trafficking
    trafficked = fl & (rng.random(n) < np.where(foreign, trafficked_share[1], trafficked_share[0]))
    act_only = fl_a & ~trafficked & (rng.random(n) < 0.4)
    act = _at_least_one(rng, trafficked | act_only, len(ACT_ITEMS), 0.4)
    act |= (rng.random((n, len(ACT_ITEMS))) < np.where(foreign, 0.3, 0.08)[:, None]) \
        & (works & ~fl)[:, None]
    means = _at_least_one(rng, trafficked & adult, len(MEANS_ITEMS), 0.3)
    means |= (rng.random((n, len(MEANS_ITEMS))) < 0.2) & (trafficked & child)[:, None]
    means |= (rng.random((n, len(MEANS_ITEMS))) < 0.1) & (fl_a & ~trafficked & ~act_only)[:, None]
    means |= (rng.random((n, len(MEANS_ITEMS))) < 0.03) & (works & ~fl)[:, None]
    for k, name in enumerate(ACT_ITEMS):
        items[name] = act[:, k]
    for k, name in enumerate(MEANS_ITEMS):
        items[name] = means[:, k]

    frame: dict[str, object] = {
        "person": np.arange(1, n + 1), "household": hh + 1, "ea": ea + 1,
        "region": pd.Categorical.from_codes(reg, names),
        "sex": pd.Categorical.from_codes(np.where(female, 0, 1), ["F", "M"]),
        "age_years": age,
        "age_group": pd.Categorical.from_codes(ag, AGE_GROUPS, ordered=True),
        "citizenship": pd.Categorical.from_codes(foreign.astype(int), ["national", "foreign"]),
        "sector": pd.Categorical.from_codes(np.where(works, sector, len(SECTORS)),
                                            [*SECTORS, "not_working"]),
    }
    blank = rng.random((n, len(YES_NO_ITEMS))) < item_missing
    for k, name in enumerate(YES_NO_ITEMS):
        vals = works.copy() if name == "worked_in_period" else items[name]
        na = np.zeros(n, dtype=bool) if name == "worked_in_period" else ~works
        if name in CHILD_ITEMS:
            na |= adult
        if name == "coercer_third_party":
            na |= ~any_coer
        if name != "worked_in_period":
            na |= blank[:, k] & works
        arr = pd.array(vals.astype("int8"), dtype="Int8")
        arr[na] = pd.NA
        frame[name] = arr
    true_inv = works & inv.any(axis=1)
    true_coer = works & any_coer
    truth = {
        "involuntary": true_inv, "coercion": true_coer, "adult_forced_labour": fl_a,
        "child_forced_labour": fl_c, "forced_labour": fl,
        "forced_commercial_sexual_exploitation": (worst == 1) | cs_adult,
        "trafficking_forced_labour": trafficked,
    }
    for f in FLAGS:
        frame[f"true_{f}"] = truth[f]
    out = pd.DataFrame(frame)
    out.attrs["response_probability"] = {r: float(regions[r][3]) for r in names}
    out.attrs["seed"] = seed
    return out


def _pps_systematic(rng: np.random.Generator, size: np.ndarray, n: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Systematic PPS of ``n`` units (certainty units first): (selected indices, inclusion
    probabilities of all units)."""
    pi = np.zeros(size.size)
    certain = np.zeros(size.size, dtype=bool)
    while True:
        rest = ~certain
        k = n - int(certain.sum())
        pi[rest] = k * size[rest] / size[rest].sum()
        big = rest & (pi >= 1)
        if not big.any():
            break
        certain |= big
    pi[certain] = 1.0
    chosen = list(np.flatnonzero(certain))
    k = n - len(chosen)
    if k > 0:
        idx = rng.permutation(np.flatnonzero(~certain))
        cum = np.cumsum(pi[idx])
        points = rng.random() + np.arange(k)
        chosen += list(idx[np.searchsorted(cum, points, side="right")])
    return np.array(sorted(chosen), dtype=int), pi


def draw_survey_sample(
    population: pd.DataFrame,
    *,
    seed: int = DEFAULT_SEED,
    n_psu: int | Mapping[str, int] = 12,
    n_households: int = 15,
    psu_selection: str = "pps",
    response: Mapping[str, float] | None = None,
    foreign_response_effect: float = -0.15,
) -> pd.DataFrame:
    """Draw a stratified two-stage household sample with non-response from a population of
    :func:`simulate_survey_population`.

    Design. Strata = regions. Stage 1: ``n_psu`` EAs per stratum, by systematic PPS on the
    number of households ``M_i`` (``pi_i = n M_i / M_h``, units with ``pi_i >= 1`` taken with
    certainty) or by SRS (``pi_i = n / N_h``). Stage 2: SRS of ``m_i = min(n_households, M_i)``
    households. Base weight of a household (and of each of its persons)

    .. math::

        w_{ij} = \\frac{1}{\\pi_i}\\,\\frac{M_i}{m_i},

    so that the base weights of the sampled households sum to ``M_h`` per stratum exactly under
    PPS without certainty units (and in expectation otherwise). Household non-response with
    probability ``1 - response[region]`` (plus ``foreign_response_effect`` for foreign
    households); weighting classes = stratum x household citizenship; in class ``c`` the
    respondents' weights are multiplied by

    .. math::

        a_c = \\frac{\\sum_{j \\in s_c} w_j}{\\sum_{j \\in r_c} w_j}

    (sampled over responding households; when a class has no respondent, the classes of its
    stratum are merged into one). Every person aged 5+ in a responding household is in the sample.

    Parameters
    ----------
    population : DataFrame
        From :func:`simulate_survey_population` (columns ``region, ea, household,
        citizenship``).
    seed : int
        Seed of every random step.
    n_psu : int or dict
        EAs per stratum (a dict gives them by region).
    n_households : int
        Households per EA.
    psu_selection : {"pps", "srs"}
    response : dict, optional
        Household response probability by region; default ``population.attrs
        ["response_probability"]`` (else 0.85).
    foreign_response_effect : float
        Added to the response probability of foreign households.

    Which design to declare: with a PPS first stage, strata and PSUs without finite-population
    correction (the with-replacement approximation; it carries both stages' variance); with SRS
    at both stages, ``psu=["psu", "household"]`` and ``fpc=["fpc_psu", "fpc_ssu"]`` are exact.
    ``fpc_psu`` alone (first stage only) drops the second stage's share of the variance and
    under-covers (``benchmarks/survey_coverage.py``).

    Returns
    -------
    DataFrame
        The responding persons with the population's columns and ``stratum, psu, weight,
        base_weight, fpc_psu`` (number of EAs in the stratum), ``fpc_ssu`` (households in the
        EA), ``pi_psu``, ``nr_class``. ``attrs["sample"]``: households sampled and responding.

    Examples
    --------
    >>> from tipstat.survey import draw_survey_sample, simulate_survey_population
    >>> pop = simulate_survey_population(seed=1)
    >>> s = draw_survey_sample(pop, seed=2)
    >>> sorted(s["stratum"].unique()) == sorted(pop["region"].unique())
    True
    >>> bool(s.groupby("stratum", observed=True)["psu"].nunique().eq(12).all())
    True
    """
    seed = check_seed(seed, "draw_survey_sample")
    if not isinstance(population, pd.DataFrame):
        raise InputError("draw_survey_sample: population must be a DataFrame from "
                         "simulate_survey_population")
    need = {"region", "ea", "household", "citizenship"}
    if not need <= set(population.columns):
        raise InputError("draw_survey_sample: population lacks columns "
                         f"{sorted(need - set(population.columns))}")
    if psu_selection not in ("pps", "srs"):
        raise InputError(f"draw_survey_sample: psu_selection={psu_selection!r}; expected 'pps' or "
                         "'srs'")
    if isinstance(n_households, bool) or not isinstance(n_households, int) or n_households < 1:
        raise InputError("draw_survey_sample: n_households must be a positive integer")
    rng = np.random.default_rng(seed)
    hh = population.drop_duplicates("household")[["household", "ea", "region", "citizenship"]]
    ea_tab = hh.groupby("ea", sort=True).agg(region=("region", "first"),
                                             M=("household", "size")).reset_index()
    ea_tab["region"] = ea_tab["region"].astype(str)
    default_resp = dict(population.attrs.get("response_probability", {}))
    resp = dict(response) if response is not None else default_resp
    rows = []
    for region, g in ea_tab.groupby("region", sort=True):
        k = n_psu.get(region) if isinstance(n_psu, Mapping) else n_psu
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(g):
            raise InputError(f"draw_survey_sample: stratum {region!r}: n_psu={k!r}; expected an "
                             f"integer from 1 to {len(g)} (its number of EAs)")
        size = g["M"].to_numpy(float)
        if psu_selection == "pps":
            sel, pi = _pps_systematic(rng, size, k)
        else:
            sel = np.sort(rng.choice(len(g), size=k, replace=False))
            pi = np.full(len(g), k / len(g))
        chosen = g.iloc[sel].assign(pi_psu=pi[sel], fpc_psu=len(g))
        rows.append(chosen)
    psus = pd.concat(rows, ignore_index=True)
    cand = hh[hh["ea"].isin(psus["ea"])].merge(psus[["ea", "M", "pi_psu", "fpc_psu"]], on="ea")
    cand = cand.assign(_key=rng.random(len(cand)))
    cand["_rank"] = cand.groupby("ea")["_key"].rank(method="first")
    samp = cand[cand["_rank"] <= n_households].drop(columns=["_key", "_rank"]).copy()
    m = samp.groupby("ea")["household"].transform("size")
    samp["base_weight"] = samp["M"] / (samp["pi_psu"] * m)
    region = samp["region"].astype(str)
    p = region.map(lambda r: resp.get(r, 0.85)).to_numpy(float)
    p = np.clip(p + foreign_response_effect * (samp["citizenship"].astype(str) == "foreign"),
                0.01, 1.0)
    responded = rng.random(len(samp)) < p
    samp["nr_class"] = region + ":" + samp["citizenship"].astype(str)
    r_w = samp["base_weight"].where(responded, 0.0)
    cls_r = r_w.groupby(samp["nr_class"]).transform("sum")
    empty = cls_r.to_numpy() == 0
    merge = region.isin(set(region[empty]))  # a class without respondents: merge its stratum
    samp.loc[merge, "nr_class"] = region[merge]
    cls_all = samp.groupby("nr_class")["base_weight"].transform("sum")
    cls_r = r_w.groupby(samp["nr_class"]).transform("sum")
    if (cls_r == 0).any():
        raise InputError("draw_survey_sample: a stratum has no responding household; raise the "
                         "response probability or the sample size")
    samp["weight"] = samp["base_weight"] * cls_all / cls_r
    resp_hh = samp[responded]
    out = population.merge(
        resp_hh[["household", "base_weight", "weight", "pi_psu", "fpc_psu", "M", "nr_class"]],
        on="household", how="inner")
    out = out.rename(columns={"M": "fpc_ssu"})
    out.insert(0, "stratum", out["region"].astype(str))
    out.insert(1, "psu", out["ea"])
    out.attrs = {"sample": {"households_sampled": len(samp),
                            "households_responding": int(responded.sum()),
                            "psu_selection": psu_selection, "seed": seed}}
    return out.sort_values(["stratum", "psu", "household", "person"]).reset_index(drop=True)


#: Questionnaire variable of each item in the bundled synthetic survey (names differ from the
#: item ids on purpose: the mapping file says which variable answers which item).
SYNTHETIC_VARIABLES = {
    "worked_in_period": "q101", "age_years": "q003",
    **{item: f"q2{k + 1:02d}" for k, item in enumerate(INVOLUNTARY_ITEMS)},
    **{item: f"q3{k + 1:02d}" for k, item in enumerate(COERCION_ITEMS)},
    "coercer_third_party": "q307",
    **{item: f"q4{k + 1:02d}" for k, item in enumerate((*CHILD_ITEMS, "commercial_sex"))},
    **{item: f"q5{k + 1:02d}" for k, item in enumerate((*ACT_ITEMS, *MEANS_ITEMS))},
}
#: Answer codes of the bundled synthetic survey: 1 yes, 2 no, 8 don't know, 9 refused; blank =
#: not asked (skip pattern).
SYNTHETIC_CODES = {"yes_values": [1], "no_values": [2], "missing_values": [8, 9]}
#: The calls that generated the bundled file (see :func:`synthetic_country_files`).
SYNTHETIC_SEEDS = {"population": 2017, "sample": 2018, "codes": 2019, "nsum": 2020}
#: Network scale-up questions of the bundled synthetic survey ("how many people do you know
#: who ..."): the hidden population (people in forced labour in the reference period) and five
#: known populations with their sizes in the synthetic country (0.2% to 0.9% of its 116,536
#: persons aged 5+, the range McCormick, Salganik and Zheng 2010 recommend).
SYNTHETIC_NSUM = {"hidden": "know_forced_labour",
                  "known": {"know_teacher": 1050, "know_nurse": 380, "know_named_maria": 290,
                            "know_died_last_year": 870, "know_in_prison": 240}}


def _scale_up_answers(data: pd.DataFrame, population: int, hidden_size: int,
                      rng: np.random.Generator) -> pd.DataFrame:
    """Aggregated relational data of :data:`SYNTHETIC_NSUM` for the respondents of ``data``.

    Each respondent ``i`` in PSU ``e`` has a personal network of
    ``d_i = G_i exp(u_e - 0.045)`` persons, ``G_i ~ Gamma(3, 100)`` and
    ``u_e ~ N(0, 0.3^2)`` (networks of a village are alike; ``exp(-0.045)`` keeps the mean at
    300), and knows ``Poisson(d_i N_k / N)`` members of a population of size ``N_k``: random
    mixing with perfect transmission and recall, the scale-up's own assumptions, so its
    estimate targets the true number in forced labour (``hidden_size``). 1% of the answers to
    the hidden-population question are blank (refused).
    """
    psu = pd.factorize(data["stratum"].astype(str) + ":" + data["psu"].astype(str))[0]
    u = rng.normal(0.0, 0.3, size=int(psu.max()) + 1)
    degree = rng.gamma(3.0, 100.0, size=len(data)) * np.exp(u[psu] - 0.045)
    sizes = {SYNTHETIC_NSUM["hidden"]: hidden_size, **SYNTHETIC_NSUM["known"]}
    out = pd.DataFrame({c: rng.poisson(degree * n / population) for c, n in sizes.items()},
                       index=data.index)
    refused = rng.random(len(data)) < 0.01
    hidden = out[SYNTHETIC_NSUM["hidden"]].astype("Int64")
    hidden[refused] = pd.NA
    out[SYNTHETIC_NSUM["hidden"]] = hidden
    return out


def synthetic_country_files() -> dict[str, object]:
    """Rebuild the bundled synthetic survey of ``tipstat.datasets.load_survey("synthetic_country")``.

    ``simulate_survey_population(seed=2017, item_missing=0.01)`` then
    ``draw_survey_sample(population, seed=2018, n_psu=15, n_households=20)``; item answers
    recoded to 1 yes / 2 no, blanked answers of workers coded 8 (don't know) or 9 (refused) at
    random (seed 2019), variables renamed by :data:`SYNTHETIC_VARIABLES`; then the network
    scale-up answers of :data:`SYNTHETIC_NSUM` (seed 2020, see :func:`_scale_up_answers`),
    appended after the questionnaire items (the columns before them do not depend on them).

    Returns
    -------
    dict
        ``data`` (the survey file's frame), ``mapping`` (dict for the mapping file), ``truth``
        (population counts of each true flag by region, sex, age group and citizenship, and the
        population size).
    """
    pop = simulate_survey_population(seed=SYNTHETIC_SEEDS["population"], item_missing=0.01)
    s = draw_survey_sample(pop, seed=SYNTHETIC_SEEDS["sample"], n_psu=15, n_households=20)
    rng = np.random.default_rng(SYNTHETIC_SEEDS["codes"])
    worker = s["worked_in_period"].to_numpy(dtype="int8", na_value=0) == 1
    data = pd.DataFrame({
        "respondent": np.arange(1, len(s) + 1),
        "stratum": s["stratum"], "psu": s["psu"], "household": s["household"],
        "weight": s["weight"].round(6), "fpc_psu": s["fpc_psu"], "fpc_ssu": s["fpc_ssu"],
        "region": s["region"].astype(str), "sex": s["sex"].astype(str),
        "age_group": s["age_group"].astype(str), "citizenship": s["citizenship"].astype(str),
        "sector": s["sector"].astype(str)})
    for item, var in SYNTHETIC_VARIABLES.items():
        col = s[item]
        if item == "age_years":
            data[var] = col.to_numpy()
            continue
        v = col.to_numpy(dtype="float", na_value=np.nan)
        out = np.where(v == 1, 1.0, np.where(v == 0, 2.0, np.nan))
        asked_blank = np.isnan(v) & worker & (item != "coercer_third_party")
        if item in CHILD_ITEMS:
            asked_blank &= s["age_years"].to_numpy() < 18
        out[asked_blank] = rng.choice([8.0, 9.0], size=int(asked_blank.sum()))
        data[var] = pd.array(out, dtype="Float64").astype("Int64")
    nsum_rng = np.random.default_rng(SYNTHETIC_SEEDS["nsum"])
    data = pd.concat([data, _scale_up_answers(data, len(pop), int(pop["true_forced_labour"].sum()),
                                              nsum_rng)], axis=1)
    mapping = {item: {"variable": var, **({} if item == "age_years" else SYNTHETIC_CODES)}
               for item, var in SYNTHETIC_VARIABLES.items()}
    rows = []
    for by in (None, "region", "sex", "age_group", "citizenship"):
        g = pop.assign(_all="_T").groupby(by or "_all", observed=True)
        t = g[[f"true_{f}" for f in FLAGS]].sum().astype(int)
        t.insert(0, "population", g.size())
        t.index = t.index.astype(str)
        t = t.reset_index().rename(columns={by or "_all": "level"})
        t.insert(0, "domain", by or "total")
        rows.append(t)
    truth = pd.concat(rows, ignore_index=True)
    return {"data": data, "mapping": mapping, "truth": truth}
