"""Every figure the pipeline draws (matplotlib, headless). Each function returns a Figure;
`save` writes it, so stages and MLflow logging share one drawing per figure."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def sample_grid(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                per_class: int = 8) -> Figure:
    """The first `per_class` images of every class, one row per class."""
    figure, axes = plt.subplots(len(class_names), per_class,
                                figsize=(per_class * 0.9, len(class_names) * 1.0))
    for row, name in enumerate(class_names):
        picks = np.flatnonzero(labels == row)[:per_class]
        for col in range(per_class):
            axis = axes[row, col]
            axis.axis("off")
            if col < len(picks):
                axis.imshow(images[picks[col]], cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_title(name, fontsize=8, loc="left")
    figure.suptitle("Fashion-MNIST: sample images per class")
    return figure


def class_distribution(counts_by_split: dict[str, Sequence[int]],
                       class_names: Sequence[str]) -> Figure:
    """Grouped bars: images per class for each split."""
    figure, axis = plt.subplots(figsize=(9, 4))
    positions = np.arange(len(class_names))
    width = 0.8 / max(len(counts_by_split), 1)
    for offset, (split, counts) in enumerate(counts_by_split.items()):
        axis.bar(positions + offset * width, counts, width, label=split)
    axis.set_xticks(positions + width * (len(counts_by_split) - 1) / 2)
    axis.set_xticklabels(class_names, rotation=30, ha="right")
    axis.set_ylabel("images")
    axis.set_title("Class distribution")
    axis.legend()
    return figure


def training_curves(history: dict[str, Sequence[float]]) -> Figure:
    """Accuracy and loss per epoch, train vs validation (Keras History.history layout)."""
    figure, (acc_axis, loss_axis) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for axis, metric in ((acc_axis, "accuracy"), (loss_axis, "loss")):
        axis.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.set_title(metric.capitalize())
        axis.grid(alpha=0.3)
        axis.legend()
    return figure


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Counts with row-normalised colour, so rare errors still show."""
    figure, axis = plt.subplots(figsize=(8, 7))
    row_share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axis.imshow(row_share, cmap="Blues", vmin=0, vmax=1)
    for actual in range(matrix.shape[0]):
        for predicted in range(matrix.shape[1]):
            axis.text(predicted, actual, str(matrix[actual, predicted]), ha="center", va="center",
                      fontsize=7, color="white" if row_share[actual, predicted] > 0.5 else "black")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    axis.set_title("Confusion matrix (test set)")
    return figure


def accuracy_vs_time(points: dict[str, tuple[float, float, float]]) -> Figure:
    """One point per profile: (seconds, mean test accuracy, its std) -> an error-bar scatter."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, (seconds, accuracy, std) in points.items():
        axis.errorbar(seconds, accuracy * 100, yerr=std * 100, fmt="o", capsize=4)
        axis.annotate(name, (seconds, accuracy * 100), textcoords="offset points",
                      xytext=(6, 4))
    axis.set_xlabel("cold `dvc repro` wall time (s)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("Accuracy vs time per profile")
    axis.grid(alpha=0.3)
    return figure
