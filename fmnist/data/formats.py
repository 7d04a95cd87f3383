"""Reading and writing Fashion-MNIST in its two published layouts.

- idx: Zalando's original gzipped idx files (also in Debian's `dataset-fashion-mnist`).
- csv: Kaggle's `fashion-mnist_{train,test}.csv`, columns label, pixel1..pixel784.

Everything downstream of download works on pandas frames in the Kaggle layout (what validate
checks) or on uint8 arrays (what preprocess scales); both readers end up there.
"""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from fmnist.errors import DataFormatError

SPLITS = ("train", "test")
IMAGE_SIDE = 28
PIXEL_COLUMNS = [f"pixel{i}" for i in range(1, IMAGE_SIDE * IMAGE_SIDE + 1)]
KAGGLE_COLUMNS = ["label", *PIXEL_COLUMNS]
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
# split -> (images file, labels file), as Zalando names them.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CSV_FILES = {"train": "fashion-mnist_train.csv", "test": "fashion-mnist_test.csv"}
MANIFEST = "manifest.json"

_IDX_UBYTE = 0x08  # idx type code for unsigned bytes, the only one Fashion-MNIST uses


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """Decode an idx file (gzipped or not) into a uint8 array of its declared shape."""
    path = Path(path)
    try:
        with _open(path) as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataFormatError(f"{path.name}: cannot read ({error})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE:
        raise DataFormatError(f"{path.name}: not an unsigned-byte idx file (bad magic number)")
    ndim = raw[3]
    header_end = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_end)
    if data.size != int(np.prod(shape)):
        raise DataFormatError(
            f"{path.name}: header declares shape {shape} but holds {data.size} values"
        )
    return data.reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Encode a uint8 array as an idx file; gzipped when the name ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _IDX_UBYTE, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def to_frame(images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """uint8 images (N, 28, 28) and labels (N,) -> a frame in the Kaggle CSV layout."""
    table = np.column_stack([labels.reshape(-1), images.reshape(len(images), -1)])
    return pd.DataFrame(table, columns=KAGGLE_COLUMNS)


def from_frame(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A (validated) Kaggle-layout frame -> uint8 images (N, 28, 28) and labels (N,)."""
    pixels = frame[PIXEL_COLUMNS].to_numpy(dtype=np.uint8)
    labels = frame["label"].to_numpy(dtype=np.uint8)
    return pixels.reshape(-1, IMAGE_SIDE, IMAGE_SIDE), labels


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write a split in Kaggle's CSV layout (used by fake servers and exports)."""
    to_frame(images, labels).to_csv(path, index=False)


def raw_format(raw_dir: Path) -> str:
    """'idx' or 'csv', by which files the download stage left in raw_dir."""
    raw_dir = Path(raw_dir)
    if all((raw_dir / name).exists() for pair in IDX_FILES.values() for name in pair):
        return "idx"
    if all((raw_dir / name).exists() for name in CSV_FILES.values()):
        return "csv"
    raise DataFormatError(
        f"{raw_dir} holds neither the four idx files nor the two Kaggle CSVs; run `dvc repro download`"
    )


def read_split_frame(raw_dir: Path, split: str) -> pd.DataFrame:
    """One split of the raw data as a Kaggle-layout frame, values exactly as stored."""
    raw_dir = Path(raw_dir)
    if raw_format(raw_dir) == "idx":
        images_file, labels_file = IDX_FILES[split]
        images, labels = read_idx(raw_dir / images_file), read_idx(raw_dir / labels_file)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or labels.ndim != 1:
            raise DataFormatError(
                f"{images_file}/{labels_file}: expected (N, 28, 28) images and (N,) labels, "
                f"got {images.shape} and {labels.shape}"
            )
        if len(images) != len(labels):
            raise DataFormatError(
                f"{images_file} holds {len(images)} images but {labels_file} {len(labels)} labels"
            )
        return to_frame(images, labels)
    path = raw_dir / CSV_FILES[split]
    try:
        # Kept as read (no dtype forced) so validation sees nulls, floats and out-of-range values.
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise DataFormatError(f"{path.name}: not a readable CSV ({error})") from error


def read_raw_frames(raw_dir: Path) -> dict[str, pd.DataFrame]:
    """Both splits of the raw data as Kaggle-layout frames."""
    return {split: read_split_frame(raw_dir, split) for split in SPLITS}


def fingerprint(frames: dict[str, pd.DataFrame]) -> str:
    """sha256 of the decoded content (labels and pixels as bytes, split by split), so the same
    images give the same fingerprint whether they came as idx or CSV."""
    digest = hashlib.sha256()
    for split in SPLITS:
        images, labels = from_frame(frames[split])
        digest.update(split.encode())
        digest.update(labels.tobytes())
        digest.update(images.tobytes())
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
