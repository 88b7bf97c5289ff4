"""The documentation site: its examples run, its facts match the code, and it builds.

* Every fenced block marked ```python in docs/*.md is a complete program. Each one runs in
  its own interpreter (``-W error``, working folder a fresh temporary one, a hard timeout;
  the tutorial pages' in a fresh environment made as ``make serve`` makes it): it starts a
  server on 127.0.0.1 port 0, makes requests, asserts and shuts down. Fragments
  that are not meant to run are marked ```py instead.
* Every ```toml block is a configuration file that ``trioiis.load_config`` accepts.
* configuration.md names every field of ``ServerConfig`` and ``Limits``, and each limit's
  default is the one in the code.
* ``mkdocs build --strict`` succeeds and produces a page for every docs/*.md.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import trioiis
from tests import background

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
#: Fence languages the docs may use; a typo (```pyhton) would otherwise silently not run.
KNOWN_LANGUAGES = {"python", "py", "toml", "sh", "text"}
#: Pages that must show at least one runnable example.
PAGES_WITH_EXAMPLES = {
    "index.md",
    "modules.md",
    "cancellation.md",
    "configuration.md",
    "embedding.md",
    "websockets.md",
    "automatic-https.md",
}
EXAMPLE_TIMEOUT = 30


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page (indented fences too, dedented)."""
    blocks = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)(`{3,})\s*([\w+-]*)", lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence, language = opening.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        assert end < len(lines), f"{page.name}:{i + 1}: unclosed code fence"
        body = [
            line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end]
        ]
        blocks.append(Block(page.name, i + 1, language, "\n".join(body) + "\n"))
        i = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in code_blocks(page)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.language == "python"]
TOML_BLOCKS = [block for block in ALL_BLOCKS if block.language == "toml"]
#: The pages a newcomer follows first: their examples run in a fresh environment made as
#: the README's set-up (``make serve``) makes it, with nothing from the test extras or the
#: repository's folder (see the end of this file); the other pages' run in this one.
TUTORIAL_PAGES = ("index.md", "modules.md", "configuration.md", "modules-builtin.md")
TUTORIAL_BLOCKS = [block for block in PYTHON_BLOCKS if block.page in TUTORIAL_PAGES]
OTHER_BLOCKS = [block for block in PYTHON_BLOCKS if block.page not in TUTORIAL_PAGES]


def test_docs_fences_use_known_languages() -> None:
    unknown = [f"{b.id} ```{b.language}" for b in ALL_BLOCKS if b.language not in KNOWN_LANGUAGES]
    assert not unknown, f"unknown fence languages (runnable examples are ```python): {unknown}"


def test_docs_pages_have_runnable_examples() -> None:
    assert {p.name for p in PAGES} >= PAGES_WITH_EXAMPLES
    pages_with_examples = {block.page for block in PYTHON_BLOCKS}
    assert pages_with_examples >= PAGES_WITH_EXAMPLES


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None: still running at the timeout (then killed)
    output: str


@pytest.fixture(scope="module")
def example_outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """Run the selected examples all at once, each in its own process and folder."""
    selected = [
        item.callspec.params["block"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_docs_python_example_runs"
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # examples may import examples.*
    return run_examples(selected, Path(sys.executable), env, tmp_path_factory)


def run_examples(
    blocks: list[Block],
    python: Path,
    env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Outcome]:
    """Run ``blocks`` with ``python``, each in its own process and empty folder, as many at
    once as there are cores (more only compete for them); each one gets EXAMPLE_TIMEOUT
    seconds from its own start (then it is killed), however busy the machine is."""
    waiting = list(blocks)
    running: dict[str, tuple[subprocess.Popen[str], float]] = {}
    outcomes: dict[str, Outcome] = {}
    at_once = max(2, os.cpu_count() or 2)
    while waiting or running:
        while waiting and len(running) < at_once:
            block = waiting.pop(0)
            folder = tmp_path_factory.mktemp("example")
            script = folder / "example.py"
            script.write_text(block.code, encoding="utf-8")
            process = subprocess.Popen(
                [str(python), "-W", "error", str(script)],
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            running[block.id] = (process, time.monotonic() + EXAMPLE_TIMEOUT)
        # Wait for the one started first (the others keep running meanwhile).
        block_id, (process, deadline) = next(iter(running.items()))
        del running[block_id]
        try:
            output, _ = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
            outcomes[block_id] = Outcome(process.returncode, output)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            outcomes[block_id] = Outcome(None, output)
    return outcomes


# Each group of examples is run at once by a module fixture: one process of the session runs them.
@pytest.mark.xdist_group("docs-examples")
@pytest.mark.parametrize("block", OTHER_BLOCKS, ids=lambda block: block.id)
def test_docs_python_example_runs(block: Block, example_outcomes: dict[str, Outcome]) -> None:
    outcome = example_outcomes[block.id]
    assert outcome.returncode is not None, (
        f"{block.id}: still running after {EXAMPLE_TIMEOUT} s\n{outcome.output}"
    )
    assert outcome.returncode == 0, f"{block.id} failed:\n{outcome.output}"


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=lambda block: block.id)
def test_docs_toml_example_is_a_valid_config(block: Block, tmp_path: Path) -> None:
    config_file = tmp_path / "site.toml"
    config_file.write_text(block.code, encoding="utf-8")
    config = trioiis.load_config(config_file)
    assert isinstance(config, trioiis.ServerConfig)


def _table_rows(text: str) -> dict[str, str]:
    """Markdown table rows keyed by the backquoted name in their first cell."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\|\s*`(\w+)`\s*\|", line)
        if match:
            rows.setdefault(match.group(1), line)
    return rows


def test_docs_configuration_lists_every_field_and_limit_default() -> None:
    rows = _table_rows((DOCS / "configuration.md").read_text(encoding="utf-8"))
    for field in dataclasses.fields(trioiis.ServerConfig):
        assert field.name in rows, f"ServerConfig.{field.name} is not documented"
    for field in dataclasses.fields(trioiis.Limits):
        assert field.name in rows, f"Limits.{field.name} is not documented"
        assert f"`{field.default!r}`" in rows[field.name], (
            f"Limits.{field.name}: the documented default is not `{field.default!r}`"
        )


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for page in PAGES:
        html = site / "index.html" if page.stem == "index" else site / page.stem / "index.html"
        assert html.is_file(), f"{page.name} was not built"
        title = re.search(r"^# (.+)$", page.read_text(encoding="utf-8"), re.M)
        assert title is not None, f"{page.name} has no '# title'"
        assert title.group(1).strip().replace("`", "") in html.read_text(encoding="utf-8")


# ------------------------------------------------------------------ the tutorial, as a newcomer


@pytest.fixture(scope="module")
def tutorial_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """A fresh virtual environment made by the Makefile rule ``make serve`` uses (made while
    the suite runs: tests/background.py), then every tutorial example run in it, each in its
    own empty folder, all at once."""
    venv = background.ready("newcomer") / ".venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return run_examples(TUTORIAL_BLOCKS, venv / "bin" / "python", env, tmp_path_factory)


def test_every_tutorial_page_has_examples() -> None:
    assert {block.page for block in TUTORIAL_BLOCKS} == set(TUTORIAL_PAGES)


@pytest.mark.xdist_group("tutorial")
@pytest.mark.parametrize("block", TUTORIAL_BLOCKS, ids=lambda block: block.id)
def test_tutorial_example_runs_in_a_fresh_make_serve_environment(
    block: Block, tutorial_outcomes: dict[str, Outcome]
) -> None:
    outcome = tutorial_outcomes[block.id]
    assert outcome.returncode == 0, f"{block.id} in a fresh environment:\n{outcome.output}"


def test_shell_examples_name_files_that_exist() -> None:
    """A command in the docs that loads ``path/file.py:function`` names a file of the
    repository (run from its folder), or one the same page writes or says to save.
    """

    def written_by_page(page: str, name: str) -> bool:
        code = "".join(b.code for b in PYTHON_BLOCKS if b.page == page)
        text = (DOCS / page).read_text(encoding="utf-8")
        return f'"{name}"' in code or f"'{name}'" in code or f"saved as `{name}`" in text

    missing = [
        f"{block.id}: {path}"
        for block in ALL_BLOCKS
        if block.language == "sh"
        for path in re.findall(r"([\w./-]+\.py):\w+", block.code)
        if not (ROOT / path).is_file() and not written_by_page(block.page, path)
    ]
    assert not missing
