"""docs/testing.md's quick start works as written, in a fresh project with no configuration:
in this environment, and in a fresh virtual environment that installs ``trioiis[testing]``
from this checkout (what a module author does). Without pytest-trio, collection stops with
one line saying what to install; without the extra, ``trioiis.testing`` still imports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests import background

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "testing.md"
INSTALL_TIMEOUT = 600


def quickstart_files() -> dict[str, str]:
    """Every ```py block that follows a ``<!-- quickstart: NAME -->`` line, by file name."""
    text = PAGE.read_text(encoding="utf-8")
    found = re.findall(r"<!-- quickstart: (\S+) -->\n```py\n(.*?)\n```\n", text, re.DOTALL)
    assert found, "docs/testing.md lost its quick start"
    return {name: code + "\n" for name, code in found}


def fresh_project(folder: Path) -> Path:
    """An empty folder holding only the quick start's files: no pytest.ini, no conftest."""
    folder.mkdir()
    for name, code in quickstart_files().items():
        (folder / name).write_text(code, encoding="utf-8")
    return folder


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env=background.clean_env(),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )


def passed(result: subprocess.CompletedProcess[str], count: int) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"\b{count} passed\b", result.stdout), result.stdout


def test_quickstart_runs_in_a_fresh_project(tmp_path: Path) -> None:
    project = fresh_project(tmp_path / "project")
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)
    passed(result, 4)


def test_without_pytest_trio_collection_stops_with_one_line(tmp_path: Path) -> None:
    project = fresh_project(tmp_path / "project")
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:trio"], project)
    assert result.returncode == pytest_usage_error()
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: test_hello_module.py::test_hello uses trioiis fixtures, which need "
        "pytest-trio: pip install 'trioiis[testing]'"
    ], result.stderr


def pytest_usage_error() -> int:
    import pytest

    return int(pytest.ExitCode.USAGE_ERROR)


def test_quickstart_in_a_fresh_venv_with_the_extra(tmp_path: Path) -> None:
    """``pip install trioiis`` alone: ``trioiis.testing`` imports and checks a module
    without pytest; ``pip install 'trioiis[testing]'``: the quick start passes. The venv,
    the checkout's wheel and its bare install are made while the suite runs
    (tests/background.py); dependencies from the package index (pip's cache makes it quick)."""
    prepared = background.ready("bare-install")
    python = str(prepared / "venv" / "bin" / "python")
    (wheel,) = (prepared / "dist").glob("trioiis-*.whl")
    bare = run(
        [
            python,
            "-c",
            "import importlib.util, trioiis.testing\n"
            "assert importlib.util.find_spec('pytest') is None\n"
            "from trioiis.testing import check_cancellation_safety\n"
            "print(check_cancellation_safety([], 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'))",
        ],
        tmp_path,
    )
    assert bare.returncode == 0, bare.stderr
    assert "complete=True, problems=()" in bare.stdout
    install = run(
        [python, "-m", "pip", "install", "-q", f"trioiis[testing] @ {wheel.as_uri()}"], tmp_path
    )
    assert install.returncode == 0, install.stderr
    project = fresh_project(tmp_path / "project")
    passed(run([python, "-m", "pytest", "-q"], project), 4)
