# Two commands a user needs:  `make repro` (set up, then run the pipeline) and `make test`.
# Setup is idempotent: a virtualenv with the pinned dependencies, and Debian's copy of the
# data set when apt is usable (the download stage falls back to Kaggle or Zalando otherwise).
PYTHON ?= python3.11
VENV ?= .venv
DATA_DIR ?= /usr/share/datasets/fashion-mnist
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup data-package repro test bench bench-seeds ui lock

setup: $(VENV)/.installed data-package

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

data-package:
	@if [ -f $(DATA_DIR)/train-images-idx3-ubyte.gz ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "note: no apt; the download stage will use Kaggle credentials or Zalando's mirror"; \
	fi

repro: setup
	dvc repro

test: setup
	python -m pytest

# Pipeline benchmark (cold/no-op repro, per stage, accuracy over 3 seeds; about an hour on a
# 2-core CPU), then prediction latency with the workspace's champion.
bench: setup
	python bench/run.py
	python bench/predict_latency.py

# The seeds' grid through `dvc queue` (4 cells x 3 seeds: about 2 hours on a loaded 2-core
# CPU), then their recipe on Keras' split and on all 60k images (bench/seed_gap.py).
bench-seeds: setup
	python bench/seed_grid.py
	python bench/seed_gap.py --variants stratified keras full --seeds 42 43 44

ui: setup
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --port 5000

# Re-pin the whole dependency tree after changing pyproject.toml.
lock:
	$(VENV)/bin/python -m pip freeze --exclude-editable > requirements.lock
