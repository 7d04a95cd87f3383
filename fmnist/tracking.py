"""MLflow: the one place that knows where the store is and how pipeline runs are tagged.

Default store: sqlite at <workspace>/mlruns/mlflow.db with artifacts in <workspace>/mlruns/artifacts.
The workspace is DVC_ROOT, so `dvc exp run --temp` and queued runs (whose cwd is a temporary
copy that DVC deletes) still log into the workspace's store. MLFLOW_TRACKING_URI overrides it,
e.g. to a shared `mlflow server` for parallel queue workers (sqlite allows one writer).
"""
from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import numpy as np
from mlflow.models import Model, infer_signature

from fmnist import config

RUN_FILE = config.MODEL_DIR / "mlflow_run.json"
# What a served model needs; pinned to the versions that trained it (also skips MLflow's slow
# requirement inference, which re-imports the model in a subprocess).
SERVING_PACKAGES = ("keras", "tensorflow-cpu", "numpy", "mlflow")


def store_dir() -> Path:
    return config.repo_root() / "mlruns"


def default_tracking_uri() -> str:
    return f"sqlite:///{store_dir() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def uses_default_store() -> bool:
    # Compared by value: mlflow.set_tracking_uri() itself exports MLFLOW_TRACKING_URI.
    return tracking_uri() == default_tracking_uri()


def configure() -> None:
    """Point MLflow at the store (creating the folder for the default sqlite store)."""
    if uses_default_store():
        store_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri())


def experiment_id(name: str) -> str:
    """Get or create the experiment; with the default store its artifacts live in the workspace
    (an absolute location: relative ones would land in a temp run's deleted copy)."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if uses_default_store():
        location = (store_dir() / "artifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def git_commit() -> str:
    """The commit the run starts from (the baseline commit inside `dvc exp run`)."""
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_tags(data_fingerprint: str) -> dict[str, str]:
    import keras

    return {
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
        "keras.backend": keras.backend.backend(),
        "mlflow.source.git.commit": git_commit(),
        "data.fingerprint": data_fingerprint,
    }


def start_run(experiment: str, run_id: str | None = None, **kwargs: Any) -> mlflow.ActiveRun:
    """A new run in `experiment`, or (with run_id) the train stage's run resumed by evaluate."""
    configure()
    if run_id is not None:
        return mlflow.start_run(run_id=run_id)
    return mlflow.start_run(experiment_id=experiment_id(experiment), **kwargs)


def serving_requirements() -> list[str]:
    requirements = []
    for package in SERVING_PACKAGES:
        try:
            requirements.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:  # e.g. tensorflow (GPU) instead of tensorflow-cpu
            continue
    return requirements


def _save_keras_model(path: str, **kwargs: Any) -> None:
    # MLflow 3.17.2's keras flavor writes the input example before it creates the model folder
    # (FileNotFoundError); creating the folder first is the whole fix.
    os.makedirs(path, exist_ok=True)
    mlflow.keras.save_model(path=path, **kwargs)


_KERAS_FLAVOR = SimpleNamespace(__name__="mlflow.keras", save_model=_save_keras_model)


def log_keras_model(model: Any, sample_images: np.ndarray) -> None:
    """Log the model with a signature and an input example, so `mlflow models serve` and the
    registry know its inputs (float32 images (N, 28, 28, 1)) and outputs (10 probabilities)."""
    signature = infer_signature(sample_images, model.predict(sample_images, verbose=0))
    Model.log(artifact_path=None, name="model", flavor=_KERAS_FLAVOR, model=model,
              signature=signature, input_example=sample_images[:2], pip_requirements=serving_requirements())
