"""Keras model builders, one per architecture, chosen by the `train.model` param.

An architecture is a function from the (augmented) image tensor to class probabilities; every
one takes the same hyper-parameters (top-level in params.yaml): `filters` is the base width later
blocks scale from, `stem_filters` the first conv block's width (0: `filters`; not for `baseline`).
`build_model` wraps it in a `keras.Model`.
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np
from keras import layers

from fmnist.errors import ParamsError
from fmnist.model.batch_norm import FusedBatchNormalization

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def baseline_cnn(x, filters: int, kernel_size: int, dense_units: int, dropout: float,
                 stem_filters: int = 0):
    """The original baseline recipe's model: one conv, one max-pool, a small dense head. Its
    one conv is `filters` wide, as in the seeds' code (`-S filters=32,64` is their grid), so
    `stem_filters` does not apply here."""
    x = layers.Conv2D(filters, kernel_size, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    return softmax_output(x)


def conv_block(x, width: int, kernel_size: int, convs: int = 1, pool_first: bool = True):
    """`convs` times conv -> batch norm -> ReLU at `width`, halved by one max-pool. With
    `pool_first` the pool comes right after the last conv, so that conv's batch norm and ReLU
    run on a quarter of the values: cheaper on a CPU, with no accuracy loss seen
    (docs/decisions/cnn5.md). Without it the pool ends the block (VGG's order)."""
    for conv in range(convs):
        # No bias: batch norm's shift makes it redundant.
        x = layers.Conv2D(width, kernel_size, padding="same", use_bias=False)(x)
        if pool_first and conv == convs - 1:
            x = layers.MaxPooling2D()(x)
        x = FusedBatchNormalization()(x)  # Keras' own in the saved model
        x = layers.ReLU()(x)
    return x if pool_first else layers.MaxPooling2D()(x)


def block_widths(filters: int, stem_filters: int, blocks: int) -> list[int]:
    """Each conv block's width: `filters` doubled per block, the first block `stem_filters` wide
    when that is set: oneDNN's bf16 kernels work on blocks of 16 channels, so the stem's width
    decides much of a step's cost (docs/decisions/stem-width.md)."""
    return [stem_filters or filters] + [filters * 2 ** block for block in range(1, blocks)]


def cnn(x, filters: int, kernel_size: int, dense_units: int, dropout: float,
        stem_filters: int = 0, convs_per_block: tuple[int, ...] = (1, 1, 1)):
    """One conv block per entry of `convs_per_block` (three: 28 -> 14 -> 7 -> 3 pixels),
    pooling first, doubling the width each block, then dropout -> dense -> dropout -> softmax."""
    widths = block_widths(filters, stem_filters, len(convs_per_block))
    for width, convs in zip(widths, convs_per_block):
        x = conv_block(x, width, kernel_size, convs)
    return _classifier_head(x, dense_units, dropout)


def cnn5(x, filters: int, kernel_size: int, dense_units: int, dropout: float,
         stem_filters: int = 0):
    """`cnn` with a second conv in the 14x14 and 7x7 blocks: five conv layers. On a CPU the
    extra depth paid more than width or epochs at the same time (docs/decisions/cnn5.md)."""
    return cnn(x, filters, kernel_size, dense_units, dropout, stem_filters,
                  convs_per_block=(1, 2, 2))


def vgg_cnn(x, filters: int, kernel_size: int, dense_units: int, dropout: float,
            stem_filters: int = 0, blocks: int = 3):
    """VGG-style: `blocks` blocks of two (conv -> batch norm -> ReLU) then max-pool, doubling
    the width each block, and the same head as `cnn`. About 3x `cnn`'s work per image: meant
    for a GPU (the `gpu` profile), where it trains in seconds per epoch."""
    for width in block_widths(filters, stem_filters, blocks):
        x = conv_block(x, width, kernel_size, convs=2, pool_first=False)
    return _classifier_head(x, dense_units, dropout)


def _classifier_head(x, dense_units: int, dropout: float):
    """Flatten -> dropout -> dense -> dropout -> softmax."""
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    return softmax_output(x)


def softmax_output(x):
    """The softmax output, in float32 even under mixed precision: bfloat16 keeps 8 bits of
    mantissa, too few for the loss's log of probabilities near 1."""
    return layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities",
                        dtype="float32")(x)


ARCHITECTURES: dict[str, Callable] = {"baseline": baseline_cnn, "cnn": cnn, "cnn5": cnn5,
                                      "vgg": vgg_cnn}


def build_model(name: str, flip: bool = False, **hyper_params) -> keras.Model:
    """The architecture `name`, behind a random horizontal flip when asked for. Keras runs the
    flip only in fit and passes images through unchanged in predict, so the saved model serves
    as is. (Shifts and erasing live in a training-only wrapper: fmnist/model/augmentation.py.)"""
    if name not in ARCHITECTURES:
        raise ParamsError(f"unknown model {name!r}; choose one of {sorted(ARCHITECTURES)}")
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
    if flip:  # garments are close to left-right symmetric
        x = layers.RandomFlip("horizontal")(x)
    return keras.Model(inputs, ARCHITECTURES[name](x, **hyper_params), name=name)


def with_flip_averaging(model: keras.Model) -> keras.Model:
    """Test-time augmentation: the mean of the model's probabilities for each image and its
    mirror image (docs/decisions/flip-averaging.md). It wraps the trained model,
    so the saved model predicts this way wherever it is loaded: evaluate, `fmnist predict`,
    `mlflow models serve`."""
    height, width, _ = INPUT_SHAPE
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    # Mirroring as a frozen Dense layer over each pixel row whose weights are the anti-identity
    # matrix (exact: one product by 1, the rest by 0). Built-in layers only, so the saved model
    # loads without this project's code, as `mlflow models serve` needs.
    mirror = layers.Dense(width, use_bias=False, trainable=False, name="mirror")
    rows = layers.Reshape((height, width))(inputs)
    mirrored = layers.Reshape(INPUT_SHAPE)(mirror(rows))
    mirror.set_weights([np.eye(width, dtype="float32")[::-1]])
    probabilities = layers.Average(name="probabilities")([model(inputs), model(mirrored)])
    return keras.Model(inputs, probabilities, name=f"{model.name}_flip_averaged")
