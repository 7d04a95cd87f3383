"""Scoring a model on the test set: accuracy, loss, per-class report, confusion matrix, and the
{actual, predicted} rows `dvc plots` draws its confusion matrix from.

The headline numbers are the DVC metrics (metrics/evaluate.json, columns of `dvc exp show`); the
per-class table (fifty values) is a plain output beside them, metrics/per_class.csv, so the
experiments table stays readable."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, log_loss

from fmnist.data import formats
from fmnist.jsonfiles import replacing


PER_CLASS_COLUMNS = ("precision", "recall", "f1", "support", "misclassified")


def score(labels: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray
          ) -> tuple[dict, dict[str, dict], np.ndarray]:
    """From true labels, predictions and probabilities: the headline test metrics, the
    per-class figures ({class: {precision, recall, f1, support, misclassified}}) and the
    confusion matrix."""
    report = classification_report(labels, predicted, labels=range(len(formats.CLASS_NAMES)),
                                   target_names=formats.CLASS_NAMES, output_dict=True,
                                   zero_division=0)
    matrix = confusion_matrix(labels, predicted, labels=range(len(formats.CLASS_NAMES)))
    per_class = {
        name: {"precision": report[name]["precision"], "recall": report[name]["recall"],
               "f1": report[name]["f1-score"], "support": int(report[name]["support"]),
               "misclassified": int(matrix[index].sum() - matrix[index, index])}
        for index, name in enumerate(formats.CLASS_NAMES)
    }
    return {
        "test_accuracy": float(accuracy_score(labels, predicted)),
        # Plain cross-entropy against the true class; the training loss Keras reports is
        # against labels smoothed by `train.label_smoothing`, so it reads higher.
        "test_loss": float(log_loss(labels, probabilities, labels=range(len(formats.CLASS_NAMES)))),
        "macro_f1": report["macro avg"]["f1-score"],
        "misclassified": int(np.sum(labels != predicted)),
    }, per_class, matrix


def write_per_class(per_class: dict[str, dict], path: Path) -> None:
    """One row per class: class, precision, recall, f1, support, misclassified."""
    with replacing(path) as temporary, \
            open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", *PER_CLASS_COLUMNS])
        writer.writerows([name, *(values[column] for column in PER_CLASS_COLUMNS)]
                         for name, values in per_class.items())


def read_per_class(path: Path) -> dict[str, dict]:
    """metrics/per_class.csv back as {class: {precision, recall, f1: float, support,
    misclassified: int}}."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["class"]: {column: (int(row[column]) if column in ("support", "misclassified")
                                        else float(row[column])) for column in PER_CLASS_COLUMNS}
                for row in csv.DictReader(handle)}


def write_predictions(labels: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    """{actual, predicted} rows: the input of the `dvc plots` confusion template."""
    with replacing(path) as temporary, \
            open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["actual", "predicted"])
        writer.writerows((formats.CLASS_NAMES[a], formats.CLASS_NAMES[p])
                         for a, p in zip(labels, predicted))


def report_text(labels: np.ndarray, predicted: np.ndarray) -> str:
    """sklearn's per-class precision/recall/F1 table, four digits, every class named."""
    return classification_report(labels, predicted, digits=4, zero_division=0,
                                 labels=range(len(formats.CLASS_NAMES)),
                                 target_names=formats.CLASS_NAMES)
