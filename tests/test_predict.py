"""`fmnist predict`: file loading into the data set's convention, and labels that match evaluate."""
from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest
from PIL import Image

from fmnist import cli, config, jsonfiles
from fmnist.data import formats, splits
from fmnist.errors import InputFileError
from fmnist.serving import inputs, predict
from stages import evaluate, register, train
from tests.conftest import make_dataset
from tests.registry_helpers import (MANIFEST, export_pngs, real_test_images, real_test_labels,
                                    tiny_model)


@pytest.mark.parametrize("border, invert, expected", [
    (255, "auto", True),   # garment photographed on white: flip to the data set's black
    (0, "auto", False),    # already light on black
    (0, "yes", True),
    (255, "no", False),
])
def test_should_invert(border, invert, expected):
    gray = np.full((40, 30), border, dtype=np.uint8)
    gray[10:30, 8:22] = 255 - border
    assert inputs.should_invert(gray, invert) is expected


def test_a_fashion_mnist_png_comes_back_byte_for_byte(tmp_path):
    images = real_test_images(5)
    for path, image in zip(export_pngs(images, tmp_path), images):
        names, loaded = inputs.load(path)
        assert names == [str(path)] and np.array_equal(loaded[0], image)


def test_a_large_colour_photo_on_white_becomes_a_light_garment_on_black(tmp_path):
    original = real_test_images(1)[0]
    photo = Image.fromarray(255 - original).resize((224, 224), Image.Resampling.BICUBIC)
    photo.convert("RGB").save(tmp_path / "photo.jpg", quality=95)
    [loaded] = inputs.load(tmp_path / "photo.jpg")[1]
    assert loaded.shape == (28, 28) and loaded.dtype == np.uint8
    assert np.mean(np.abs(loaded.astype(int) - original.astype(int))) < 8


def test_a_wide_transparent_image_is_centred_on_black(tmp_path):
    rgba = np.zeros((30, 90, 4), dtype=np.uint8)  # fully transparent...
    rgba[:, 30:60] = (40, 40, 40, 255)            # ...around an opaque dark garment
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "cutout.png")
    [loaded] = inputs.load(tmp_path / "cutout.png")[1]
    assert loaded[:8].max() < 8 and loaded[-8:].max() < 8  # black padding (Lanczos rings a bit)
    assert loaded[14, 14] > 200                               # the garment, inverted to light


def test_idx_and_kaggle_csv_files_give_one_image_per_row(tmp_path):
    images, labels = make_dataset(per_class=1)
    formats.write_idx(tmp_path / "few-idx3-ubyte.gz", images)
    formats.write_csv(tmp_path / "few.csv", images, labels)
    for name in ("few-idx3-ubyte.gz", "few.csv"):
        names, loaded = inputs.load(tmp_path / name)
        assert names[3] == f"{tmp_path / name}[3]" and np.array_equal(loaded, images)


def test_bad_files_get_a_named_error_and_the_others_are_still_predicted(tmp_path):
    [good] = export_pngs(real_test_images(1), tmp_path)
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "wrong.csv").write_text("a,b\n1,2\n")
    formats.write_idx(tmp_path / "labels-idx1-ubyte", np.arange(10, dtype=np.uint8))
    paths = [tmp_path / "missing.png", tmp_path / "notes.png", good, tmp_path / "wrong.csv",
             tmp_path / "labels-idx1-ubyte"]
    results, errors = predict.predict_files(tiny_model(), paths)
    assert [r["input"] for r in results] == [str(good)]
    assert [len(r["top"]) for r in results] == [3]
    assert [e["error"] for e in errors] == ["InputFileError"] * 4
    for error, expected in zip(errors, ("no such file", "not a PNG/JPEG image",
                                        "not the Kaggle layout", "not 28x28 images")):
        assert expected in error["message"] and error["input"] in error["message"]
    with pytest.raises(InputFileError):
        inputs.load(tmp_path / "notes.png")


def test_predict_on_exported_test_images_matches_evaluate(dvc_workspace, tmp_path, capsys):
    """The real first 20 test images: evaluate's predictions (metrics/test_predictions.csv) and
    `fmnist predict` on the same images exported to PNG, with the registered champion."""
    root = dvc_workspace(**{"train.epochs": 2, "train.batch_size": 32, "filters": 8})
    # A full-train-set manifest, as preprocess writes it: only such runs may become champion.
    jsonfiles.write_json(root / "data" / "processed" / formats.MANIFEST, MANIFEST)
    images, labels = make_dataset(per_class=12)
    parts = splits.split_train_val(splits.scale(images), labels, 0.25, seed=0)
    test_images = real_test_images(20)
    parts["test"] = (splits.scale(test_images), real_test_labels(20))
    for name, (split_images, split_labels) in parts.items():
        splits.save_split(name, split_images, split_labels)
    train.main()
    evaluate.main()
    register.main()
    with open(evaluate.PREDICTIONS_FILE, encoding="utf-8") as handle:
        evaluated = [row["predicted"] for row in csv.DictReader(handle)]
    pngs = export_pngs(test_images, tmp_path / "pngs")
    capsys.readouterr()

    assert cli.main(["predict", *map(str, pngs), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model_uri"] == "models:/fashion-mnist-cnn@champion"
    assert [r["input"] for r in answer["predictions"]] == [str(p) for p in pngs]
    assert [r["top"][0]["class"] for r in answer["predictions"]] == evaluated
    # Not just the labels: the probabilities are those of evaluate's model on evaluate's input.
    evaluate_probabilities = keras.saving.load_model(config.MODEL_FILE).predict(
        splits.load_split("test")[0], verbose=0)
    for result, row in zip(answer["predictions"], evaluate_probabilities):
        assert [c["probability"] for c in result["top"]] == pytest.approx(
            sorted(row, reverse=True)[:3], abs=1e-5)

    assert cli.main(["predict", str(pngs[0]), str(tmp_path / "missing.png")]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{pngs[0]}: {evaluated[0]} ") and out.count("%") == 3
    assert err.strip() == f"error: InputFileError: {tmp_path / 'missing.png'}: no such file"
