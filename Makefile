# Two commands for a newcomer: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONTRIB := $(wildcard contrib/*/pyproject.toml)

.PHONY: test demo docs proto proto-check lint typecheck venv clean bench chaos fuzz dist

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py $(CONTRIB)
	$(BIN)/pip install --quiet -e '.[test,dev,docs]' $(foreach p,$(CONTRIB),-e '$(patsubst %/,%,$(dir $(p)))[test]')
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check navigator plugins contrib tests benchmarks scripts
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture

typecheck: $(STAMP)
	$(BIN)/mypy navigator plugins
	$(BIN)/mypy contrib/navigator-plugin-postgres/navigator_plugin_postgres
	$(BIN)/mypy benchmarks

proto-check: $(STAMP)
	$(BIN)/python scripts/gen_proto.py --check

test: lint typecheck proto-check
	$(BIN)/pytest -q -ra $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/navigator demo --clusters 3 --pods 2000 --churn 5 --duration 60

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Wheels and sdists of navigator and of every contrib plugin, into $(DIST): what to install from
# (pip install --no-index --find-links dist navigator navigator-plugin-postgres), since the name
# `navigator` on PyPI belongs to an unrelated project. BUILD_FLAGS=--no-isolation builds with the
# setuptools of .venv instead of fetching it into a throwaway environment.
DIST ?= dist
BUILD_FLAGS ?=
dist: $(STAMP)
	rm -rf $(DIST)
	$(BIN)/python -m build $(BUILD_FLAGS) --outdir $(DIST) .
	@for p in $(patsubst %/,%,$(dir $(CONTRIB))); do \
		echo "$(BIN)/python -m build $(BUILD_FLAGS) --outdir $(DIST) $$p"; \
		$(BIN)/python -m build $(BUILD_FLAGS) --outdir $(DIST) $$p || exit 1; \
	done

# The long chaos run (the short one is part of `make test`): every fault ROUNDS times, on SQLite and PostgreSQL.
ROUNDS ?= 50
chaos: $(STAMP)
	$(BIN)/python benchmarks/chaos.py --rounds $(ROUNDS) --backend sqlite
	$(BIN)/python benchmarks/chaos.py --rounds $(ROUNDS) --backend postgres

# The long fuzzing run (a few hundred cases are part of `make test`): CASES per message the manager accepts.
CASES ?= 10000
fuzz: $(STAMP)
	$(BIN)/python benchmarks/fuzz.py --cases $(CASES)

clean:
	rm -rf $(VENV) site build dist *.egg-info
