# Two commands: `make serve` and `make test`. Each makes .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
STAMP_BENCH := $(VENV)/.installed-bench

.PHONY: serve test lint types docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The docs' examples use httpx as their client: the `examples` extra.
$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[examples]'
	touch $@

# The tests exercise every feature: every extra of the package, and the `dev` dependency
# group (PEP 735: linters, type checker, docs, coverage, test clients), which needs
# pip >= 25.1 (the venv's pip is upgraded when it is made).
TEST_EXTRAS := testing,examples,compression,metrics,fast,bench,acme

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[$(TEST_EXTRAS)]' --group dev
	touch $@ $(STAMP_RUN)

serve: $(STAMP_RUN)
	$(BIN)/trioiis serve examples/site --bind 127.0.0.1:8080 \
		--module hello=examples/modules/hello.py:register_module --access-log -

lint: $(STAMP_TEST)
	$(BIN)/ruff format --check trioiis tests examples benchmarks
	$(BIN)/ruff check trioiis tests examples benchmarks
	$(BIN)/lint-imports

types: $(STAMP_TEST)
	$(BIN)/mypy

docs: $(STAMP_TEST)
	$(BIN)/mkdocs build --strict --site-dir .site

# The suite runs in one process per core (pytest-xdist; tests that share a module fixture
# are grouped onto one process), each under coverage from its first import of trioiis
# (tests/worker_coverage.py; branch = true in pyproject.toml). The figure is the share of
# trioiis/'s lines and branches the in-process tests reach (servers the tests start as
# subprocesses are not measured). Coverage's tracer costs the suite CPU (about +45 % on
# Python 3.11): `make test COVERAGE=0` runs it without. The docs site is built (--strict)
# by tests/test_docs.py.
COVERAGE ?= 1
PYTEST_ARGS := -q -n auto --dist loadgroup

test: lint types $(STAMP_TEST)
ifeq ($(COVERAGE),0)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
else
	$(BIN)/coverage erase
	COVERAGE_PROCESS_START=pyproject.toml $(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	@$(BIN)/coverage combine -q
	@echo "coverage of trioiis/ (lines and branches): $$($(BIN)/coverage report --format=total)%"
endif

$(STAMP_BENCH): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[$(TEST_EXTRAS),peers]' --group dev
	touch $@ $(STAMP_TEST) $(STAMP_RUN)

# Peers side by side: trioiis, the floors, Hypercorn-trio, Uvicorn (h11, httptools).
bench: $(STAMP_BENCH)
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) .site .mypy_cache .ruff_cache .coverage .coverage.*
