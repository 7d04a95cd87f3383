"""Scaling and splitting: raw uint8 images -> float32 tensors in [0, 1], stratified train/val.

The test set is only scaled, never subsampled or shuffled, so test accuracy always means the
same 10k images. `scale` is the one place pixels are scaled: training, evaluation, prediction
and serving all call it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from fmnist.config import PROCESSED_DIR
from fmnist.errors import ParamsError
from fmnist.jsonfiles import replacing

SPLIT_NAMES = ("train", "val", "test")


def scale(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]


def take_per_class(labels: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the first `fraction` of each class, in original order (for quick runs)."""
    if not 0 < fraction <= 1:
        raise ParamsError(f"preprocess.subset must be in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(len(labels))
    keep = [np.flatnonzero(labels == label)[: max(1, round(np.sum(labels == label) * fraction))]
            for label in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def split_train_val(images: np.ndarray, labels: np.ndarray, val_split: float, seed: int
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stratified split, so every class keeps its share in both parts."""
    if not 0 < val_split < 1:
        raise ParamsError(f"preprocess.val_split must be in (0, 1), got {val_split}")
    train_x, val_x, train_y, val_y = train_test_split(
        images, labels, test_size=val_split, stratify=labels, random_state=seed)
    return {"train": (train_x, train_y), "val": (val_x, val_y)}


def make_splits(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                test_labels: np.ndarray, preprocess_params: dict, seed: int
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 images and labels of both published splits -> scaled train/val/test, as the
    preprocess stage writes them: `subset` of each class, then the stratified split."""
    keep = take_per_class(train_labels, preprocess_params["subset"])
    parts = split_train_val(scale(train_images[keep]), train_labels[keep],
                            preprocess_params["val_split"], seed)
    parts["test"] = (scale(test_images), test_labels)
    return parts


def save_split(name: str, images: np.ndarray, labels: np.ndarray,
               processed_dir: Path = PROCESSED_DIR) -> None:
    with replacing(Path(processed_dir) / f"{name}.npz") as temporary:
        np.savez(temporary, images=images, labels=labels)


def load_split(name: str, processed_dir: Path = PROCESSED_DIR) -> tuple[np.ndarray, np.ndarray]:
    """What train and evaluate read: float32 images (N, 28, 28, 1) and uint8 labels (N,)."""
    with np.load(Path(processed_dir) / f"{name}.npz") as arrays:
        return arrays["images"], arrays["labels"]
