"""MLflow: the one place that knows where the store is and how pipeline runs are tagged.

Default store: sqlite at <workspace>/mlruns/mlflow.db with artifacts in <workspace>/mlruns/artifacts.
The workspace is DVC_ROOT, so `dvc exp run --temp` and queued runs (whose cwd is a temporary
copy that DVC deletes) still log into the workspace's store. MLFLOW_TRACKING_URI overrides it,
e.g. to a shared `mlflow server` (`fmnist server`) for parallel queue workers: sqlite allows one
writer, so stages on the default store take a file lock and a second concurrent writer (a queue
started with `-j 2`) fails at once with a message pointing at the server.

A server is checked (/health, a few seconds) before a stage does any work, and MLflow's HTTP
retries are shortened for pipeline processes, so a dead server costs seconds, not minutes.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature

from fmnist import config
from fmnist.errors import TrackingUnavailable

RUN_FILE = config.MODEL_DIR / "mlflow_run.json"
# What a served model needs; pinned to the versions that trained it (also skips MLflow's slow
# requirement inference, which re-imports the model in a subprocess).
SERVING_PACKAGES = ("keras", "tensorflow-cpu", "numpy", "mlflow")
HEALTH_TIMEOUT_S = 3.0  # loopback or LAN: a healthy server answers in milliseconds
# MLflow's defaults (7 retries, backoff factor 2, 120 s timeout) wait ~250 s on a dead server.
# These keep a mid-run outage to well under a minute; a value already in the environment wins.
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
                       "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
_writer_locks: dict[Path, Any] = {}  # lock file -> open handle, held until the process ends


def store_dir() -> Path:
    return config.repo_root() / "mlruns"


def default_tracking_uri() -> str:
    return f"sqlite:///{store_dir() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def uses_default_store() -> bool:
    # Compared by value: mlflow.set_tracking_uri() itself exports MLFLOW_TRACKING_URI.
    return tracking_uri() == default_tracking_uri()


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_server(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail fast, with one line naming the URI, when a tracking server does not answer."""
    import requests

    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as error:
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} does not answer /health within {timeout:g} s "
            f"({type(error).__name__}); start it (`fmnist server`) or unset "
            "MLFLOW_TRACKING_URI to use the local sqlite store") from error


def configure() -> None:
    """Point MLflow at the store: the default sqlite store's folder is created; a server is
    checked first and gets short HTTP retries (environment variables, which MLflow reads)."""
    uri = tracking_uri()
    if uses_default_store():
        store_dir().mkdir(parents=True, exist_ok=True)
    elif is_server(uri):
        for name, value in HTTP_RETRY_DEFAULTS.items():
            os.environ.setdefault(name, value)
        check_server(uri)
    mlflow.set_tracking_uri(uri)


def claim_default_store() -> None:
    """Hold the default sqlite store's writer lock until this process ends; with another
    pipeline process writing (queued experiments with `-j 2`), fail now with what to do
    instead of 'database is locked' halfway through a run. No-op for other stores."""
    if not uses_default_store():
        return
    lock_file = store_dir() / "writer.lock"
    if lock_file in _writer_locks:
        return
    store_dir().mkdir(parents=True, exist_ok=True)
    handle = open(lock_file, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        handle.close()
        raise TrackingUnavailable(
            f"another pipeline process is writing to the sqlite store {store_dir()} (sqlite "
            "allows one writer): run queued experiments with `dvc queue start -j 1`, or start a "
            "team server (`fmnist server`) and set MLFLOW_TRACKING_URI") from error
    _writer_locks[lock_file] = handle


def experiment_id(name: str) -> str:
    """Get or create the experiment; with the default store its artifacts live in the workspace
    (an absolute location: relative ones would land in a temp run's deleted copy)."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if uses_default_store():
        location = (store_dir() / "artifacts").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException as error:
        # Two queued runs on a team server can both find no experiment and both create it: the
        # loser takes the winner's.
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow.get_experiment_by_name(name).experiment_id


def git_commit() -> str:
    """The commit the run starts from (the baseline commit inside `dvc exp run`)."""
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# The run tags that say which data and validation split a run saw: only runs that agree on
# all of them are compared for promotion (registry.not_comparable).
DATA_TAGS = {"data.fingerprint": "fingerprint", "data.source": "source", "split.seed": "seed",
             "split.val_split": "val_split", "split.subset": "subset"}
FRACTIONS = ("val_split", "subset")  # as floats, so `subset: 1` and `1.0` give the same tag


def run_tags(manifest: dict[str, Any]) -> dict[str, str]:
    """Tags for a run on the data described by data/processed/manifest.json."""
    import keras

    return {
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
        "keras.backend": keras.backend.backend(),
        "mlflow.source.git.commit": git_commit(),
        **{tag: str(float(manifest[key]) if key in FRACTIONS else manifest[key])
           for tag, key in DATA_TAGS.items() if key in manifest},
    }


def run_name() -> str:
    """The DVC experiment's name (`workspace` under `dvc repro`) and a short random id, e.g.
    `exp-3f2a1-9c04e2`. MLflow's own generated names come from the `random` module, which the
    training seed resets, so runs with the same seed all got the same name; `secrets` draws
    from the OS and is untouched by any seed."""
    return f"{os.environ.get('DVC_EXP_NAME') or 'workspace'}-{secrets.token_hex(3)}"


@contextlib.contextmanager
def start_run(experiment: str, run_id: str | None = None, **kwargs: Any
              ) -> Iterator[mlflow.ActiveRun]:
    """A new run in `experiment`, or (with run_id) the train stage's run resumed by evaluate.
    A server lost mid-run becomes one TrackingUnavailable line instead of a traceback."""
    configure()
    claim_default_store()
    try:
        if run_id is not None:
            active = mlflow.start_run(run_id=run_id)
        else:
            kwargs.setdefault("run_name", run_name())
            active = mlflow.start_run(experiment_id=experiment_id(experiment), **kwargs)
        with active:
            yield active
    except MlflowException as error:
        # MLflow's words for "no usable answer from the server" (connection refused, timeout,
        # 5xx after retries); an answer refusing a request (RestException) stays as it is.
        if not (is_server(tracking_uri()) and str(error).startswith("API request to")):
            raise
        first_line = str(error).strip().splitlines()[0][:200]
        raise TrackingUnavailable(f"lost MLflow tracking server {tracking_uri()} mid-run "
                                  f"({first_line}); rerun once it is back (train logs the model "
                                  "it saved without retraining)") from error


def log_history(history: dict[str, list[float]]) -> None:
    """Per-epoch metrics as mlflow.keras.MlflowCallback logs them (step = epoch from 0), for a
    fit that happened without a run to log into."""
    for epoch, values in enumerate(zip(*history.values())):
        mlflow.log_metrics(dict(zip(history, values)), step=epoch)


def serving_requirements() -> list[str]:
    requirements = []
    for package in SERVING_PACKAGES:
        try:
            requirements.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:  # e.g. tensorflow (GPU) instead of tensorflow-cpu
            continue
    return requirements


def _save_keras_model(path: str, mlflow_model: Model, **kwargs: Any) -> None:
    # MLflow 3.17.2's keras flavor writes the input example before it creates the model folder
    # (FileNotFoundError); creating the folder first is the whole fix.
    os.makedirs(path, exist_ok=True)
    mlflow.keras.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
    from fmnist.serving import keras_pyfunc  # imports Keras: only when a model is logged

    # pyfunc (`mlflow models serve`, pyfunc.load_model) loads through keras_pyfunc, shipped in
    # the model's code/ folder: MLflow's own loader with predictions quiet (no progress bar
    # per request). The keras flavor, which fmnist itself loads, is unchanged.
    code = Path(path) / "code"
    code.mkdir(exist_ok=True)
    shutil.copyfile(keras_pyfunc.__file__, code / f"{keras_pyfunc.MODULE_NAME}.py")
    mlflow_model.flavors["python_function"].update(loader_module=keras_pyfunc.MODULE_NAME,
                                                   code="code")
    mlflow_model.save(os.path.join(path, "MLmodel"))


_KERAS_FLAVOR = SimpleNamespace(__name__="mlflow.keras", save_model=_save_keras_model)


def log_keras_model(model: Any, sample_images: np.ndarray) -> None:
    """Log the model with a signature and an input example, so `mlflow models serve` and the
    registry know its inputs (float32 images (N, 28, 28, 1)) and outputs (10 probabilities)."""
    signature = infer_signature(sample_images, model.predict(sample_images, verbose=0))
    Model.log(artifact_path=None, name="model", flavor=_KERAS_FLAVOR, model=model,
              signature=signature, input_example=sample_images[:2], pip_requirements=serving_requirements())
