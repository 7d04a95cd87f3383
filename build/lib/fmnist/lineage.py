"""Dataset lineage in MLflow: each training run names the data it saw as run inputs, so the
run page's Datasets panel says which data (digest: the content fingerprint) from where
(source: the place download fetched it), and runs on different data differ visibly."""
from __future__ import annotations

from typing import Any, Mapping

import mlflow
import numpy as np
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.numpy_dataset import NumpyDataset

# MLflow stores at most 36 characters of digest; 32 hex digits of the sha256 fingerprint.
DIGEST_LENGTH = 32
CONTEXTS = {"train": "train", "val": "validation", "test": "test"}


def digest(manifest: Mapping[str, Any]) -> str:
    return manifest["fingerprint"][:DIGEST_LENGTH]


def source(manifest: Mapping[str, Any]) -> DatasetSource:
    """The manifest's location (a path, Zalando's URL or the Kaggle page); the bare source kind
    for manifests written before locations were recorded ("unknown" without either). Built
    explicitly: MLflow's guess warns that a path reads two ways."""
    from mlflow.data.sources import LocalArtifactDatasetSource  # made by mlflow.data at import

    location = manifest.get("location") or manifest.get("source") or "unknown"
    if location.startswith(("http://", "https://")):
        return HTTPDatasetSource(location)
    return LocalArtifactDatasetSource(location)


def dataset(split: str, images: np.ndarray, labels: np.ndarray,
            manifest: Mapping[str, Any]) -> NumpyDataset:
    """One split as an MLflow dataset (its profile records the shapes, so a subset shows)."""
    return mlflow.data.from_numpy(images, targets=labels, name=f"fashion-mnist-{split}",
                                  digest=digest(manifest), source=source(manifest))


def log_splits(parts: Mapping[str, tuple[np.ndarray, np.ndarray]],
               manifest: Mapping[str, Any]) -> None:
    """Log each split (train, val, test) as an input of the active run, in its context."""
    for split, (images, labels) in parts.items():
        mlflow.log_input(dataset(split, images, labels, manifest), context=CONTEXTS[split],
                         tags={"split.seed": str(manifest.get("seed")),
                               "split.val_split": str(manifest.get("val_split")),
                               "split.subset": str(manifest.get("subset"))})
