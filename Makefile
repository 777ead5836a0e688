# The two commands of the README: `make run` starts the product, `make test` runs the tests.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: run test lint migrate demo bench bench-learning lock clean install install-runtime

# Reinstall only when a pinned set changes: the product's (requirements.txt) for `make run`, the same pins
# with the test tools (requirements-dev.txt) for the rest. Every file is checked against its hash.
$(VENV)/.installed-runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.txt
	touch $@

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@ $(VENV)/.installed-runtime

install-runtime: $(VENV)/.installed-runtime

install: $(VENV)/.installed

migrate: install-runtime
	$(PY) manage.py migrate --no-input
	$(PY) manage.py createcachetable

# The demo bot's history is replayed by the worker once `make run` has started it (the first page does not
# wait for it; the dashboard shows its progress), and the bot starts on the moving sample market after it.
demo: migrate
	$(PY) manage.py seed_demo --history 300 --background

run: demo
	$(PY) manage.py collectstatic --no-input --verbosity 0
	@echo "TradingAI on http://127.0.0.1:$${TRADINGAI_PORT:-8000}  (Ctrl-C stops web, workers and beat)"
	@# Ctrl-C reaches make, this shell and honcho (the processes honcho starts are sessions of their own):
	@# honcho stops them and exits 130, which make would report as an error, and this shell would die of
	@# the signal before it could say otherwise. The shell ignores it, and a stop by Ctrl-C is a success.
	trap "" INT; PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start || test $$? -eq 130

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

# Re-resolve the pinned sets from pyproject.toml with pip-compile, in a throwaway venv, each file with its
# hashes: requirements.txt, the product's dependencies only (production and `make run` install it), and
# requirements-dev.txt, the same pins with the dev extra's test tools. Pins already in the files are kept
# where they still fit; `make lock ARGS=--upgrade` moves everything to the newest releases that do.
LOCK := CUSTOM_COMPILE_COMMAND="make lock" /tmp/tradingai-lock/bin/pip-compile --quiet --generate-hashes \
	--strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links $(ARGS)

lock:
	rm -rf /tmp/tradingai-lock && $(PYTHON) -m venv /tmp/tradingai-lock
	/tmp/tradingai-lock/bin/pip install --quiet pip-tools
	$(LOCK) pyproject.toml --output-file requirements.txt
	$(LOCK) pyproject.toml --extra dev --constraint requirements.txt --output-file requirements-dev.txt

clean:
	rm -rf $(VENV) var
