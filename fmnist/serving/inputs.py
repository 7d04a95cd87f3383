"""Files to predict on -> uint8 images (N, 28, 28) in Fashion-MNIST's convention.

Fashion-MNIST is a light garment on black, 28x28 grayscale. Photos (PNG, JPEG, anything Pillow
reads) of any size and colour are flattened onto white if transparent, turned to grayscale,
inverted when asked or (auto) when their border is mostly bright, padded to a square with black
and resized to 28x28 (the data set's own recipe: longest edge to 28, centred). A 28x28 grayscale
PNG of a Fashion-MNIST image comes back byte for byte. idx files and Kaggle-layout CSVs are
already in the data set's convention and are taken as they are. Scaling to [0, 1] is not done
here but by fmnist.data.splits.scale, like everywhere else in the pipeline.
"""
from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fmnist.data import formats
from fmnist.errors import DataFormatError, InputFileError

SIDE = formats.IMAGE_SIDE
INVERT_CHOICES = ("auto", "yes", "no")
_IDX_MAGIC = b"\x00\x00\x08"  # unsigned-byte idx
_GZIP_MAGIC = b"\x1f\x8b"
# A 48-megapixel phone photo (8000x6000) passes; the padded square of the longest edge stays
# under ~150 MB of uint8. Garment photos are near square; a long strip is no garment.
MAX_PIXELS = 50_000_000
MAX_SIDE = 12_000
MAX_ASPECT = 20


def should_invert(gray: np.ndarray, invert: str) -> bool:
    """`auto`: invert when most border pixels are bright (a garment photographed on white)."""
    if invert != "auto":
        return invert == "yes"
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return bool(np.mean(border > 127) > 0.5)


def to_fashion_mnist(gray: np.ndarray, invert: str = "auto") -> np.ndarray:
    """A grayscale uint8 image of any size -> (28, 28) uint8, light garment on black."""
    if should_invert(gray, invert):
        gray = 255 - gray
    height, width = gray.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = gray
    image = Image.fromarray(square, mode="L")
    if image.size != (SIDE, SIDE):
        image = image.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def check_size(path: Path, width: int, height: int) -> None:
    """Refuse, from the header alone, an image whose pixels or padded square would cost more
    than a photo's: padding to a square of the longest edge makes a 1-pixel-high strip cost
    its width squared."""
    if width * height > MAX_PIXELS:
        raise InputFileError(f"{path}: {width}x{height} pixels is over the limit of "
                             f"{MAX_PIXELS / 1e6:.0f} megapixels; scale it down first")
    if max(width, height) > MAX_SIDE:
        raise InputFileError(f"{path}: {width}x{height} has an edge over {MAX_SIDE:,} pixels; "
                             "scale it down first")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InputFileError(f"{path}: {width}x{height} is more than {MAX_ASPECT}:1; crop it to "
                             "the garment first")


def read_gray(path: Path) -> np.ndarray:
    """Decode an image file to grayscale uint8, honouring EXIF rotation and transparency; its
    size is checked from the header before any pixel is decoded."""
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: check_size is stricter
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened:
            check_size(path, *opened.size)
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                background = Image.new("RGBA", image.size, "white")
                image = Image.alpha_composite(background, image.convert("RGBA"))
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise InputFileError(f"{path}: not a PNG/JPEG image, an idx file or a Kaggle-layout "
                             f"CSV ({error})") from error


def _is_idx(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head[:2] == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(4)
        except (OSError, EOFError):
            return False
    return head[:3] == _IDX_MAGIC


def read_idx_images(path: Path) -> np.ndarray:
    try:
        images = formats.read_idx(path)
    except DataFormatError as error:
        raise InputFileError(str(error)) from error
    if images.shape == (SIDE, SIDE):
        return images[np.newaxis]
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise InputFileError(f"{path}: idx file of shape {images.shape}, not 28x28 images "
                             "(a labels file?)")
    return images


def read_csv_images(path: Path) -> np.ndarray:
    """Kaggle layout: pixel1..pixel784 columns (a label column is allowed and ignored)."""
    try:
        frame = formats.read_csv(path)
    except DataFormatError as error:
        raise InputFileError(str(error)) from error
    missing = [column for column in formats.PIXEL_COLUMNS if column not in frame.columns]
    if missing:
        raise InputFileError(f"{path}: not the Kaggle layout, {len(missing)} of the columns "
                             f"pixel1..pixel784 are missing (e.g. {missing[0]})")
    try:
        pixels = frame[formats.PIXEL_COLUMNS].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputFileError(f"{path}: pixel values must be numbers ({error})") from error
    if np.isnan(pixels).any() or (pixels < 0).any() or (pixels > 255).any() or \
            (pixels != np.round(pixels)).any():
        raise InputFileError(f"{path}: pixel values must be whole numbers from 0 to 255")
    return pixels.astype(np.uint8).reshape(-1, SIDE, SIDE)


def load(path: Path | str, invert: str = "auto") -> tuple[list[str], np.ndarray]:
    """One file -> (a name per image, uint8 images (N, 28, 28)). Images in idx and CSV files
    are named `path[i]`."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        if path.name.lower().endswith((".csv", ".csv.gz")):
            images = read_csv_images(path)
        elif _is_idx(path):
            images = read_idx_images(path)
        else:
            return [str(path)], to_fashion_mnist(read_gray(path), invert)[np.newaxis]
    except MemoryError as error:  # within the limits, but this machine has less to spare
        raise InputFileError(f"{path}: not enough memory to read it") from error
    return [f"{path}[{index}]" for index in range(len(images))], images
