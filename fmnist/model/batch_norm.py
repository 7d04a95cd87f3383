"""Batch normalization that trains through TensorFlow's fused kernel (FusedBatchNormV3).

Keras 3 trains batch norm as separate ops (moments, then normalize, upcast to float32 under
mixed precision); tf.keras 2 used the fused kernel, which makes a CPU training step noticeably
cheaper (docs/decisions/fused-batch-norm.md). Only the training step changes: inference, other
backends and configurations the kernel does not cover run Keras' own code, and the saved model
holds Keras' built-in layer instead (`builtin_layer`, same weights), so it loads without this
project's code, as `mlflow models serve` needs.
"""
from __future__ import annotations

import keras
from keras import layers, ops


class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization (same config, weights and inference), trained on the fused
    kernel under the TensorFlow backend for 4-D channels-last input."""

    def build(self, input_shape):
        super().build(input_shape)
        self._fused = (keras.backend.backend() == "tensorflow" and len(input_shape) == 4
                       and self.axis in (-1, 3) and self.scale and self.center
                       and not self.renorm and not self.synchronized)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and mask is None and self._fused):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # only reached under the TensorFlow backend

        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32"),
            epsilon=self.epsilon, is_training=True)[:3]
        # The kernel returns the Bessel-corrected variance; Keras' moving variance is the
        # plain batch variance, and must stay so for the built-in layer that serves it.
        count = ops.cast(ops.prod(ops.shape(inputs)[:-1]), "float32")
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)


def builtin_layer(layer: keras.layers.Layer, **overrides) -> keras.layers.Layer:
    """A fresh copy of `layer` from its config (with `overrides`), as Keras' built-in
    BatchNormalization where it is the fused one: for `keras.models.clone_model`."""
    cls = layers.BatchNormalization if isinstance(layer, FusedBatchNormalization) else type(layer)
    return cls.from_config({**layer.get_config(), **overrides})
