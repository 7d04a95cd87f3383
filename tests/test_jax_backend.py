"""Under KERAS_BACKEND=jax every profile's model trains compiled, and data-parallel training
over two (simulated) devices learns like one device. Each check runs in a fresh interpreter:
the backend and the device count are fixed when Keras and JAX load."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from fmnist import profiles
from tests.conftest import REAL_DATA_DIR, REPO_ROOT

pytestmark = pytest.mark.slow

COMPILE_CHECK = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    from fmnist import profiles
    from fmnist.model.architectures import build_model
    from fmnist.model.augmentation import training_wrapper
    from fmnist.model.training import compile_model, hyper_params
    from tests.conftest import project_params

    report = {}
    for name in sys.argv[1:]:
        params = project_params(**({} if name == "default" else profiles.load(name)))
        model = build_model(params["train"]["model"], **hyper_params(params))
        augment = params["train"]["augment"]
        trainer = compile_model(training_wrapper(model, augment["shift"], augment["erase"]),
                                params["train"], steps_per_epoch=10)
        images = np.random.default_rng(0).random((32, 28, 28, 1)).astype("float32")
        labels = keras.utils.to_categorical(np.arange(32) % 10, 10)
        trainer.fit(images, labels, batch_size=16, epochs=1, verbose=0)
        report[name] = trainer.jit_compile
    # The premise of the check: Keras' own RandomTranslation turns compilation off.
    inputs = keras.Input((28, 28, 1))
    translated = keras.layers.RandomTranslation(0.1, 0.1)(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(translated))
    reference = keras.Model(inputs, outputs)
    reference.compile(optimizer="adam", loss="mse")
    report["keras_random_translation"] = reference.jit_compile
    print(json.dumps(report))
""")

DATA_PARALLEL_CHECK = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    from fmnist import config
    from fmnist.data import formats, splits
    from fmnist.model.architectures import build_model
    from fmnist.model.training import accuracy, compile_model, fit, hyper_params, use_distribution
    from tests.conftest import project_params

    frames = formats.read_raw_frames(sys.argv[1])
    images, labels = formats.from_frame(frames["train"])
    keep = np.concatenate([np.flatnonzero(labels == c)[:120] for c in range(10)])
    parts = splits.split_train_val(splits.scale(images[keep]), labels[keep], 0.2, 0)
    # The seeds' small model (no batch norm, whose running statistics need more steps than
    # a quick check affords) at a constant rate.
    params = project_params(**{"train.model": "baseline", "filters": 8, "dense_units": 32,
                               "dropout": 0.0, "train.epochs": 4, "train.batch_size": 32,
                               "train.lr_schedule": "constant", "train.optimizer": "adam",
                               "train.distribution": sys.argv[2]})
    config.seed_everything(0)
    devices = use_distribution(params["train"]["distribution"], params["train"]["batch_size"])
    model = compile_model(build_model("baseline", **hyper_params(params)), params["train"],
                          steps_per_epoch=len(parts["train"][1]) // 32 + 1)
    fit(model, parts["train"], parts["val"], params["train"], callbacks=[])
    kernel = model.trainable_variables[0].value
    print(json.dumps({"devices": devices, "val_accuracy": accuracy(model, parts["val"]),
                      "kernel_devices": len(kernel.sharding.device_set)}))
""")


def run_under_jax(script: str, *args: str, device_count: int = 1) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO_ROOT),
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={device_count}"}
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_profile_trains_compiled_under_jax():
    names = ["default", *profiles.available()]
    report = run_under_jax(COMPILE_CHECK, *names)
    assert report.pop("keras_random_translation") is False  # the trap the wrapper avoids
    assert report == {name: True for name in names}


def test_data_parallel_on_two_devices_learns_like_one():
    single = run_under_jax(DATA_PARALLEL_CHECK, str(REAL_DATA_DIR), "none")
    parallel = run_under_jax(DATA_PARALLEL_CHECK, str(REAL_DATA_DIR), "data_parallel",
                             device_count=2)
    assert (single["devices"], parallel["devices"]) == (1, 2)
    assert parallel["kernel_devices"] == 2  # weights replicated on both devices
    assert single["val_accuracy"] > 0.6 and parallel["val_accuracy"] > 0.6  # chance is 0.1
    assert abs(parallel["val_accuracy"] - single["val_accuracy"]) < 0.06
