"""Versioned IC-TIP code lists and crosswalks, loaded from data files.

Every categorical value tipstat accepts comes from a code-list file
``<name>@<version>.csv`` in this folder, with the columns

``code, parent_code, level, label, iccs_code, sdg_series, valid_from, valid_to, source``.

The provisional lists are version ``tipstat-prov-1`` (a reconstruction: the official IC-TIP lists
were not public when they were written). An official IC-TIP release is added as new files
(``sex@ictip-2025.csv`` ...) and selected with ``version="ictip-2025"``: no code changes.

Crosswalks ``crosswalk/<from>__<to>.csv`` (columns ``codelist, source_value, code, note``) map
the values of other formats onto a version: ``htcds-2.0`` (IOM HTCDS v2.0 picklists, system
names and Excel labels), ``ctdc`` (CTDC codebooks), ``glotip`` (UNODC data portal labels),
``iso3166-alpha2`` and ``aliases`` (common spellings). A ``code`` may hold several codes
separated by ``;`` (CTDC ``isSexAndLabour`` -> ``SEX;LAB``).

Reserved codes in every list: ``_U`` unknown / not recorded, ``_Z`` not applicable, ``_O`` other;
``_T`` (total) appears in outputs only.

Examples
--------
>>> from tipstat.ictip import codelists
>>> sex = codelists.load("sex")
>>> sex.codes
('F', 'M', '_O', '_U')
>>> codelists.load("exploitation_form").parent("SEX.PROS")
'SEX'
>>> codelists.crosswalk("htcds-2.0")["sex"]["Feminine"]
'F'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources

import pandas as pd

from ...errors import InputError, Problem

__all__ = ["DEFAULT_VERSION", "CodeList", "available", "crosswalk", "crosswalks", "load",
           "load_frame"]

DEFAULT_VERSION = "tipstat-prov-1"
COLUMNS = ("code", "parent_code", "level", "label", "iccs_code", "sdg_series", "valid_from",
           "valid_to", "source")
_FILE_RE = re.compile(r"^(?P<name>[a-z_]+)@(?P<version>[A-Za-z0-9._-]+)\.csv$")


@dataclass(frozen=True)
class CodeList:
    """One version of one code list.

    Attributes
    ----------
    name, version : str
    frame : pandas.DataFrame
        The file's rows (all columns as strings; ``level`` as int).
    """

    name: str
    version: str
    frame: pd.DataFrame

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.frame["code"])

    def __contains__(self, code: object) -> bool:
        return code in self._set

    @cached_property
    def _set(self) -> frozenset[str]:
        return frozenset(self.frame["code"])

    @cached_property
    def parents(self) -> dict[str, str]:
        """``{code: parent_code}`` (``""`` for top-level codes)."""
        return dict(zip(self.frame["code"], self.frame["parent_code"], strict=True))

    @cached_property
    def levels(self) -> dict[str, int]:
        """``{code: level}``."""
        return dict(zip(self.frame["code"], self.frame["level"], strict=True))

    @cached_property
    def tops(self) -> dict[str, str]:
        """``{code: level-1 ancestor}``."""
        out = {}
        for code in self.frame["code"]:
            c = code
            while self.parents.get(c):
                c = self.parents[c]
            out[code] = c
        return out

    def parent(self, code: str) -> str | None:
        """Parent code, or None for a top-level code."""
        return self.parents[code] or None

    def top(self, code: str) -> str:
        """Level-1 ancestor of ``code`` (itself when top-level or not in the list)."""
        return self.tops.get(code, code)

    def at_level(self, level: int) -> tuple[str, ...]:
        """Codes of one level (reserved codes ``_U``/``_O``/``_Z`` are at level 1)."""
        return tuple(self.frame.loc[self.frame["level"] == level, "code"])

    def label(self, code: str) -> str:
        return str(self.frame.set_index("code").loc[code, "label"])


def _root():
    return resources.files(__package__)


def available() -> pd.DataFrame:
    """Table of the shipped code lists: ``name``, ``version``."""
    rows = []
    for entry in _root().iterdir():
        m = _FILE_RE.match(entry.name)
        if m:
            rows.append((m["name"], m["version"]))
    return pd.DataFrame(sorted(rows), columns=["name", "version"])


def load_frame(name: str, version: str = DEFAULT_VERSION) -> pd.DataFrame:
    """The rows of a code-list file as a DataFrame (validated, see :func:`load`)."""
    return load(name, version).frame.copy()


@lru_cache(maxsize=64)
def load(name: str, version: str = DEFAULT_VERSION) -> CodeList:
    """Load code list ``name`` at ``version`` and check its integrity.

    Raises
    ------
    InputError
        Unknown name or version; a file without the required columns; duplicate codes; a
        ``parent_code`` that is not in the list or whose ``level`` is not one less than its
        child's (ICTIP.md 6.3 rule 5: "a child code whose parent is inconsistent").
    """
    path = _root().joinpath(f"{name}@{version}.csv")
    if not path.is_file():
        av = available()
        raise InputError(
            f"no code list {name!r} at version {version!r}; available: "
            + ", ".join(f"{n}@{v}" for n, v in av.itertuples(index=False))
        )
    with path.open("r", encoding="utf-8") as f:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
    return CodeList(name, version, _checked(df, f"{name}@{version}"))


def _checked(df: pd.DataFrame, what: str) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"code list {what}: column(s) {missing} missing; expected {list(COLUMNS)}")
    problems = []
    dup = df["code"].duplicated(keep=False)
    problems += [Problem("code", i + 2, v, "a unique code") for i, v in df.loc[dup, "code"].items()]
    levels = pd.to_numeric(df["level"], errors="coerce")
    problems += [Problem("level", i + 2, df.at[i, "level"], "an integer level >= 1")
                 for i in df.index[levels.isna() | (levels < 1)]]
    lv = dict(zip(df["code"], levels, strict=True))
    for i, (code, parent) in enumerate(zip(df["code"], df["parent_code"], strict=True)):
        if not parent:
            if lv[code] != 1:
                problems.append(Problem("parent_code", i + 2, code, "a parent for a level > 1 code"))
            continue
        if parent not in lv:
            problems.append(Problem("parent_code", i + 2, parent, "a code of the same list"))
        elif lv[parent] != lv[code] - 1:
            problems.append(Problem("level", i + 2, df.at[i, "level"],
                                    f"level {lv[parent] + 1} (one below parent {parent})"))
    if problems:
        raise InputError(f"code list {what} is inconsistent (rows are file lines)", problems)
    df = df.copy()
    df["level"] = levels.astype(int)
    return df


@lru_cache(maxsize=32)
def _crosswalk_frame(source: str, version: str) -> pd.DataFrame:
    path = _root().joinpath("crosswalk", f"{source}__{version}.csv")
    if not path.is_file():
        names = sorted(p.name.removesuffix(".csv") for p in _root().joinpath("crosswalk").iterdir()
                       if p.name.endswith(".csv"))
        raise InputError(f"no crosswalk {source!r} -> {version!r}; available: {names}")
    with path.open("r", encoding="utf-8") as f:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
    for row in df.itertuples():
        target = load(row.codelist, version) if row.codelist != "sex_exploitation" else \
            load("exploitation_form", version)
        for code in row.code.split(";"):
            if code != "_T" and code not in target:
                raise InputError(f"crosswalk {source}__{version}: line {row.Index + 2} maps "
                                 f"{row.source_value!r} to {code!r}, not in {target.name}")
    return df


def crosswalk(source: str, version: str = DEFAULT_VERSION) -> dict[str, dict[str, str]]:
    """``{codelist: {source_value: code}}`` of a crosswalk file (its targets are checked)."""
    out: dict[str, dict[str, str]] = {}
    for row in _crosswalk_frame(source, version).itertuples():
        out.setdefault(row.codelist, {})[row.source_value] = row.code
    return out


def crosswalks() -> list[str]:
    """Names ``<from>__<to>`` of the shipped crosswalk files."""
    return sorted(p.name.removesuffix(".csv") for p in _root().joinpath("crosswalk").iterdir()
                  if p.name.endswith(".csv"))
