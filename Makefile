# undersign: `make demo` starts it, `make test` runs every test. `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.DEFAULT_GOAL := help
.PHONY: help install browser nginx demo test lint install-inputs constraints test-sqlite test-postgres test-many bench rolling-restart load fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install undersign with its test tools (quick when done)

# constraints.txt pins every package `make install` installs. It is regenerated in a
# throwaway venv, from the package registry only (no cache, no local wheels), and written
# with `pip list --format=freeze`, which prints `name==version` even for a package that was
# installed from a file: so it cannot record a path of this machine. The guard then checks it.
CONSTRAINTS_VENV := .venv-constraints
constraints: ## regenerate constraints.txt from the registry (plain name==version lines)
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) -m venv $(CONSTRAINTS_VENV)
	PIP_NO_CACHE_DIR=1 PIP_FIND_LINKS= $(CONSTRAINTS_VENV)/bin/pip install --quiet --upgrade pip
	PIP_NO_CACHE_DIR=1 PIP_FIND_LINKS= $(CONSTRAINTS_VENV)/bin/pip install --quiet '.[test]'
	$(CONSTRAINTS_VENV)/bin/pip list --format=freeze --exclude-editable \
	  | grep -viE '^(undersign|pip|setuptools|wheel)==' > constraints.txt
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) tools/check_install_inputs.py

browser: ## install Debian's chromium for the browser tests, when missing
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium"; exit 1; fi; }

nginx: ## install Debian's nginx for the deployment tests (nginx -t, the rolling restart), when missing
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	  else echo "nginx is missing: sudo apt-get install nginx"; exit 1; fi; }

demo: install ## start undersign and a GitHub emulator with sample data on http://127.0.0.1:8000
	$(BIN)/undersign demo

install-inputs: ## fail if constraints.txt, pyproject.toml or a requirements file names a local path
	$(PYTHON) tools/check_install_inputs.py

lint: install install-inputs ## install inputs, ruff, mypy, bandit and the project's semgrep rules
	$(BIN)/ruff check src tests bench tools/check_install_inputs.py
	$(BIN)/ruff format --check src tests bench tools/check_install_inputs.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/ruff check tools/house_metrics.py && $(BIN)/ruff format --check tools/house_metrics.py
	$(BIN)/bandit -c pyproject.toml -r src -ll -q
	SEMGREP_ENABLE_VERSION_CHECK=0 $(BIN)/semgrep scan --config tools/semgrep/rules.yml \
	  --metrics=off --disable-version-check --error -q src

# Two processes (pytest-xdist), one test file each at a time: most tests wait on real servers
# and processes, not on the CPU, so the SQLite pass takes about half as long.
test-sqlite: install browser nginx
	$(BIN)/pytest -n 2 --dist loadfile

# Two processes as well: every test has a PostgreSQL schema and a Redis queue name of its own,
# and no test leaves a connection open, so two workers hold a few of the server's slots (a test
# file that leaves one open fails: tests/support/pg_leaks.py, and for Redis
# tests/support/redis_leaks.py).
test-postgres: install ## the database-backed tests again, on PostgreSQL, the queue on Redis
	UNDERSIGN_TEST_QUEUE=redis $(BIN)/pytest -n 2 --dist loadfile -m "not browser" \
	  --db "$(PG_TEST_URL)" --ignore=tests/unit/test_bench_smoke.py tests/unit tests/functional

test-many: install ## two web and two worker processes sharing PostgreSQL and Redis
	$(BIN)/pytest tests/functional/test_many_processes.py

test: lint test-sqlite test-postgres ## lint, then every test (SQLite, then PostgreSQL)

bench: install ## benchmarks; prints ratios measured side by side
	$(BIN)/python -m bench

rolling-restart: install nginx ## two web processes behind nginx restarted one at a time; failed requests
	$(BIN)/python -m bench.rolling_restart

LOAD_SECONDS ?= 60
load: install ## steady webhooks with workers stopped, then started; concurrent users (bounded)
	LOAD_SECONDS=$(LOAD_SECONDS) $(BIN)/python -m bench.load --memory

FUZZ_SECONDS ?= 30
fuzz: install ## atheris on the next validator, webhook signature, sanitizer, co-author parser
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python tools/fuzz/run.py

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
