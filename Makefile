# iwork-mc: `make run` starts a working message center; `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The machine's PostgreSQL; the PostgreSQL-backed tests fail (not skip) when it is unreachable.
IWORK_MC_TEST_PG_DSN ?= postgresql://postgres@127.0.0.1:5432/test
export IWORK_MC_TEST_PG_DSN

.PHONY: install run test test-ha lint typecheck unit bench bench-quick bench-deps clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Another port or address: IWORK_MC_PORT=8081 make run (IWORK_MC_HOST for the address).
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

# The HA tier on a real pg_auto_failover cluster: switchover and node crash under load
# (installs pg_auto_failover with apt-get where missing; `make test` runs the switchover only).
test-ha: install
	$(BIN)/pytest tests/ha -m ha -s

unit: install
	$(BIN)/pytest tests/unit -q

# Benchmarks (docs/benchmarks.md): the bench extra (matplotlib), wrk, then the standard set
# (under 5 minutes; Kannel, the reference peer, is installed by bench/kannel.py where missing).
bench: install bench-deps
	$(BIN)/python bench/run.py

bench-quick: install bench-deps
	$(BIN)/python bench/run.py --quick

bench-deps: install
	@$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/pip install --quiet -e '.[dev,bench]'
	@command -v wrk >/dev/null 2>&1 || { \
		echo "wrk is missing: installing it with apt-get"; \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y wrk || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; }; } \
		|| { echo "error: cannot install wrk (needs root and Debian's packages): install wrk and run make bench again" >&2; exit 1; }; }

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
