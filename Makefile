# The two commands of the README: `make demo` (the main job) and `make test` (lint, then the
# whole suite).
# Both install what they need on a fresh machine (scripts/setup.sh) and are idempotent.
PY := .venv/bin/python

.PHONY: setup demo transform-demo test test-fast lint format bench record postgres postgres-stop clean
.DEFAULT_GOAL := demo

setup: .setup-stamp
.setup-stamp: scripts/setup.sh pyproject.toml constraints.txt
	bash scripts/setup.sh
	@touch $@

# make demo ARGS="trainer.max_steps=32 ...": Hydra overrides appended to the quickstart
demo: setup
	$(PY) -m xslicq.quickstart $(ARGS)

transform-demo: setup
	$(PY) -m xslicq.transform_demo

test: lint
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# the CPU benchmarks (transform, matrix, training, data), into outputs/experiments/ (ignored
# by git: the record stays as it is); `make record` (= `make bench RECORD=1`) writes them into
# the record, experiments/results/ (on a quiet machine: the files state the load average)
BENCH_OUT = $(if $(RECORD),--record,--out outputs/experiments)
bench: setup
	$(PY) experiments/bench_transform.py $(BENCH_OUT)
	$(PY) experiments/bench_matrix.py $(BENCH_OUT)
	$(PY) experiments/bench_training.py $(BENCH_OUT)
	$(PY) experiments/bench_data.py $(BENCH_OUT)

record:
	$(MAKE) bench RECORD=1

# a PostgreSQL server in outputs/postgres for Optuna studies shared by several sweep workers:
# prints the URL to pass as hydra.sweeper.storage=<url> (scripts/postgres.sh; its studies
# stay after postgres-stop)
postgres: setup
	@bash scripts/postgres.sh start

postgres-stop: setup
	@bash scripts/postgres.sh stop

clean:
	rm -rf .setup-stamp outputs .pytest_cache
