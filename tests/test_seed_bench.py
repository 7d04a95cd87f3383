"""The seeds' grid and gap benchmarks (bench/seed_grid.py, bench/seed_gap.py): what each data
variant holds out, and how the grid's results are summarised, on generated data and runs."""
from __future__ import annotations

import numpy as np
import pytest

from bench import seed_gap, seed_grid
from fmnist import profiles


def test_gap_variants_hold_out_what_each_recipe_holds_out(dataset):
    images, labels = dataset(per_class=10)  # 100 images, classes interleaved
    train, val = seed_gap.training_data("keras", images, labels, seed=0)
    # Keras' validation_split: the last 20 % exactly as stored, nothing shuffled or stratified.
    assert np.array_equal(train[0], images[:80]) and np.array_equal(val[1], labels[80:])
    train, val = seed_gap.training_data("full", images, labels, seed=0)
    assert val is None and np.array_equal(train[1], labels)
    train, val = seed_gap.training_data("stratified", images, labels, seed=0)
    assert len(val[1]) == 20 and np.bincount(val[1]).tolist() == [2] * 10
    with pytest.raises(SystemExit):
        seed_gap.training_data("everything", images, labels, seed=0)


def test_gap_bench_trains_the_baseline_profile():
    params = seed_gap.baseline_params(epochs=None)
    assert params["train"]["model"] == "baseline" and params["train"]["epochs"] == 50
    assert params["train"]["epochs"] == profiles.load("baseline")["train.epochs"]
    assert seed_gap.baseline_params(epochs=2)["train"]["epochs"] == 2


def run(filters: int, dropout: float, seed: int, val: float, test: float) -> dict:
    return {"filters": filters, "dropout": dropout, "seed": seed, "val_accuracy": val,
            "best_val_accuracy": val + 0.01, "best_val_epoch": 30, "test_accuracy": test,
            "train_seconds": 400.0, "version": 1, "promotion": "challenger"}


def test_grid_cells_average_the_seeds_run_and_show_the_cells_not_run():
    runs = [run(32, 0.0, 42, 0.90, 0.89), run(32, 0.0, 43, 0.92, 0.91),
            run(64, 0.3, 42, 0.91, 0.90)]
    rows = seed_grid.cells(runs, filters=[32, 64], dropouts=[0.0, 0.3])
    first = rows[0]
    assert (first["filters"], first["dropout"], first["seeds"]) == (32, 0.0, [42, 43])
    assert first["test_accuracy_mean"] == pytest.approx(0.90)
    assert first["test_accuracy_std"] == pytest.approx(np.std([0.89, 0.91], ddof=1))
    assert first["seeds_reported"] == 0.911 and rows[1]["seeds"] == []
    table = seed_grid.markdown({"cells": rows, "runs": runs, "status": "3 runs finished",
                                "machine": {"cores": 2, "keras_backend": "tensorflow",
                                            "commit": "abc"}})
    cells = [[cell.strip() for cell in line.strip("|").split("|")]
             for line in table.splitlines() if line.startswith("|")][2:]  # after the header
    assert cells[0] == ["32", "0", "91.00% ± 1.41%", "92.00% ± 1.41%", "90.00% ± 1.41%",
                        "2 (42, 43)", "91.1%"]
    assert cells[1][:3] == ["32", "0.3", "not run"]
    assert cells[3] == ["64", "0.3", "91.00%", "92.00%", "90.00%", "1 (42)", "91.9%"]  # no ± of one
