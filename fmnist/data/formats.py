"""Reading and writing Fashion-MNIST in its two published layouts.

- idx: Zalando's original gzipped idx files (also in Debian's `dataset-fashion-mnist`).
- csv: Kaggle's `fashion-mnist_{train,test}.csv`, columns label, pixel1..pixel784.

Everything downstream of download works on pandas frames in the Kaggle layout (what validate
checks) or on uint8 arrays (what preprocess scales); both readers end up there.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import math
import zlib
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
_IDX_MAX_DIMS = 4
_GZIP_MAGIC = b"\x1f\x8b"
# Bounds on what one file may decode to: all of Fashion-MNIST (70,000 images) and no more, so
# a tiny hostile file (a gzip bomb, a header declaring billions of values) is refused before
# its data is read, not after the memory is gone.
MAX_ROWS = 70_000
MAX_VALUES = MAX_ROWS * IMAGE_SIDE * IMAGE_SIDE
MAX_CSV_BYTES = 256 * 2**20  # Kaggle's 60,000-row train CSV is ~130 MB


def _open(path: Path):
    """Gzipped by content, not by name: a renamed .gz file still reads."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: Path, max_values: int = MAX_VALUES) -> np.ndarray:
    """Decode an idx file (gzipped or not) into a uint8 array of its declared shape. The
    header's declared size is checked against `max_values` before the data is read, and no more
    than that is ever decompressed: a small gzip file cannot become gigabytes."""
    path = Path(path)
    try:
        with _open(path) as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != _IDX_UBYTE:
                raise DataFormatError(
                    f"{path.name}: not an unsigned-byte idx file (bad magic number)")
            ndim = magic[3]
            if not 1 <= ndim <= _IDX_MAX_DIMS:
                raise DataFormatError(f"{path.name}: idx header declares {ndim} dimensions")
            dims = handle.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataFormatError(f"{path.name}: idx header is cut short")
            shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
            declared = math.prod(shape)
            if declared > max_values:
                raise DataFormatError(
                    f"{path.name}: header declares shape {shape}, {declared:,} values, more "
                    f"than the limit of {max_values:,}; split it into smaller files")
            raw = handle.read(declared + 1)  # one more: a file longer than declared is bad too
    except (OSError, EOFError, zlib.error) as error:
        raise DataFormatError(f"{path.name}: cannot read ({error})") from error
    if len(raw) != declared:
        held = "more" if len(raw) > declared else f"{len(raw):,}"
        raise DataFormatError(
            f"{path.name}: header declares shape {shape} but holds {held} values"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


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
    # Kept as read (no dtype forced) so validation sees nulls, floats and out-of-range values.
    return read_csv(raw_dir / CSV_FILES[split])


def read_csv(path: Path, max_rows: int = MAX_ROWS, max_bytes: int = MAX_CSV_BYTES
             ) -> pd.DataFrame:
    """A CSV (gzipped or not) as read, refused when its decompressed text is over `max_bytes`
    or it has over `max_rows` rows; neither is read past its limit."""
    path = Path(path)
    try:
        with _open(path) as handle:
            text = handle.read(max_bytes + 1)
        if len(text) > max_bytes:
            raise DataFormatError(f"{path.name}: over {max_bytes // 2**20} MB of CSV text, more "
                                  "than all of Fashion-MNIST takes")
        frame = pd.read_csv(io.BytesIO(text), nrows=max_rows + 1)
    except (OSError, EOFError, zlib.error, pd.errors.ParserError, UnicodeDecodeError,
            pd.errors.EmptyDataError) as error:
        raise DataFormatError(f"{path.name}: not a readable CSV ({error})") from error
    if len(frame) > max_rows:
        raise DataFormatError(f"{path.name}: over {max_rows:,} rows, more than all of "
                              "Fashion-MNIST")
    return frame


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
