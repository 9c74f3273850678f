"""The statistical definition of forced labour as data, questionnaire mappings, and the
classification of survey respondents.

A *definition* is a versioned TOML file in ``tipstat/survey/definitions/`` (the provisional
``tipstat-prov-1`` follows the ILO's 2018 ICLS guidelines on forced labour and the UN Trafficking
Protocol; an official STATIP instrument will be a new file, selected by name; no code changes).
It declares

* **items**: the questions (an id, what the question asks, the answer type, which answers count
  as "yes");
* **dimensions**: ``any`` / ``all`` over items (``involuntary`` = any involuntary-work item);
* **flags**: boolean rules over dimensions and earlier flags (a name is looked up among the
  dimensions, then the flags, then the items), e.g.
  ``forced_labour = any(adult_forced_labour, child_forced_labour)`` with
  ``adult_forced_labour = all(not child, involuntary, coercion)``.

A *questionnaire mapping* (:func:`load_mapping`) says which variable of the user's data file
answers each item, and with which answer codes.

Missing answers: three-valued (Kleene) logic. Each item is True, False or unknown for each
respondent; ``any`` is True if one operand is True, False if all are False, else unknown;
``all`` is False if one operand is False, True if all are True, else unknown; ``not`` swaps True
and False. So a flag is **True when the answered items suffice, False when the answered items
rule it out, unknown otherwise**; unknown flags are missing (``pd.NA``) in
:attr:`Classification.flags` and counted in :attr:`Classification.excluded`, so they leave the
denominator of a prevalence instead of being counted as "no". A definition may instead declare
``missing_rule = "as_no"`` (an unanswered item counts as "no").

Examples
--------
>>> import pandas as pd
>>> from tipstat.survey import classify, load_definition
>>> d = load_definition("tipstat-prov-1")
>>> d.name, d.status
('tipstat-prov-1', 'provisional')
>>> items = {i: [0, 0, 0] for i in d.required_items}
>>> data = pd.DataFrame(items).assign(worked_in_period=1, age_years=[30, 30, 12])
>>> data.loc[0, "deceived_conditions"] = 1                       # involuntary only
>>> data.loc[1, ["deceived_conditions", "withheld_wages"]] = 1   # involuntary and coercion
>>> data.loc[2, "threats_violence"] = 1                          # child, coerced, coercer unknown
>>> c = classify(data)
>>> c.flags["forced_labour"].tolist()
[False, True, <NA>]
>>> c.audit.loc[1, "forced_labour"]
'involuntary: deceived_conditions; coercion: withheld_wages'
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..errors import InputError, TipstatWarning

__all__ = ["Classification", "Definition", "DefinitionRef", "Item", "ItemMapping",
           "QuestionnaireMapping", "available_definitions", "classify", "load_definition",
           "load_mapping"]

DEFAULT_DEFINITION = "tipstat-prov-1"
#: Answer codes an item counts as yes / no / missing unless the definition or mapping says
#: otherwise (compared after normalising: text lower-cased and stripped, 1.0 -> "1").
DEFAULT_YES = ("1", "yes", "y", "true")
DEFAULT_NO = ("0", "no", "n", "false")
DEFAULT_MISSING = ("", "nan", "na", "dk", "don't know", "refused", "not applicable")
ANSWERS = ("yes_no", "number")
_OPS = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
        "eq": np.equal}
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
# three-valued states: False < unknown < True, so any = max, all = min, not = 2 - x
F, U, T = np.int8(0), np.int8(1), np.int8(2)


# ---------------------------------------------------------------------------- definition


@dataclass(frozen=True)
class Item:
    """One question of a definition.

    Attributes
    ----------
    id, intent, answer : str
        Item id, what the question asks, and the answer type (``"yes_no"`` or ``"number"``).
    required : bool
        A questionnaire mapping must map it (else :class:`~tipstat.InputError`).
    yes_values, no_values, missing_values : tuple of str
        Default answer codes (normalised text) of a ``yes_no`` item.
    yes_if : tuple (operator, value) or None
        For a ``number`` item: the item is True when ``value <operator> threshold``
        (``lt, le, gt, ge, eq``), e.g. ``("lt", 18)`` for ``age_years``.
    source : str
        Where the rule comes from.
    """

    id: str
    intent: str
    answer: str
    required: bool = True
    yes_values: tuple[str, ...] = DEFAULT_YES
    no_values: tuple[str, ...] = DEFAULT_NO
    missing_values: tuple[str, ...] = DEFAULT_MISSING
    yes_if: tuple[str, float] | None = None
    source: str = ""


@dataclass(frozen=True)
class Dimension:
    """``rule`` (``"any"`` or ``"all"``) over ``items``."""

    id: str
    rule: str
    items: tuple[str, ...]
    source: str = ""


@dataclass(frozen=True)
class Flag:
    """A boolean ``rule`` over dimensions and earlier flags (name, or ``{"any"|"all": [...]}``,
    ``{"not": ...}``)."""

    id: str
    rule: Any
    source: str = ""


class DefinitionRef(NamedTuple):
    """Name and version of the definition a classification used."""

    name: str
    version: str


@dataclass(frozen=True)
class Definition:
    """A versioned statistical definition (see :func:`load_definition`).

    Attributes
    ----------
    name, version, status, title : str
        ``status`` is ``"provisional"`` until the instrument it follows is published.
    reference_period : str
        The period the work questions refer to (e.g. "the 12 months before the interview").
    missing_rule : str
        ``"unknown"`` (three-valued logic; undecidable flags are missing) or ``"as_no"``.
    scope_item : str
        The yes/no item that puts a respondent in scope (work in the reference period).
    out_of_scope : str
        ``"false"`` (flags False, respondent kept in the denominator) or ``"exclude"``.
    scope_reason : str
        The exclusion / scope reason text used in counts.
    items, dimensions, flags : Mapping
        Id -> :class:`Item` / ``Dimension`` / ``Flag`` (flags in evaluation order).
    sources : tuple of str
        The documents the rules come from.
    """

    name: str
    version: str
    status: str
    title: str
    reference_period: str
    missing_rule: str
    scope_item: str
    out_of_scope: str
    scope_reason: str
    items: Mapping[str, Item]
    dimensions: Mapping[str, Dimension]
    flags: Mapping[str, Flag]
    sources: tuple[str, ...] = ()
    reference_period_months: int | None = None

    @property
    def ref(self) -> DefinitionRef:
        return DefinitionRef(self.name, self.version)

    @property
    def required_items(self) -> tuple[str, ...]:
        """Ids of the items every questionnaire mapping must map."""
        return tuple(i for i, it in self.items.items() if it.required)

    def describe_flags(self) -> pd.DataFrame:
        """One row per dimension and flag: ``kind, id, rule, source`` (rules as text).

        >>> t = load_definition().describe_flags().set_index(["kind", "id"])["rule"]
        >>> t["flag", "adult_forced_labour"]
        'all(not child, involuntary, coercion)'
        >>> t["dimension", "coercion"].split(", ")[:2]
        ['any(threats_violence', 'restricted_movement']
        """
        rows = [{"kind": "dimension", "id": d.id, "rule": f"{d.rule}({', '.join(d.items)})",
                 "source": d.source} for d in self.dimensions.values()]
        rows += [{"kind": "flag", "id": f.id, "rule": _rule_text(f.rule), "source": f.source}
                 for f in self.flags.values()]
        return pd.DataFrame(rows)

    def describe(self) -> pd.DataFrame:
        """One row per item: ``item, intent, answer, required, dimensions, source``."""
        dims: dict[str, list[str]] = {}
        for d in self.dimensions.values():
            for it in d.items:
                dims.setdefault(it, []).append(d.id)
        return pd.DataFrame([
            {"item": it.id, "intent": it.intent, "answer": it.answer, "required": it.required,
             "dimensions": ", ".join(dims.get(it.id, [])), "source": it.source}
            for it in self.items.values()])


def _rule_text(rule: Any) -> str:
    """A flag's rule as text: ``all(not child, involuntary, coercion)``."""
    if isinstance(rule, str):
        return rule
    (op, arg), = rule.items()
    if op == "not":
        return f"not {_rule_text(arg)}"
    return f"{op}({', '.join(_rule_text(a) for a in arg)})"


def _root():
    return resources.files(__package__).joinpath("definitions")


def available_definitions() -> list[str]:
    """Names of the shipped definitions (one ``<name>.toml`` file each).

    >>> "tipstat-prov-1" in available_definitions()
    True
    """
    return sorted(p.name[:-len(".toml")] for p in _root().iterdir() if p.name.endswith(".toml"))


def _codes(values: object, where: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str | int | float | bool):
        values = [values]
    if not isinstance(values, Iterable):
        raise InputError(f"{where}: expected a list of answer codes")
    return tuple(_norm(v) for v in values)


def _norm(v: object) -> str:
    """An answer code as comparable text: booleans -> 'true'/'false', whole floats -> ints,
    text stripped and lower-cased."""
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return ""
        if float(v).is_integer():
            return str(int(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v).strip().lower()


def _walk_names(rule: Any, where: str) -> list[str]:
    if isinstance(rule, str):
        return [rule]
    if isinstance(rule, dict) and len(rule) == 1:
        (op, arg), = rule.items()
        if op == "not":
            return _walk_names(arg, where)
        if op in ("any", "all") and isinstance(arg, list) and arg:
            return [n for a in arg for n in _walk_names(a, where)]
    raise InputError(f"{where}: expected a name or {{any = [...]}}, {{all = [...]}}, "
                     "{not = ...}")


def _parse_definition(raw: dict[str, Any], origin: str) -> Definition:
    try:
        head = raw["definition"]
        scope = raw["scope"]
        items_raw, dims_raw, flags_raw = raw["items"], raw["dimensions"], raw["flags"]
    except KeyError as e:
        raise InputError(f"definition {origin}: missing table [{e.args[0]}]") from None
    for key, part in (("items", items_raw), ("dimensions", dims_raw), ("flags", flags_raw)):
        if not isinstance(part, list) or not all(isinstance(x, dict) for x in part):
            raise InputError(f"definition {origin}: expected [[{key}]] tables")
    if not isinstance(head, dict) or not isinstance(scope, dict):
        raise InputError(f"definition {origin}: expected [definition] and [scope] tables")
    items: dict[str, Item] = {}
    for k, it in enumerate(items_raw):
        where = f"definition {origin}, item {k + 1}"
        iid = it.get("id")
        if not isinstance(iid, str) or not _NAME_RE.match(iid) or iid in items:
            raise InputError(f"{where}: expected a unique id (letters, digits, _)")
        answer = it.get("answer", "yes_no")
        if answer not in ANSWERS:
            raise InputError(f"{where} ({iid}): answer {answer!r}; expected one of {ANSWERS}")
        yes_if = None
        if answer == "number":
            cond = it.get("yes_if")
            if not isinstance(cond, dict) or len(cond) != 1 or next(iter(cond)) not in _OPS:
                raise InputError(f"{where} ({iid}): a number item needs yes_if = {{lt|le|gt|ge|eq"
                                 " = value}")
            (op, val), = cond.items()
            yes_if = (op, float(val))
        items[iid] = Item(
            id=iid, intent=str(it.get("intent", "")), answer=answer,
            required=bool(it.get("required", True)),
            yes_values=_codes(it.get("yes_values", DEFAULT_YES), where),
            no_values=_codes(it.get("no_values", DEFAULT_NO), where),
            missing_values=_codes(it.get("missing_values", DEFAULT_MISSING), where),
            yes_if=yes_if, source=str(it.get("source", "")))
    dims: dict[str, Dimension] = {}
    for d in dims_raw:
        did = d.get("id")
        where = f"definition {origin}, dimension {did!r}"
        if not isinstance(did, str) or did in dims or did in items:
            raise InputError(f"{where}: expected a unique id (not an item id)")
        if d.get("rule") not in ("any", "all"):
            raise InputError(f"{where}: rule must be 'any' or 'all'")
        unknown = [i for i in d.get("items", []) if i not in items]
        if unknown or not d.get("items"):
            raise InputError(f"{where}: unknown items {unknown}; expected ids of [[items]]")
        dims[did] = Dimension(did, d["rule"], tuple(d["items"]), str(d.get("source", "")))
    flags: dict[str, Flag] = {}
    for f in flags_raw:
        fid = f.get("id")
        where = f"definition {origin}, flag {fid!r}"
        if not isinstance(fid, str) or fid in flags or fid in items:
            raise InputError(f"{where}: expected a unique id (not an item id)")
        for n in _walk_names(f.get("rule"), where):
            if n not in dims and n not in flags and n not in items:
                raise InputError(f"{where}: {n!r} is neither a dimension, an item nor a flag "
                                 "defined above it")
        flags[fid] = Flag(fid, f["rule"], str(f.get("source", "")))
    scope_item = scope.get("item")
    if scope_item not in items or items[scope_item].answer != "yes_no":
        raise InputError(f"definition {origin}: [scope] item must be a yes_no item")
    out_of_scope = scope.get("out_of_scope", "false")
    if out_of_scope not in ("false", "exclude"):
        raise InputError(f"definition {origin}: [scope] out_of_scope must be 'false' or 'exclude'")
    missing_rule = head.get("missing_rule", "unknown")
    if missing_rule not in ("unknown", "as_no"):
        raise InputError(f"definition {origin}: missing_rule must be 'unknown' or 'as_no'")
    for key in ("name", "version", "status"):
        if not isinstance(head.get(key), str):
            raise InputError(f"definition {origin}: [definition] needs a text {key!r}")
    return Definition(
        name=head["name"], version=head["version"], status=head["status"],
        title=str(head.get("title", "")), reference_period=str(head.get("reference_period", "")),
        missing_rule=missing_rule, scope_item=scope_item, out_of_scope=out_of_scope,
        scope_reason=str(scope.get("reason", "out of scope")),
        items=MappingProxyType(items), dimensions=MappingProxyType(dims),
        flags=MappingProxyType(flags), sources=tuple(head.get("sources", ())),
        reference_period_months=head.get("reference_period_months"))


@lru_cache(maxsize=16)
def _load_shipped(name: str) -> Definition:
    with _root().joinpath(f"{name}.toml").open("rb") as f:
        raw = tomllib.load(f)
    d = _parse_definition(raw, name)
    if d.name != name:
        raise InputError(f"definition file {name}.toml declares name {d.name!r}")
    return d


def load_definition(name: str | Path = DEFAULT_DEFINITION) -> Definition:
    """Load a statistical definition: a shipped one by name, or a ``.toml`` file of the same
    schema (e.g. a national variant under its own name).

    Parameters
    ----------
    name : str or path
        One of :func:`available_definitions` (default ``"tipstat-prov-1"``, the provisional
        ICLS-2018 / Trafficking Protocol mapping), or the path of a ``.toml`` definition file.

    Returns
    -------
    Definition

    Raises
    ------
    InputError
        Unknown name (the message lists the available ones), or a file that breaks the schema
        (a dimension naming an unknown item, a flag using a flag defined below it, ...).

    Examples
    --------
    >>> d = load_definition()
    >>> d.flags["forced_labour"].rule
    {'any': ['adult_forced_labour', 'child_forced_labour']}
    >>> d.dimensions["coercion"].rule, len(d.dimensions["coercion"].items)
    ('any', 6)
    >>> load_definition("ictip-2030")
    Traceback (most recent call last):
    tipstat.errors.InputError: unknown definition 'ictip-2030'; available: tipstat-prov-1
    """
    if isinstance(name, str) and name in available_definitions():
        return _load_shipped(name)
    if isinstance(name, str | Path) and str(name).endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise InputError(f"load_definition: no definition file {path.name!r}")
        try:
            with path.open("rb") as f:
                raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"load_definition: {path.name!r} is not valid TOML ({e})") from None
        return _parse_definition(raw, repr(path.name))
    raise InputError(f"unknown definition {name!r}; available: "
                     f"{', '.join(available_definitions())}")


def _definition(definition: Definition | str | Path | None) -> Definition:
    if definition is None:
        return load_definition()
    if isinstance(definition, str | Path):
        return load_definition(definition)
    if isinstance(definition, Definition):
        return definition
    raise InputError(f"definition: expected a name or a Definition, got {type(definition).__name__}")


# ---------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class ItemMapping:
    """Which variable answers an item, and with which codes (``None`` = the definition's).

    ``also``: further variables asking the same item (a questionnaire may split one indicator
    into several questions); the item is yes if any of them is yes, no if all are no, unknown
    otherwise.
    """

    item: str
    variable: str
    yes_values: tuple[str, ...] | None = None
    no_values: tuple[str, ...] | None = None
    missing_values: tuple[str, ...] | None = None
    also: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Every variable of the item."""
        return (self.variable, *self.also)


@dataclass(frozen=True)
class QuestionnaireMapping:
    """A questionnaire's variables mapped onto a definition's items (see :func:`load_mapping`).

    Attributes
    ----------
    items : Mapping[str, ItemMapping]
        Item id -> its variable(s) and answer codes.
    definition : str
        Name of the definition the mapping was checked against.
    reference_period_months : int or None
        The questionnaire's reference period, when the mapping states it (:func:`classify`
        warns when it differs from the definition's).
    """

    items: Mapping[str, ItemMapping]
    definition: str = DEFAULT_DEFINITION
    reference_period_months: int | None = None

    @property
    def variables(self) -> dict[str, str]:
        """``{item: variable}`` (several variables joined by ``;``)."""
        return {k: ";".join(m.columns) for k, m in self.items.items()}

    @classmethod
    def identity(cls, definition: Definition) -> QuestionnaireMapping:
        """Every item answered by the variable of the same name with the default codes."""
        return cls(MappingProxyType({i: ItemMapping(i, i) for i in definition.items}),
                   definition.name)

    def check(self, definition: Definition) -> None:
        """:class:`~tipstat.InputError` naming every required item that is not mapped and
        every mapped name that is not an item of ``definition``."""
        unknown = sorted(set(self.items) - set(definition.items))
        if unknown:
            raise InputError(f"questionnaire mapping: {', '.join(map(repr, unknown))} "
                             f"{'is not an item' if len(unknown) == 1 else 'are not items'} of "
                             f"definition {definition.name!r}")
        missing = [i for i in definition.required_items if i not in self.items]
        if missing:
            raise InputError(f"questionnaire mapping: required item(s) not mapped: "
                             f"{', '.join(missing)} (definition {definition.name!r}; map each "
                             "to the variable of your questionnaire that asks it)")


def _split(value: object) -> list[str] | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(";")]
        parts = [p for p in parts if p]
        return parts or None
    return list(value) if isinstance(value, list | tuple) else [value]


_META = ("mapping", "definition", "reference_period_months")


def _variables(spec: object) -> list[str] | None:
    vals = _split(spec) if isinstance(spec, str | list | tuple) else None
    if not vals or not all(isinstance(v, str) and v for v in vals):
        return None
    return [str(v) for v in vals]


def _mapping_from_dict(raw: Mapping[str, Any], origin: str
                       ) -> tuple[dict[str, ItemMapping], dict[str, Any]]:
    meta: dict[str, Any] = {k: raw[k] for k in _META[1:] if k in raw}
    body = raw
    if "items" in raw and isinstance(raw["items"], Mapping):
        body = raw["items"]
        if isinstance(raw.get("mapping"), Mapping):
            meta.update({k: raw["mapping"][k] for k in _META[1:] if k in raw["mapping"]})
    out: dict[str, ItemMapping] = {}
    for item, spec in body.items():
        if item in _META:
            continue
        where = f"questionnaire mapping {origin}, item {item!r}"
        if isinstance(spec, str | list | tuple):
            spec = {"variable": spec}
        names = _variables(spec.get("variable")) if isinstance(spec, Mapping) else None
        if names is None:
            raise InputError(f"{where}: expected a variable name (or a list of them), or a table "
                             "with 'variable' and optional 'yes_values', 'no_values', "
                             "'missing_values'")
        codes = {}
        for key in ("yes_values", "no_values", "missing_values"):
            vals = _split(spec.get(key))
            codes[key] = None if vals is None else _codes(vals, f"{where}, {key}")
        out[item] = ItemMapping(item, names[0], **codes, also=tuple(names[1:]))
    months = meta.get("reference_period_months")
    if months is not None and (isinstance(months, bool) or not isinstance(months, int)
                               or months < 1):
        raise InputError(f"questionnaire mapping {origin}: reference_period_months must be a "
                         "positive integer")
    return out, meta


def _read_mapping_file(path: Path) -> Mapping[str, Any]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"questionnaire mapping: no file {path.name!r}")
    if suffix == ".toml":
        with path.open("rb") as f:
            return tomllib.load(f)
    if suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if suffix == ".csv":
        return _csv_mapping(path.read_text(encoding="utf-8-sig"), path.name)
    raise InputError(f"questionnaire mapping {path.name!r}: expected a .toml, .json or .csv file")


def _csv_mapping(text: str, origin: str) -> dict[str, Any]:
    rows = list(csv.DictReader(io.StringIO(text)))
    cols = set(rows[0]) if rows else set()
    if not {"item", "variable"} <= cols:
        raise InputError(f"questionnaire mapping {origin}: expected columns item, variable "
                         "[, yes_values, no_values, missing_values]")
    out: dict[str, Any] = {}
    for k, row in enumerate(rows, start=2):
        item, var = (row.get("item") or "").strip(), (row.get("variable") or "").strip()
        if not item or not var:
            raise InputError(f"questionnaire mapping {origin}, line {k}: empty item or variable")
        if item in out:
            raise InputError(f"questionnaire mapping {origin}, line {k}: item {item!r} mapped "
                             "twice")
        out[item] = {"variable": var, **{c: row[c] for c in
                                         ("yes_values", "no_values", "missing_values")
                                         if row.get(c)}}
    return out


def load_mapping(path_or_dict: str | Path | Mapping[str, Any] | QuestionnaireMapping, *,
                 definition: Definition | str | None = None) -> QuestionnaireMapping:
    """Read the mapping from a questionnaire's variables to a definition's items.

    Parameters
    ----------
    path_or_dict : path, dict or QuestionnaireMapping
        A ``.toml`` / ``.json`` file or a dict ``{item: variable}`` or
        ``{item: {"variable": ..., "yes_values": [...], "no_values": [...],
        "missing_values": [...]}}`` (optionally under an ``items`` table, with
        ``definition = "<name>"`` and ``reference_period_months = <n>`` beside it or in a
        ``mapping`` table); or a ``.csv`` file with columns
        ``item, variable[, yes_values[, no_values[, missing_values]]]`` (codes separated by
        ``;``). Answer codes are compared as normalised text (``1``, ``1.0`` and ``"1"`` match).
        When only ``yes_values`` is given, every other answered code counts as "no". Several
        variables for one item (a list, or ``;``-separated in a CSV): the item is yes if any of
        them is yes, no if all are no.
    definition : Definition or str, optional
        The definition to check against (default: the one the mapping names, else
        ``tipstat-prov-1``).

    Returns
    -------
    QuestionnaireMapping

    Raises
    ------
    InputError
        A required item of the definition is not mapped (the message names it), a mapped name
        is not an item, or the file cannot be read as a mapping.

    Examples
    --------
    >>> from tipstat.survey import load_definition, load_mapping
    >>> spec = {i: f"q_{i}" for i in load_definition().required_items}
    >>> spec["worked_in_period"] = {"variable": "q101", "yes_values": [1], "no_values": [2]}
    >>> m = load_mapping(spec)
    >>> m.variables["worked_in_period"], m.items["worked_in_period"].no_values
    ('q101', ('2',))
    >>> del spec["withheld_wages"]
    >>> load_mapping(spec)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tipstat.errors.InputError: questionnaire mapping: required item(s) not mapped: withheld_wages ...
    """
    if isinstance(path_or_dict, QuestionnaireMapping):
        d = _definition(definition if definition is not None else path_or_dict.definition)
        path_or_dict.check(d)
        return path_or_dict
    if isinstance(path_or_dict, str | Path):
        path = Path(path_or_dict)
        raw = _read_mapping_file(path)
        origin = repr(path.name)
    elif isinstance(path_or_dict, Mapping):
        raw, origin = path_or_dict, "(dict)"
    else:
        raise InputError("load_mapping: expected a path to a .toml/.json/.csv file or a dict, "
                         f"got {type(path_or_dict).__name__}")
    items, meta = _mapping_from_dict(raw, origin)
    d = _definition(definition if definition is not None else meta.get("definition"))
    m = QuestionnaireMapping(MappingProxyType(items), d.name,
                             meta.get("reference_period_months"))
    m.check(d)
    return m


# ---------------------------------------------------------------------------- classification


def _item_states(col: pd.Series, item: Item, m: ItemMapping) -> tuple[np.ndarray, int]:
    """(state per respondent in {F, U, T}, number of answers that are no known code)."""
    missing = set(item.missing_values if m.missing_values is None else m.missing_values)
    if item.answer == "number":
        op, thr = item.yes_if  # type: ignore[misc]
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        keys = [_norm(u) for u in uniques]
        is_missing = np.array([k in missing for k in keys], dtype=bool)
        num = pd.to_numeric(pd.Series(keys, dtype=object), errors="coerce").to_numpy(float)
        bad = ~is_missing & np.isnan(num)
        table = np.where(is_missing | bad, U, np.where(_OPS[op](np.nan_to_num(num), thr), T, F))
        table = np.append(table, U).astype(np.int8)  # index -1 (NA) -> unknown
        n_bad = int(np.bincount(codes[codes >= 0], minlength=len(keys))[bad].sum()) if len(keys) \
            else 0
        return table[codes], n_bad
    yes = set(item.yes_values if m.yes_values is None else m.yes_values)
    if m.yes_values is not None and m.no_values is None:
        no = None  # every other answered code is "no"
    else:
        no = set(item.no_values if m.no_values is None else m.no_values)
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=np.int8)
    bad = np.zeros(len(uniques), dtype=bool)
    for k, u in enumerate(uniques):
        key = _norm(u)
        if key in yes:
            table[k] = T
        elif key in missing:
            table[k] = U
        elif no is None or key in no:
            table[k] = F
        else:
            table[k], bad[k] = U, True
    table[-1] = U
    n_bad = int(np.bincount(codes[codes >= 0], minlength=len(uniques))[bad].sum()) \
        if len(uniques) else 0
    return table[codes], n_bad


class _Evaluator:
    """Evaluates dimensions and flags on item states (three-valued)."""

    def __init__(self, definition: Definition, states: dict[str, np.ndarray]) -> None:
        self.d = definition
        self.items = states
        self.dims: dict[str, np.ndarray] = {}
        for did, dim in definition.dimensions.items():
            stack = np.stack([states[i] for i in dim.items])
            self.dims[did] = stack.max(axis=0) if dim.rule == "any" else stack.min(axis=0)
        self.flags: dict[str, np.ndarray] = {}
        for fid, flag in definition.flags.items():
            self.flags[fid] = self.value(flag.rule)

    def value(self, rule: Any) -> np.ndarray:
        if isinstance(rule, str):
            for table in (self.dims, self.flags, self.items):
                if rule in table:
                    return table[rule]
            raise KeyError(rule)  # excluded by _parse_definition
        (op, arg), = rule.items()
        if op == "not":
            return (T - self.value(arg)).astype(np.int8)
        stack = np.stack([self.value(a) for a in arg])
        return stack.max(axis=0) if op == "any" else stack.min(axis=0)

    def support(self, rule: Any, mask: np.ndarray, group: str
                ) -> list[tuple[str, str, np.ndarray]]:
        """(group, item, rows) triples: the items that make ``rule`` True on ``rows``."""
        if isinstance(rule, str):
            if rule in self.flags and rule not in self.dims:
                return self.support(self.d.flags[rule].rule, mask, group)
            if rule in self.dims:
                dim = self.d.dimensions[rule]
                if dim.rule == "all":
                    return [(rule, i, mask) for i in dim.items]
                return [(rule, i, mask & (self.items[i] == T)) for i in dim.items]
            return [(group, rule, mask)]
        (op, arg), = rule.items()
        if op == "not":
            return []
        out = []
        for a in arg:
            sub = mask if op == "all" else mask & (self.value(a) == T)
            out.extend(self.support(a, sub, group))
        return out

    def blockers(self, rule: Any, mask: np.ndarray, group: str
                 ) -> list[tuple[str, str, np.ndarray]]:
        """(group, item, rows) triples: the unanswered items that leave ``rule`` unknown on
        ``rows`` (answering any of them could decide it)."""
        if isinstance(rule, str):
            if rule in self.flags and rule not in self.dims:
                return self.blockers(self.d.flags[rule].rule, mask, group)
            if rule in self.dims:
                return [(rule, i, mask & (self.items[i] == U))
                        for i in self.d.dimensions[rule].items]
            return [(group, rule, mask & (self.items[rule] == U))]
        (op, arg), = rule.items()
        if op == "not":
            return self.blockers(arg, mask, group)
        out = []
        for a in arg:
            out.extend(self.blockers(a, mask & (self.value(a) == U), group))
        return out


@dataclass(frozen=True, eq=False)
class Classification:
    """Per-respondent flags of a definition, with their audit and the exclusions.

    Attributes
    ----------
    flags : DataFrame
        One nullable-boolean column per flag of the definition (``involuntary``, ``coercion``,
        ``adult_forced_labour``, ``child_forced_labour``, ``forced_labour``,
        ``forced_commercial_sexual_exploitation``, ``trafficking_forced_labour`` for
        ``tipstat-prov-1``), same index as the data; ``<NA>`` = not decidable (excluded).
    excluded : Mapping[str, int]
        Reason -> number of respondents: whole respondents (``"scope unknown: ..."``,
        ``"no answer to any item"``) and, per flag, ``"<flag>: not decidable from the answered
        items"``.
    definition : DefinitionRef
        ``(name, version)`` of the definition used.
    counts : Mapping[str, int]
        ``respondents``, ``in_scope``, ``out_of_scope`` (not working in the reference period;
        their flags are False under ``out_of_scope = "false"``).
    unrecognised : Mapping[str, int]
        Item -> number of answers that are none of the mapping's codes (treated as missing; the
        values themselves are never shown).
    not_asked : tuple of str
        Optional items that no variable answers (unknown for everybody).
    audit, undecided : DataFrame (computed on first use)
        Per respondent and flag, the items that made it True / the unanswered items that leave
        it unknown, as ``"dimension: item, item; dimension: item"`` text (item ids only, never an
        answer).
    rules : Definition
        The full definition (items, dimensions, flag rules, sources, status).
    """

    flags: pd.DataFrame
    excluded: Mapping[str, int]
    definition: DefinitionRef
    counts: Mapping[str, int]
    unrecognised: Mapping[str, int]
    not_asked: tuple[str, ...]
    rules: Definition
    _evaluator: _Evaluator = field(repr=False)
    _final: dict[str, np.ndarray] = field(repr=False)
    _raw_states: dict[str, np.ndarray] = field(repr=False)
    _whole: np.ndarray = field(repr=False)

    @cached_property
    def audit(self) -> pd.DataFrame:
        """Per respondent and flag, the item ids that made the flag True, grouped by dimension:
        ``"involuntary: deceived_conditions; coercion: withheld_wages"`` (``""`` where the flag
        is not True). Items under a ``not`` never count as reasons."""
        return self._explain(T, self._evaluator.support)

    @cached_property
    def undecided(self) -> pd.DataFrame:
        """Per respondent and flag left unknown by missing answers, the unanswered items that
        could decide it, grouped by dimension (``""`` elsewhere, and for respondents excluded
        as a whole: out of scope, scope unknown, no answer at all)."""
        return self._explain(U, self._evaluator.blockers, skip=self._whole)

    def _explain(self, state: np.int8, walk: Any, skip: np.ndarray | None = None
                 ) -> pd.DataFrame:
        out = {}
        n = len(self.flags)
        for fid, flag in self.rules.flags.items():
            true_rows = self._final[fid] == state
            if skip is not None:
                true_rows &= ~skip
            col = np.full(n, "", dtype=object)
            idx = np.flatnonzero(true_rows)
            if idx.size:
                groups: dict[str, dict[str, np.ndarray]] = {}
                for g, item, rows in walk(flag.rule, true_rows, fid):
                    prev = groups.setdefault(g, {}).get(item)
                    groups[g][item] = rows[idx] if prev is None else prev | rows[idx]
                parts = np.full(idx.size, "", dtype=object)
                for g, members in groups.items():
                    text = np.full(idx.size, "", dtype=object)
                    for item, rows in members.items():
                        text = np.where(rows, np.where(text == "", item, text + ", " + item), text)
                    seg = np.where(text == "", "", g + ": " + text)
                    parts = np.where(seg == "", parts,
                                     np.where(parts == "", seg, parts + "; " + seg))
                col[idx] = parts
            out[fid] = col
        return pd.DataFrame(out, index=self.flags.index)

    def item_summary(self) -> pd.DataFrame:
        """Per item, among respondents in scope: ``n_yes``, ``n_no``, ``n_unknown`` (missing,
        not asked or unrecognised) and ``n_unrecognised`` (answers that are no known code)."""
        scope = self._raw_states[self.rules.scope_item] == T
        rows = {}
        for iid, st in self._raw_states.items():
            s_in = st[scope]
            rows[iid] = {"n_yes": int((s_in == T).sum()), "n_no": int((s_in == F).sum()),
                         "n_unknown": int((s_in == U).sum()),
                         "n_unrecognised": int(self.unrecognised.get(iid, 0))}
        return pd.DataFrame.from_dict(rows, orient="index")

    def summary(self) -> pd.DataFrame:
        """Per flag: unweighted ``n_true``, ``n_false``, ``n_unknown``."""
        f = self.flags
        return pd.DataFrame({"n_true": f.sum().astype(int),
                             "n_false": (~f).sum().astype(int),
                             "n_unknown": f.isna().sum().astype(int)})


def classify(data: pd.DataFrame, *, definition: Definition | str | None = None,
             mapping: QuestionnaireMapping | Mapping[str, Any] | str | Path | None = None
             ) -> Classification:
    """Classify every respondent by a statistical definition.

    Each item is read from its mapped variable as True / False / unknown (yes code, no code,
    missing or unrecognised code); dimensions and flags are evaluated with three-valued logic
    (``any`` = max, ``all`` = min, ``not`` = swap, on False < unknown < True). Then the scope
    rule: a respondent whose scope item (``worked_in_period``) is False has every flag False
    (``out_of_scope = "false"``: prevalence per population) or missing (``"exclude"``); unknown
    scope makes every flag missing. A respondent in scope with no answered item (other than the
    scope item and numeric items such as age) has every flag missing.

    Parameters
    ----------
    data : DataFrame
        One row per respondent.
    definition : Definition or str, optional
        Default ``tipstat-prov-1`` (or the definition the mapping names).
    mapping : QuestionnaireMapping, dict or path, optional
        Variables and codes (see :func:`load_mapping`); default: every item is the column of the
        same name (optional items whose column is absent are unknown).

    Returns
    -------
    Classification
        ``.flags``, ``.audit``, ``.excluded``, ``.definition``.

    Raises
    ------
    InputError
        ``data`` is not a DataFrame; a required item unmapped (named); a mapped variable absent
        from the data (named). No respondent's value is ever shown.

    Examples
    --------
    >>> import pandas as pd
    >>> from tipstat.survey import classify, load_definition
    >>> d = load_definition()
    >>> data = pd.DataFrame({i: [0, 0] for i in d.required_items})
    >>> data = data.assign(worked_in_period=[1, 0], age_years=[40, 40])
    >>> data["debt_bondage"] = 1
    >>> data["cannot_leave_job"] = [1, None]
    >>> c = classify(data)
    >>> c.flags.loc[:, ["involuntary", "coercion", "forced_labour"]].values.tolist()
    [[True, True, True], [False, False, False]]
    >>> c.audit.loc[0, "forced_labour"], c.counts["out_of_scope"]
    ('involuntary: cannot_leave_job; coercion: debt_bondage', 1)
    """
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"classify: data must be a pandas DataFrame, got {type(data).__name__}")
    if mapping is None:
        d = _definition(definition)
        m = QuestionnaireMapping.identity(d)
        absent_ok = {i for i, it in d.items.items() if not it.required}
    else:
        if not isinstance(mapping, QuestionnaireMapping):
            mapping = load_mapping(mapping, definition=definition)
        d = _definition(definition if definition is not None else mapping.definition)
        m = mapping
        m.check(d)
        absent_ok = set()
    absent = [v for i, mi in m.items.items() for v in mi.columns
              if v not in data.columns and i not in absent_ok]
    if absent:
        raise InputError(f"classify: mapped variable(s) not in the data: {', '.join(absent)} "
                         f"(columns expected by the questionnaire mapping for definition "
                         f"{d.name!r})")
    n = len(data)
    states: dict[str, np.ndarray] = {}
    unrecognised: dict[str, int] = {}
    not_asked: list[str] = []
    for iid, item in d.items.items():
        mi = m.items.get(iid)
        cols = [] if mi is None else [v for v in mi.columns if v in data.columns]
        if not cols:
            states[iid] = np.full(n, U, dtype=np.int8)
            not_asked.append(iid)
            continue
        per_var, bad = [], 0
        for v in cols:
            col = data[v]
            if isinstance(col, pd.DataFrame):
                raise InputError(f"classify: variable {v!r} appears more than once in the data "
                                 "columns")
            st, k = _item_states(col, item, mi)  # type: ignore[arg-type]
            per_var.append(st)
            bad += k
        states[iid] = per_var[0] if len(per_var) == 1 else np.max(per_var, axis=0)
        if bad:
            unrecognised[iid] = bad
    if unrecognised:
        warnings.warn(
            "classify: answers that are none of the mapping's codes were treated as missing: "
            + ", ".join(f"{i} ({k} answers)" for i, k in unrecognised.items()),
            TipstatWarning, stacklevel=2)
    if (m.reference_period_months is not None and d.reference_period_months is not None
            and m.reference_period_months != d.reference_period_months):
        warnings.warn(
            f"classify: the questionnaire's reference period ({m.reference_period_months} months)"
            f" differs from the definition's ({d.reference_period_months} months, "
            f"{d.reference_period}); prevalences are not comparable with the definition's",
            TipstatWarning, stacklevel=2)
    raw_states = dict(states)
    answered_any = np.zeros(n, dtype=bool)
    for iid, item in d.items.items():
        if iid != d.scope_item and item.answer == "yes_no":
            answered_any |= states[iid] != U
    if d.missing_rule == "as_no":
        for iid, item in d.items.items():
            if item.answer == "yes_no" and iid != d.scope_item:
                states[iid] = np.where(states[iid] == U, F, states[iid]).astype(np.int8)
    ev = _Evaluator(d, states)
    scope = states[d.scope_item]
    out_scope = scope == F
    scope_unknown = scope == U
    no_answer = (scope == T) & ~answered_any
    excluded: dict[str, int] = {}
    if d.out_of_scope == "exclude" and out_scope.any():
        excluded[d.scope_reason] = int(out_scope.sum())
    if scope_unknown.any():
        excluded[f"scope unknown: {d.scope_item} not answered"] = int(scope_unknown.sum())
    if no_answer.any():
        excluded["no answer to any item"] = int(no_answer.sum())
    whole = scope_unknown | no_answer | (out_scope if d.out_of_scope == "exclude" else False)
    final: dict[str, np.ndarray] = {}
    cols: dict[str, pd.Series] = {}
    for fid in d.flags:
        v = ev.flags[fid].copy()
        v[out_scope] = F
        v[whole] = U
        k = int(((v == U) & ~whole).sum())
        if k:
            excluded[f"{fid}: not decidable from the answered items"] = k
        final[fid] = v
        arr = pd.array(v == T, dtype="boolean")
        arr[v == U] = pd.NA
        cols[fid] = pd.Series(arr, index=data.index, name=fid)
    flags = pd.DataFrame(cols, index=data.index)
    counts = {"respondents": n, "in_scope": int((scope == T).sum()),
              "out_of_scope": int(out_scope.sum())}
    return Classification(flags=flags, excluded=MappingProxyType(excluded), definition=d.ref,
                          counts=MappingProxyType(counts),
                          unrecognised=MappingProxyType(unrecognised),
                          not_asked=tuple(not_asked), rules=d,
                          _evaluator=ev, _final=final, _raw_states=raw_states,
                          _whole=np.asarray(whole, dtype=bool) & np.ones(n, dtype=bool))
