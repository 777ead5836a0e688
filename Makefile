# The two commands of the README: `make run` starts the product, `make test` runs the tests.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: run test lint migrate demo bench bench-learning lock clean

# Reinstall only when the pinned set changes.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py createcachetable

demo: migrate
	$(PY) manage.py seed_demo

run: demo
	$(PY) manage.py collectstatic --no-input --verbosity 0
	@echo "TradingAI on http://127.0.0.1:$${TRADINGAI_PORT:-8000}  (Ctrl-C stops web, workers and beat)"
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest

# Speed figures against the targets of the issues (never asserted in tests).
bench: install
	$(PY) -m bench.run

# The learning benchmark alone (bench/bench_learning.py), e.g. `make bench-learning ARGS=--quick`.
bench-learning: install
	$(PY) -m bench.bench_learning $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Re-resolve the pinned set from pyproject.toml in a throwaway venv.
lock:
	rm -rf /tmp/tradingai-lock && $(PYTHON) -m venv /tmp/tradingai-lock
	/tmp/tradingai-lock/bin/pip install --quiet '.[dev]'
	{ echo "# Pinned set that installs on Python 3.11 (resolved from pyproject.toml's dependencies and the dev extra)."; \
	  echo "# Regenerate: make lock"; \
	  /tmp/tradingai-lock/bin/pip freeze --exclude tradingai; } > requirements.txt

clean:
	rm -rf $(VENV) var
