"""The error-analysis and Grad-CAM figures evaluate draws (made without pyplot, like
fmnist.plots; saved with fmnist.plots.save)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from fmnist.insight.gradcam import overlay

_COLUMNS = 10


def _caption(true: str, predicted: str, confidence: float) -> str:
    return f"{true}\n-> {predicted} {confidence:.0%}"


def _grid(count: int, columns: int = _COLUMNS) -> tuple[Figure, np.ndarray]:
    rows = max(1, math.ceil(count / columns))
    figure = Figure(figsize=(columns * 1.25, rows * 1.6))
    axes = np.atleast_2d(figure.subplots(rows, columns)).reshape(rows, columns)
    for axis in axes.flat:
        axis.axis("off")
    return figure, axes.flat


def labelled_images(images: np.ndarray, true: Sequence[str], predicted: Sequence[str],
                    confidence: Sequence[float], title: str,
                    heats: np.ndarray | None = None) -> Figure:
    """One cell per image (uint8, N x H x W): the image, or its Grad-CAM overlay when `heats`
    is given, captioned `true -> predicted confidence`; mistakes captioned in red."""
    figure, cells = _grid(len(images))
    for index, axis in enumerate(list(cells)[:len(images)]):
        if heats is None:
            axis.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        else:
            axis.imshow(overlay(images[index], heats[index]))
        axis.set_title(_caption(true[index], predicted[index], confidence[index]), fontsize=7,
                       color="black" if true[index] == predicted[index] else "crimson")
    figure.suptitle(title)
    return figure


def per_class_accuracy(accuracies: Sequence[float], class_names: Sequence[str]) -> Figure:
    """One bar per class, the overall mean as a line: which classes drag accuracy down."""
    figure = Figure(figsize=(9, 4))
    axis = figure.subplots()
    bars = axis.bar(range(len(class_names)), accuracies, color="steelblue")
    axis.bar_label(bars, labels=[f"{a:.1%}" for a in accuracies], fontsize=7)
    axis.axhline(float(np.mean(accuracies)), color="grey", linestyle="--", label="class mean")
    axis.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("accuracy")
    axis.set_title("Per-class accuracy (test set)")
    axis.legend(loc="lower right")
    return figure
