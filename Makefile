# Quick start: `make run` and `make test` do all the set-up on a machine with only Python and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/trilemma run

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check simulator tests calibration
	$(BIN)/ruff format --check simulator tests calibration

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/pytest

test: lint typecheck unit

# Speed and memory figures, printed (not asserted, not part of `make test`).
bench: $(VENV)/.installed-dev
	$(BIN)/python tests/benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
