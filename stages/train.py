"""train: build the CNN from params, fit it, save the model and metrics, then log the run to MLflow.

Files first: they are saved, and kept aside (fmnist.pending), before anything is logged, so a
tracking server that drops after the fit costs no training: the rerun logs the kept model."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import keras
import mlflow

from fmnist import config, lineage, pending, plots, tracking
from fmnist.data import formats
from fmnist.data.splits import load_split
from fmnist.errors import stage_entry
from fmnist.jsonfiles import read_json, replacing, write_json
from fmnist.model.finetune import initialised, parent_tags
from fmnist.model.training import Trained, accuracy, prepare, train, training_summary

HISTORY_FILE = config.METRICS_DIR / "train_history.csv"
SUMMARY_FILE = config.METRICS_DIR / "train.json"
CURVES_FILE = config.FIGURES_DIR / "training_curves.png"


def save(trained: Trained, summary: dict, key: str) -> None:
    """Save the model, summary and curves, and keep them aside with the history until logged."""
    config.MODEL_DIR.mkdir(parents=True, exist_ok=True)
    with replacing(config.MODEL_FILE) as temporary:
        trained.model.save(temporary)
    write_json(SUMMARY_FILE, summary)
    plots.save(plots.training_curves(trained.history), CURVES_FILE)
    pending.keep(key, [config.MODEL_FILE, HISTORY_FILE, SUMMARY_FILE, CURVES_FILE])


@stage_entry
def main() -> None:
    params = config.load_params()
    train_split, val = load_split("train"), load_split("val")
    init_from = params["train"].get("init_from")  # an MLflow model URI to fine-tune, or empty
    prepared = prepare(params, len(train_split[1]),
                       start_from=partial(initialised, model_uri=init_from))
    manifest = read_json(config.PROCESSED_DIR / formats.MANIFEST)
    key = pending.training_key(params, manifest, Path(__file__))

    with tracking.start_run(params["mlflow"]["experiment"],
                            tags={**tracking.run_tags(manifest), **parent_tags(init_from)}) as run:
        mlflow.log_params(config.flatten(params))
        lineage.log_splits({"train": train_split, "val": val, "test": load_split("test")}, manifest)
        if pending.restore(key):  # the last attempt trained this model, then lost the server
            print("logging the model the last attempt trained (its logging failed); no retraining")
            model = keras.saving.load_model(config.MODEL_FILE)
            summary = read_json(SUMMARY_FILE)
            tracking.log_history(pending.read_history(HISTORY_FILE))
        else:  # per-epoch metrics go to the active MLflow run and to HISTORY_FILE
            with replacing(HISTORY_FILE) as history_file:  # a cut-off fit leaves the old file
                trained = train(params, train_split, val,
                                [mlflow.keras.MlflowCallback(),
                                 keras.callbacks.CSVLogger(history_file)], prepared)
            model = trained.model
            summary = training_summary(
                trained.history, trained.seconds, model, val_accuracy=accuracy(model, val),
                kept_best=params["train"]["early_stopping_patience"] > 0,
                precision=trained.precision)
            save(trained, summary, key)

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
