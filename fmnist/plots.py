"""Every figure the pipeline draws. Each function returns a matplotlib Figure; `save` writes it,
so stages and MLflow logging share one drawing per figure. Figures are made without pyplot, so
no GUI backend is chosen or needed (CI, servers)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from fmnist.jsonfiles import replacing


def save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    with replacing(path) as temporary:
        figure.savefig(temporary, dpi=100, bbox_inches="tight")
    return path


def sample_grid(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                per_class: int = 8) -> Figure:
    """The first `per_class` images of every class, one row per class."""
    figure = Figure(figsize=(per_class * 0.9, len(class_names) * 1.0))
    axes = figure.subplots(len(class_names), per_class)
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
    figure = Figure(figsize=(9, 4))
    axis = figure.subplots()
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
    figure = Figure(figsize=(10, 4))
    acc_axis, loss_axis = figure.subplots(1, 2)
    epochs = np.arange(len(history["loss"]))  # from 0, as CSVLogger and MLflow's steps count
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
    figure = Figure(figsize=(8, 7))
    axis = figure.subplots()
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
