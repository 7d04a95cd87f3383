"""Finding parts of a trained model by inspecting it (never by layer name): the classifier a
wrapper such as flip averaging calls, and its last convolution (what Grad-CAM looks at)."""
from __future__ import annotations

import keras

from fmnist.errors import ModelShapeError

_CONV_TYPES = (keras.layers.Conv2D, keras.layers.SeparableConv2D,
               keras.layers.DepthwiseConv2D)


def classifier(model: keras.Model) -> keras.Model:
    """The innermost model that holds the convolutions. `with_flip_averaging` calls the trained
    model as one nested layer (twice: image and mirror); unwrapping finds that trained model."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and _convolutions(layer):
            return classifier(layer)
    return model


def _convolutions(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _convolutions(layer)
        elif isinstance(layer, _CONV_TYPES):
            found.append(layer)
    return found


def last_conv_layer(model: keras.Model) -> keras.layers.Layer:
    """The last 2-D convolution of the (unwrapped) classifier, in graph order."""
    convolutions = [layer for layer in classifier(model).layers if isinstance(layer, _CONV_TYPES)]
    if not convolutions:
        raise ModelShapeError(f"model {model.name!r} has no 2-D convolution to explain")
    return convolutions[-1]
