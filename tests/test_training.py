"""fmnist.model.training's branches: early stopping keeps the best epoch's weights,
`train.precision: auto` falls back to float32 off TensorFlow or without bf16 units, and
`train.distribution` refuses what it cannot run, each with a ParamsError naming the param."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from fmnist import config
from fmnist.data.splits import scale
from fmnist.errors import ParamsError
from fmnist.model import training
from fmnist.model.architectures import build_model
from tests.conftest import REPO_ROOT, make_dataset, project_params

BF16_FLAGS = "fpu avx2 avx512f avx512_bf16 avx512_vnni"
NO_BF16_FLAGS = "fpu avx2 avx512f avx512_vnni"


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    return path


# --- early stopping ------------------------------------------------------------------------------

def with_block(images: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """A small white block on the bottom rows whose column says a class: a second cue, beside
    make_dataset's wide bar, that a small CNN picks up later than the bar."""
    images = images.copy()
    for image, label in zip(images, classes):
        image[25:27, 2 * label + 4: 2 * label + 6] = 255
    return images


def cue_conflict_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Train: the block always says the label, the bar only on 70 % of images (elsewhere it
    says another class). Val: the bar says the label, the block says label + 3. The model reads
    the bar first, so val accuracy climbs; once it trusts the block, val accuracy collapses."""
    rng = np.random.default_rng(0)
    images, labels = make_dataset(per_class=30, seed=0)
    images = with_block(images, labels)
    for index in np.flatnonzero(rng.random(len(labels)) > 0.7):
        other = (labels[index] + rng.integers(1, 10)) % 10
        images[index, 4:24, 4:24] = rng.integers(0, 60, size=(20, 20))
        images[index, 2 * other + 4: 2 * other + 6, 4:24] = rng.integers(200, 256)
    val_images, val_labels = make_dataset(per_class=10, seed=5)
    val_images = with_block(val_images, (val_labels + 3) % 10)
    return (scale(images), labels), (scale(val_images), val_labels)


class WeightsPerEpoch(keras.callbacks.Callback):
    """The weights at each epoch's end, before early stopping may put older ones back."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.weights.append([np.copy(w) for w in self.model.get_weights()])


def same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_early_stopping_keeps_the_best_epochs_weights_not_the_last():
    train, val = cue_conflict_data()
    train_params = project_params(**{
        "train.epochs": 30, "train.early_stopping_patience": 3, "train.batch_size": 30,
        "train.lr_schedule": "constant", "train.optimizer": "adam",
        "train.learning_rate": 0.003, "train.label_smoothing": 0.0})["train"]
    config.seed_everything(1)
    model = build_model("baseline", filters=4, kernel_size=3, dense_units=16, dropout=0.0)
    training.compile_model(model, train_params, steps_per_epoch=10)
    recorder = WeightsPerEpoch()
    history = training.fit(model, train, val, train_params, [recorder])

    val_accuracy = history["val_accuracy"]
    best = int(np.argmax(val_accuracy))
    # The data did what it claims: an early, interior peak, then a collapse that stopped the fit.
    assert 0 < best < len(val_accuracy) - 1 < train_params["epochs"] - 1, val_accuracy
    assert len(val_accuracy) == best + 1 + train_params["early_stopping_patience"]
    assert val_accuracy[best] - val_accuracy[-1] > 0.2, val_accuracy

    assert same_weights(model.get_weights(), recorder.weights[best])
    assert not same_weights(model.get_weights(), recorder.weights[-1])
    # The kept model answers as the best epoch did, not as the collapsed last one.
    assert training.accuracy(model, val) == pytest.approx(val_accuracy[best], abs=1e-6)
    summary = training.training_summary(history, 1.0, model, kept_best=True,
                                        val_accuracy=training.accuracy(model, val),
                                        precision="float32")
    assert summary["fit_val_accuracy"] == val_accuracy[best]
    assert summary["train_loss"] == history["loss"][best]
    assert summary["epochs"] == len(val_accuracy)


# --- train.precision: auto -------------------------------------------------------------------

@pytest.mark.parametrize("backend, flags, expected", [
    ("tensorflow", BF16_FLAGS, "mixed_bfloat16"),
    ("tensorflow", NO_BF16_FLAGS, "float32"),  # no bf16 units: bf16 maths would be emulated
    ("jax", BF16_FLAGS, "float32"),            # JAX: the profiles were measured in float32
    ("jax", NO_BF16_FLAGS, "float32"),
])
def test_auto_precision_is_bf16_only_on_tensorflow_with_bf16_units(tmp_path, backend, flags,
                                                                   expected):
    assert training.resolve_precision("auto", backend, cpuinfo(tmp_path, flags)) == expected


@pytest.mark.parametrize("name", ["float32", "mixed_bfloat16"])
def test_an_explicit_precision_is_used_as_given(tmp_path, name):
    for backend in ("tensorflow", "jax"):
        for flags in (BF16_FLAGS, NO_BF16_FLAGS):
            assert training.resolve_precision(name, backend, cpuinfo(tmp_path, flags)) == name


def test_auto_reads_the_running_backend(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the suite runs on TensorFlow; JAX is checked in a child process below")
    assert training.resolve_precision("auto", cpuinfo=cpuinfo(tmp_path, BF16_FLAGS)) == \
        "mixed_bfloat16"


# --- train.distribution ----------------------------------------------------------------------

def test_no_distribution_is_one_device():
    assert training.use_distribution("none", batch_size=33) == 1


def test_an_unknown_distribution_is_a_params_error():
    with pytest.raises(ParamsError, match="train.distribution must be none or data_parallel, "
                                          "got 'model_parallel'"):
        training.use_distribution("model_parallel", batch_size=32)


def test_data_parallel_on_tensorflow_says_to_use_jax():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("checks the TensorFlow backend")
    with pytest.raises(ParamsError, match="data_parallel needs the JAX backend; run with "
                                          "KERAS_BACKEND=jax"):
        training.use_distribution("data_parallel", batch_size=32)


# Under JAX, in a fresh interpreter: the backend and the device count are fixed when Keras and
# JAX load.
JAX_CHECK = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import keras
    from fmnist.errors import ParamsError
    from fmnist.model.training import resolve_precision, use_distribution

    report = {"backend": keras.backend.backend(),
              "auto_precision": resolve_precision("auto", cpuinfo=Path(sys.argv[1]))}
    try:
        use_distribution("data_parallel", batch_size=33)
        report["odd_batch"] = "no error"
    except ParamsError as error:
        report["odd_batch"] = str(error)
    report["devices"] = use_distribution("data_parallel", batch_size=32)
    print(json.dumps(report))
""")


def test_under_jax_auto_is_float32_and_data_parallel_needs_a_batch_that_splits(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO_ROOT),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = subprocess.run([sys.executable, "-c", JAX_CHECK, str(cpuinfo(tmp_path, BF16_FLAGS))],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "backend": "jax", "auto_precision": "float32",  # even on a CPU with bf16 units
        "odd_batch": "train.batch_size 33 must be a multiple of the 2 devices for data_parallel",
        "devices": 2}


@pytest.mark.parametrize(("examples", "batch_size", "steps"),
                         [(64, 32, 2), (65, 32, 3), (31, 32, 1)])
def test_steps_per_epoch_counts_the_last_partial_batch_and_no_empty_one(examples, batch_size,
                                                                        steps):
    assert training.steps_per_epoch(examples, batch_size) == steps


def test_the_recipe_with_one_seed_gives_the_same_weights_and_fits_without_a_val_split():
    """train() seeds itself: two calls with one seed give the same model bit for bit; with no
    val split (bench/seed_gap.py's `full` variant) it fits on everything, no val metrics."""
    images, labels = make_dataset(per_class=6)
    split = (scale(images), labels)
    params = project_params(**{"train.model": "baseline", "filters": 4, "dense_units": 8,
                               "train.epochs": 2, "train.batch_size": 16})
    first, second = (training.train(params, split, split) for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first.model.get_weights(),
                                                    second.model.get_weights()))
    assert len(first.history["val_loss"]) == 2
    assert first.model.name.endswith("flip_averaged")  # the params' flip_averaging: true
    alone = training.train(params, split, None)
    assert set(alone.history) == {"accuracy", "loss"} and len(alone.history["loss"]) == 2
