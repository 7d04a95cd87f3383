"""Predict polish: inputs that are not a garment on a dark background are still predicted but
flagged, and `fmnist` prints no TensorFlow start-up lines."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fmnist import cli
from fmnist.data import formats
from fmnist.serving import checks, inputs
from stages import register
from tests.conftest import REPO_ROOT
from tests.registry_helpers import REAL_TEST_IMAGES, export_pngs, log_candidate, real_test_images


def test_no_image_of_the_real_test_set_is_flagged():
    images = formats.read_idx(REAL_TEST_IMAGES)
    flagged = [index for index, image in enumerate(images) if checks.doubts(image)]
    assert flagged == []


@pytest.mark.parametrize("colour, expected", [
    (255, "almost no foreground"),   # a blank white photo: inverted to all black
    (0, "almost no foreground"),
    (128, "nearly uniform"),
])
def test_blank_photos_are_flagged(tmp_path, colour, expected):
    Image.new("RGB", (480, 480), (colour,) * 3).save(tmp_path / "blank.jpg")
    [image] = inputs.load(tmp_path / "blank.jpg")[1]
    assert expected in checks.warning(image)


def test_a_light_background_that_survives_is_flagged():
    image = np.full((28, 28), 120, dtype=np.uint8)   # border mean 120, not bright enough to invert
    image[6:22, 6:22] = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    assert checks.doubts(image) == ["background not dark (border mean 120/255)"]


@pytest.mark.slow
def test_cli_predicts_and_flags_a_blank_photo_without_tensorflow_chatter(dvc_workspace, tmp_path,
                                                                         capsys):
    root = dvc_workspace()
    log_candidate(0.9, 0.9)
    register.main()
    [garment] = export_pngs(real_test_images(1), tmp_path)
    blank = tmp_path / "white.jpg"
    Image.new("RGB", (300, 300), "white").save(blank)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TF_", "MLFLOW_"))}   # the CLI must quiet TF on its own
    env.update(PYTHONPATH=str(REPO_ROOT), DVC_ROOT=str(root))

    # A fresh process, as a user runs it: TensorFlow loads after the CLI quieted it.
    answer = subprocess.run([sys.executable, "-m", "fmnist.cli", "predict", str(garment),
                             str(blank), "--json"], cwd=root, env=env, capture_output=True,
                            text=True, timeout=300)
    assert answer.returncode == 0 and answer.stderr == ""
    results = json.loads(answer.stdout)["predictions"]
    assert [len(r["top"]) for r in results] == [3, 3]       # still predicted
    assert results[0]["warning"] is None
    assert "almost no foreground" in results[1]["warning"]

    # Text output (in-process: the warning, not the start-up, is under test here).
    capsys.readouterr()
    assert cli.main(["predict", str(garment), str(blank)]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 2
    assert err.splitlines() == [f"warning: {blank}: {results[1]['warning']}"]
