# Two commands a user needs:  `make repro` (set up, then run the pipeline) and `make test`.
# Setup is idempotent: a virtualenv with the pinned dependencies, Debian's copy of the data set
# when apt is usable (the download stage falls back to Kaggle or Zalando otherwise), and
# Debian's chromium for the browser tests (Playwright drives it; it never downloads a browser).
PYTHON ?= python3.11
VENV ?= .venv
DATA_DIR ?= /usr/share/datasets/fashion-mnist
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup data-package browser repro test bench gpu-check ui demo server lock

setup: $(VENV)/.installed data-package browser

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

browser:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "note: no apt; install chromium at /usr/bin/chromium for the browser tests"; \
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

# On a GPU machine (JAX with CUDA + Keras; TensorFlow, MLflow and DVC not needed): one epoch of
# every profile, then the gpu profile over three seeds; JSON + Markdown in bench/.
gpu-check:
	KERAS_BACKEND=jax python -u bench/gpu.py --smoke --out bench/gpu_smoke.json
	KERAS_BACKEND=jax python -u bench/gpu.py --profiles gpu --seeds 42 43 44

# MLflow 3.17 opens an experiment on a GenAI overview; the training runs table is its /runs page.
UI_PORT ?= 5000
ui: setup
	@echo "Training runs: http://127.0.0.1:$(UI_PORT)/#/experiments/$$(python -c 'import mlflow; \
	  mlflow.set_tracking_uri("sqlite:///$(CURDIR)/mlruns/mlflow.db"); \
	  e = mlflow.get_experiment_by_name("fashion-mnist"); print(e.experiment_id if e else 1)' \
	  2>/dev/null)/runs  (tick runs, then Compare, for the side-by-side view)"
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --host 127.0.0.1 --port $(UI_PORT)

# The web demo on http://127.0.0.1:7860 with the registry's champion.
demo: setup
	fmnist demo

# The team stack: PostgreSQL (Debian's postgresql package) + mlflow server on 127.0.0.1:5000,
# data in .team/; Ctrl-C stops both. Then: export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
server: setup
	fmnist server

# Re-pin the whole dependency tree after changing pyproject.toml.
lock:
	$(VENV)/bin/python -m pip freeze --exclude-editable > requirements.lock
