# Two commands a user needs: `make repro` (set up, then run the pipeline) and `make test`.
# Setup comes in layers, each idempotent, so a target installs only what it uses:
#   repro           the venv with the pinned dependencies + Debian's copy of the data set
#   test            + the dev and docs extras, chromium (browser tests), PostgreSQL (team tests)
#   server          + PostgreSQL;  demo: the venv + the data set (its random test images)
#   docs, docs-build  the venv + the docs extra
# Debian packages go through apt (as root, or through sudo); without apt a note says what to
# install by hand.
PYTHON ?= python3.11
VENV ?= .venv
DATA_DIR ?= /usr/share/datasets/fashion-mnist
PIP := $(VENV)/bin/python -m pip install --quiet -c requirements.lock
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup venv venv-dev venv-docs data-package browser postgres repro test test-fast \
	docs docs-build bench bench-seeds gpu-check ui demo server lock

# Everything `make test` needs (what CI installs).
setup: venv-dev data-package browser postgres

venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev
venv-docs: $(VENV)/.installed-docs

# The pipeline's dependencies only (pyproject.toml; the whole tree pinned in requirements.lock).
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PIP) -e .
	touch $@

# + pytest and its plugins, Playwright, and MkDocs (CI builds the docs too).
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev,docs]'
	touch $@ $(VENV)/.installed-docs

$(VENV)/.installed-docs: $(VENV)/.installed
	$(PIP) -e '.[docs]'
	touch $@

# Debian packages, skipped when the check in $(1) finds them already.
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

repro: venv data-package
	dvc repro

# The whole suite, slow end-to-end, team-server and browser tests included (what CI runs).
test: setup
	python -m pytest

# Everything but the tests marked slow (the real `dvc repro` runs): a quick loop while editing.
test-fast: venv-dev data-package
	python -m pytest -m "not slow"

# The docs site on http://127.0.0.1:8000, rebuilt on every save.
docs: venv-docs
	mkdocs serve

# What CI checks: a broken link or a failing API page stops the build.
docs-build: venv-docs
	mkdocs build --strict

# Pipeline benchmark (cold/no-op repro, per stage, accuracy over 3 seeds; about an hour on a
# 2-core CPU, plus two cold runs of an earlier commit as the day's speed reference), then
# prediction latency with the workspace's champion. bench/README.md lists every benchmark.
bench: venv data-package
	python bench/run.py --reference 48035e8
	python bench/predict_latency.py

# The `baseline` profile's grid through `dvc queue` (about 2 hours on a loaded 2-core CPU), then
# its recipe on Keras' split and on all 60k images (bench/seed_gap.py).
bench-seeds: venv data-package
	python bench/seed_grid.py
	python bench/seed_gap.py --variants stratified keras full --seeds 42 43 44

# On a GPU machine (JAX with CUDA + Keras; TensorFlow, MLflow and DVC not needed): one epoch of
# every profile, then the gpu profile over three seeds; JSON + Markdown in bench/.
gpu-check:
	KERAS_BACKEND=jax python -u bench/gpu.py --smoke --out bench/gpu_smoke.json
	KERAS_BACKEND=jax python -u bench/gpu.py --profiles gpu --seeds 42 43 44

# MLflow 3.17 opens an experiment on a GenAI overview; the training runs table is its /runs page.
UI_PORT ?= 5000
ui: venv
	@echo "Training runs: http://127.0.0.1:$(UI_PORT)/#/experiments/$$(python -c 'import mlflow; \
	  mlflow.set_tracking_uri("sqlite:///$(CURDIR)/mlruns/mlflow.db"); \
	  e = mlflow.get_experiment_by_name("fashion-mnist"); print(e.experiment_id if e else 1)' \
	  2>/dev/null)/runs  (tick runs, then Compare, for the side-by-side view)"
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --host 127.0.0.1 --port $(UI_PORT)

# The web demo on http://127.0.0.1:7860 with the registry's champion (`make repro` makes one);
# its random test images come from the data package.
demo: venv data-package
	fmnist demo

# The team stack: PostgreSQL (Debian's postgresql package) + mlflow server on 127.0.0.1:5000,
# data in .team/; Ctrl-C stops both. Then: export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
server: venv postgres
	fmnist server

# Re-pin the whole dependency tree after changing pyproject.toml (from a venv with every extra).
lock: venv-dev
	$(VENV)/bin/python -m pip freeze --exclude-editable > requirements.lock
