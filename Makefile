# The two commands of the README: `make demo` (the main job) and `make test`. Both go through `make setup`,
# which builds .venv/ from exact pins and is a no-op when requirements.lock and pyproject.toml are unchanged.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
DEMO_DIR ?= data/demo
DEMO_STUDIES ?= 12
# Unit tests are independent and mostly single-threaded: two xdist workers (whole files each, so a module's
# fixtures are built once); the integration tests start servers on shared machine resources and run one at a time.
UNIT_PARALLEL ?= -n 2 --dist loadfile
# End-to-end tests that start no server (CLI, training, loader, import): they join the parallel run.
SERVERLESS := $(wildcard tests/integration/test_*.py)
PYTEST_ARGS ?= --durations=30  # the slowest tests in every CI log: the suite must stay well under 30 min

.PHONY: setup test demo demo-data protos lint clean

setup: $(STAMP)
	@# Debian packages (Orthanc + DICOMweb, Chromium): installs only what is missing; instant otherwise.
	@bash scripts/install_system_packages.sh

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# Exact pins and --no-deps: no resolver run (unpinned, this set takes pip over 9 minutes to resolve).
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

test: setup
	$(BIN)/pytest tests/unit $(SERVERLESS) $(UNIT_PARALLEL) $(PYTEST_ARGS)
	$(BIN)/pytest tests/integration $(addprefix --ignore=,$(SERVERLESS)) $(PYTEST_ARGS)

# The main job: the whole platform on this machine (`cmr up`: broker, Triton + encoder, search, generator, ingest
# worker, UI; the demo index fills in the background). Ctrl-C stops it; a second run reuses data/.
demo: setup
	$(BIN)/cmr up

# The earlier offline demo: synthesise a few studies, inspect, render and score the first one (no services).
demo-data: setup
	$(BIN)/cmr synth --out $(DEMO_DIR) --studies $(DEMO_STUDIES) --seed 7
	$(BIN)/cmr inspect $$(ls -d $(DEMO_DIR)/studies/*/ | head -n 1)
	$(BIN)/cmr render $$(ls -d $(DEMO_DIR)/studies/*/ | head -n 1) --out $(DEMO_DIR)/first_study.gif
	@# The shipped CMR-CLIP model: what it reads in the first study, from prompts alone (a chart).
	$(BIN)/cmr zeroshot $$(ls -d $(DEMO_DIR)/studies/*/ | head -n 1) --out $(DEMO_DIR)/first_study_zeroshot.png
	@echo "Demo studies: $(DEMO_DIR)/studies, reports: $(DEMO_DIR)/reports.jsonl, render: $(DEMO_DIR)/first_study.gif, zero-shot chart: $(DEMO_DIR)/first_study_zeroshot.png"

# Regenerate cmr/v1/*_pb2*.py from protos/ (committed; a test fails when they are stale).
protos: setup
	$(BIN)/python scripts/gen_protos.py

clean:
	rm -rf $(VENV) .pytest_cache
