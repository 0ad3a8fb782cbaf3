# mlcycle — the two front-door commands are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Everything the embedded default writes (Airflow home, MLflow store, data) lives under one git-ignored folder.
MLCYCLE_HOME ?= $(CURDIR)/.mlcycle
# The CPU build of torch: on these machines pip's configuration names a local wheel folder (find-links);
# uv does not read pip's configuration, so pass it on. Elsewhere, set
# UV_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu before `make install`.
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null || $(PYTHON) -m pip config get :env:.find-links 2>/dev/null)
UV_FIND_LINKS := $(if $(FIND_LINKS),--find-links $(FIND_LINKS),)

export MLCYCLE_HOME

.PHONY: help install lock check-locks venv-airflow lint test test-fast demo demo-quality demo-spark ui up down backfill bench bench-nightly bench-orchestration bench-engines image image-cuda image-spark base-image test-containers clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv

install: $(VENV)/.installed  ## create .venv and install the locked stack (Airflow + ML + dev) + mlcycle and mlcycle-dev (editable)
# The dev tooling (dev/, distribution mlcycle-dev) goes in after mlcycle, without resolving: its tools are
# the `dev` extra of pyproject.toml, already in requirements.lock.
$(VENV)/.installed: requirements.lock pyproject.toml dev/pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip sync --python $(BIN)/python --compile-bytecode $(UV_FIND_LINKS) requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e dev
	@touch $@

# Airflow's environment as its image has it (requirements-airflow.lock: no ML library), for the DAG-parse test
# (tests/dags/test_airflow_environment.py; `make test` makes it). pytest is not in it: the test drives it from .venv.
AIRFLOW_VENV ?= .venv-airflow
venv-airflow: $(AIRFLOW_VENV)/.installed  ## create .venv-airflow from requirements-airflow.lock alone (+ mlcycle, editable)
$(AIRFLOW_VENV)/.installed: requirements-airflow.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv venv --quiet --allow-existing --python $(BIN)/python $(AIRFLOW_VENV)
	$(BIN)/uv pip sync --python $(AIRFLOW_VENV)/bin/python requirements-airflow.lock
	$(BIN)/uv pip install --python $(AIRFLOW_VENV)/bin/python --no-deps -e .
	@touch $@

# Three locked sets, one resolver (mlcycle_dev.locks; docs/adr/0009-two-environments.md): requirements.lock
# (everything: .venv), requirements-airflow.lock (Airflow's image) and requirements-task.lock (the task image),
# the split ones at the all-in-one lock's versions. Every package carries its sha256 (uv verifies them on
# install, in .venv and in both images). The torch +cpu line's hash is that of the wheel the lock was resolved
# with (here the local find-links copy): where the CPU index serves other bytes, uv names torch and both
# hashes; `make lock` there records that index's hash.
lock: install  ## re-resolve the three locks from pyproject.toml (with hashes; existing pins are kept where they fit)
	$(BIN)/python -m mlcycle_dev.locks write

check-locks: install  ## the three locks still follow pyproject.toml (re-resolved from uv's cache; the registry where it lacks metadata)
	$(BIN)/python -m mlcycle_dev.locks check --offline

lint: install  ## ruff + mypy + the layer contracts (import-linter, pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Two pytest workers (PYTEST_WORKERS=1: one process): most of the long tests wait on Airflow's scheduler, MLflow or
# a pod rather than compute, so two share these 2 cores well. Each test module runs whole on one worker
# (tests/conftest.py groups them), so module-scoped set-ups are built once.
PYTEST_WORKERS ?= 2
test: install venv-airflow  ## the whole test suite (lint, unit, DAG integrity, data, integration); PYTEST_WORKERS=2
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest --durations=25 $(if $(filter-out 1,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadgroup,)

test-fast: install venv-airflow  ## everything but the integration tests
	$(BIN)/pytest -m "not integration"

demo: install  ## generate 3 weeks of YarnIt data and run the lifecycle through real Airflow
	$(BIN)/python -m mlcycle_dev.demo

demo-quality: install  ## the ML Test Score's features through real Airflow: tuning, baseline, shadow canary, explain
	$(BIN)/python -m mlcycle_dev.demo_quality

demo-spark: install  ## a YarnIt copy with `engine: spark` through real Airflow, beside the local engine on the same days
	$(BIN)/python -m mlcycle_dev.demo_spark

ui: install  ## open the Airflow and MLflow UIs on the demo's stores
	$(BIN)/python -m mlcycle_dev.demo ui

up: install  ## production-like stack on loopback: PostgreSQL, S3 API (moto), MLflow server (auth), Airflow; prints URLs + credentials
	$(BIN)/python -m mlcycle_dev.stack up

down:  ## stop exactly what `make up` started
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m mlcycle_dev.stack down; else echo "no $(BIN)/python: nothing was started"; fi

backfill: install  ## re-run days through Airflow 3 backfills: USECASE=yarnit FROM=2026-09-15 TO=2026-09-21 [DAGS=scoring,monitoring] [REPROCESS=completed]
	@test -n "$(USECASE)" -a -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill USECASE=yarnit FROM=YYYY-MM-DD TO=YYYY-MM-DD [DAGS=training,scoring,monitoring] [REPROCESS=none|failed|completed]"; exit 2; }
	$(BIN)/python -m mlcycle_dev.backfill --usecase $(USECASE) --from $(FROM) --to $(TO) $(if $(DAGS),--dags $(DAGS),) $(if $(REPROCESS),--reprocess $(REPROCESS),)

bench: install  ## benchmarks: DAG parse; training rows/s (SIZES=); GX vs pandas validation; drift vs Evidently (DRIFT_SIZES=100k,1m); scoring (SCORE_SIZES=100k,1m)
	$(BIN)/python -m mlcycle_dev.benchmarks.dag_parse --repeat 5
	$(BIN)/python -m mlcycle_dev.benchmarks.train --sizes $(or $(SIZES),100000)
	$(BIN)/python -m mlcycle_dev.benchmarks.validate --sizes 100k,1m
	$(BIN)/python -m mlcycle_dev.benchmarks.drift --sizes $(or $(DRIFT_SIZES),100k)
	$(BIN)/python -m mlcycle_dev.benchmarks.score --sizes $(or $(SCORE_SIZES),100k) --threads 1

bench-nightly: install  ## the whole nightly lifecycle (CLI steps) vs each step's essential call: NIGHTLY_ROWS=250k (docs/benchmarks.md, Nightly)
	$(BIN)/python -m mlcycle_dev.benchmarks.nightly --rows $(or $(NIGHTLY_ROWS),250k) --importtime

bench-orchestration: install  ## Airflow's overhead around the steps under the `make up` stack + a 30-day scoring/monitoring backfill: ORCH_ROWS= ORCH_DAYS=30 ORCH_PORT=18200 (docs/benchmarks.md)
	$(BIN)/python -m mlcycle_dev.benchmarks.orchestration --days $(or $(ORCH_DAYS),30) --base-port $(or $(ORCH_PORT),18200) $(if $(ORCH_ROWS),--rows $(ORCH_ROWS),)

ENGINE_ROWS ?= 10m,50m
bench-engines: install  ## validate, score, monitor of one partition, local engine vs Spark local[2]: ENGINE_ROWS=10m,50m, cap 10 GiB (docs/benchmarks.md, Engines)
	$(BIN)/python -m mlcycle_dev.benchmarks.engines --rows $(ENGINE_ROWS) --cap-gib 10

# docker when a daemon answers, else podman (with this machine's quirks handled: mlcycle_dev.containers.runtime).
# Two images, two locks (ADR 0009): the task image (requirements-task.lock) and Airflow's (requirements-airflow.lock),
# both on the Dockerfile's digest-pinned PYTHON_IMAGE or PYTHON_IMAGE=; without a registry, podman
# builds on the local base of `make base-image`. RELEASE=1 refuses a base that is not pinned by digest.
image: install  ## build the task image (CPU) and the Airflow image with docker or podman: IMAGE_REPO, IMAGE_TAG, RELEASE=1
	$(BIN)/python -m mlcycle_dev.containers.build --variant cpu

image-cuda: install  ## build the CUDA task image (<tag>-cuda, for GPU steps) with docker or podman
	$(BIN)/python -m mlcycle_dev.containers.build --variant cuda

image-spark: install  ## the Spark task image (<tag>-spark: the CPU image + Java 17, for the Spark steps); SPARK_S3A=1: + S3A jars
	$(BIN)/python -m mlcycle_dev.containers.build --variant spark

base-image: install  ## podman, no registry: make the local Debian bookworm + Python 3.11 base and the xcom sidecar image
	$(BIN)/python -m mlcycle_dev.containers.base_image python
	$(BIN)/python -m mlcycle_dev.containers.base_image sidecar

test-containers: install  ## the container tests alone: the built image and every step pod through `podman kube play`
	$(BIN)/pytest tests/containers -p no:randomly

clean:  ## remove the demo's state (keeps .venv)
	rm -rf $(MLCYCLE_HOME)
