# One command to run, one to test; each sets itself up first (a virtualenv in .venv).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: help setup setup-dev browser run chat test test-unit test-integration lint typecheck bench bench-e2e bench-compare profile chaos soak load load-python migrate db-start db-stop clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

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

chat: setup  ## set up, migrate, index the project's docs as a starter corpus (once), talk to the assistant
	$(PY) athenaeum.py db upgrade
	$(PY) athenaeum.py docs ingest docs --source athenaeum
	$(PY) athenaeum.py chat

browser:  ## Debian's chromium + chromedriver for the dashboard's browser test (never a downloaded browser)
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium chromium-driver; \
	fi

test: setup-dev browser  ## set up and run the whole test suite
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

bench-e2e: setup-dev  ## Socket Mode envelope -> final reply with an instant fake Claude; DB statement latency
	$(PY) scripts/bench_e2e.py

BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python

$(BENCH_VENV)/.bench: requirements.txt requirements-bench.txt
	@test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV) || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r requirements-bench.txt
	@touch $@

bench-compare: $(BENCH_VENV)/.bench  ## Athenaeum vs pgqueuer and procrastinate (own venv), writes docs/benchmarks.md
	$(BENCH_PY) scripts/bench_compare.py --runs $(or $(RUNS),3) --write docs/benchmarks.md

profile: $(BENCH_VENV)/.bench  ## py-spy over a c=4 drain of 20,000 no-op events: where the time goes
	$(BENCH_PY) scripts/profile_drain.py --concurrency 4

chaos: setup-dev  ## the fault suite of reliability.md (tests marked fault), invariants checked after each
	$(PY) -m pytest -m fault -q

soak: setup-dev  ## N minutes (MINUTES=10) of mixed load with faults, then an invariant report; not in CI
	$(PY) scripts/soak.py --minutes $(or $(MINUTES),10)

LOAD_HOST ?= http://127.0.0.1:3000
load: $(BENCH_VENV)/.bench  ## headless locust against a running HTTP Events API endpoint (LOAD_HOST, LOAD_SIGNING_SECRET)
	$(BENCH_VENV)/bin/locust -f tests/performance/locustfile.py --host $(LOAD_HOST) --headless \
		-u $(or $(USERS),20) -r 5 -t $(or $(SECONDS),60)s --only-summary

load-python: setup  ## the same load without locust; no URL= starts its own database and endpoint (RATE=, SECONDS=)
	$(PY) tests/performance/slack_load.py $(if $(URL),--url $(URL) --secret "$(SECRET)",--serve) \
		--rate $(or $(RATE),100) --seconds $(or $(SECONDS),20)

migrate: setup  ## alembic upgrade head
	$(PY) athenaeum.py db upgrade

db-start: setup  ## start the embedded PostgreSQL and print its URL
	@$(PY) athenaeum.py db start

db-stop: setup  ## stop the embedded PostgreSQL
	$(PY) athenaeum.py db stop

clean:  ## remove the virtualenvs and caches (keeps .athenaeum data)
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .ruff_cache .mypy_cache
