"""Training-only augmentation that compiles on every backend: per-image random shifts and
random erasing, written with `keras.ops` and `keras.random`.

Why not Keras' own RandomTranslation: it sets `supports_jit = False`, which silently turns off
compilation for the whole model it sits in, so under JAX each op then runs eagerly (on a GPU a
first epoch took minutes). These layers live in a training wrapper around the model, not in the
model: the saved model holds Keras' built-in layers only and loads anywhere without this code
(`mlflow models serve` included), and at inference time they would be identities anyway.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from fmnist.errors import ParamsError


def _shift_matrices(offsets, size: int, dtype: str):
    """(batch,) integer offsets -> (batch, size, size) 0/1 matrices M with M[i, k] = 1 where
    k == i - offset: M @ x moves x's rows down by `offset`, zero-filling what comes in."""
    positions = ops.arange(size)
    target = ops.expand_dims(ops.expand_dims(positions, 0), 2)   # i, (1, size, 1)
    source = ops.expand_dims(ops.expand_dims(positions, 0), 1)   # k, (1, 1, size)
    wanted = target - ops.reshape(offsets, (-1, 1, 1))
    return ops.cast(ops.equal(source, wanted), dtype)


class RandomShift(layers.Layer):
    """Moves each image of a batch by its own random whole-pixel offset, up to `max_shift` of
    its height and width in each direction; what comes in at the border is black (0), the
    data set's background. Exact: a product with 0/1 matrices, no interpolation."""

    def __init__(self, max_shift: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_shift = max_shift
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = False):
        if not training or not self.max_shift:
            return images
        height, width = images.shape[1], images.shape[2]
        batch = ops.shape(images)[0]
        max_rows, max_cols = round(self.max_shift * height), round(self.max_shift * width)
        rows = keras.random.randint((batch,), -max_rows, max_rows + 1, seed=self.seed_generator)
        cols = keras.random.randint((batch,), -max_cols, max_cols + 1, seed=self.seed_generator)
        row_shift = _shift_matrices(rows, height, images.dtype)
        col_shift = _shift_matrices(cols, width, images.dtype)
        return ops.einsum("bik,bklc,bjl->bijc", row_shift, images, col_shift)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_shift": self.max_shift, "seed": self.seed}


class RandomErasing(layers.Layer):
    """With probability `rate` per image, blacks out one random rectangle whose sides are
    20-50 % of the image's (Zhong et al.'s random erasing, filled with the background)."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _spans(self, batch, size: int):
        """Per image, a 0/1 row (or column) mask (batch, size) covering a random span."""
        length = keras.random.randint((batch, 1), size // 5, size // 2 + 1,
                                      seed=self.seed_generator)
        start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator)
                          * ops.cast(size - length + 1, "float32"))
        positions = ops.expand_dims(ops.arange(size, dtype="float32"), 0)
        start = ops.cast(start, "float32")
        return ops.logical_and(positions >= start,
                               positions < start + ops.cast(length, "float32"))

    def call(self, images, training: bool = False):
        if not training or not self.rate:
            return images
        height, width = images.shape[1], images.shape[2]
        batch = ops.shape(images)[0]
        rows, cols = self._spans(batch, height), self._spans(batch, width)
        chosen = keras.random.uniform((batch, 1, 1), seed=self.seed_generator) < self.rate
        erased = ops.logical_and(ops.logical_and(ops.expand_dims(rows, 2),
                                                 ops.expand_dims(cols, 1)), chosen)
        return ops.where(ops.expand_dims(erased, -1), ops.zeros_like(images), images)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def training_wrapper(model: keras.Model, shift: float = 0.0, erase: float = 0.0) -> keras.Model:
    """The model to fit: `model` behind the shift and erasing layers (when asked for). It
    shares `model`'s weights, so fitting it trains `model`, which is what gets saved."""
    if not 0 <= shift < 0.5:
        raise ParamsError(f"train.augment.shift must be in [0, 0.5), got {shift}")
    if not 0 <= erase <= 1:
        raise ParamsError(f"train.augment.erase must be in [0, 1], got {erase}")
    if not shift and not erase:
        return model
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = inputs
    if shift:
        x = RandomShift(shift, name="random_shift")(x)
    if erase:
        x = RandomErasing(erase, name="random_erasing")(x)
    return keras.Model(inputs, model(x), name=f"{model.name}_training")
