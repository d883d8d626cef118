# Two commands for a new user:  `make run`  (set up, then the main job)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
EXTRAS ?= dev,ray

.PHONY: setup run test test-quick lint bench-full clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

setup: $(BIN)/.installed

# The main job: a quick benchmark of every controller on the embedded Chongqing corridor.
run: setup
	$(BIN)/cqsignal bench configs/bench_quick.yaml --out out/bench_quick

test: setup
	$(BIN)/python -m pytest -n 2 tests

# The same suite without the tests marked slow (corridor-length SUMO runs, training, Ray, long property tests).
test-quick: setup
	$(BIN)/python -m pytest -n 2 -m "not slow" tests

# ruff with the rule selection in pyproject.toml ([tool.ruff.lint]); CI runs it before the tests.
lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf out .pytest_cache
