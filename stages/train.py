"""train: build the CNN from params, fit it, save the model and metrics, then log the run to MLflow.

Files first: they are saved, and kept aside (fmnist.pending), before anything is logged, so a
tracking server that drops after the fit costs no training: the rerun logs the kept model."""
from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import mlflow

from fmnist import config, lineage, pending, plots, tracking
from fmnist.data import formats
from fmnist.data.splits import load_split
from fmnist.errors import stage_entry
from fmnist.jsonfiles import read_json, write_json
from fmnist.model.architectures import build_model
from fmnist.model.augmentation import training_wrapper
from fmnist.model.finetune import initialised, parent_tags
from fmnist.model.training import (accuracy, compile_model, fit, hyper_params, saved_model,
                                   training_summary, use_distribution, use_precision,
                                   write_history)

HISTORY_FILE = config.METRICS_DIR / "train_history.csv"
SUMMARY_FILE = config.METRICS_DIR / "train.json"
CURVES_FILE = config.FIGURES_DIR / "training_curves.png"


def fit_and_save(trainer: keras.Model, model: keras.Model, train, val, train_params: dict,
                 key: str) -> tuple[keras.Model, dict]:
    """Fit (per-epoch metrics go to the active MLflow run), then save the model, its history,
    summary and curves, and keep them aside until they are logged. Returns the saved model
    (float32, flip averaged when asked for) and the summary."""
    started = time.perf_counter()
    history = fit(trainer, train, val, train_params, [mlflow.keras.MlflowCallback()])
    seconds = time.perf_counter() - started
    precision = model.dtype_policy.name
    model = saved_model(model, train_params["flip_averaging"])
    summary = training_summary(history, seconds, model, val_accuracy=accuracy(model, val),
                               kept_best=train_params["early_stopping_patience"] > 0,
                               precision=precision)
    config.MODEL_DIR.mkdir(parents=True, exist_ok=True)
    model.save(config.MODEL_FILE)
    write_history(history, HISTORY_FILE)
    write_json(SUMMARY_FILE, summary)
    plots.save(plots.training_curves(history), CURVES_FILE)
    pending.keep(key, [config.MODEL_FILE, HISTORY_FILE, SUMMARY_FILE, CURVES_FILE])
    return model, summary


@stage_entry
def main() -> None:
    params = config.load_params()
    config.seed_everything(params["seed"])
    train, val = load_split("train"), load_split("val")
    steps_per_epoch = math.ceil(len(train[1]) / params["train"]["batch_size"])
    use_distribution(params["train"]["distribution"], params["train"]["batch_size"])
    use_precision(params["train"]["precision"])
    init_from = params["train"].get("init_from")  # an MLflow model URI to fine-tune, or empty
    model = initialised(build_model(params["train"]["model"], **hyper_params(params)), init_from)
    augment = params["train"]["augment"]
    # Fitting the wrapper trains `model` (shared weights); `model` is what gets saved.
    trainer = compile_model(training_wrapper(model, augment["shift"], augment["erase"]),
                            params["train"], steps_per_epoch)
    manifest = read_json(config.PROCESSED_DIR / formats.MANIFEST)
    key = pending.training_key(params, manifest, Path(__file__))

    with tracking.start_run(params["mlflow"]["experiment"],
                            tags={**tracking.run_tags(manifest), **parent_tags(init_from)}) as run:
        mlflow.log_params(config.flatten(params))
        lineage.log_splits({"train": train, "val": val, "test": load_split("test")}, manifest)
        if pending.restore(key):  # the last attempt trained this model, then lost the server
            print("logging the model the last attempt trained (its logging failed); no retraining")
            model = keras.saving.load_model(config.MODEL_FILE)
            summary = read_json(SUMMARY_FILE)
            tracking.log_history(pending.read_history(HISTORY_FILE))
        else:
            model, summary = fit_and_save(trainer, model, train, val, params["train"], key)

        mlflow.log_metrics({"train_seconds": summary["train_seconds"],
                            "model_val_accuracy": summary["val_accuracy"]})
        mlflow.set_tag("precision", summary["precision"])  # what `train.precision: auto` chose
        mlflow.log_artifact(str(CURVES_FILE), artifact_path="figures")
        mlflow.log_artifact(str(HISTORY_FILE), artifact_path="metrics")
        tracking.log_keras_model(model, val[0][:8])
        write_json(tracking.RUN_FILE, {"run_id": run.info.run_id,
                                       "experiment": params["mlflow"]["experiment"]})
    pending.discard()
    print(f"val accuracy {summary['val_accuracy']:.4f}; MLflow run {run.info.run_id}")


if __name__ == "__main__":
    main()
