# ecgstudy: `make` lists the targets. `make study` and `make test` do all set-up on a fresh machine.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
PYTHON ?= python3
# Every command below runs with the project's virtual environment first on PATH (dvc stages call `python`).
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MPLBACKEND := agg

STAMP := $(VENV)/.installed

.PHONY: help venv study test test-fast lab bench params clean-outputs

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP) ## Create .venv (if missing) and install the package with pinned dependencies

study: $(STAMP) ## Run the whole study on the built-in simulated cohort (dvc repro)
	dvc repro

test: $(STAMP) ## Run the whole test suite (unit + end-to-end), as CI does
	python -m pytest -q

test-fast: $(STAMP) ## Run the unit tests only (skips the end-to-end dvc repro)
	python -m pytest -q -m "not slow"

lab: $(STAMP) ## Open the notebooks in JupyterLab
	jupyter lab notebooks/

params: $(STAMP) ## Regenerate params.yaml from the code's defaults (PROFILE=ptbxl|cinc|code15|mimic for a real dataset)
	python -m ecgstudy.params_file $(if $(PROFILE),--profile $(PROFILE))

bench: $(STAMP) ## Run the benchmark scripts (print throughput numbers)
	for b in benchmarks/bench_*.py; do echo "== $$b"; python $$b || exit 1; done

clean-outputs: ## Delete pipeline outputs (data/curated, models/, reports/ except metrics)
	rm -rf data/curated models reports/notebooks reports/figures reports/plots reports/tables reports/report.html
