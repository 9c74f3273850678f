"""The documentation site builds in strict mode, its code runs, and the tutorial notebook
executes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _nav_files():
    text = (ROOT / "mkdocs.yml").read_text()
    return re.findall(r"^\s*- [^:]+: (\S+\.md)\s*$", text, re.M)


def test_own_pages_are_in_the_navigation():
    nav = set(_nav_files())
    for own in ("index.md", "getting-started.md", "methods.md", "cli.md", "report.md", "api.md",
                "examples.md"):
        assert own in nav and (DOCS / own).exists(), own


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    exe = Path(sys.executable).with_name("mkdocs")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mkdocs"]
    run = subprocess.run([*cmd, "build", "--strict", "-d", str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def test_site_builds_strict_with_api_reference(site):
    api = (site / "api" / "index.html").read_text()
    for anchor in ("tipstat.comparison.compare", "tipstat.models.loglinear.fit_loglinear",
                   "tipstat.CaptureHistories.from_frame", "tipstat.report.html.write_report"):
        assert f'id="{anchor}"' in api, anchor
    # docstring content, not only headings: the formula of fit_loglinear and compare's returns
    assert "ComparisonTable" in api and "profile likelihood" in api
    # every page is published and in the navigation (pages not in mkdocs.yml are appended)
    home = (site / "index.html").read_text()
    for page in DOCS.glob("*.md"):
        if page.stem != "index":
            assert (site / page.stem / "index.html").exists(), page.name
            assert f'href="{page.stem}/"' in home, page.name
    assert (site / "tutorial.ipynb").exists()


def _python_blocks(page):
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


@pytest.mark.parametrize("page", ["getting-started.md", "loglinear.md", "report.md"])
def test_code_in_pages_runs(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks(page)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, page, "exec"), namespace)  # our own documentation
    if page == "loglinear.md":
        assert round(namespace["est"].n_hat) == 11313
    if page == "getting-started.md":
        assert (tmp_path / "uk5.html").exists()
        assert namespace["est"].status == "ok"


def test_tutorial_notebook_executes():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(DOCS / "tutorial.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "tipstat-comparison" in html and "tipstat-estimate" in html and "10,356.5" in html
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert "kosovo.html" in "".join(o.get("text", "") for o in outputs)


def _modules() -> list[str]:
    import pkgutil

    import tipstat as pkg

    return sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, "tipstat.")
                  if not m.name.endswith("__main__"))


#: modules whose docstrings must hold examples (the others are run when they have some)
MUST_HAVE_EXAMPLES = {"tipstat.comparison", "tipstat.models.default", "tipstat.validate",
                      "tipstat.report.plots", "tipstat.report.html", "tipstat.report.reproduce",
                      "tipstat.models.bma", "tipstat.models.bayes_loglinear"}


@pytest.mark.parametrize("module", _modules())
def test_docstring_examples_run(module):
    # every docstring example of the package runs and prints what it shows (a stale example in
    # tipstat.models.bma went unnoticed while only some modules were run)
    import doctest
    import importlib

    pytest.importorskip("matplotlib")
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if module in MUST_HAVE_EXAMPLES:
        assert result.attempted > 0


def test_hook_drops_missing_pages_and_appends_unlisted(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    (tmp_path / "index.md").write_text("# Home\n")
    (tmp_path / "extra.md").write_text("intro\n# An extra page\n")
    config = {"docs_dir": str(tmp_path),
              "nav": [{"Home": "index.md"}, {"Missing": "missing.md"},
                      {"Group": [{"Gone": "gone.md"}]}]}
    assert hooks.on_config(config)["nav"] == [{"Home": "index.md"},
                                              {"An extra page": "extra.md"}]
