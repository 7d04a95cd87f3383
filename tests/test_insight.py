"""Error analysis: pure computations on known matrices, and the files evaluate adds."""
from __future__ import annotations

import csv

import numpy as np

from fmnist.data.formats import CLASS_NAMES
from fmnist.insight import mistakes
from fmnist.model.evaluation import score

NAMES = ["a", "b", "c"]


def test_scores_of_known_predictions_recall_per_class_and_zero_for_an_empty_class():
    """Class 0: 4 of 5 right; class 1: 3 of 4; class 2 never occurs. The true class's
    probability is 1/2 for every image, so the cross-entropy is ln 2."""
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    predicted = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0])
    probabilities = np.full((9, 10), 0.5 / 9, dtype="float32")
    probabilities[np.arange(9), labels] = 0.5
    metrics, per_class, matrix = score(labels, predicted, probabilities)
    recall = [per_class[name]["recall"] for name in CLASS_NAMES]
    assert recall[:3] == [0.8, 0.75, 0.0] and matrix[0, 1] == 1
    assert metrics["test_accuracy"] == 7 / 9 and metrics["misclassified"] == 2
    assert abs(metrics["test_loss"] - np.log(2)) < 1e-6


def test_top_confused_pairs_from_a_known_matrix():
    matrix = np.array([[50, 7, 1],
                       [7, 40, 0],
                       [3, 9, 30]])
    pairs = mistakes.top_confused_pairs(matrix, NAMES, count=3)
    assert [(p["actual"], p["predicted"], p["count"]) for p in pairs] == [
        ("c", "b", 9), ("a", "b", 7), ("b", "a", 7)]   # ties in class order
    assert pairs[0]["pair"] == "c -> b" and pairs[0]["share_of_actual"] == round(9 / 42, 4)
    assert [p["rank"] for p in pairs] == [1, 2, 3]
    # Never the diagonal, never an empty cell, however many are asked for.
    everything = mistakes.top_confused_pairs(matrix, NAMES, count=100)
    assert len(everything) == 5 and all(p["actual"] != p["predicted"] for p in everything)


def test_confident_mistakes_are_the_wrong_answers_surest_first():
    labels = np.array([0, 1, 2, 0, 1])
    probabilities = np.array([[0.9, 0.1, 0.0],    # right
                              [0.6, 0.4, 0.0],    # wrong, 0.6
                              [0.0, 0.95, 0.05],  # wrong, 0.95
                              [0.2, 0.0, 0.8],    # wrong, 0.8
                              [0.1, 0.9, 0.0]])   # right
    assert mistakes.confident_mistakes(labels, probabilities).tolist() == [2, 3, 1]
    assert mistakes.confident_mistakes(labels, probabilities, count=1).tolist() == [2]


def test_first_per_class_takes_the_first_images_of_each_class_in_class_order():
    labels = np.array([2, 0, 1, 0, 2, 1, 0])
    assert mistakes.first_per_class(labels, per_class=2).tolist() == [1, 3, 2, 5, 0, 4]


def test_pairs_table_is_a_csv_with_a_header(tmp_path):
    pairs = mistakes.top_confused_pairs(np.array([[1, 2], [3, 4]]), ["x", "y"])
    with open(mistakes.write_pairs(pairs, tmp_path / "m" / "pairs.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [row["pair"] for row in rows] == ["y -> x", "x -> y"]
    assert rows[0]["count"] == "3"
