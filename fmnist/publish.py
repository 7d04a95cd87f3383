"""`fmnist publish`: log the workspace's current run to the tracking store now in force, and
register it there, without retraining.

`dvc repro` logs to whatever MLFLOW_TRACKING_URI says while its stages run; DVC cannot see that
variable, so a workspace that already ran locally runs no stage after the switch to a team
server, and the server stays empty. Publishing reads what the stages left in the workspace
(models/model.keras, params.yaml, metrics/, data/processed/manifest.json and the splits) and logs
it the way train and evaluate do, then registers it under the register stage's rules. It writes
nothing in the workspace: models/mlflow_run.json and metrics/promotion.json stay the local run's,
so `dvc status` stays clean.

Publishing the same model twice registers it once: the run carries the model file's sha256, and a
finished run with that digest on the server is registered again (idempotently) instead of logged
anew; on the store the pipeline itself logged to, the workspace's own run is that run.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fmnist import config, pending, registry, tracking
from fmnist.data import formats
from fmnist.errors import PipelineError, RegistryError
from fmnist.jsonfiles import read_json

MODEL_DIGEST_TAG = "publish.model_sha256"
SOURCE_RUN_TAG = "publish.source_run"  # the run id the workspace's own store gave it
TRAIN_FILE = config.METRICS_DIR / "train.json"
EVALUATE_FILE = config.METRICS_DIR / "evaluate.json"
HISTORY_FILE = config.METRICS_DIR / "train_history.csv"
PER_CLASS_FILE = config.METRICS_DIR / "per_class.csv"
# What the register stage decided on the local store: not this store's decision.
NOT_LOGGED = {"promotion.json"}


class NothingToPublish(PipelineError):
    """The workspace lacks what the pipeline leaves behind (no model, no metrics)."""


def empty_store_hint(uri: str) -> str:
    """What `fmnist runs`, `predict` and `history` say on a store with nothing in it."""
    return (f"no runs on {uri}: run `fmnist publish` to log this workspace's run there, or "
            "`dvc repro` to train one")


def require_champion(mlflow_client: MlflowClient, name: str) -> None:
    """Fail with the publish hint when the store has no version of `name` (a store nothing was
    logged to), with the promote command when it has versions but no champion."""
    if registry.by_alias(mlflow_client, name, registry.CHAMPION) is not None:
        return
    if mlflow_client.search_model_versions(f"name = '{name}'", max_results=1):
        raise RegistryError(f"{name!r} has no champion on {tracking.tracking_uri()}; choose one "
                            'with `fmnist promote VERSION --reason "..."` (`fmnist runs` lists '
                            "the versions)")
    raise RegistryError(empty_store_hint(tracking.tracking_uri()))


def _require(paths: list[Path]) -> None:
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise NothingToPublish(f"nothing to publish: {', '.join(missing)} missing; run "
                               "`dvc repro` (or `dvc pull`) first")


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def published_run(mlflow_client: MlflowClient, experiment: str, digest: str) -> str | None:
    """The finished run on this store that already holds this model file, if any."""
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = mlflow_client.search_runs(
        [found.experiment_id], max_results=1,
        filter_string=f"tags.`{MODEL_DIGEST_TAG}` = '{digest}' and attributes.status = 'FINISHED'")
    return runs[0].info.run_id if runs else None


def workspace_run(mlflow_client: MlflowClient) -> str | None:
    """The run the workspace's own train stage logged (models/mlflow_run.json), when this store
    holds it finished: publishing to the store the pipeline ran against logs nothing new."""
    if not tracking.RUN_FILE.exists():
        return None
    run_id = read_json(tracking.RUN_FILE)["run_id"]
    try:
        run = mlflow_client.get_run(run_id)
    except MlflowException:  # another store: it has never seen this run id
        return None
    return run_id if run.info.status == "FINISHED" else None


def _parent_tags(init_from: str | None) -> dict[str, str]:
    from fmnist.model.finetune import parent_tags

    try:
        return parent_tags(init_from)
    except MlflowException:  # a parent registered only in the store it was trained against
        return {"finetune.parent_uri": init_from} if init_from else {}


def log_workspace_run(params: dict[str, Any], digest: str) -> str:
    """Log the workspace's model, params, metrics, figures and data into a new run, as train
    and evaluate log theirs; returns its run id."""
    import keras

    from fmnist import lineage  # mlflow.data: only when a run is logged
    from fmnist.data.splits import load_split
    from fmnist.model.evaluation import read_per_class

    manifest = read_json(config.PROCESSED_DIR / formats.MANIFEST)
    summary, evaluated = read_json(TRAIN_FILE), read_json(EVALUATE_FILE)
    tags = {**tracking.run_tags(manifest), **_parent_tags(params["train"].get("init_from")),
            MODEL_DIGEST_TAG: digest, "precision": summary.get("precision", "unknown")}
    if tracking.RUN_FILE.exists():
        tags[SOURCE_RUN_TAG] = read_json(tracking.RUN_FILE)["run_id"]
    val = load_split("val")
    with tracking.start_run(params["mlflow"]["experiment"], tags=tags) as run:
        mlflow.log_params(config.flatten(params))
        lineage.log_splits({"train": load_split("train"), "val": val,
                            "test": load_split("test")}, manifest)
        if HISTORY_FILE.exists():
            tracking.log_history(pending.read_history(HISTORY_FILE))
        mlflow.log_metrics({"train_seconds": summary["train_seconds"],
                            registry.VAL_METRIC: summary["val_accuracy"]})
        mlflow.log_metrics({key: value for key, value in evaluated.items()
                            if isinstance(value, (int, float))})
        if PER_CLASS_FILE.exists():
            mlflow.log_metrics({f"test_f1.{name.replace('/', '_')}": values["f1"]
                                for name, values in read_per_class(PER_CLASS_FILE).items()})
        for figure in sorted(config.FIGURES_DIR.glob("*.png")):
            mlflow.log_artifact(str(figure), artifact_path="figures")
        for path in sorted(config.METRICS_DIR.iterdir()):
            if path.is_file() and path.name not in NOT_LOGGED:
                mlflow.log_artifact(str(path), artifact_path="metrics")
        model = keras.saving.load_model(config.MODEL_FILE)  # safe_mode: no code runs
        tracking.log_keras_model(model, val[0][:8])
    return run.info.run_id


def publish(params: dict[str, Any]) -> dict[str, Any]:
    """Log the workspace's run to the store now in force (once per model file) and register it
    under the usual rules. Returns the register stage's outcome, plus `run_id`, `tracking_uri`
    and `newly_logged`."""
    _require([config.MODEL_FILE, TRAIN_FILE, EVALUATE_FILE,
              config.PROCESSED_DIR / formats.MANIFEST,
              *(config.PROCESSED_DIR / f"{split}.npz" for split in ("train", "val", "test"))])
    mlflow_client = registry.client()  # checks a server's /health first
    digest = sha256(config.MODEL_FILE)
    run_id = (workspace_run(mlflow_client)
              or published_run(mlflow_client, params["mlflow"]["experiment"], digest))
    newly_logged = run_id is None
    if newly_logged:
        run_id = log_workspace_run(params, digest)
    outcome = registry.register_run(mlflow_client, params["registry"]["model_name"], run_id,
                                    read_json(TRAIN_FILE)["val_accuracy"],
                                    read_json(EVALUATE_FILE)["test_accuracy"],
                                    params["promotion"]["min_delta"],
                                    params["promotion"]["full_train_set_only"])
    return {**outcome, "tracking_uri": tracking.tracking_uri(), "newly_logged": newly_logged}
