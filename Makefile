# Two commands: `make serve` and `make test`. Each makes .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: serve test lint types docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
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

bench: $(STAMP_TEST)
	$(BIN)/python benchmarks/hello.py

clean:
	rm -rf $(VENV) .site .mypy_cache .ruff_cache
