"""preprocess: raw images -> float32 tensors in [0, 1], stratified train/validation split.

The test set is only scaled, never subsampled or shuffled, so test accuracy always means the
same 10k images.
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from stages import config, dataio
from stages.errors import ParamsError, ValidationFailed, stage_entry


def scale(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]: the one place pixels are scaled
    (prediction code must call this too)."""
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


def save_split(name: str, images: np.ndarray, labels: np.ndarray) -> None:
    config.PROCESSED_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(config.PROCESSED_DIR / f"{name}.npz", images=images, labels=labels)


def load_split(name: str) -> tuple[np.ndarray, np.ndarray]:
    """What train and evaluate read: float32 images (N, 28, 28, 1) and uint8 labels (N,)."""
    with np.load(config.PROCESSED_DIR / f"{name}.npz") as arrays:
        return arrays["images"], arrays["labels"]


@stage_entry
def main() -> None:
    params = config.load_params()
    summary = dataio.read_json(config.METRICS_DIR / "validation.json")
    if not summary.get("success"):  # guards a manual run after a failed validate
        raise ValidationFailed("metrics/validation.json records failed checks; fix the data first")
    frames = dataio.read_raw_frames(config.RAW_DIR)
    train_images, train_labels = dataio.from_frame(frames["train"])
    keep = take_per_class(train_labels, params["preprocess"]["subset"])
    parts = split_train_val(scale(train_images[keep]), train_labels[keep],
                            params["preprocess"]["val_split"], params["seed"])
    test_images, test_labels = dataio.from_frame(frames["test"])
    parts["test"] = (scale(test_images), test_labels)
    for name, (images, labels) in parts.items():
        save_split(name, images, labels)
        print(f"{name}: {len(labels)} images, {images.dtype} {images.shape[1:]}")


if __name__ == "__main__":
    main()
