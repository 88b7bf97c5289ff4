"""Coverage in pytest-xdist's worker processes, from their first import of trioiis.

``make test`` runs the suite's first process under ``coverage run`` with
``COVERAGE_PROCESS_START`` naming the coverage configuration; the worker processes it starts
inherit the variable. This plugin is loaded with ``-p`` (pyproject's ``addopts``), before any
other plugin or conftest imports trioiis: in a worker it starts coverage, saves the data when
the worker's session ends (``coverage combine`` joins them), and removes the variable, so
servers the tests start as subprocesses are not measured.
"""

from __future__ import annotations

import os

import pytest

_coverage = None
if "PYTEST_XDIST_WORKER" in os.environ and "COVERAGE_PROCESS_START" in os.environ:
    import coverage

    _coverage = coverage.process_startup()
    del os.environ["COVERAGE_PROCESS_START"]


def pytest_unconfigure(config: pytest.Config) -> None:
    if _coverage is not None:
        _coverage.stop()
        _coverage.save()
