"""preprocess: scaling, per-class subsets and the stratified split."""
from __future__ import annotations

import numpy as np
import pytest

from fmnist import jsonfiles
from fmnist.data import formats, splits
from fmnist.data.sources import describe
from fmnist.errors import ParamsError
from stages import preprocess


def test_scale_gives_float32_nhwc_in_unit_range(dataset):
    images, _ = dataset(per_class=3)
    images[0, 0, 0], images[1, 0, 0] = 0, 255
    scaled = splits.scale(images)
    assert scaled.dtype == np.float32
    assert scaled.shape == (30, 28, 28, 1)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    np.testing.assert_allclose(scaled[..., 0] * 255, images, atol=1e-4)


@pytest.mark.parametrize("fraction, per_class", [(1.0, 20), (0.5, 10), (0.05, 1)])
def test_take_per_class_keeps_each_class_share_in_order(dataset, fraction, per_class):
    _, labels = dataset(per_class=20)
    keep = splits.take_per_class(labels, fraction)
    assert np.all(np.diff(keep) > 0)  # original order
    assert np.bincount(labels[keep], minlength=10).tolist() == [per_class] * 10


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_take_per_class_rejects_bad_fraction(fraction):
    with pytest.raises(ParamsError, match="preprocess.subset"):
        splits.take_per_class(np.zeros(10, dtype=np.uint8), fraction)


def test_split_is_stratified_disjoint_and_seeded(dataset):
    images, labels = dataset(per_class=50)
    scaled = splits.scale(images)
    parts = splits.split_train_val(scaled, labels, val_split=0.2, seed=7)
    train_images, train_labels = parts["train"]
    val_images, val_labels = parts["val"]
    assert len(val_labels) == 100 and len(train_labels) == 400
    assert np.bincount(val_labels).tolist() == [10] * 10
    assert np.bincount(train_labels).tolist() == [40] * 10
    # No image in both parts, none lost.
    seen = {img.tobytes() for img in train_images} | {img.tobytes() for img in val_images}
    assert len(seen) == 500
    again = splits.split_train_val(scaled, labels, val_split=0.2, seed=7)
    np.testing.assert_array_equal(again["val"][1], val_labels)
    other = splits.split_train_val(scaled, labels, val_split=0.2, seed=8)
    assert not np.array_equal(other["val"][0], val_images)


@pytest.mark.parametrize("val_split", [0, 1, 1.2])
def test_split_rejects_bad_val_split(dataset, val_split):
    images, labels = dataset(per_class=5)
    with pytest.raises(ParamsError, match="val_split"):
        splits.split_train_val(images, labels, val_split, seed=0)


def write_raw(root, make_dataset, per_class_train=20, per_class_test=5):
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        images, labels = make_dataset(per_class, seed=len(split))
        images_file, labels_file = formats.IDX_FILES[split]
        formats.write_idx(raw / images_file, images)
        formats.write_idx(raw / labels_file, labels)
    jsonfiles.write_json(raw / formats.MANIFEST, describe(raw, "local"))


def test_main_writes_three_splits_with_test_untouched(dvc_workspace, dataset):
    root = dvc_workspace(**{"preprocess.subset": 0.5, "preprocess.val_split": 0.2})
    write_raw(root, dataset)
    jsonfiles.write_json(root / "metrics" / "validation.json", {"success": True})
    preprocess.main()
    train_images, train_labels = splits.load_split("train")
    val_images, val_labels = splits.load_split("val")
    test_images, test_labels = splits.load_split("test")
    assert (len(train_labels), len(val_labels), len(test_labels)) == (80, 20, 50)
    raw_test = formats.read_raw_frames(root / "data" / "raw")["test"]
    expected_images, expected_labels = formats.from_frame(raw_test)
    np.testing.assert_array_equal(test_labels, expected_labels)
    np.testing.assert_array_equal(test_images, splits.scale(expected_images))
    # Train reads the data's identity from here: the raw fingerprint and the split that made it.
    manifest = jsonfiles.read_json(root / "data" / "processed" / formats.MANIFEST)
    raw_frames = formats.read_raw_frames(root / "data" / "raw")
    assert manifest["fingerprint"] == formats.fingerprint(raw_frames)
    assert (manifest["seed"], manifest["val_split"], manifest["subset"]) == (42, 0.2, 0.5)
    assert manifest["rows"] == {"train": 80, "val": 20, "test": 50}


def test_main_refuses_data_that_failed_validation(dvc_workspace, dataset):
    root = dvc_workspace()
    write_raw(root, dataset)
    jsonfiles.write_json(root / "metrics" / "validation.json", {"success": False})
    with pytest.raises(SystemExit) as exit_info:
        preprocess.main()
    assert exit_info.value.code == 1
    assert not (root / "data" / "processed").exists()
