# Two entry points for a fresh machine (see README):
#   make repro  -- set up .venv from requirements.txt and run the whole DVC pipeline
#   make test   -- set up .venv from requirements.txt and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.requirements-installed

.PHONY: setup repro test test-fast bench

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

repro: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" dvc repro

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" python -m pytest -q tests

test-fast: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" python -m pytest -q -m "not slow" tests

bench: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" python -m stages.bench
