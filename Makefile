# Two commands a user needs:  `make repro` (set up, then run the pipeline) and `make test`.
# Setup is idempotent: a virtualenv with the pinned dependencies and, where apt is usable,
# Debian's copy of the data set, chromium (browser tests) and PostgreSQL (the team server).
PYTHON ?= python3.11
VENV ?= .venv
DATA_DIR ?= /usr/share/datasets/fashion-mnist
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup data-package browser postgres repro test bench bench-seeds gpu-check ui demo server lock

setup: $(VENV)/.installed data-package browser postgres

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# Debian packages (as root, or through sudo), skipped when the check in $(1) finds them already.
define apt_install
	@if $(1); then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "note: no apt; install $(2) by hand"; exit 0; fi; \
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2)
endef

# Zalando's idx files (without them the download stage uses Kaggle credentials or Zalando's mirror).
data-package:
	$(call apt_install,[ -f $(DATA_DIR)/train-images-idx3-ubyte.gz ],dataset-fashion-mnist)

# Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	$(call apt_install,command -v chromium >/dev/null 2>&1,chromium)

# PostgreSQL for `fmnist server` and the team-mode tests; runuser hands it to the postgres user.
postgres:
	$(call apt_install,ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1,postgresql util-linux)

repro: setup
	dvc repro

test: setup
	python -m pytest

# Pipeline benchmark (cold/no-op repro, per stage, accuracy over 3 seeds; about an hour on a
# 2-core CPU, plus two cold runs of the pre-issue-12 default 48035e8 as the day's speed
# reference), then prediction latency with the workspace's champion.
bench: setup
	python bench/run.py --reference 48035e8
	python bench/predict_latency.py

# The seeds' grid through `dvc queue` (4 cells x 3 seeds: about 2 hours on a loaded 2-core
# CPU), then their recipe on Keras' split and on all 60k images (bench/seed_gap.py).
bench-seeds: setup
	python bench/seed_grid.py
	python bench/seed_gap.py --variants stratified keras full --seeds 42 43 44

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
