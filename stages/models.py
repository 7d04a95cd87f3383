"""Keras model builders, one per architecture, chosen by the `train.model` param."""
from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from stages.errors import ParamsError

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def build_seed_cnn(filters: int, kernel_size: int, dense_units: int, dropout: float,
                   input_shape: tuple[int, ...] = INPUT_SHAPE,
                   num_classes: int = NUM_CLASSES) -> keras.Model:
    """The seeds' baseline: one conv, one max-pool, a small dense head."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(filters, kernel_size, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


BUILDERS: dict[str, Callable[..., keras.Model]] = {"seed": build_seed_cnn}


def build_model(name: str, **hyper_params) -> keras.Model:
    """Look up the builder for `name` and call it with the hyper-parameters it declares."""
    if name not in BUILDERS:
        raise ParamsError(f"unknown model {name!r}; choose one of {sorted(BUILDERS)}")
    return BUILDERS[name](**hyper_params)
