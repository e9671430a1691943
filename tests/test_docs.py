"""Every code example of the README and the documentation site runs, extracted from the pages themselves.

The ```python blocks of ``README.md`` and ``docs/*.md`` are read here, a ``--8<-- "file"`` line replaced by that
file as the site's snippets extension does, and each distinct block is run in a fresh namespace in an empty
working directory (what a reader pasting it would get). The site itself is built by ``mkdocs build --strict``
in ``scripts/run.sh test``, so a renamed name or argument in an API page breaks the build.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.M)
#: the README is the newcomer's page: longer than this, it belongs on the site
README_MAX_LINES = 300


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, snippet lines replaced by the files they name (paths from the repository)."""
    text = page.read_text()
    return [SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text().rstrip("\n"), block) for block in
            BLOCK.findall(text)]


def examples() -> list[tuple[str, str]]:
    """``(where, code)`` for each distinct block (a block on two pages runs once)."""
    seen: dict[str, str] = {}
    for page in PAGES:
        for i, code in enumerate(python_blocks(page)):
            seen.setdefault(code.strip(), f"{page.relative_to(ROOT)}#{i + 1}")
    return [(where, code) for code, where in seen.items()]


def test_every_page_has_its_examples_found() -> None:
    found = {str(page.relative_to(ROOT)) for page in PAGES if python_blocks(page)}
    assert {"README.md", "docs/index.md", "docs/methods.md", "docs/metrics.md", "docs/tasks.md"} <= found, found


def test_the_readme_is_one_page_and_its_example_is_the_sites() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    quickstart = (ROOT / "docs" / "examples" / "quickstart.py").read_text().strip()
    assert quickstart in [block.strip() for block in python_blocks(ROOT / "README.md")]


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), examples(), ids=[where for where, _ in examples()])
def test_example_runs(where: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, where, "exec"), {"__name__": "__main__"})  # the documented example itself


#: what the reader must never see on a page: a Sphinx role, an RST math directive, an RST table rule, or a
#: cross-reference that did not resolve (mkdocs-autorefs leaves ``[name][lightning_cam.x]`` as text)
RAW_MARKUP = re.compile(r":(?:class|func|mod|attr|meth|data|math):`|\.\. math::|^\s*={3,}(?:\s+={3,})+\s*$"
                        r"|\]\[lightning_cam[\w.]*\]", re.M)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `mkdocs build --strict` renders it (warnings are errors), in a folder of its own."""
    import os
    import subprocess
    import sys

    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return site


def _text(page: Path) -> str:
    """A built page's visible text (tags stripped, entities decoded)."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_the_built_site_shows_no_raw_role_math_directive_or_rst_table(built_site: Path) -> None:
    pages = sorted(built_site.rglob("*.html"))
    assert len(pages) >= 12
    raw = {str(p.relative_to(built_site)): RAW_MARKUP.findall(_text(p))[:3] for p in pages}
    assert not {k: v for k, v in raw.items() if v}, raw
    methods = (built_site / "methods" / "index.html").read_text()
    assert 'class="arithmatex"' in methods and r"\sum" in methods  # formulas go to MathJax, not as plain text


def test_the_registry_tables_list_every_registered_entry(built_site: Path) -> None:
    from lightning_cam.callbacks.views import VIEW_REGISTRY
    from lightning_cam.methods import available_methods
    from lightning_cam.metrics import metric_names
    from lightning_cam.targets import available_targets

    pages = {"methods": available_methods(), "metrics": metric_names(), "callback": VIEW_REGISTRY.names(),
             "tasks": available_targets()}
    for page, names in pages.items():
        html = (built_site / page / "index.html").read_text()
        tables = "".join(re.findall(r"<table>.*?</table>", html, re.S))
        missing = [n for n in names if f"<code>{n}</code>" not in tables]
        assert not missing, (page, missing)


# ----------------------------------------------------------------------------- commands as written
#: what a command in the docs or a config comment may start with on a fresh clone after the README's set-up
RUNNABLE = ("bash scripts/", ".venv/bin/", "lightning-cam ", "source .venv/bin/activate")
_COMMAND = re.compile(r"^(?:\$ )?((?:python|tensorboard|mkdocs|pytest|pip|bash|lightning-cam|\.venv/bin/)\S*\s.*)$")


def commands() -> list[tuple[str, str]]:
    """(where, command) for every shell line of the pages' bash/shell/plain code blocks and the configs' comments."""
    found: list[tuple[str, str]] = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```(?:bash|shell|sh|console)?\n(.*?)```", page.read_text(), flags=re.S):
            found += [(page.name, m.group(1)) for line in block.splitlines()
                      if (m := _COMMAND.match(line.strip()))]
    for config in sorted((ROOT / "configs").glob("*.yaml")):
        for line in config.read_text().splitlines():
            if line.startswith("#") and (m := _COMMAND.match(line.lstrip("# ").strip())):
                found.append((config.name, m.group(1)))
    return found


def test_every_command_in_the_docs_and_configs_runs_on_a_fresh_clone_as_written() -> None:
    """A bare ``python`` or ``tensorboard`` fails on a fresh clone (the set-up's venv is not active): each command
    names the venv's program by its path, or is the README's own entry point, and the files it names exist."""
    found = commands()
    assert len(found) >= 10, found
    venv_bin = Path(sys.executable).parent
    for where, command in found:
        assert command.startswith(RUNNABLE), f"{where}: {command!r} does not run on a fresh clone as written"
        program = command.split()[0]
        if program.startswith(".venv/bin/"):
            assert (venv_bin / program.removeprefix(".venv/bin/")).exists(), f"{where}: {program} is not installed"
        for arg in command.split()[1:]:
            if re.fullmatch(r"[\w./-]+\.(py|yaml|sh)", arg):
                assert (ROOT / arg).is_file(), f"{where}: {command!r} names {arg}, which does not exist"
