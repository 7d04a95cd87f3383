"""`fmnist payload` on partial input: the body for `mlflow models serve` answers image i with
prediction i, so a body built from only the readable files would shift every answer after a bad
file onto the wrong image. One bad file refuses the whole body: nothing on stdout, one line on
stderr naming every bad file, exit 1."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from fmnist import cli
from tests.conftest import make_dataset


def pngs(directory: Path, count: int) -> tuple[list[Path], np.ndarray]:
    images = make_dataset(per_class=1)[0][:count]
    paths = [directory / f"garment-{index}.png" for index in range(count)]
    for path, image in zip(paths, images):
        Image.fromarray(image, mode="L").save(path)
    return paths, images


def test_readable_files_give_one_scaled_image_each_in_order(tmp_path, capsys):
    paths, images = pngs(tmp_path, 3)
    assert cli.main(["payload", *map(str, paths)]) == 0
    captured = capsys.readouterr()
    body = np.array(json.loads(captured.out)["inputs"])
    assert body.shape == (3, 28, 28, 1)
    np.testing.assert_allclose(body[..., 0], images / 255.0, atol=1e-6)
    assert captured.err == ""


def test_one_bad_file_among_good_ones_refuses_the_whole_body(tmp_path, capsys):
    (good_first, good_last), _ = pngs(tmp_path, 2)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    missing = tmp_path / "missing.png"
    argv = ["payload", str(good_first), str(not_an_image), str(missing), str(good_last)]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no partial body to pipe into curl
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"error: InputFileError: {not_an_image}: not a PNG/JPEG image")
    assert line.endswith(f"; {missing}: no such file")
    assert str(good_first) not in line and str(good_last) not in line
