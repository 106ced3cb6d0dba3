# One command to run, one to test; each sets itself up first (a virtualenv in .venv).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: help setup setup-dev run chat test test-unit test-integration lint typecheck bench migrate db-start db-stop clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.runtime: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@

setup: $(VENV)/.runtime  ## create .venv with what the service needs

setup-dev: $(VENV)/.dev  ## create .venv with the test and lint tools too

run: setup  ## set up, migrate the (embedded) database, and run the service
	$(PY) athenaeum.py db upgrade
	$(PY) athenaeum.py run

test: setup-dev  ## set up and run the whole test suite
	$(PY) -m pytest

test-unit: setup-dev  ## unit tests only (no database)
	$(PY) -m pytest tests/unit

test-integration: setup-dev  ## integration tests (real PostgreSQL)
	$(PY) -m pytest tests/integration

lint: setup-dev  ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup-dev  ## mypy over the packages
	$(VENV)/bin/mypy agent database slack athenaeum.py

bench: setup-dev  ## queue benchmarks (prints a table and the machine)
	$(PY) scripts/bench_queue.py

migrate: setup  ## alembic upgrade head
	$(PY) athenaeum.py db upgrade

db-start: setup  ## start the embedded PostgreSQL and print its URL
	@$(PY) athenaeum.py db start

db-stop: setup  ## stop the embedded PostgreSQL
	$(PY) athenaeum.py db stop

clean:  ## remove the virtualenv and caches (keeps .athenaeum data)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
