# The two commands of the README: `make demo` (the main job) and `make test`.
# Both install what they need on a fresh machine (scripts/setup.sh) and are idempotent.
PY := .venv/bin/python

.PHONY: setup demo transform-demo test test-fast lint format bench clean
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

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: setup
	$(PY) experiments/bench_transform.py
	$(PY) experiments/bench_matrix.py
	$(PY) experiments/bench_training.py
	$(PY) experiments/bench_data.py

clean:
	rm -rf .setup-stamp outputs .pytest_cache
