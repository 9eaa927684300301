# Two commands for a newcomer: `make run` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# Compiled translations of the front desk, and axe-core and the Nu HTML Checker (vnu-jar) for the
# browser tests (npm registry; the checker runs on Java).
MO     := $(patsubst %.po,%.mo,$(wildcard hub/translations/*/LC_MESSAGES/messages.po))
AXE    := tests/browser/node_modules/axe-core/axe.min.js

.PHONY: install run test lint typecheck clean messages bench

$(STAMP): pyproject.toml simulators/pyproject.toml tests/thirdparty/loket-spool/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]' -e simulators -e tests/thirdparty/loket-spool
	touch $(STAMP)

install: $(STAMP) $(MO) $(AXE)

hub/translations/%/LC_MESSAGES/messages.mo: hub/translations/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -i $< -o $@ -l $*

$(AXE): tests/browser/package.json
	@if command -v npm >/dev/null; then \
	  cd tests/browser && npm install --no-audit --no-fund --silent && touch node_modules/axe-core/axe.min.js node_modules/vnu-jar/build/dist/vnu.jar; \
	else echo "npm not found: the browser accessibility tests will skip (install nodejs and npm)"; fi

# After changing a page's text: collect the strings and add the new ones to every catalog.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l --no-location --omit-header -o hub/translations/messages.pot .
	$(BIN)/pybabel update -i hub/translations/messages.pot -d hub/translations -w 100

run: install
	$(BIN)/loket run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The suite runs on every core (pytest-xdist; each worker process has its own databases, ports
# and peers) and names its slowest tests, so a CI log shows where the time goes. Tests marked
# `alone` (a time measured on the machine: the chaos run's stall bound) run after it, by themselves,
# and print what they measured (-rP: deliveries per second during the kills, the longest stall).
PYTEST_ARGS ?= -n auto --durations=30

test: install lint typecheck
	$(BIN)/lint-imports --no-cache
	$(BIN)/loket mappings validate
	$(BIN)/pytest $(PYTEST_ARGS) -m "not alone"
	$(BIN)/pytest -m alone --durations=5 -rP

# Benchmarks next to their denominators (bench/run.py); QUICK=1 for a two-minute smoke.
# Needs PostgreSQL (127.0.0.1:5432), RabbitMQ (127.0.0.1:5672) and wrk; writes bench/RESULTS.md.
bench: install
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@command -v wrk >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends wrk
	$(BIN)/python -m bench.run $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache tests/browser/node_modules $(MO)
