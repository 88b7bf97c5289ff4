from __future__ import annotations

from pathlib import Path

import pytest

from tests import background


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the fresh environments the selected tests need (tests/background.py)."""
    background.start(
        {
            name
            for name, (test, _, _) in background.PREPARATIONS.items()
            if any(item.nodeid.startswith(test) for item in session.items)
        }
    )


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
