"""Grad-CAM: it finds the last convolution by inspection, in every architecture and through flip
averaging, and it looks where the evidence is."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist import config
from fmnist.errors import ModelShapeError
from fmnist.insight import gradcam
from fmnist.model import anatomy
from fmnist.model.architectures import ARCHITECTURES, build_model, with_flip_averaging

HYPER = {"filters": 4, "kernel_size": 3, "dense_units": 8, "dropout": 0.0}


def quadrant_images(count: int, top: int, left: int, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Noise everywhere and one bar, in the quadrant at (top, left), whose direction is the
    class (0: horizontal, 1: vertical): the only evidence there is, placed at random in it."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.3, size=(count, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 2, size=count)
    for index, label in enumerate(labels):
        row, col = top + rng.integers(3, 9), left + rng.integers(3, 9)
        if label:
            images[index, row - 2:row + 4, col:col + 2, 0] = 1.0
        else:
            images[index, row:row + 2, col - 2:col + 4, 0] = 1.0
    return images, labels


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_last_conv_is_found_in_every_architecture_and_through_flip_averaging(name):
    model = build_model(name, flip=True, **HYPER)
    conv = anatomy.last_conv_layer(model)
    assert isinstance(conv, keras.layers.Conv2D)
    assert conv is [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    wrapped = with_flip_averaging(model)
    assert anatomy.classifier(wrapped) is model and anatomy.last_conv_layer(wrapped) is conv
    images = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype("float32")
    maps = gradcam.heatmaps(wrapped, images)
    assert maps.shape == (3, 28, 28) and maps.min() >= 0.0 and maps.max() <= 1.0


def test_a_model_without_convolutions_gets_a_named_error():
    inputs = keras.Input((28, 28, 1))
    dense = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs))
    with pytest.raises(ModelShapeError, match="no 2-D convolution"):
        gradcam.heatmaps(keras.Model(inputs, dense), np.zeros((1, 28, 28, 1), "float32"))


def test_overlay_is_rgb_and_enlarged_by_whole_pixels():
    image = np.zeros((28, 28), np.uint8)
    heat = np.zeros((28, 28))
    heat[20:, 20:] = 1.0
    rgb = gradcam.overlay(image, heat, scale=3)
    assert rgb.shape == (84, 84, 3) and rgb.dtype == np.uint8
    assert rgb[80, 80, 0] > rgb[5, 5, 0]   # hot corner is red in jet, cold corner blue
    assert np.array_equal(rgb[0:3, 0:3], np.broadcast_to(rgb[0, 0], (3, 3, 3)))


@pytest.mark.parametrize("top, left", [(14, 14), (0, 0)])
def test_gradcam_peaks_in_the_quadrant_that_holds_the_evidence(top, left):
    config.seed_everything(0)
    images, labels = quadrant_images(400, top, left, seed=0)
    model = build_model("seed", filters=8, kernel_size=3, dense_units=16, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images, labels, epochs=5, batch_size=32, verbose=0)
    test_images, test_labels = quadrant_images(40, top, left, seed=1)
    predicted = model.predict(test_images, verbose=0).argmax(axis=1)
    assert np.mean(predicted == test_labels) > 0.9  # it learned the rule

    maps = gradcam.heatmaps(with_flip_averaging(model), test_images, test_labels)
    peaks = [np.unravel_index(heat.argmax(), heat.shape) for heat in maps]
    in_quadrant = np.mean([top <= row < top + 14 and left <= col < left + 14
                           for row, col in peaks])
    assert in_quadrant >= 0.9, f"only {in_quadrant:.0%} of the peaks in the evidence quadrant"
    # ...and more heat than any other quadrant, not just the hottest pixel.
    heat = {(r, c): maps[:, r:r + 14, c:c + 14].sum() for r in (0, 14) for c in (0, 14)}
    assert max(heat, key=heat.get) == (top, left)
