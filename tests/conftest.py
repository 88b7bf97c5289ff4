from __future__ import annotations

from pathlib import Path

import pytest

from tests import background


def _preparations_for(nodeids: list[str]) -> set[str]:
    return {
        name
        for name, (test, _, _) in background.PREPARATIONS.items()
        if any(nodeid.startswith(test) for nodeid in nodeids)
    }


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the session's first process: workers inherit
        background.share()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the fresh environments the selected tests need (tests/background.py); under
    pytest-xdist, the controller starts them instead of every worker."""
    if not hasattr(session.config, "workerinput"):
        background.start(_preparations_for([item.nodeid for item in session.items]))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    background.start(_preparations_for(ids))


def pytest_sessionfinish(session: pytest.Session) -> None:
    background.finish()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A tiny site: index.html, hello.txt, a folder with a default document."""
    (tmp_path / "index.html").write_text("<h1>home</h1>\n")
    (tmp_path / "hello.txt").write_text("hello\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "index.html").write_text("<h1>dir</h1>\n")
    return tmp_path
