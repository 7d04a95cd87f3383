"""Params, repo paths and seeding: the one place that knows them."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from fmnist.errors import ParamsError

RAW_DIR = Path("data/raw")
PROCESSED_DIR = Path("data/processed")
MODEL_DIR = Path("models")
METRICS_DIR = Path("metrics")
FIGURES_DIR = METRICS_DIR / "figures"
REPORTS_DIR = Path("reports")
MODEL_FILE = MODEL_DIR / "model.keras"


def load_params() -> dict[str, Any]:
    """All params, as DVC sees them (params.yaml plus any `dvc exp run -S` overrides)."""
    import dvc.api  # imported here so modules that only need paths stay light
    from dvc.exceptions import DvcException

    try:
        return dvc.api.params_show()
    except DvcException as error:
        raise ParamsError(f"cannot read params.yaml ({error}); run stages from the repo root, "
                          "e.g. with `dvc repro`") from error


def repo_root() -> Path:
    """The workspace root: DVC_ROOT inside `dvc repro`/`exp run` (also for --temp and queued
    runs, whose cwd is a throw-away copy), else the current directory."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'epochs': 3}} -> {'train.epochs': 3}, for MLflow's flat param names."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Keras (which seeds its backend); on TensorFlow also ask for
    deterministic kernels, so the same seed on the same CPU gives the same model."""
    random.seed(seed)
    np.random.seed(seed)
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
