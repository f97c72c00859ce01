# Two set-up commands: `make run` (the example gateway, dev mode, hot reload) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := examples/linkedin-gateway
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(EXAMPLE)/backend/requirements/base.txt | sha1sum | cut -c1-12)

.PHONY: run test test-portable check e2e swarm bench compat zoo clean corpus-report

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -r $(EXAMPLE)/backend/requirements/base.txt
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	cd $(EXAMPLE) && ../../$(BIN)/hotmode up --native --dev

# macOS's and Windows's ways, forced on Linux: psutil for processes, workers spawned without fork.
# A lean pass (about a minute) over what they change: native lifecycle, reload, a database.
PORTABLE_TESTS := tests/native/test_native_e2e.py tests/native/test_proctable.py \
	tests/reload/test_e2e.py tests/reload/test_connections.py tests/reload/test_spawning.py \
	tests/companions/test_native_companions.py::test_postgres_runs_as_a_process_and_keeps_each_modes_data

test: $(STAMP)
	.ci/postgres-setup
	.ci/redis-setup
	$(BIN)/python -m pytest
	HOTMODE_PLATFORM=portable HOTMODE_WORKERS=spawn $(BIN)/python -m pytest $(PORTABLE_TESTS)
	cd $(EXAMPLE) && ../../$(BIN)/hotmode render --check
	cd $(EXAMPLE) && ../../$(BIN)/hotmode check --all

# The same lean pass alone (the CI matrix runs it on macOS and Windows, where it is the default).
test-portable: $(STAMP)
	HOTMODE_PLATFORM=portable HOTMODE_WORKERS=spawn $(BIN)/python -m pytest $(PORTABLE_TESTS)

# Real Docker Swarms (one node; two nodes with a registry) on dockerds of their own in network
# namespaces the tests create (root): see tests/swarm.
swarm: $(STAMP)
	$(BIN)/python -m pytest -m swarm tests/swarm

# The reload and handover suites on the oldest and newest uvicorn hotmode accepts, and the
# fallback below them (noxfile.py; about 2 minutes).
compat: $(STAMP)
	$(BIN)/nox

# The real apps of ../shared/apps adopted and run end to end with no hand edit, each in its own
# PID and network namespace (root); one line per app and step, and a total. Fails only on the
# steps zoo/expected.toml lists as holding. See zoo/README.md.
zoo: $(STAMP)
	.ci/postgres-setup
	.ci/redis-setup
	$(BIN)/python zoo/run.py

e2e: $(STAMP)
	$(BIN)/python -m pytest -m "e2e or docker"

bench: $(STAMP)
	$(BIN)/python bench/cli/bench_startup.py
	$(BIN)/python bench/reload/bench.py

# How right `check -f`'s roles are on ../shared/corpus*, per rule of evidence (bench/corpus).
corpus-report: $(STAMP)
	$(BIN)/python bench/corpus/report.py --verbose

check: $(STAMP)
	$(BIN)/ruff format --check src tests bench zoo
	$(BIN)/ruff check src tests bench zoo
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
