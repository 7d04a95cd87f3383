"""Kaggle's CSVs have no file pins, so the download checks their content against Zalando's
release: the real Debian data, written as Kaggle-layout CSVs and served by a fake Kaggle on
127.0.0.1 through the real client."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fmnist.data import formats
from fmnist.data.sources import download
from fmnist.errors import ChecksumError, ParamsError
from tests.fake_servers import NO_PROXY_ENV, fake_kaggle

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASET = "zalando-research/fashionmnist"

pytestmark = pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="needs dataset-fashion-mnist")


@pytest.fixture(scope="module")
def real_csv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real data as Kaggle CSVs, train rows shuffled (Kaggle's order is not the idx order)."""
    folder = tmp_path_factory.mktemp("real-kaggle")
    frames = formats.read_raw_frames(DEBIAN_DIR)
    order = np.random.default_rng(0).permutation(len(frames["train"]))
    for split in formats.SPLITS:
        images, labels = formats.from_frame(frames[split])
        if split == "train":
            images, labels = images[order], labels[order]
        formats.write_csv(folder / formats.CSV_FILES[split], images, labels)
    return folder


@pytest.fixture
def served(tmp_path: Path, real_csv_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A per-test copy of the real CSVs, with no outside Kaggle credentials or proxies."""
    for name in list(os.environ):
        if name.startswith("KAGGLE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in NO_PROXY_ENV.items():
        monkeypatch.setenv(name, value)
    return Path(shutil.copytree(real_csv_dir, tmp_path / "served"))


def change_one_pixel(folder: Path) -> None:
    path = folder / formats.CSV_FILES["test"]
    images, labels = formats.from_frame(formats.read_csv(path))
    images[123, 14, 14] ^= 0x01
    formats.write_csv(path, images, labels)


def fetch(folder: Path, raw_dir: Path, monkeypatch: pytest.MonkeyPatch, **params: object) -> dict:
    with fake_kaggle(folder) as fake:
        for name, value in fake.env.items():
            monkeypatch.setenv(name, value)
        return download({"source": "kaggle", "kaggle_dataset": DATASET, **params}, raw_dir)


def test_real_data_from_kaggle_passes_the_content_check(
    served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw_dir = tmp_path / "raw"
    manifest = fetch(served, raw_dir, monkeypatch)
    assert manifest["format"] == "csv" and manifest["rows"] == {"train": 60000, "test": 10000}


def test_one_changed_pixel_is_refused_in_one_line(
    served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    change_one_pixel(served)
    raw_dir = tmp_path / "raw"
    with pytest.raises(ChecksumError) as caught:
        fetch(served, raw_dir, monkeypatch)
    message = str(caught.value)
    assert "\n" not in message and "verify_content: false" in message
    assert not raw_dir.exists()  # nothing landed


def test_verification_off_lets_different_data_through(
    served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    change_one_pixel(served)
    raw_dir = tmp_path / "raw"
    fetch(served, raw_dir, monkeypatch, verify_content=False)
    landed, _ = formats.from_frame(formats.read_csv(raw_dir / formats.CSV_FILES["test"]))
    real, _ = formats.from_frame(formats.read_raw_frames(DEBIAN_DIR)["test"])
    assert landed[123, 14, 14] != real[123, 14, 14]
    assert np.array_equal(np.delete(landed.reshape(len(landed), -1), 123, axis=0),
                          np.delete(real.reshape(len(real), -1), 123, axis=0))


def test_verify_content_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="verify_content"):
        download({"source": "local", "local_dir": str(DEBIAN_DIR), "verify_content": "no"},
                 tmp_path / "raw")
