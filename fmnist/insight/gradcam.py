"""Class activation maps: where in the image the evidence for a class lies.

HiResCAM (Draelos & Carin, 2020), a Grad-CAM variant: the gradient of the class score with
respect to a feature map, multiplied element-wise by that map, summed over channels, ReLU'd,
scaled to [0, 1] per image and resized to the image. Plain Grad-CAM averages the gradient over
the map first, which is right for a global-average-pooling head; these models end in flatten ->
dense, where each cell has its own weights, so the average throws away where the gradient
points. The map explained is the last ReLU'd one at the last convolution's resolution
(`fmnist.model.anatomy.explained_layer`), where a positive product means evidence for the class.
docs/insight.md shows the measurements behind this choice.

The class score is the class's logit relative to the mean logit, recovered from the softmax
output (log p_c - mean_j log p_j = z_c - mean_j z_j): unlike the probability it keeps its
gradient when the model is confident, and it needs no surgery on the output layer.

A flip-averaged model is explained through the trained classifier it wraps, on the image as
given. Gradients come from TensorFlow's GradientTape or jax.grad, whichever backend Keras runs.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from matplotlib import colormaps
from PIL import Image

from fmnist.errors import ModelShapeError, UnsupportedBackend
from fmnist.model.anatomy import classifier, explained_layer

_LOG_FLOOR = 1e-30  # float32 keeps it; log(0) would poison the gradient
DELETION_FRACTIONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


def split_at_explained_map(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(features: image -> explained maps, head: maps -> probabilities) of the classifier."""
    inner = classifier(model)
    layer = explained_layer(inner)
    features = keras.Model(inner.input, layer.output)
    try:  # Keras cuts the graph at an intermediate tensor by giving it an Input of its own
        head = keras.Model(layer.output, inner.output)
    except ValueError as error:  # e.g. a skip connection from before the layer into the head
        raise ModelShapeError(f"cannot split {inner.name!r} after {layer.name!r}: {error}") \
            from error
    return features, head


def _class_score(probabilities, classes: np.ndarray):
    log_p = keras.ops.log(keras.ops.maximum(probabilities, _LOG_FLOOR))
    centred = log_p - keras.ops.mean(log_p, axis=1, keepdims=True)
    picked = keras.ops.take_along_axis(centred, keras.ops.convert_to_tensor(classes[:, None]),
                                       axis=1)
    return keras.ops.sum(picked)


def _gradient(head: keras.Model, maps: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """d(sum of each image's class score) / d(feature maps): one pass, images independent."""
    def score(values):
        return _class_score(head(values, training=False), classes)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        values = tf.convert_to_tensor(maps)
        with tf.GradientTape() as tape:
            tape.watch(values)
            total = score(values)
        return tape.gradient(total, values).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(score)(maps))
    raise UnsupportedBackend(f"Grad-CAM supports the tensorflow and jax backends, not {backend!r}")


def heatmaps(model: keras.Model, images: np.ndarray, classes: np.ndarray | None = None
             ) -> np.ndarray:
    """Class activation maps (HiResCAM) in [0, 1], one per image, at the image's size (N, H, W).

    images: the model's input, scaled (N, H, W, 1) floats. classes: the class to explain per
    image; default the model's own prediction."""
    images = np.asarray(images, dtype="float32")
    if classes is None:
        classes = np.asarray(model.predict(images, verbose=0)).argmax(axis=1)
    classes = np.asarray(classes, dtype="int32")
    features, head = split_at_explained_map(model)
    maps = np.asarray(features(images, training=False))
    cams = np.maximum((_gradient(head, maps, classes) * maps).sum(axis=-1), 0.0)
    return np.stack([normalise(resize(cam, images.shape[1:3])) for cam in cams])


def deletion_curve(model: keras.Model, images: np.ndarray, classes: np.ndarray,
                   heats: np.ndarray, fractions: Sequence[float] = DELETION_FRACTIONS
                   ) -> np.ndarray:
    """A faithfulness check: the mean probability of each image's class after blacking out
    (the background's value) the `fraction` of its pixels that `heats` ranks hottest, one value
    per fraction. A map that points at the evidence makes it fall faster than a random one."""
    images = np.asarray(images, dtype="float32")
    count, pixels = len(images), int(np.prod(images.shape[1:3]))
    order = np.argsort(-np.asarray(heats).reshape(count, pixels), axis=1, kind="stable")
    rows = np.arange(count)[:, None]
    curve = []
    for fraction in fractions:
        flat = images.reshape(count, pixels).copy()
        flat[rows, order[:, :int(round(fraction * pixels))]] = 0.0
        probabilities = np.asarray(model.predict(flat.reshape(images.shape), verbose=0))
        curve.append(float(probabilities[np.arange(count), classes].mean()))
    return np.array(curve)


def normalise(heat: np.ndarray) -> np.ndarray:
    """Scaled so the peak is 1 (all zeros stay zeros: no evidence anywhere)."""
    peak = float(heat.max())
    return heat / peak if peak > 0 else np.zeros_like(heat)


def resize(heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A non-negative map resized (bilinear) to (height, width)."""
    image = Image.fromarray(heat.astype("float32"), mode="F")
    return np.maximum(np.asarray(image.resize(shape[::-1], Image.Resampling.BILINEAR)), 0.0)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45, scale: int = 1,
            colormap: str = "jet") -> np.ndarray:
    """uint8 RGB: the grayscale image (uint8, H x W) under the heat map's colours, optionally
    enlarged `scale` times (nearest pixels, so nothing is invented)."""
    gray = np.repeat(image.astype("float32")[..., None] / 255.0, 3, axis=2)
    colours = colormaps[colormap](heat)[..., :3]
    blended = np.clip((1 - alpha) * gray + alpha * colours, 0.0, 1.0)
    rgb = (blended * 255).round().astype(np.uint8)
    return np.kron(rgb, np.ones((scale, scale, 1), dtype=np.uint8)) if scale > 1 else rgb

