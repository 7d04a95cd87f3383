"""Error analysis on the test set: plain arrays in, plain lists and dicts out."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from fmnist.jsonfiles import replacing

PAIR_COLUMNS = ("rank", "pair", "actual", "predicted", "count", "share_of_actual")


def top_confused_pairs(matrix: np.ndarray, class_names: Sequence[str], count: int = 10
                       ) -> list[dict]:
    """The `count` most frequent (actual, predicted) mistakes, most frequent first (ties: by
    class order). share_of_actual: the part of the actual class's images that went there."""
    totals = matrix.sum(axis=1)
    cells = [(int(matrix[a, p]), a, p) for a in range(len(matrix)) for p in range(len(matrix))
             if a != p and matrix[a, p] > 0]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [{"rank": rank, "pair": f"{class_names[a]} -> {class_names[p]}",
             "actual": class_names[a], "predicted": class_names[p], "count": n,
             "share_of_actual": round(n / totals[a], 4)}
            for rank, (n, a, p) in enumerate(cells[:count], start=1)]


def confident_mistakes(labels: np.ndarray, probabilities: np.ndarray, count: int = 10
                       ) -> np.ndarray:
    """Indices of the `count` mistakes the model was surest of, surest first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def first_per_class(labels: np.ndarray, per_class: int = 2) -> np.ndarray:
    """The first `per_class` images of each class, class by class (a fixed, seed-free pick)."""
    return np.concatenate([np.flatnonzero(labels == label)[:per_class]
                           for label in np.unique(labels)]).astype(int)


def write_pairs(pairs: list[dict], path: Path) -> Path:
    """The pairs as CSV rows: a table in metrics/ and a bar chart in `dvc plots`."""
    path = Path(path)
    with replacing(path) as temporary, \
            open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PAIR_COLUMNS)
        writer.writeheader()
        writer.writerows(pairs)
    return path
