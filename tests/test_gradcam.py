"""Grad-CAM: it finds the map to explain by inspection, in every architecture and through flip
averaging, and it looks where the evidence is, for the model each profile trains."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist import config, profiles
from fmnist.errors import ModelShapeError
from fmnist.insight import gradcam
from fmnist.model import anatomy
from fmnist.model.architectures import ARCHITECTURES, build_model, with_flip_averaging
from tests.conftest import project_params

HYPER = {"filters": 4, "kernel_size": 3, "dense_units": 8, "dropout": 0.0}
WIDTH_KEYS = ("filters", "stem_filters", "kernel_size", "dense_units")
QUADRANTS = [(0, 0), (0, 14), (14, 14)]


def profile_model(profile: str) -> tuple[str, dict]:
    """The architecture and widths `profile` trains ("default": params.yaml as it is), without
    dropout so a few hundred images teach it the rule."""
    params = project_params()
    if profile != profiles.DEFAULT:
        params = profiles.apply(params, profiles.load(profile))
    return params["train"]["model"], {**{key: params[key] for key in WIDTH_KEYS},
                                      "dropout": 0.0}


PROFILES = [profiles.DEFAULT, *profiles.available()]


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
def test_the_explained_map_is_found_in_every_architecture_and_through_flip_averaging(name):
    model = build_model(name, flip=True, **HYPER)
    conv = anatomy.last_conv_layer(model)
    assert conv is [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    explained = anatomy.explained_layer(model)
    activated = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)
                 or layer.get_config().get("activation") == "relu"]
    # The deepest ReLU'd map that keeps at least half the image's side.
    assert explained in activated and explained.output.shape[1] >= 14
    deeper = activated[activated.index(explained) + 1:]
    assert all(len(layer.output.shape) < 4 or layer.output.shape[1] < 14 for layer in deeper)
    wrapped = with_flip_averaging(model)
    assert anatomy.classifier(wrapped) is model and anatomy.explained_layer(wrapped) is explained
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


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_gradcam_peaks_in_the_quadrant_that_holds_the_evidence(profile):
    """For the architecture and widths each profile trains: the bar that decides the class is
    the only evidence, somewhere in one quadrant; the maps must peak there, hold more heat
    there than elsewhere, and be faithful, whichever quadrant it is."""
    name, hyper = profile_model(profile)
    for top, left in QUADRANTS:
        config.seed_everything(0)
        images, labels = quadrant_images(1600, top, left, seed=0)
        model = build_model(name, **hyper)
        # Enough steps for batch norm's moving statistics to settle, and a rate low enough that
        # the widest model (vgg) learns the bar rather than its noise.
        model.compile(optimizer=keras.optimizers.Adam(0.001),
                      loss="sparse_categorical_crossentropy")
        model.fit(images, labels, epochs=6, batch_size=16, verbose=0)
        test_images, test_labels = quadrant_images(40, top, left, seed=1)
        predicted = model.predict(test_images, verbose=0).argmax(axis=1)
        assert np.mean(predicted == test_labels) > 0.9, f"{name} did not learn the rule"

        maps = gradcam.heatmaps(with_flip_averaging(model), test_images, test_labels)
        assert all(heat.max() > 0 for heat in maps), "an all-zero map peaks at (0, 0) by accident"
        peaks = [np.unravel_index(heat.argmax(), heat.shape) for heat in maps]
        in_quadrant = np.mean([top <= row < top + 14 and left <= col < left + 14
                               for row, col in peaks])
        assert in_quadrant >= 0.9, (
            f"{name}: only {in_quadrant:.0%} of the peaks in quadrant {(top, left)}")
        heat = {(r, c): maps[:, r:r + 14, c:c + 14].sum() for r in (0, 14) for c in (0, 14)}
        # ...and more heat there than in any other quadrant, not just the hottest pixel.
        assert max(heat, key=heat.get) == (top, left), f"{name}: heat spread {heat}"
        # Faithful: blacking out what the maps rank hottest hurts more than random pixels.
        explained = gradcam.deletion_curve(model, test_images, test_labels, maps)
        random_maps = np.random.default_rng(0).random(maps.shape)
        random = gradcam.deletion_curve(model, test_images, test_labels, random_maps)
        assert explained[1:].mean() < random[1:].mean() - 0.05, (name, explained, random)


def test_deletion_curve_falls_faster_for_the_pixels_that_carry_the_evidence():
    """The faithfulness measure itself: on a model that reads one bright bar, blacking out the
    bar first (a map that points at it) must drop the class probability faster than blacking
    out the background first (a map that points away)."""
    config.seed_everything(0)
    images, labels = quadrant_images(400, 14, 14, seed=0)
    model = build_model("baseline", filters=8, kernel_size=3, dense_units=16, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(images, labels, epochs=5, batch_size=32, verbose=0)
    test_images, test_labels = quadrant_images(40, 14, 14, seed=1)
    on_bar = (test_images[..., 0] == 1.0).astype("float32")
    towards = gradcam.deletion_curve(model, test_images, test_labels, on_bar)
    away = gradcam.deletion_curve(model, test_images, test_labels, 1.0 - on_bar)
    assert towards[0] == pytest.approx(away[0])  # nothing deleted yet
    assert towards[1:].mean() < away[1:].mean() - 0.1
