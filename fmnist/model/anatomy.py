"""Finding parts of a trained model by inspecting it (never by layer name): the classifier a
wrapper such as flip averaging calls, its last convolution, and the feature map Grad-CAM
explains."""
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


def is_activated(layer: keras.layers.Layer) -> bool:
    """Whether the layer's output has been through a ReLU (its own activation or a ReLU layer)."""
    if isinstance(layer, keras.layers.ReLU):
        return True
    activation = getattr(layer, "activation", None)
    return activation is keras.activations.relu or getattr(activation, "__name__", "") == "relu"


def explained_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer whose output Grad-CAM explains: the deepest ReLU'd feature map that keeps at
    least half the input's side (14x14 of 28x28 in every architecture here; the conv itself
    in the one-conv baseline). ReLU'd, so a positive gradient x activation is evidence for the
    class; not the last conv's raw output, where pooling, batch norm and ReLU still follow and
    its sign says nothing; and not the 7x7 or 3x3 maps, which are coarser than a garment's
    parts and less faithful (docs/insight.md)."""
    inner = classifier(model)
    last_conv_layer(inner)  # a named error for a model with nothing to explain
    input_side = min(inner.input.shape[1:3])
    activated = [layer for layer in inner.layers if is_activated(layer)
                 and len(layer.output.shape) == 4
                 and min(layer.output.shape[1:3]) * 2 >= input_side]
    if not activated:
        raise ModelShapeError(f"model {inner.name!r} has no ReLU'd feature map of at least half "
                              "the input's side to explain")
    return activated[-1]
