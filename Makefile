# ecgstudy: `make` lists the targets. `make study` and `make test` do all set-up on a fresh machine.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
PYTHON ?= python3
# Every command below runs with the project's virtual environment first on PATH (the stages themselves find
# it without: dvc.yaml's commands are `bin/stage <stage>`).
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MPLBACKEND := agg

STAMP := $(VENV)/.installed
# JupyterLab settings shipped with the project (lab/overrides.json: double-clicking a .py notebook opens it
# with jupytext's notebook view, not the text editor), installed into the venv's JupyterLab, never into $HOME.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
# `make lab` as root (containers) needs --allow-root; LAB_ARGS adds any option (e.g. --no-browser --port 8890).
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_ARGS ?=

.PHONY: help venv study repro exp test test-fast browser lab lab-settings bench params readme clean-outputs

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(LAB_SETTINGS): lab/overrides.json $(STAMP)
	mkdir -p $(dir $@)
	cp lab/overrides.json $@

venv: $(STAMP) $(LAB_SETTINGS) ## Create .venv (if missing) and install the package with pinned dependencies

lab-settings: $(LAB_SETTINGS) ## Install the project's JupyterLab settings (lab/overrides.json) into .venv

study: $(STAMP) ## Run the whole study on the built-in simulated cohort (dvc repro)
	dvc repro

repro: $(STAMP) ## Rerun one stage and what it needs (STAGE=finetune; ARGS="-f -s" forces that stage alone)
	dvc repro $(ARGS) $(STAGE)

exp: $(STAMP) ## Run a variant as a DVC experiment (ARGS="-S latent.k=10"; add --temp to leave the workspace alone)
	dvc exp run $(ARGS)

test: $(STAMP) $(LAB_SETTINGS) browser ## Run the whole test suite (unit + end-to-end), as CI does
	OMP_NUM_THREADS=1 python -m pytest -q -n 2 --no-loadscope-reorder --durations=25

browser: ## Install Debian's chromium (headless) for the report's browser test, if missing (needs root + apt)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "make browser: install Debian's chromium package (the report is tested in a real browser)"; exit 1; }

test-fast: $(STAMP) $(LAB_SETTINGS) ## Run the unit tests only (skips the end-to-end dvc repro)
	python -m pytest -q -m "not slow"

# The server starts at the repository root, so the file browser reaches notebooks/ (the stage notebooks and
# the tour) and reports/notebooks/ (the executed copies, with figures); the browser opens the guided tour.
lab: $(LAB_SETTINGS) ## Open JupyterLab on the guided tour (notebooks/tour.py); stage notebooks open as notebooks
	jupyter lab --ServerApp.root_dir="$(CURDIR)" $(LAB_FLAGS) $(LAB_ARGS) notebooks/tour.py

params: $(STAMP) ## Regenerate params.yaml from the code's defaults (PROFILE=ptbxl|cinc|code15|mimic for a real dataset)
	python -m ecgstudy.params_file $(if $(PROFILE),--profile $(PROFILE))

readme: $(STAMP) ## Regenerate README.md's results table from reports/metrics/evaluate.json
	python -m ecgstudy.stages.evaluate.readme

bench: $(STAMP) ## Run the benchmark scripts (print throughput numbers)
	for b in benchmarks/bench_*.py; do echo "== $$b"; python $$b || exit 1; done

clean-outputs: ## Delete pipeline outputs (data/curated, models/, reports/ except metrics)
	rm -rf data/curated models reports/notebooks reports/figures reports/plots reports/tables reports/timings reports/report.html
