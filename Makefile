# `make demo` and `make test` work from a clean clone: they create .venv and install first.
SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU build of torch from this machine kind's local disk; CUDA machines take the default build.
TORCH_CPU := torch==2.13.0

.PHONY: setup demo test test-fast serve studio lint format wheel-check clean

$(STAMP): pyproject.toml constraints.txt
	@echo "Setting up .venv: first time only, about 2-3 minutes"
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	@set -o pipefail; \
	if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(PYTHON) -c "import torch" 2>/dev/null; then \
		echo "  installing torch (CPU build)..."; \
		$(PYTHON) -m pip install -q "$(TORCH_CPU)" 2>&1 | { grep -v "is ignored: it is neither" || true; }; \
	fi; \
	echo "  installing visuels and its libraries (diffusers, transformers, Prefect, c2pa...)"; \
	$(PYTHON) -m pip install -q -c constraints.txt -e ".[dev]" 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@touch $(STAMP)
	@echo "Set-up done."

setup: $(STAMP)

demo: setup
	$(VENV)/bin/visuels demo

# Two test processes (pytest-xdist), each file's tests in one of them (module fixtures: a served
# cluster, a project folder, are made once): many tests wait on servers and subprocesses, so a
# second process fills the cores. One thread per library pool, or both processes oversubscribe.
# --no-loadscope-reorder: the files go in the order tests/conftest.py sorts them (the longest
# first), not xdist's (the most tests first), so the two processes finish together.
TEST_PROCESSES ?= 2
test: setup
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder --durations=20

# The unit tier, for the edit loop (under 3 minutes on 2 cores): no flows, servers, browsers,
# PostgreSQL or long measurements. `make test` runs everything, as CI does.
test-fast: setup
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder -m "not (slow or integration or e2e or postgres)"

serve: setup
	$(VENV)/bin/python -m visuels.flows.serve

studio: setup
	$(VENV)/bin/visuels studio

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/test_layout.py  # the layers of pyproject.toml

# The package as others install it: a wheel built from here, in a fresh virtual environment
# (the dependencies as constraints.txt resolved them), runs the demo for one commune in an empty
# folder and verifies its pictures, outside any checkout.
wheel-check: setup
	bash .ci/wheel-check

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) outputs/*/ .pytest_cache .ruff_cache
