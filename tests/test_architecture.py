"""The import graph of the package: data flows one way (docs: the architecture's "Boundaries").

Every ``import`` statement of every module under ``tipstat/`` is read with :mod:`ast` (those
inside functions too: a lazy import is still a dependency), relative imports are resolved, and
the graph is checked for

* cycles between modules (two modules that import each other, directly or around a loop), and
* imports against the flow: a part of the package importing a part that must never be below it
  (e.g. linkage importing a model, ictip importing linkage, a check calling an estimator back).

Nothing is imported or run: the test reads source text only, so it fails on the line that adds
a forbidden import even if that line is never executed by the other tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tipstat"

#: The parts of the package (a module belongs to the first part whose path prefix it has).
PARTS = {
    "Data": ("tipstat/histories.py", "tipstat/datasets/"),
    "ICTIP": ("tipstat/ictip/",),
    "Linkage": ("tipstat/linkage/",),
    "Models": ("tipstat/models/",),
    "Checks": ("tipstat/validate.py",),
    "Compare": ("tipstat/comparison.py",),
    "Result": ("tipstat/estimate.py",),
    "Indicator": ("tipstat/indicator.py",),
    "Face": ("tipstat/cli.py", "tipstat/report/"),
    "Exec": ("tipstat/parallel.py",),
    "Survey": ("tipstat/survey/",),
}

#: (importer, imported, why): imports that run against the flow.
NEVER = [
    ("ICTIP", "Linkage", "one direction: linkage reads ictip's records"),
    ("ICTIP", "Models", "ingest knows no model"),
    ("Linkage", "Models", "linkage knows no model"),
    ("Models", "ICTIP", "models know nothing of IC-TIP"),
    ("Models", "Linkage", "models know nothing of linkage"),
    ("Models", "Face", "models know no screen or file"),
    ("Models", "Compare", "models do not know the comparison layer"),
    ("Data", "Models", "data knows no model"),
    ("Checks", "Models", "checks read results; they do not call estimators back"),
    ("Compare", "Face", "a library layer does not draw"),
    ("Result", "Models", "the result type knows no estimator"),
    ("Survey", "Face", "the survey side knows no screen or file format of the report"),
    ("Survey", "ICTIP", "survey microdata are not IC-TIP records"),
    ("Survey", "Linkage", "survey respondents are not linked across agencies"),
    ("Models", "Survey", "the MSE models know nothing of surveys"),
    ("ICTIP", "Survey", "ingest of records knows no survey"),
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(module: str, path: Path, node: ast.ImportFrom | ast.Import,
             known: dict[str, Path]) -> list[str]:
    """The tipstat modules an import statement loads (a name imported from a package is the
    submodule of that name when there is one, else the package itself)."""
    out: list[str] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "tipstat" or alias.name.startswith("tipstat."):
                out.append(alias.name)
        return [m for m in out if m in known]
    if node.level:
        base = module.split(".") if _is_package(path) else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
        if not (target == "tipstat" or target.startswith("tipstat.")):
            return []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in known else target)
    return [m for m in dict.fromkeys(out) if m in known]


def _typing_only(tree: ast.AST) -> set[int]:
    """Imports under ``if TYPE_CHECKING:``: read by type checkers only, never run, so not a
    dependency (a type annotation naming a higher layer's class is not a call into it)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
                (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
                or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")):
            for stmt in node.body:
                out.update(id(n) for n in ast.walk(stmt))
    return out


def import_graph() -> dict[str, set[str]]:
    """``{module: {modules it imports}}`` over every module of the package."""
    known = _modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        typing_only = _typing_only(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in typing_only:
                graph[module].update(m for m in _resolve(module, path, node, known)
                                     if m != module)
    return graph


def part_of(module: str) -> str | None:
    path = _modules()[module].relative_to(ROOT).as_posix()
    for part, prefixes in PARTS.items():
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes):
            return part
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _reach(graph: dict[str, set[str]], start: str, parts: dict[str, str | None]
           ) -> dict[str, list[str]]:
    """Modules on a part reached from ``start`` directly or through modules on no part, with
    the path that reaches each."""
    out: dict[str, list[str]] = {}
    todo = [(start, [start])]
    seen = {start}
    while todo:
        v, route = todo.pop()
        for w in sorted(graph[v]):
            if w in seen:
                continue
            seen.add(w)
            if parts[w] is None:
                todo.append((w, [*route, w]))
            else:
                out[w] = [*route, w]
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_is_read(graph):
    # the reader must see the imports it is meant to police: a known one-way import of each kind
    assert "tipstat.ictip.records" in graph["tipstat.linkage.exact"]  # lazy, inside a function
    assert "tipstat.histories" in graph["tipstat.ictip.strata"]  # relative, module level
    assert "tipstat.ictip.keys" in graph["tipstat.ictip.records"]  # `from . import keys`
    assert {part_of(m) for m in graph} >= set(PARTS)


def test_no_import_cycle(graph):
    cycles = _cycles(graph)
    assert not cycles, "modules importing each other: " + "; ".join(
        " <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(("source", "target", "why"),
                         [pytest.param(a, b, why, id=f"{a}->{b}") for a, b, why in NEVER])
def test_no_import_against_the_flow(graph, source, target, why):
    parts = {m: part_of(m) for m in graph}
    broken = []
    for module in sorted(m for m, p in parts.items() if p == source):
        for reached, route in _reach(graph, module, parts).items():
            if parts[reached] == target:
                broken.append(" -> ".join(route))
    assert not broken, f"{source} must not import {target} ({why}): " + "; ".join(broken)


def test_the_checker_catches_a_forbidden_import():
    # the rules can fail: a made-up graph with linkage importing a model, through a module on
    # no part, and a two-module loop
    fake = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert _cycles(fake) == [["a", "b"]]
    parts = {"tipstat.linkage.x": "Linkage", "tipstat._helper": None, "tipstat.models.y": "Models"}
    g = {"tipstat.linkage.x": {"tipstat._helper"}, "tipstat._helper": {"tipstat.models.y"},
         "tipstat.models.y": set()}
    assert _reach(g, "tipstat.linkage.x", parts) == {
        "tipstat.models.y": ["tipstat.linkage.x", "tipstat._helper", "tipstat.models.y"]}
