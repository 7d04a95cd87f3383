"""Tiny hostile files with huge declared sizes are refused from their headers, each with a named
one-line error, before their pixels or values are decoded; MemoryError never escapes."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image

from bench.hostile_inputs import idx_gz, png
from fmnist.data import formats
from fmnist.errors import DataFormatError, InputFileError
from fmnist.serving import inputs, predict
from tests.conftest import make_dataset
from tests.registry_helpers import REAL_DATA_DIR


@pytest.mark.parametrize("width, height, says", [
    (80_000, 1, "has an edge over 12,000 pixels"),      # 20 s of CPU padding it to a square
    (300_000, 1, "has an edge over 12,000 pixels"),     # MemoryError (84 GiB) when padded
    (13_000, 13_000, "over the limit of 50 megapixels"),
    (5_000, 100, "more than 20:1"),
])
def test_an_image_too_big_or_too_long_is_refused_from_its_header(tmp_path, width, height, says):
    path = png(tmp_path / "hostile.png", width, height)
    assert path.stat().st_size < 200
    with pytest.raises(InputFileError, match=rf"^{path}: {width}x{height} .*{says}"):
        inputs.load(path)


def test_a_real_strip_within_the_limits_still_decodes(tmp_path):
    """The 80000x1 strip's honest small cousin: 1000x100, a valid PNG with real pixels."""
    rows = b"".join(b"\0" + bytes([255]) * 1000 for _ in range(100))
    names, images = inputs.load(png(tmp_path / "strip.png", 1000, 100, rows), invert="no")
    assert images.shape == (1, 28, 28) and images.max() > 0  # the strip, centred on black


def test_a_photo_sized_image_is_accepted(tmp_path):
    photo = np.full((3000, 4000), 255, dtype=np.uint8)
    photo[1000:2000, 1500:2500] = 30   # a dark garment on white
    Image.fromarray(photo).save(tmp_path / "photo.png")
    [image] = inputs.load(tmp_path / "photo.png")[1]
    assert image[14, 14] > 200 and image[0, 0] == 0


def test_a_hostile_file_among_good_ones_costs_only_its_own_error_line(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(make_dataset(per_class=1)[0][0]).save(good)
    names, images, errors = predict.load_files([png(tmp_path / "bad.png", 300_000, 1), good])
    assert names == [str(good)] and images.shape == (1, 28, 28)
    assert [(e["input"], e["error"]) for e in errors] == [(str(tmp_path / "bad.png"),
                                                            "InputFileError")]


def test_a_gzip_idx_declaring_more_images_than_fashion_mnist_is_refused_unread(tmp_path):
    """152 KB of gzip once became 200,000 images: the header's count is checked first."""
    path = idx_gz(tmp_path / "many-idx3-ubyte.gz", (200_000, 28, 28), b"\0" * (200_000 * 784))
    assert path.stat().st_size < 200_000
    with pytest.raises(InputFileError, match=r"declares shape \(200000, 28, 28\), 156,800,000 "
                                             r"values, more than the limit of 54,880,000"):
        inputs.load(path)


def test_a_gzip_idx_with_more_data_than_declared_is_refused_after_reading_its_declared_size(
        tmp_path):
    path = idx_gz(tmp_path / "bomb-idx3-ubyte.gz", (1, 28, 28), b"\0" * (64 * 2**20))
    with pytest.raises(DataFormatError, match=r"declares shape \(1, 28, 28\) but holds more"):
        formats.read_idx(path)


def test_an_idx_header_declaring_a_huge_product_of_dimensions_is_refused(tmp_path):
    path = idx_gz(tmp_path / "huge-idx3-ubyte.gz", (2**32 - 1,) * 4, b"")
    with pytest.raises(DataFormatError, match=r"more than the limit"):
        formats.read_idx(path)


def test_a_gzipped_idx_is_read_by_its_content_not_its_name(tmp_path):
    images = make_dataset(per_class=1)[0]
    formats.write_idx(tmp_path / "images.gz", images)
    renamed = (tmp_path / "images.gz").rename(tmp_path / "images-idx3-ubyte")
    assert np.array_equal(inputs.load(renamed)[1], images)


def test_the_whole_real_training_set_is_within_the_limits():
    images = formats.read_idx(REAL_DATA_DIR / formats.IDX_FILES["train"][0])
    assert images.shape == (60_000, 28, 28)


def test_a_csv_over_its_row_or_byte_limit_is_refused(tmp_path):
    images, labels = make_dataset(per_class=1)
    formats.write_csv(tmp_path / "ten.csv", images, labels)
    assert len(formats.read_csv(tmp_path / "ten.csv", max_rows=10)) == 10
    with pytest.raises(DataFormatError, match=r"ten.csv: over 9 rows"):
        formats.read_csv(tmp_path / "ten.csv", max_rows=9)
    # A gzipped CSV is bounded by its decompressed text, not the compressed size.
    (tmp_path / "wide.csv.gz").write_bytes(gzip.compress(b"0," * 2**20 + b"0\n"))
    with pytest.raises(DataFormatError, match=r"wide.csv.gz: over 1 MB of CSV text"):
        formats.read_csv(tmp_path / "wide.csv.gz", max_bytes=2**20)


def test_memory_running_out_within_the_limits_is_a_named_error(tmp_path, monkeypatch):
    """A machine with less memory than the limits assume: the file gets its line, no trace."""
    def out_of_memory(path):
        raise MemoryError()

    monkeypatch.setattr(inputs, "read_gray", out_of_memory)
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(path)
    with pytest.raises(InputFileError, match=r"photo.png: not enough memory to read it$"):
        inputs.load(path)
