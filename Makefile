# iwork-mc: `make run` starts a working message center; `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The machine's PostgreSQL; the PostgreSQL-backed tests fail (not skip) when it is unreachable.
IWORK_MC_TEST_PG_DSN ?= postgresql://postgres@127.0.0.1:5432/test
export IWORK_MC_TEST_PG_DSN

.PHONY: install run test lint typecheck unit bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/iwork-mc db upgrade
	$(BIN)/iwork-mc run --dev-app

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit -q

bench: install
	$(BIN)/python bench/accept.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
