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

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,examples]'
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

test: lint types $(STAMP_TEST)
	$(BIN)/python -m pytest -q
	$(BIN)/mkdocs build --strict --site-dir .site

$(STAMP_BENCH): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench,peers]'
	touch $@ $(STAMP_TEST) $(STAMP_RUN)

# Peers side by side: trioiis, the floors, Hypercorn-trio, Uvicorn (h11, httptools).
bench: $(STAMP_BENCH)
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) .site .mypy_cache .ruff_cache
