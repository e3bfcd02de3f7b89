# Two set-up commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/storage
# Installs pip's own torch pin range from pyproject.toml; see README "Installing".
PIP_FLAGS ?= --disable-pip-version-check

.PHONY: demo test test-integration dev lint format bench bench-scale

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev,e2e]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/histo-renn demo

test: $(VENV)/.installed-dev
	$(BIN)/pytest

# The scaled deployment: its configuration (needs the scale extra) and the `integration` tests
# (Postgres + Redis + Celery workers: from $HISTO_RENN_PG_URL / $HISTO_RENN_REDIS_URL when set,
# as .ci/run does, else started and stopped by the tests from Debian's postgresql and
# redis-server packages). Not part of `make test`; see README "Scaling out".
test-integration: $(VENV)/.installed-dev
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev,e2e,scale]"
	$(BIN)/pytest histo_renn_dagster_tests/integration

dev: $(VENV)/.installed
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev
	for b in gdc tiling orchestration embedding renn; do $(BIN)/python benchmarks/$$b.py || exit 1; done

bench-scale: $(VENV)/.installed-dev
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev,e2e,scale]"
	$(BIN)/python benchmarks/scale.py
