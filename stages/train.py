"""train: build the CNN from params, fit it, log the run to MLflow, save the model."""
from __future__ import annotations

import csv
import time
from typing import Any

import keras
import mlflow
import numpy as np

from stages import config, dataio, plots, tracking
from stages.errors import stage_entry
from stages.models import build_model
from stages.preprocess import load_split

MODEL_FILE = config.MODEL_DIR / "model.keras"
HISTORY_FILE = config.METRICS_DIR / "train_history.csv"


def hyper_params(params: dict[str, Any]) -> dict[str, Any]:
    """The builder's keyword arguments, from the top-level params."""
    return {key: params[key] for key in ("filters", "kernel_size", "dense_units", "dropout")}


def compile_model(model: keras.Model, learning_rate: float) -> keras.Model:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model: keras.Model, train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray], train_params: dict[str, Any],
        callbacks: list[keras.callbacks.Callback]) -> dict[str, list[float]]:
    history = model.fit(*train, validation_data=val, epochs=train_params["epochs"],
                        batch_size=train_params["batch_size"], callbacks=callbacks, verbose=2)
    return {name: [float(v) for v in values] for name, values in history.history.items()}


def write_history(history: dict[str, list[float]]) -> None:
    """Per-epoch rows with an `epoch` column, the shape `dvc plots` wants."""
    HISTORY_FILE.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(history)
    with open(HISTORY_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", *names])
        for epoch, values in enumerate(zip(*(history[n] for n in names)), start=1):
            writer.writerow([epoch, *(f"{v:.6f}" for v in values)])


def summarize(history: dict[str, list[float]], seconds: float, model: keras.Model) -> dict:
    return {
        "train_accuracy": history["accuracy"][-1], "train_loss": history["loss"][-1],
        "val_accuracy": history["val_accuracy"][-1], "val_loss": history["val_loss"][-1],
        "epochs": len(history["loss"]), "train_seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
    }


@stage_entry
def main() -> None:
    params = config.load_params()
    config.seed_everything(params["seed"])
    train, val = load_split("train"), load_split("val")
    model = compile_model(build_model(params["train"]["model"], **hyper_params(params)),
                          params["train"]["learning_rate"])
    fingerprint = dataio.read_json(config.RAW_DIR / dataio.MANIFEST)["fingerprint"]

    with tracking.start_run(params["mlflow"]["experiment"],
                            tags=tracking.run_tags(fingerprint)) as run:
        mlflow.log_params(config.flatten(params))
        started = time.perf_counter()
        history = fit(model, train, val, params["train"], [mlflow.keras.MlflowCallback()])
        summary = summarize(history, time.perf_counter() - started, model)
        mlflow.log_metrics({"train_seconds": summary["train_seconds"]})

        config.MODEL_DIR.mkdir(parents=True, exist_ok=True)
        model.save(MODEL_FILE)
        write_history(history)
        dataio.write_json(config.METRICS_DIR / "train.json", summary)
        curves = plots.save(plots.training_curves(history),
                            config.FIGURES_DIR / "training_curves.png")
        mlflow.log_artifact(str(curves), artifact_path="figures")
        mlflow.log_artifact(str(HISTORY_FILE), artifact_path="metrics")
        tracking.log_keras_model(model, val[0][:8])
        dataio.write_json(tracking.RUN_FILE, {"run_id": run.info.run_id,
                                              "experiment": params["mlflow"]["experiment"]})
    print(f"val accuracy {summary['val_accuracy']:.4f}; MLflow run {run.info.run_id}")


if __name__ == "__main__":
    main()
