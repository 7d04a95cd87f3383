"""Compiled augmentation (per-image shifts, random erasing) and the training wrapper."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist.errors import ParamsError
from fmnist.model.architectures import build_model
from fmnist.model.augmentation import RandomErasing, RandomShift, training_wrapper

SIDE = 28


def single_dot_batch(count: int) -> np.ndarray:
    """`count` copies of a black image with one bright pixel in the middle."""
    images = np.zeros((count, SIDE, SIDE, 1), dtype="float32")
    images[:, 14, 14, 0] = 1.0
    return images


def test_shift_moves_each_image_by_its_own_whole_pixel_offset():
    keras.utils.set_random_seed(0)
    shifted = np.asarray(RandomShift(0.1)(single_dot_batch(64), training=True))
    offsets = []
    for image in shifted[..., 0]:
        assert np.count_nonzero(image) == 1 and image.max() == 1.0  # moved, not blurred
        row, col = np.argwhere(image)[0]
        offsets.append((row - 14, col - 14))
    assert max(max(abs(r), abs(c)) for r, c in offsets) <= 3  # 0.1 of 28 px, rounded
    assert len(set(offsets)) > 10, "images of one batch should get different shifts"


def test_shift_fills_the_border_with_background():
    keras.utils.set_random_seed(1)
    ones = np.ones((32, SIDE, SIDE, 1), dtype="float32")
    shifted = np.asarray(RandomShift(0.1)(ones, training=True))[..., 0]
    for image in shifted:
        rows = np.flatnonzero(image.any(axis=1))
        cols = np.flatnonzero(image.any(axis=0))
        # The kept part is one solid rectangle; what came in from outside is 0.
        assert image.sum() == len(rows) * len(cols)
        assert len(rows) >= SIDE - 3 and len(cols) >= SIDE - 3


@pytest.mark.parametrize("layer", [RandomShift(0.2), RandomErasing(1.0)])
def test_inference_leaves_images_untouched(layer):
    images = np.random.default_rng(0).random((8, SIDE, SIDE, 1)).astype("float32")
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)


def test_erasing_blacks_out_one_rectangle_per_chosen_image():
    keras.utils.set_random_seed(2)
    ones = np.ones((200, SIDE, SIDE, 1), dtype="float32")
    erased = np.asarray(RandomErasing(1.0)(ones, training=True))[..., 0]
    for image in erased:
        rows = np.flatnonzero((image == 0).any(axis=1))
        cols = np.flatnonzero((image == 0).any(axis=0))
        assert (image == 0).sum() == len(rows) * len(cols)  # one solid rectangle
        assert 5 <= len(rows) <= 14 and 5 <= len(cols) <= 14  # 20-50 % of each side
    some = np.asarray(RandomErasing(0.5)(ones, training=True))[..., 0]
    share = np.mean((some == 0).any(axis=(1, 2)))
    assert 0.35 < share < 0.65


def test_wrapper_trains_the_saved_model_and_predicts_like_it():
    keras.utils.set_random_seed(3)
    model = build_model("cnn", filters=4, kernel_size=3, dense_units=8, dropout=0.0)
    assert training_wrapper(model) is model  # nothing to add: fit the model itself
    trainer = training_wrapper(model, shift=0.1, erase=0.5)
    images = np.random.default_rng(1).random((16, SIDE, SIDE, 1)).astype("float32")
    np.testing.assert_allclose(trainer.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-6)
    before = [w.copy() for w in model.get_weights()]
    trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    trainer.fit(images, np.arange(16) % 10, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert not any("random_" in layer.name for layer in model.layers)


@pytest.mark.parametrize("shift, erase", [(-0.1, 0), (0.5, 0), (0, 1.5)])
def test_wrapper_rejects_out_of_range_params(shift, erase):
    model = build_model("baseline", filters=2, kernel_size=3, dense_units=4, dropout=0.0)
    with pytest.raises(ParamsError, match="train.augment"):
        training_wrapper(model, shift, erase)
