"""Tests for the validate stage: the derived frames, each expectation failing on data built to
break it, and the stage run end to end as DVC runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from fmnist.data.expectations import class_counts, count_duplicates, derive_row_stats
from fmnist.data.formats import CSV_FILES, to_frame
from fmnist.data.validation import failure_message, run_validation
from tests.conftest import REPO_ROOT, make_dataset

PER_CLASS = 10
ROWS = 10 * PER_CLASS
# With 10 images a class, a tolerance of 0.1 lets one image move class and still pass, so each
# broken frame below breaks exactly the one check it targets.
PARAMS: dict[str, Any] = {
    "expected_rows": {"train": ROWS, "test": ROWS},
    "class_balance_tolerance": 0.1,
    "max_train_test_duplicates": 2,
}

Frames = dict[str, pd.DataFrame]
Check = tuple[str, str, str, Any]  # split, batch, expectation, column


def make_frames() -> Frames:
    """The shared tiny data set (row i of class i % 10) for both splits, as int64 frames like a
    Kaggle CSV gives, so out-of-range values can be written into them."""
    return {split: to_frame(*make_dataset(PER_CLASS, seed=seed)).astype(np.int64)
            for seed, split in enumerate(("train", "test"))}


def set_cell(frame: pd.DataFrame, row: int, column: str, value: Any) -> pd.DataFrame:
    """frame with one cell replaced, the column widened first so any value fits."""
    widened = frame.astype({column: object if isinstance(value, str) else np.float64})
    widened.loc[row, column] = value
    return widened


def failed_checks(summary: dict[str, Any]) -> set[Check]:
    return {(split, check["batch"], check["expectation"], check["column"])
            for split, split_summary in summary["splits"].items()
            for check in split_summary["checks"] if not check["success"]}


COLUMNS = ("images", "expect_table_columns_to_match_ordered_list", None)
ROW_COUNT = ("images", "expect_table_row_count_to_equal", None)
NULLS = ("image_stats", "expect_column_values_to_be_between", "null_count")
LABELS = ("image_stats", "expect_column_values_to_be_in_set", "label")
INTEGRAL = ("image_stats", "expect_column_values_to_be_between", "non_integral_count")
PIXEL_MIN = ("image_stats", "expect_column_values_to_be_between", "pixel_min")
PIXEL_MAX = ("image_stats", "expect_column_values_to_be_between", "pixel_max")
BALANCE = ("class_balance", "expect_column_values_to_be_between", "relative_deviation")
OVERLAP = ("train_overlap", "expect_column_max_to_be_between", "test_images_in_train")


def _relabel(frame: pd.DataFrame, rows: list[int], label: int) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[rows, "label"] = label
    return frame


def _leak(frames: Frames) -> Frames:
    """Three test images replaced by the train images of the same class."""
    test = frames["test"].copy()
    test.iloc[:3] = frames["train"].iloc[:3].to_numpy()
    return {**frames, "test": test}


def _on(split: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Frames], Frames]:
    return lambda frames: {**frames, split: change(frames[split])}


BREAKERS: dict[str, tuple[Callable[[Frames], Frames], set[Check]]] = {
    "missing column": (_on("train", lambda f: f.drop(columns="pixel784")),
                       {("train", *COLUMNS)}),
    "renamed column": (_on("test", lambda f: f.rename(columns={"pixel5": "pixel_5"})),
                       {("test", *COLUMNS)}),
    "reordered columns": (_on("train", lambda f: f[["label", "pixel2", "pixel1", *f.columns[3:]]]),
                          {("train", *COLUMNS)}),
    # No crash without a label: every class is then empty, so the balance check fails too.
    "missing label": (_on("train", lambda f: f.drop(columns="label")),
                      {("train", *COLUMNS), ("train", *BALANCE)}),
    "row missing": (_on("train", lambda f: f.iloc[:-1]), {("train", *ROW_COUNT)}),
    "null pixel": (_on("train", lambda f: set_cell(f, 3, "pixel10", np.nan)), {("train", *NULLS)}),
    # A null label is a null, not also an unknown class: the label check skips nulls.
    "null label": (_on("test", lambda f: set_cell(f, 4, "label", np.nan)), {("test", *NULLS)}),
    "label 10": (_on("test", lambda f: _relabel(f, [0], 10)), {("test", *LABELS)}),
    "label -1": (_on("train", lambda f: _relabel(f, [5], -1)), {("train", *LABELS)}),
    "pixel 256": (_on("train", lambda f: set_cell(f, 7, "pixel300", 256)), {("train", *PIXEL_MAX)}),
    "pixel -1": (_on("test", lambda f: set_cell(f, 7, "pixel1", -1)), {("test", *PIXEL_MIN)}),
    "pixel 12.5": (_on("train", lambda f: set_cell(f, 2, "pixel42", 12.5)), {("train", *INTEGRAL)}),
    "pixel text": (_on("test", lambda f: set_cell(f, 2, "pixel42", "dark")), {("test", *INTEGRAL)}),
    # Two class-0 images relabelled: class 0 at 8 and class 1 at 12, both 20 % off.
    "class under-represented": (_on("train", lambda f: _relabel(f, [0, 10], 1)),
                                {("train", *BALANCE)}),
    "train/test leakage": (_leak, {("test", *OVERLAP)}),
}


@pytest.fixture(scope="module")
def frames() -> Frames:
    return make_frames()


def test_clean_data_passes(frames: Frames, tmp_path: Path) -> None:
    summary = run_validation(frames, PARAMS, tmp_path / "docs")
    assert summary["success"], failed_checks(summary)
    assert summary["failed"] == 0 and summary["checks"] == 17
    assert summary["splits"]["train"]["rows"] == ROWS
    assert summary["splits"]["test"]["class_counts"] == [PER_CLASS] * 10
    assert summary["train_test_duplicates"] == 0
    assert (tmp_path / "docs" / "index.html").is_file()
    json.dumps(summary)  # validation.json must be plain JSON


@pytest.mark.parametrize("case", list(BREAKERS))
def test_each_check_fails_on_data_built_to_break_it(case: str, frames: Frames,
                                                    tmp_path: Path) -> None:
    breaker, expected = BREAKERS[case]
    summary = run_validation(breaker(frames), PARAMS, tmp_path / "docs")
    assert not summary["success"]
    assert failed_checks(summary) == expected
    message = failure_message(summary)
    for split, batch, expectation, column in expected:
        assert f"{split} {batch}: {expectation}" + (f"({column})" if column else "") in message
    json.dumps(summary)


def test_derive_row_stats_counts_bad_cells() -> None:
    frame = pd.DataFrame({"label": [0, 1, 2], "pixel1": [0, np.nan, 3.5],
                          "pixel2": [255, 7, 9]})
    stats = derive_row_stats(frame)
    assert stats["null_count"].tolist() == [0, 1, 0]
    assert stats["non_integral_count"].tolist() == [0, 0, 1]  # the null is not also "fractional"
    assert stats["pixel_min"].tolist() == [0, 7, 3.5]
    assert stats["pixel_max"].tolist() == [255, 7, 9]


def test_class_counts_and_deviation() -> None:
    frame = pd.DataFrame({"label": [0] * 12 + [1] * 8 + [3] * 10, "pixel1": 0})
    counts = class_counts(frame)
    assert counts["count"].tolist() == [12, 8, 0, 10, 0, 0, 0, 0, 0, 0]
    assert counts["relative_deviation"].tolist()[:4] == pytest.approx([3.0, 5 / 3, 1.0, 7 / 3])


def test_count_duplicates_is_byte_exact(frames: Frames) -> None:
    assert count_duplicates(frames["train"], frames["test"]) == 0
    assert count_duplicates(frames["train"], _leak(frames)["test"]) == 3
    # Same values in another dtype (uint8 idx vs int64 CSV) still count as the same image.
    assert count_duplicates(frames["train"].astype(np.uint8), _leak(frames)["test"]) == 3


def test_stage_fails_cleanly_on_bad_data(dvc_workspace: Callable[..., Path]) -> None:
    """`python -m stages.validate` in a DVC repo with a pixel of 256: exit 1, one clean error line
    naming the check, and validation.json and Data Docs written for the user to inspect."""
    workspace = dvc_workspace(**{f"validate.{key}": value for key, value in PARAMS.items()})
    raw_dir = workspace / "data" / "raw"
    raw_dir.mkdir(parents=True)
    frames = make_frames()
    frames["train"].loc[4, "pixel100"] = 256
    for split, frame in frames.items():
        frame.to_csv(raw_dir / CSV_FILES[split], index=False)

    run = subprocess.run([sys.executable, "-m", "stages.validate"], cwd=workspace,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                         capture_output=True, text=True, timeout=120)

    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    [error] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(
        "error: ValidationFailed: 1 of 17 data checks failed: train image_stats: "
        'expect_column_values_to_be_between(pixel_max) observed {"unexpected": 1, "of": 100, '
        '"values": [256], "rows": [4]}')
    summary = json.loads((workspace / "metrics" / "validation.json").read_text())
    assert summary["success"] is False and summary["failed"] == 1
    assert (workspace / "reports" / "data_docs" / "index.html").is_file()
    assert (workspace / "metrics" / "figures" / "class_distribution.png").is_file()
