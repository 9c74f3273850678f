"""The survey job in one call: microdata + design + questionnaire mapping -> classification ->
design-based domain prevalence -> tables ready to publish, with every exclusion counted.

``tipstat survey`` and the example script call :func:`run_survey`; the report renders its result.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import pandas as pd

from .._checks import DEFAULT_SEED
from ..errors import InputError
from ..estimate import Caveat, Estimate

__all__ = ["DEFAULT_INDICATORS", "SurveyRun", "read_design_spec", "run_survey"]

#: Indicators estimated unless others are asked for (flags of the definition).
DEFAULT_INDICATORS = ("forced_labour", "trafficking_forced_labour", "child_forced_labour",
                      "forced_commercial_sexual_exploitation")
#: Keys of a design file's ``[design]`` table (arguments of ``declare_design``).
DESIGN_KEYS = ("weights", "strata", "psu", "fpc", "replicate_weights", "replicate_method", "rho",
               "single_psu")
#: Keys of a design file's ``[nsum]`` table (the network scale-up questions).
NSUM_KEYS = ("hidden", "known", "population", "label", "n_boot")


def _nsum_spec(raw: Any, where: str) -> dict[str, Any]:
    """The ``[nsum]`` table checked for its form (names and numbers; the columns are checked
    against the data by :func:`tipstat.survey.fit_nsum`)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InputError(f"{where} must be a table (hidden, population, [nsum.known])")
    unknown = sorted(set(raw) - set(NSUM_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; expected {', '.join(NSUM_KEYS)}")
    missing = [k for k in ("hidden", "known", "population") if k not in raw]
    if missing:
        raise InputError(f"{where}: missing {missing}; expected hidden (the column of the "
                         "hidden-population question), population (the number of persons the "
                         "respondents are drawn from) and a table [nsum.known] (column = size "
                         "of that known population)")
    if not isinstance(raw["hidden"], str):
        raise InputError(f"{where}: hidden must be a column name (a string)")
    known = raw["known"]
    if not isinstance(known, Mapping) or not known:
        raise InputError(f"{where}: known must be a table [nsum.known] of column = size of that "
                         "known population (at least one)")
    bad = [str(k) for k, v in known.items()
           if isinstance(v, bool) or not isinstance(v, Real)]
    if bad:
        raise InputError(f"{where}.known: {bad}: expected a number (the known population's size)")
    pop = raw["population"]
    if isinstance(pop, bool) or not isinstance(pop, Real):
        raise InputError(f"{where}: population must be a number (persons the respondents are "
                         "drawn from)")
    out: dict[str, Any] = {"hidden": raw["hidden"], "known": {str(k): float(v)
                                                             for k, v in known.items()},
                           "population": float(pop)}
    if "label" in raw:
        if not isinstance(raw["label"], str):
            raise InputError(f"{where}: label must be a string (what the hidden question asks)")
        out["label"] = raw["label"]
    if "n_boot" in raw:
        if isinstance(raw["n_boot"], bool) or not isinstance(raw["n_boot"], Integral):
            raise InputError(f"{where}: n_boot must be a whole number")
        out["n_boot"] = int(raw["n_boot"])
    return out


def read_design_spec(path: str | Path) -> dict[str, Any]:
    """A design file (TOML): ``{"design": {...}, "survey": {...}, "domains": [...],
    "nsum": {...}}``.

    The file has a ``[design]`` table with the arguments of
    :func:`tipstat.survey.declare_design` (``weights``, ``strata``, ``psu``, ``fpc``,
    ``replicate_weights``, ``replicate_method``, ``rho``, ``single_psu``; or these keys at the
    top level), optionally a ``[survey]`` table (``reference_period``, ``definition``,
    ``mapping``, ``population``), ``[domains] columns = [...]`` (the default ``by``) and
    an ``[nsum]`` table for the network scale-up questions (:func:`tipstat.survey.fit_nsum`):
    ``hidden`` (the column of "how many people do you know who ..." about the hidden
    population), ``population`` (persons the respondents are drawn from and report on),
    optionally ``label`` (what the hidden question asks, for the tables) and ``n_boot``, and a
    table ``[nsum.known]`` of column = size of that known population. ``"nsum"`` is ``{}``
    without it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "design.toml"
    >>> _ = p.write_text('[design]\\nweights = "w"\\nstrata = "region"\\npsu = "ea"\\n')
    >>> read_design_spec(p)["design"]
    {'weights': 'w', 'strata': 'region', 'psu': 'ea'}
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such design file (expected a TOML file with a [design] "
                         "table: weights, strata, psu, fpc...)")
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        where = str(exc).rsplit("(", 1)[-1].rstrip(")") if "(" in str(exc) else "?"
        raise InputError(f"{path}: not a valid TOML design file ({where})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text (UTF-8 TOML) design file") from None
    design = raw.get("design", {k: v for k, v in raw.items() if k in DESIGN_KEYS})
    if not isinstance(design, Mapping):
        raise InputError(f"{path}: [design] must be a table of declare_design arguments")
    unknown = sorted(set(design) - set(DESIGN_KEYS))
    if unknown:
        raise InputError(f"{path}: unknown key(s) in [design]: {unknown}; expected "
                         f"{', '.join(DESIGN_KEYS)}")
    if "weights" not in design:
        raise InputError(f"{path}: [design] has no 'weights' (the column of survey weights)")
    survey = raw.get("survey", {})
    domains = raw.get("domains", {}).get("columns", []) if isinstance(raw.get("domains"),
                                                                      Mapping) else []
    return {"design": dict(design), "survey": dict(survey) if isinstance(survey, Mapping)
            else {}, "domains": [str(c) for c in domains],
            "nsum": _nsum_spec(raw.get("nsum"), f"{path.name}: [nsum]")}


@dataclass
class SurveyRun:
    """The result of :func:`run_survey`.

    Attributes
    ----------
    table : PrevalenceTable
        Every estimate (for analysts; small cells included).
    published : PublishedPrevalence
        The tables to publish (small unweighted cells and their complements withheld).
    design : SurveyDesign
    classification : Classification
    definition : dict
        ``name``, ``version``, ``status``, ``reference_period`` of the definition used.
    by : list
        Domain variables.
    excluded : dict
        Stage (``design``, ``classification``, ``estimates``) -> reason -> respondents.
    warnings : list of Caveat
        What a reader must know (provisional definition, small domains, withheld cells).
    source : str
        Name of the data file (never a path).
    nsum : Estimate or None
        The network scale-up estimate (``nsum=`` of :func:`run_survey`), every figure.
    nsum_label : str
        What the hidden-population question asks about.
    nsum_withheld : bool
        The scale-up total is withheld from the published outputs
        (:func:`tipstat.survey.nsum_withheld`).
    """

    table: Any
    published: Any
    design: Any
    classification: Any
    definition: dict[str, str]
    by: list[Any]
    level: float
    ci: str
    excluded: dict[str, dict[str, int]]
    warnings: list[Caveat] = field(default_factory=list)
    source: str = ""
    nsum: Estimate | None = None
    nsum_label: str = ""
    nsum_withheld: bool = False

    @property
    def indicators(self) -> list[str]:
        return list(dict.fromkeys(r.indicator for r in self.table))

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON: the published rows, exclusions, definition, design."""
        from .._json import jsonable

        design = self.design
        return jsonable({
            "source": self.source, "definition": self.definition,
            "design": {"respondents": len(design.data), "strata": design.n_strata,
                       "psu": design.n_psu, "variance": design.variance, "df": design.df},
            "by": [list(b) if isinstance(b, tuple) else b for b in self.by],
            "level": self.level, "ci": self.ci, "threshold": self.published.threshold,
            "excluded": self.excluded,
            "rows": self.published.table.to_dict("records"),
            "nsum": self.nsum_published(),
            "warnings": [w.to_dict() for w in self.warnings]})

    def nsum_published(self) -> dict[str, Any] | None:
        """The scale-up estimate as published: :meth:`Estimate.to_dict` plus ``label``,
        ``population`` and ``respondents_reporting``; when withheld, status ``suppressed``
        and no figure (None without a scale-up)."""
        if self.nsum is None:
            return None
        out = self.nsum.to_dict()
        out.update({"label": self.nsum_label,
                    "respondents_reporting": self.nsum.diagnostics["respondents_reporting"]})
        if self.nsum_withheld:
            out.update({k: None for k in ("n_hat", "lower", "upper", "se")})
            out["status"] = "suppressed"
        return out


def run_survey(data: pd.DataFrame, *, design: Mapping[str, Any], mapping: Any = None,
               definition: str | None = None, by: Sequence[Any] | None = None,
               indicators: Sequence[str] | None = None, level: float = 0.95,
               ci: str = "logit", threshold: int = 5, source: str = "",
               nsum: Mapping[str, Any] | None = None, seed: int = DEFAULT_SEED) -> SurveyRun:
    """Classify the respondents, estimate prevalence by domain, protect the tables.

    Parameters
    ----------
    data : DataFrame
        Survey microdata (:func:`tipstat.survey.read_survey`).
    design : mapping
        Arguments of :func:`tipstat.survey.declare_design` (``weights``, ``strata``, ...).
    mapping : path, dict or QuestionnaireMapping, optional
        Questionnaire mapping (:func:`tipstat.survey.load_mapping`); default: the items are
        columns of the same names.
    definition : str, optional
        Definition name (default: the mapping's, else ``tipstat-prov-1``).
    by : sequence, optional
        Domain columns (each separately; a tuple is a crossing).
    indicators : sequence of str, optional
        Flags to estimate (default :data:`DEFAULT_INDICATORS` that the definition has).
    level, ci : float, str
        Interval level and method of :func:`tipstat.survey.survey_prevalence`.
    threshold : int
        Least unweighted cases of a published domain (:func:`publish_prevalence`).
    source : str
        Name of the data, for the outputs (a file name, never a path).
    nsum : mapping, optional
        The network scale-up questions (the ``[nsum]`` table of :func:`read_design_spec`):
        ``hidden``, ``known``, ``population``, optionally ``label`` and ``n_boot``;
        :func:`tipstat.survey.fit_nsum` on the same design, at ``level``; the total is withheld
        when fewer than ``threshold`` respondents report anyone
        (:func:`tipstat.survey.nsum_withheld`).
    seed : int
        Seed of the scale-up's bootstrap.

    Returns
    -------
    SurveyRun

    Examples
    --------
    >>> from tipstat import datasets
    >>> sv = datasets.load_survey()
    >>> run = run_survey(sv["data"], design=sv["design"], mapping=sv["mapping"], by=["sex"])
    >>> run.indicators[0], run.table[0].n_cases > 0, run.published.threshold
    ('forced_labour', True, 5)
    """
    from .definition import classify, load_definition
    from .design import declare_design
    from .prevalence import survey_prevalence
    from .publish import publish_prevalence

    if not isinstance(data, pd.DataFrame):
        raise InputError(f"run_survey: data must be a DataFrame, got {type(data).__name__}")
    by = list(by or [])
    for spec in by:
        for c in (spec if isinstance(spec, tuple) else (spec,)):
            if c not in data.columns:
                raise InputError(f"domain column {c!r} (--by) is not in the survey data")
    dspec = dict(design)
    for k in ("psu", "fpc", "replicate_weights"):
        if isinstance(dspec.get(k), list) and len(dspec[k]) == 1:
            dspec[k] = dspec[k][0]
    survey_design = declare_design(data, **dspec)
    c = classify(survey_design.data, definition=definition, mapping=mapping)
    flags = c.flags
    wanted = list(indicators) if indicators else [f for f in DEFAULT_INDICATORS
                                                  if f in flags.columns]
    unknown = [f for f in wanted if f not in flags.columns]
    if unknown:
        raise InputError(f"indicator(s) {unknown} are not flags of definition "
                         f"{c.definition.name!r}; it has {list(flags.columns)}")
    table = survey_prevalence(survey_design, flags[wanted], by=by or None, level=level, ci=ci)
    published = publish_prevalence(table, threshold=threshold)
    d = load_definition(c.definition.name)
    info = {"name": d.name, "version": d.version, "status": d.status,
            "reference_period": d.reference_period, "title": d.title}
    warns: list[Caveat] = []
    if d.status == "provisional":
        warns.append(Caveat("note", f"definition {d.name} is provisional: it maps the ICLS 2018 "
                                    "guidelines until STATIP's instrument is published; an "
                                    "official release will be a new definition file"))
    small = [r for r in table if r.status == "small_domain"]
    if small:
        warns.append(Caveat("small_domain", f"{len(small)} estimate(s) rest on an effective "
                                            "sample size below 30: read their intervals, not "
                                            "their points", {"n_small": len(small)}))
    if published.n_suppressed:
        warns.append(Caveat("note", f"{published.n_suppressed} domain estimate(s) withheld: "
                                    f"fewer than {threshold} unweighted cases, or needed to "
                                    "protect one that has", {"withheld": published.n_suppressed}))
    warns += list(published.warnings)   # the linked audit's, if any
    empty = [r for r in table if r.status in ("empty_domain", "not_estimable")]
    if empty:
        warns.append(Caveat("note", f"{len(empty)} domain(s) without an estimate (no respondent "
                                    "or no design degrees of freedom)"))
    nsum_est, label, withheld = None, "", False
    if nsum:
        from .nsum import fit_nsum, nsum_withheld

        spec = _nsum_spec(nsum, "run_survey: nsum")
        label = str(spec.pop("label", "") or f"hidden population ({spec.get('hidden')})")
        nsum_est = fit_nsum(survey_design, spec.pop("hidden", None), level=level, seed=seed,
                            **spec)
        withheld = nsum_withheld(nsum_est, threshold=threshold)
        if withheld:
            warns.append(Caveat("note", f"the network scale-up total is withheld: fewer than "
                                        f"{threshold} respondents report knowing anyone in the "
                                        "hidden population"))
    excluded = {"design": dict(survey_design.excluded),
                "classification": dict(c.excluded),
                "estimates": dict(table.excluded)}
    return SurveyRun(table=table, published=published, design=survey_design, classification=c,
                     definition=info, by=by, level=float(level), ci=ci, excluded=excluded,
                     warnings=warns, source=source, nsum=nsum_est, nsum_label=label,
                     nsum_withheld=withheld)
