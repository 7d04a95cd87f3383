"""The Great Expectations suites for the raw data, and the small frames they run on.

GX checks every value of a column one by one; on the 784 pixel columns that took 32 s for the full
data. So the wide frame only gets table-level checks (columns, row count), and the value checks run
on frames derived from it with numpy: one row per image, one row per class, one row for the
train/test overlap. They are all still real GX expectations, rendered in the Data Docs.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from great_expectations import ExpectationSuite
from great_expectations import expectations as gxe

from fmnist.data.formats import CLASS_NAMES, KAGGLE_COLUMNS, SPLITS

# Batches: the frame each suite runs on. "images" is the raw frame itself, the others are derived.
IMAGES, IMAGE_STATS, CLASS_BALANCE, TRAIN_OVERLAP = (
    "images", "image_stats", "class_balance", "train_overlap")
NUM_CLASSES = len(CLASS_NAMES)
PIXEL_MAX = 255


def _pixel_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column but the label: a frame with wrong columns still gets its values checked."""
    return frame.drop(columns="label", errors="ignore")


def _as_numbers(pixels: pd.DataFrame) -> np.ndarray:
    """A matrix of the values: integers as they are (the usual, fast case), anything else as
    float64 with NaN where a cell is null or not a number."""
    if all(pd.api.types.is_integer_dtype(dtype) for dtype in pixels.dtypes):
        return pixels.to_numpy()
    text_columns = [name for name, dtype in pixels.dtypes.items()
                    if not pd.api.types.is_numeric_dtype(dtype)]
    if text_columns:  # parse only these: pd.to_numeric over all 784 columns is slow
        pixels = pixels.copy()
        pixels[text_columns] = pixels[text_columns].apply(pd.to_numeric, errors="coerce")
    return pixels.to_numpy(dtype=np.float64)


def derive_row_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per image: label, pixel_min, pixel_max, null_count, non_integral_count."""
    pixels = _pixel_frame(frame)
    values = _as_numbers(pixels)
    if np.issubdtype(values.dtype, np.integer):
        non_integral = np.zeros(len(frame), dtype=np.int64)  # skips float work on the usual path
    else:
        # NaN != floor(NaN): text that did not parse counts as non-integral; real nulls are
        # masked out because the null check reports them.
        non_integral = ((values != np.floor(values)) & ~pixels.isna().to_numpy()).sum(axis=1)
    if values.shape[1]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-null image has no min/max
            pixel_min, pixel_max = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
    else:
        pixel_min = pixel_max = np.full(len(frame), np.nan)
    label = frame["label"] if "label" in frame.columns else pd.Series(np.nan, index=frame.index)
    return pd.DataFrame({
        "label": label.to_numpy(),
        "pixel_min": pixel_min,
        "pixel_max": pixel_max,
        "null_count": frame.isna().to_numpy().sum(axis=1),
        "non_integral_count": non_integral,
    }, index=frame.index)


def class_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per class 0..9: its count, and relative_deviation of that count from an even
    share, |count - rows/10| / (rows/10)."""
    labels = frame["label"] if "label" in frame.columns else pd.Series(dtype=float)
    counts = (pd.to_numeric(labels, errors="coerce").value_counts()
              .reindex(range(NUM_CLASSES), fill_value=0).astype(np.int64))
    even_share = len(frame) / NUM_CLASSES
    deviation = (counts - even_share).abs() / even_share  # NaN for an empty split
    # The index is named so GX reports a failing row as {"class": 3, ...}.
    return pd.DataFrame({"count": counts.to_numpy(),
                         "relative_deviation": deviation.to_numpy(dtype=np.float64)},
                        index=pd.Index(range(NUM_CLASSES), name="class"))


def count_duplicates(train: pd.DataFrame, test: pd.DataFrame) -> int:
    """How many test images also appear, byte for byte, in train."""
    train_values, test_values = _as_numbers(_pixel_frame(train)), _as_numbers(_pixel_frame(test))
    if train_values.shape[1] != test_values.shape[1]:
        return 0  # different image sizes cannot match; the column check reports the cause
    dtype = np.result_type(train_values, test_values)
    seen = {row.tobytes() for row in train_values.astype(dtype, copy=False)}
    return sum(row.tobytes() in seen for row in test_values.astype(dtype, copy=False))


def derive_batches(frames: dict[str, pd.DataFrame]) -> dict[tuple[str, str], pd.DataFrame]:
    """(split, batch) -> the frame that batch's suite validates."""
    batches: dict[tuple[str, str], pd.DataFrame] = {}
    for split in SPLITS:
        batches[(split, IMAGES)] = frames[split]
        batches[(split, IMAGE_STATS)] = derive_row_stats(frames[split])
        batches[(split, CLASS_BALANCE)] = class_counts(frames[split])
    batches[("test", TRAIN_OVERLAP)] = pd.DataFrame(
        {"test_images_in_train": [count_duplicates(frames["train"], frames["test"])]})
    return batches


def build_suites(validate_params: dict[str, Any]) -> dict[tuple[str, str], ExpectationSuite]:
    """(split, batch) -> its suite, from the `validate` section of params.yaml."""
    tolerance = float(validate_params["class_balance_tolerance"])
    max_duplicates = int(validate_params["max_train_test_duplicates"])
    checks: dict[tuple[str, str], list[gxe.Expectation]] = {}
    for split in SPLITS:
        checks[(split, IMAGES)] = [
            # Renamed, missing or reordered columns would feed the model scrambled pixels.
            gxe.ExpectTableColumnsToMatchOrderedList(column_list=KAGGLE_COLUMNS),
            # A truncated or doubled download, or the wrong file, shows up as another row count.
            gxe.ExpectTableRowCountToEqual(value=int(validate_params["expected_rows"][split])),
        ]
        checks[(split, IMAGE_STATS)] = [
            # Empty cells (a broken CSV export) become NaN inputs, or crash the uint8 cast.
            gxe.ExpectColumnValuesToBeBetween(column="null_count", min_value=0, max_value=0),
            # A label not in 0..9 has no class: wrong targets, one-hot crashes.
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(range(NUM_CLASSES))),
            # Fractional pixels mean already scaled or resampled data, not raw uint8 images.
            gxe.ExpectColumnValuesToBeBetween(column="non_integral_count", min_value=0, max_value=0),
            # Negative pixels would wrap around when cast to uint8.
            gxe.ExpectColumnValuesToBeBetween(column="pixel_min", min_value=0),
            # Pixels above 255 would wrap around in uint8 and break the /255 scaling.
            gxe.ExpectColumnValuesToBeBetween(column="pixel_max", max_value=PIXEL_MAX),
        ]
        checks[(split, CLASS_BALANCE)] = [
            # A lost or over-sampled class biases the model and makes accuracy misleading.
            gxe.ExpectColumnValuesToBeBetween(column="relative_deviation", min_value=0,
                                              max_value=tolerance),
        ]
    checks[("test", TRAIN_OVERLAP)] = [
        # Test images also seen in training inflate the reported test accuracy (leakage).
        gxe.ExpectColumnMaxToBeBetween(column="test_images_in_train", min_value=0,
                                       max_value=max_duplicates),
    ]
    # Each suite gets all its expectations in one call: adding them one by one is slow in GX.
    return {(split, batch): ExpectationSuite(name=f"{split}.{batch}", expectations=expectations)
            for (split, batch), expectations in checks.items()}
