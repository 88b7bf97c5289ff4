"""The trace viewer: one self-contained file in the package, and the docs' rendered copy.

docs/trace-viewer.html must be the package's viewer with docs/trace-sample.json embedded
(both made by docs/gen_trace_sample.py from a real request); the sample must show what the
docs say it shows.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import trioiis._observability.tracing

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFRESH = "python docs/gen_trace_sample.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_trace_sample", DOCS / "gen_trace_sample.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_viewer_is_in_the_package_and_needs_no_network() -> None:
    viewer = trioiis._observability.tracing.VIEWER
    html = viewer.read_text(encoding="utf-8")
    assert Path(trioiis.__file__).parent in viewer.parents  # shipped inside the package
    assert "<script" in html
    assert "<style>" in html
    # No external resource: no src/href attribute, no @import, no module import.
    assert not re.search(r"""\b(src|href)\s*=""", html)
    assert "@import" not in html
    assert not re.search(r"\bimport\s*\(|\bimport\s+.*\bfrom\b", html)
    assert '<script type="application/json" id="trace-data"></script>' in html


def test_docs_viewer_is_the_package_viewer_with_the_sample_embedded() -> None:
    gen = _generator()
    sample = (DOCS / "trace-sample.json").read_text(encoding="utf-8")
    expected = gen.embed(trioiis._observability.tracing.VIEWER.read_text(encoding="utf-8"), sample)
    current = (DOCS / "trace-viewer.html").read_text(encoding="utf-8")
    assert current == expected, f"docs/trace-viewer.html is stale; refresh it with: {REFRESH}"


def test_the_sample_shows_children_and_a_cancel_io() -> None:
    document = json.loads((DOCS / "trace-sample.json").read_text(encoding="utf-8"))
    assert document["format"] == trioiis._observability.tracing.FORMAT
    request: dict[str, Any] = document["request"]
    assert (request["url"], request["status"]) == ("/upload-page", 408)
    assert [child["url"] for child in request["children"]] == [
        "/parts/header.html",
        "/parts/footer.html",
    ]
    assert all(child["status"] == 200 for child in request["children"])
    assert "cancelled_by_cancel_io" in [io["outcome"] for io in request["io"]]
