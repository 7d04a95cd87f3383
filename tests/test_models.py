"""Model builders: shapes, params and a minimum-functionality check."""
from __future__ import annotations

import numpy as np
import pytest

from stages import models, train
from stages.errors import ParamsError
from stages.preprocess import scale


@pytest.mark.parametrize("filters", [8, 32, 64])
def test_seed_cnn_first_conv_width_follows_filters(filters):
    model = models.build_model("seed", filters=filters, kernel_size=3, dense_units=32, dropout=0.3)
    conv = next(layer for layer in model.layers if layer.__class__.__name__ == "Conv2D")
    assert conv.filters == filters
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)


def test_wider_first_layer_means_more_parameters():
    sizes = [models.build_model("seed", filters=f, kernel_size=3, dense_units=32,
                                dropout=0.0).count_params() for f in (16, 32, 64)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_outputs_are_probabilities(dataset):
    images, _ = dataset(per_class=2)
    model = models.build_model("seed", filters=8, kernel_size=3, dense_units=16, dropout=0.0)
    probabilities = model.predict(scale(images), verbose=0)
    assert probabilities.shape == (20, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_model_is_a_params_error():
    with pytest.raises(ParamsError, match="unknown model 'resnet'"):
        models.build_model("resnet", filters=8)


def test_seed_cnn_learns_an_easy_task(dataset):
    """Minimum functionality: classes that differ in brightness are learnt well above chance."""
    from stages import config

    config.seed_everything(0)
    images, labels = dataset(per_class=40, seed=1)
    model = train.compile_model(
        models.build_model("seed", filters=8, kernel_size=3, dense_units=16, dropout=0.0), 0.01)
    model.fit(scale(images), labels, epochs=8, batch_size=32, verbose=0)
    test_images, test_labels = dataset(per_class=10, seed=2)
    accuracy = np.mean(model.predict(scale(test_images), verbose=0).argmax(1) == test_labels)
    assert accuracy > 0.6  # chance is 0.1
