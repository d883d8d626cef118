# Two commands for a new user:  `make run`  (set up, then the main job)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
EXTRAS ?= dev,ray

.PHONY: setup run test bench-full clean

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

clean:
	rm -rf out .pytest_cache
