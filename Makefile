# Two commands for a newcomer: `make demo` and `make test`. Each sets up what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORPUS ?= ../shared/istio-corpus
ARGS ?=

COMPILED := build/compiled

.PHONY: demo test lint typecheck unit unit-compiled compiled e2e-deps bench bench-pure soak clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check libmesh adapters tests benchmarks examples tools
	$(BIN)/ruff format --check libmesh adapters tests benchmarks examples tools

typecheck: $(STAMP)
	$(BIN)/mypy

# The end-to-end tests drive Debian's prometheus and chromium: installed here when missing (as root, with
# apt-get); elsewhere those tests skip with the reason (and fail under CI=true).
E2E_DEBS = $(if $(wildcard /usr/bin/prometheus),,prometheus) $(if $(wildcard /usr/bin/chromium),,chromium)

e2e-deps:
	@if [ -n "$(strip $(E2E_DEBS))" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(strip $(E2E_DEBS)) for the end-to-end tests"; \
	    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(E2E_DEBS) >/dev/null; \
	  else echo "cannot install $(strip $(E2E_DEBS)) (needs root and apt-get): the tests that need them skip"; fi; \
	fi

unit: $(STAMP) e2e-deps
	$(BIN)/python -m pytest -q

# The compiled build (docs/design.md): a copy of the working tree whose hot-path modules mypyc compiled.
# The suite runs against it too (the end-to-end tests, which drive the same code in subprocesses, once).
compiled: $(STAMP)
	$(BIN)/python tools/mypyc_build.py $(COMPILED)

unit-compiled: compiled
	cd $(COMPILED) && $(CURDIR)/$(BIN)/python -m pytest -q --ignore=tests/e2e

test: lint typecheck unit unit-compiled

# Benchmarks measure the compiled build, as a wheel built with LIBMESH_COMPILE=1 ships it; bench-pure the
# pure-Python one (an editable install).
bench: compiled
	cd $(COMPILED) && $(CURDIR)/$(BIN)/python -m benchmarks.run $(ARGS)

bench-pure: $(STAMP)
	$(BIN)/python -m benchmarks.run $(ARGS)

soak: $(STAMP)
	$(BIN)/python -m pytest -q -m soak

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .artifacts examples/bookinfo_py/run
