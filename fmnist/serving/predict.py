"""Predict with a registered model: load it once, scale like the pipeline, predict in batches.

The model is the registry's champion (`models:/<name>@champion`) or any MLflow model URI. The
pixels go through fmnist.data.splits.scale, the same code train and evaluate read their data through, so
a served or predicted image is exactly what the model was trained on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fmnist import model_loading, registry
from fmnist.data import formats
from fmnist.data.splits import scale
from fmnist.errors import InputFileError
from fmnist.serving import checks, inputs

TOP_K = 3
BATCH_SIZE = 1024


def champion_uri(model_name: str) -> str:
    return f"models:/{model_name}@{registry.CHAMPION}"


def load_model(model_uri: str, trust: bool = False) -> Any:
    """The Keras model behind an MLflow model URI (its .keras file, as train logs it, loaded with
    safe_mode; anything else only with `trust`)."""
    return model_loading.load_keras_model(model_uri, hint=", `dvc repro` registers one",
                                          trust=trust)


def probabilities(model: Any, images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) -> class probabilities (N, 10). predict_on_batch per chunk:
    Keras' predict() costs ~60 ms of set-up per call, too slow for one image."""
    if len(images) == 0:
        return np.zeros((0, len(formats.CLASS_NAMES)), dtype=np.float32)
    scaled = scale(images)
    return np.concatenate([np.asarray(model.predict_on_batch(scaled[start:start + BATCH_SIZE]))
                           for start in range(0, len(scaled), BATCH_SIZE)])


def top_classes(row: np.ndarray, k: int = TOP_K) -> list[dict[str, Any]]:
    best = np.argsort(row)[::-1][:k]
    return [{"class": formats.CLASS_NAMES[i], "index": int(i), "probability": float(row[i])}
            for i in best]


def load_files(paths: list[Path | str], invert: str = "auto"
               ) -> tuple[list[str], np.ndarray, list[dict[str, str]]]:
    """Every readable file's images in one array, their names, and one error entry per bad file."""
    names: list[str] = []
    batches: list[np.ndarray] = []
    errors: list[dict[str, str]] = []
    for path in paths:
        try:
            file_names, images = inputs.load(path, invert)
        except InputFileError as error:
            errors.append({"input": str(path), "error": type(error).__name__,
                           "message": str(error)})
            continue
        names += file_names
        batches.append(images)
    images = np.concatenate(batches) if batches else np.zeros((0, 28, 28), dtype=np.uint8)
    return names, images, errors


def predict_files(model: Any, paths: list[Path | str], invert: str = "auto"
                  ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Top-3 classes per image of every readable file (one batch), each with its warning (None
    when the image looks like a garment on a dark background), plus the per-file errors."""
    names, images, errors = load_files(paths, invert)
    rows = probabilities(model, images)
    return [{"input": name, "top": top_classes(row), "warning": checks.warning(image)}
            for name, row, image in zip(names, rows, images)], errors


def request_body(images: np.ndarray) -> dict[str, list]:
    """The JSON body `mlflow models serve` expects for these images (its tensor signature)."""
    return {"inputs": scale(images).tolist()}
