"""Model builders and the training recipe: shapes, widths, augmentation, minimum functionality."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist import config
from fmnist.data.splits import scale
from fmnist.errors import ParamsError
from fmnist.model import architectures, training
from fmnist.model.batch_norm import FusedBatchNormalization
from tests.conftest import conv_widths

HYPER = {"kernel_size": 3, "dense_units": 16, "dropout": 0.2}
RECIPE = {"optimizer": "adam", "learning_rate": 0.01, "lr_schedule": "constant",
          "label_smoothing": 0.0, "epochs": 8, "weight_decay": 0.0}


# The one place conv widths are pinned: blocks double from `filters`; `stem_filters` (when
# not 0) widens only the first block of the block models; seed is one conv of `filters`.
@pytest.mark.parametrize("name, stem_filters, widths", [
    ("baseline", 0, [24]), ("baseline", 32, [24]),
    ("cnn", 0, [24, 48, 96]), ("cnn", 32, [32, 48, 96]),
    ("cnn5", 0, [24, 48, 48, 96, 96]), ("cnn5", 32, [32, 48, 48, 96, 96]),
    ("vgg", 0, [24, 24, 48, 48, 96, 96]), ("vgg", 32, [32, 32, 48, 48, 96, 96])])
def test_conv_widths_follow_filters_and_stem(name, stem_filters, widths):
    model = architectures.build_model(name, filters=24, stem_filters=stem_filters, **HYPER)
    assert conv_widths(model) == widths


@pytest.mark.parametrize("name", ["cnn", "cnn5", "vgg"])
def test_block_models_pool_three_times(name):
    """28 -> 14 -> 7 -> 3: cnn5 and vgg add convs inside cnn's three blocks, not blocks."""
    model = architectures.build_model(name, filters=8, **HYPER)
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 3


@pytest.mark.parametrize("name", sorted(architectures.ARCHITECTURES))
def test_outputs_are_probabilities(dataset, name):
    images, _ = dataset(per_class=2)
    model = architectures.build_model(name, filters=8, **HYPER)
    assert model.input_shape == (None, 28, 28, 1)
    probabilities = model.predict(scale(images), verbose=0)
    assert probabilities.shape == (20, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_flip_acts_in_training_only(dataset):
    images, _ = dataset(per_class=2)
    inputs = scale(images)
    plain = architectures.build_model("baseline", filters=8, **HYPER)
    augmented = architectures.build_model("baseline", filters=8, flip=True, **HYPER)
    augmented.set_weights(plain.get_weights())  # augmentation layers have no weights
    np.testing.assert_allclose(augmented.predict(inputs, verbose=0),
                               plain.predict(inputs, verbose=0), rtol=1e-5)
    layer_types = {type(layer).__name__ for layer in augmented.layers}
    assert "RandomFlip" in layer_types and "RandomTranslation" not in layer_types


def every_layer(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `model` and of the models nested in it (flip averaging nests one)."""
    return [inner for layer in model.layers
            for inner in ([layer, *every_layer(layer)] if isinstance(layer, keras.Model) else [layer])]


@pytest.mark.parametrize("name", sorted(architectures.ARCHITECTURES))
def test_every_architecture_saves_with_builtin_layers_only(name, tmp_path):
    """What `mlflow models serve` needs: the saved model loads without this project's code,
    though training runs the project's fused batch norm."""
    model = architectures.build_model(name, filters=4, flip=True, **HYPER)
    fused = [layer for layer in model.layers if isinstance(layer, FusedBatchNormalization)]
    assert len(fused) == (0 if name == "baseline" else sum(
        isinstance(layer, keras.layers.Conv2D) for layer in model.layers))
    training.saved_model(model, flip_averaging=True).save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert all(type(layer).__module__.startswith("keras.") for layer in every_layer(loaded))
    assert loaded.output_shape == (None, 10)


@pytest.mark.parametrize("policy, tolerance", [("float32", 1e-4), ("mixed_bfloat16", 3e-2)])
def test_fused_batch_norm_trains_as_keras_batch_norm(policy, tolerance):
    """Same outputs, moving statistics and gradients as Keras' own layer in a training step:
    only the kernel differs."""
    import tensorflow as tf

    training.use_precision(policy)
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(3.0, 2.0, (16, 7, 7, 5)), "float32")
    loss_weights = tf.constant(rng.normal(size=(16, 7, 7, 5)), "float32")  # no zero gradients
    keras_bn, fused_bn = keras.layers.BatchNormalization(), FusedBatchNormalization()
    for layer in (keras_bn, fused_bn):
        layer.build(inputs.shape)
        layer.set_weights([np.linspace(0.5, 1.5, 5), np.linspace(-1, 1, 5),
                           np.full(5, 0.2), np.full(5, 2.0)])
    results = []
    for layer in (keras_bn, fused_bn):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True)
            loss = tf.reduce_sum(tf.cast(outputs, "float32") * loss_weights)
        gradients = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
        results.append([tf.cast(outputs, "float32"), *gradients,
                        layer.moving_mean, layer.moving_variance])
    assert fused_bn._fused and outputs.dtype == keras_bn.compute_dtype
    for expected, actual in zip(*results):
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected),
                                   rtol=tolerance, atol=tolerance)
    # Inference is Keras' own code: same weights, same outputs to the bit.
    fused_bn.set_weights(keras_bn.get_weights())
    np.testing.assert_array_equal(np.asarray(fused_bn(inputs, training=False)),
                                  np.asarray(keras_bn(inputs, training=False)))


def test_flip_averaging_is_the_mean_over_image_and_mirror_image(dataset, tmp_path):
    images, _ = dataset(per_class=2)
    inputs = scale(images)
    model = architectures.build_model("cnn", filters=8, flip=True, **HYPER)
    averaged = architectures.with_flip_averaging(model)
    expected = (model.predict(inputs, verbose=0) + model.predict(inputs[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(averaged.predict(inputs, verbose=0), expected, rtol=1e-5, atol=1e-7)
    # Mirror-invariant by construction, and it saves and loads with built-in layers only.
    training.saved_model(model, flip_averaging=True).save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(inputs[:, :, ::-1], verbose=0), expected,
                               rtol=1e-5, atol=1e-7)
    assert averaged.count_params() - model.count_params() == 28 * 28  # the frozen mirror
    assert [id(w) for w in averaged.trainable_weights] == [id(w) for w in model.trainable_weights]


def test_unknown_model_is_a_params_error():
    with pytest.raises(ParamsError, match="unknown model 'resnet'"):
        architectures.build_model("resnet", filters=8)


@pytest.mark.parametrize("key, value", [("optimizer", "sgd"), ("lr_schedule", "step")])
def test_unknown_recipe_choices_are_params_errors(key, value):
    with pytest.raises(ParamsError, match=f"train.{key}"):
        training.optimizer({**RECIPE, key: value}, steps_per_epoch=10)


def test_cosine_schedule_warms_up_then_decays():
    optimizer = training.optimizer({**RECIPE, "optimizer": "adamw", "lr_schedule": "cosine"},
                                steps_per_epoch=10)
    schedule = optimizer._learning_rate
    rates = [float(schedule(step)) for step in (0, 4, 40, 79)]
    assert rates[0] < rates[1] == pytest.approx(0.01)  # 80 steps: 4 of warm-up to the peak
    assert rates[1] > rates[2] > rates[3]
    assert isinstance(optimizer, keras.optimizers.AdamW)


@pytest.mark.parametrize("name", ["baseline", "cnn", "cnn5"])
def test_model_learns_an_easy_task(dataset, name):
    """Minimum functionality: a bar whose position is the class is learnt well above chance."""
    config.seed_everything(0)
    images, labels = dataset(per_class=40, seed=1)
    model = training.compile_model(architectures.build_model(name, filters=8, **HYPER), RECIPE,
                                steps_per_epoch=13)
    model.fit(scale(images), training.one_hot(labels), epochs=8, batch_size=32, verbose=0)
    test_images, test_labels = dataset(per_class=10, seed=2)
    accuracy = np.mean(model.predict(scale(test_images), verbose=0).argmax(1) == test_labels)
    assert accuracy > 0.6  # chance is 0.1


def test_mixed_bfloat16_trains_in_bfloat16_and_saves_float32(dataset, tmp_path):
    config.seed_everything(0)
    images, labels = dataset(per_class=40, seed=1)
    training.use_precision("mixed_bfloat16")
    model = training.compile_model(architectures.build_model("cnn", filters=8, **HYPER), RECIPE,
                                   steps_per_epoch=13)
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert model.layers[-1].compute_dtype == "float32"  # the softmax output stays float32
    model.fit(scale(images), training.one_hot(labels), epochs=8, batch_size=32, verbose=0)

    saved = training.saved_model(model, flip_averaging=False)
    saved.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert {layer.compute_dtype for layer in loaded.layers} == {"float32"}
    test_images, test_labels = dataset(per_class=10, seed=2)
    mixed = model.predict(scale(test_images), verbose=0)
    exact = loaded.predict(scale(test_images), verbose=0)
    assert np.mean(exact.argmax(1) == test_labels) > 0.6           # it learnt in bfloat16
    assert np.abs(exact - mixed).max() < 0.05                       # same weights, finer maths
    assert np.mean(exact.argmax(1) == mixed.argmax(1)) >= 0.95


def test_unknown_precision_is_a_params_error():
    with pytest.raises(ParamsError, match="train.precision"):
        training.use_precision("float16")


@pytest.mark.parametrize("flags, has_bf16", [("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
                                             ("fpu avx2 amx_bf16 amx_tile", True),
                                             ("fpu avx2 avx512f avx512_vnni", False)])
def test_bf16_units_are_read_from_the_cpu_flags(tmp_path, flags, has_bf16):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert training.cpu_has_bf16(cpuinfo) is has_bf16


def test_no_cpuinfo_means_no_bf16(tmp_path):
    assert training.cpu_has_bf16(tmp_path / "missing") is False
