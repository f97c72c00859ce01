# Two set-up commands: `make run` (the example gateway, dev mode, hot reload) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := examples/linkedin-gateway
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(EXAMPLE)/backend/requirements/base.txt | sha1sum | cut -c1-12)

.PHONY: run test check e2e swarm bench compat clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -r $(EXAMPLE)/backend/requirements/base.txt
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	cd $(EXAMPLE) && ../../$(BIN)/hotmode up --native --dev

test: $(STAMP)
	.ci/postgres-setup
	$(BIN)/python -m pytest
	cd $(EXAMPLE) && ../../$(BIN)/hotmode render --check
	cd $(EXAMPLE) && ../../$(BIN)/hotmode check --all

# A real single-node Docker Swarm on a dockerd of its own (root; loopback only): see tests/swarm.
swarm: $(STAMP)
	$(BIN)/python -m pytest -m swarm tests/swarm

# The reload and handover suites on the oldest and newest uvicorn hotmode accepts, and the
# fallback below them (noxfile.py; about 2 minutes).
compat: $(STAMP)
	$(BIN)/nox

e2e: $(STAMP)
	$(BIN)/python -m pytest -m "e2e or docker"

bench: $(STAMP)
	$(BIN)/python bench/cli/bench_startup.py
	$(BIN)/python bench/reload/bench.py

check: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
