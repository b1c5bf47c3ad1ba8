# mlcraft: two commands to remember.
#   make lab    set everything up and open JupyterLab on the course
#   make test   set everything up and run every check
# The virtual environment (.venv) is created, or refreshed when pyproject.toml changes,
# by whichever target needs it; nothing is installed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/mlcraft.json5
SERVER_CONFIG := $(VENV)/etc/jupyter/jupyter_server_config.json
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, Binder-like images) unless told it may.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_ARGS ?=
# Tests run several kernels and grading workers at once on few cores: one intra-op thread each
# keeps them from fighting over the cores (small CPU ops otherwise slow down a hundredfold).
TEST_ENV = OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# Grading writes outside the repository; tests use a throwaway folder.
TEST_GRADING_DIR := $(shell mktemp -d -u /tmp/mlcraft-test-grading.XXXXXX)

LESSONS   := $(wildcard course/*.py)
SOURCES   := $(wildcard solutions/*/*.py)

.DEFAULT_GOAL := help
.PHONY: help lab test setup sync release verify lint unit unit-fast notebooks mutate bench clean

help:
	@echo "make lab        set up and open JupyterLab on the course"
	@echo "make test       set up and run every check: lint verify unit notebooks mutate"
	@echo "make setup      create or refresh .venv from pyproject.toml (every extra)"
	@echo "make sync       update each paired .ipynb from its .py (Jupytext)"
	@echo "make release    regenerate exercises/ from solutions/ (nbgrader)"
	@echo "make verify     twins in sync, no outputs, exercises/ equal to a fresh release, no leaks"
	@echo "make lint       ruff (lint and format) and mypy over src and tests"
	@echo "make unit       the test suite (tests/), grading tests included"
	@echo "make unit-fast  the test suite without the slow grading tests (a few minutes)"
	@echo "make notebooks  run every lesson and solution notebook top to bottom"
	@echo "make mutate     mutation-test every assignment: no survivor unless listed as equivalent"
	@echo "make bench      run the benchmarks"
	@echo "make clean      remove the virtual environment and caches"
	@echo "make help       this list"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mlcraft needs Python >= 3.11; set PYTHON=python3.X")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "mlcraft: installing the course and its tools into $(VENV): about 2-3 minutes, once (again only when pyproject.toml changes)"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e ".[dev]" & pid=$$!; trap 'kill $$pid 2>/dev/null; exit 130' INT TERM; \
	  s=0; while kill -0 $$pid 2>/dev/null; do sleep 1; s=$$((s + 1)); [ $$((s % 15)) -ne 0 ] || echo "  installing... $$s s"; done; \
	  wait $$pid && echo "mlcraft: installed in $$s s"
	@touch $(STAMP)

# What the course ships for JupyterLab: defaults without the news pop-up (jupyter/overrides.json5),
# and the contents manager that pairs notebooks and opens them unmodified (mlcraft.classroom.lab).
$(LAB_OVERRIDES): jupyter/overrides.json5 $(STAMP)
	install -D -m 644 jupyter/overrides.json5 $@

$(SERVER_CONFIG): jupyter/jupyter_server_config.json $(STAMP)
	install -D -m 644 jupyter/jupyter_server_config.json $@

setup: $(STAMP) $(LAB_OVERRIDES) $(SERVER_CONFIG)

lab: $(STAMP) $(LAB_OVERRIDES) $(SERVER_CONFIG)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ROOT_ARGS) $(LAB_ARGS) course/00_orientation.ipynb

sync: $(STAMP)
	cd course && for f in $(notdir $(LESSONS)); do ../$(BIN)/jupytext --sync --quiet $$f; done
	for f in $(SOURCES); do (cd $$(dirname $$f) && $(CURDIR)/$(BIN)/jupytext --sync --quiet $$(basename $$f)); done

release: $(STAMP)
	$(BIN)/mlcraft release

verify: $(STAMP)
	MLCRAFT_GRADING_DIR=$(TEST_GRADING_DIR) $(BIN)/mlcraft verify

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

unit: $(STAMP) $(LAB_OVERRIDES) $(SERVER_CONFIG)
	$(TEST_ENV) MLCRAFT_GRADING_DIR=$(TEST_GRADING_DIR) $(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS) tests

unit-fast: $(STAMP) $(LAB_OVERRIDES) $(SERVER_CONFIG)
	$(TEST_ENV) MLCRAFT_GRADING_DIR=$(TEST_GRADING_DIR) $(BIN)/pytest -n 2 --dist loadfile -m "not slow" $(PYTEST_ARGS) tests

notebooks: $(STAMP)
	$(TEST_ENV) MLCRAFT_GRADING_DIR=$(TEST_GRADING_DIR) $(BIN)/pytest -n 2 --dist loadfile --nbval-lax $(PYTEST_ARGS) course solutions

mutate: $(STAMP)
	$(TEST_ENV) MLCRAFT_GRADING_DIR=$(TEST_GRADING_DIR) $(BIN)/mlcraft mutate

test: lint verify unit notebooks mutate
	@rm -rf $(TEST_GRADING_DIR)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_check.py
	$(BIN)/python benchmarks/bench_grade.py
	$(BIN)/python benchmarks/bench_trainer.py
	$(BIN)/python benchmarks/bench_amp.py
	$(BIN)/python benchmarks/bench_attention.py
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_nms.py
	$(BIN)/python benchmarks/bench_coco.py
	$(BIN)/python benchmarks/bench_detector.py
	$(BIN)/python benchmarks/bench_onnx.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_classification.py
	$(BIN)/python benchmarks/bench_boosting.py
	$(BIN)/python benchmarks/bench_tuning.py
	$(BIN)/python benchmarks/bench_bpe.py
	$(BIN)/python benchmarks/bench_lora.py
	$(BIN)/python benchmarks/bench_retrieval.py
	$(BIN)/python benchmarks/bench_dataframes.py
	$(BIN)/python benchmarks/bench_streaming.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
