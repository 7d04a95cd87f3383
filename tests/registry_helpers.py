"""Helpers for the registry, predict and serve tests: tiny logged models and real test images."""
from __future__ import annotations

import functools
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
from PIL import Image

from fmnist import config, jsonfiles, tracking
from fmnist.data import formats, splits
from fmnist.model.architectures import build_model, with_flip_averaging
from tests.conftest import REAL_DATA_DIR, make_dataset

REAL_TEST_IMAGES = REAL_DATA_DIR / "t10k-images-idx3-ubyte.gz"
REAL_TEST_LABELS = REAL_DATA_DIR / "t10k-labels-idx1-ubyte.gz"
FINGERPRINT = "f" * 64
# What preprocess writes for a full-train-set run (seed 42, val 0.2; tests that need the
# default's own split pass val_split=).
MANIFEST = {"fingerprint": FINGERPRINT, "source": "local", "seed": 42, "val_split": 0.2,
            "subset": 1.0}


def real_test_images(count: int) -> np.ndarray:
    """The first `count` images of the real test set, uint8 (count, 28, 28)."""
    if not REAL_TEST_IMAGES.exists():
        pytest.fail(f"{REAL_DATA_DIR} is missing: install Debian's dataset-fashion-mnist")
    return np.array(formats.read_idx(REAL_TEST_IMAGES)[:count])


def real_test_labels(count: int) -> np.ndarray:
    """Their labels (the first 20 hold all ten classes)."""
    return np.array(formats.read_idx(REAL_TEST_LABELS)[:count])


def export_pngs(images: np.ndarray, directory: Path) -> list[Path]:
    """Each image as a 28x28 grayscale PNG, as a user would export it."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"test_{index:05d}.png" for index in range(len(images))]
    for path, image in zip(paths, images):
        Image.fromarray(image, mode="L").save(path)
    return paths


@functools.lru_cache(maxsize=1)
def tiny_model() -> keras.Model:
    """A tiny one-conv CNN (~11k weights) fitted for two epochs on generated bars: confident
    enough that its top class is no coin toss, quick enough to build once per test session.
    Wrapped in flip averaging like the pipeline's models, so serving and predict see that shape."""
    config.seed_everything(0)
    images, labels = make_dataset(per_class=20)
    model = build_model("baseline", filters=4, kernel_size=3, dense_units=16, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(splits.scale(images), labels, epochs=2, batch_size=32, verbose=0)
    return with_flip_averaging(model)


def log_candidate(val_accuracy: float, test_accuracy: float, **manifest: object) -> str:
    """What train and evaluate leave for register, without training: an MLflow run holding the
    tiny model, models/mlflow_run.json and the two metrics files; `manifest` overrides the data
    and split it claims (e.g. seed=7). Returns the run id."""
    params = config.load_params()
    sample = splits.scale(make_dataset(per_class=1)[0])
    with tracking.start_run(params["mlflow"]["experiment"],
                            tags=tracking.run_tags({**MANIFEST, **manifest})) as run:
        mlflow.log_params(config.flatten(params))
        mlflow.log_metrics({"model_val_accuracy": val_accuracy, "test_accuracy": test_accuracy})
        tracking.log_keras_model(tiny_model(), sample[:8])
    jsonfiles.write_json(tracking.RUN_FILE, {"run_id": run.info.run_id,
                                          "experiment": params["mlflow"]["experiment"]})
    jsonfiles.write_json(config.METRICS_DIR / "train.json", {"val_accuracy": val_accuracy})
    jsonfiles.write_json(config.METRICS_DIR / "evaluate.json", {"test_accuracy": test_accuracy})
    return run.info.run_id
