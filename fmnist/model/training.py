"""The training recipe, written once: `train` seeds, places and builds the model, wraps it in
the training-only augmentation, compiles, fits and returns the model to save. The train stage,
bench/gpu.py and bench/seed_gap.py all call it. Also the summary a fit leaves in
metrics/train.json.

Imports Keras, NumPy and this package only (no TensorFlow, MLflow or DVC at module level), so
bench/gpu.py runs it on a machine with JAX and Keras alone."""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from fmnist import config
from fmnist.errors import ParamsError
from fmnist.model.architectures import NUM_CLASSES, build_model, with_flip_averaging
from fmnist.model.augmentation import training_wrapper
from fmnist.model.batch_norm import builtin_layer

Split = tuple[np.ndarray, np.ndarray]


def hyper_params(params: dict[str, Any]) -> dict[str, Any]:
    """The builder's keyword arguments: the top-level hyper-parameters and the flip."""
    return {**{key: params[key] for key in ("filters", "stem_filters", "kernel_size",
                                            "dense_units", "dropout")},
            "flip": params["train"]["augment"]["flip"]}


def use_distribution(name: str, batch_size: int) -> int:
    """Spread each batch over every accelerator (Keras' DataParallel) for `data_parallel`;
    returns the device count. Call before the model is built: its weights are placed then.
    Keras' distribution API runs on the JAX backend only."""
    if name == "none":
        return 1
    if name != "data_parallel":
        raise ParamsError(f"train.distribution must be none or data_parallel, got {name!r}")
    if keras.backend.backend() != "jax":
        raise ParamsError("train.distribution: data_parallel needs the JAX backend; run with "
                          "KERAS_BACKEND=jax")
    devices = keras.distribution.list_devices()
    if batch_size % len(devices):
        raise ParamsError(f"train.batch_size {batch_size} must be a multiple of the "
                          f"{len(devices)} devices for data_parallel")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return len(devices)


PRECISIONS = ("auto", "float32", "mixed_bfloat16")
CPU_FLAGS = Path("/proc/cpuinfo")


def cpu_has_bf16(cpuinfo: Path = CPU_FLAGS) -> bool:
    """Whether the CPU reports a bfloat16 unit (AVX512_BF16 or AMX), read from Linux's
    /proc/cpuinfo; False where that file is missing (macOS, Windows)."""
    try:
        return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo.read_text()))
    except OSError:
        return False


def resolve_precision(name: str, backend: str | None = None, cpuinfo: Path = CPU_FLAGS) -> str:
    """`auto` -> mixed_bfloat16 on the TensorFlow backend with a CPU that has bf16 units,
    float32 anywhere else (elsewhere bf16 maths is emulated, and the JAX/GPU profiles were
    measured in float32). `backend` (default: Keras' own) and `cpuinfo` are what the choice
    reads, passed in so it can be checked for every answer on any machine."""
    if name not in PRECISIONS:
        raise ParamsError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name != "auto":
        return name
    backend = backend or keras.backend.backend()
    bf16 = backend == "tensorflow" and cpu_has_bf16(cpuinfo)
    return "mixed_bfloat16" if bf16 else "float32"


def use_precision(name: str) -> str:
    """Keras' dtype policy for the layers built from now on; returns the policy used.
    `mixed_bfloat16` computes in bfloat16 and keeps float32 weights. The saved model is float32
    either way (`saved_model`)."""
    policy = resolve_precision(name)
    keras.config.set_dtype_policy(policy)
    return policy


def saved_model(model: keras.Model, flip_averaging: bool) -> keras.Model:
    """What a fit leaves to save and score: the trained weights in float32, so evaluation and
    serving never depend on the CPU's bf16 support (mixed precision keeps its weights in
    float32, so the copy is exact), in Keras' built-in layers only (the fused batch norm
    becomes Keras' own), behind flip averaging when asked for."""
    use_precision("float32")  # also for the flip-averaging layers built below
    plain = keras.models.clone_model(
        model, clone_function=lambda layer: builtin_layer(layer, dtype="float32"))
    plain.set_weights(model.get_weights())
    return with_flip_averaging(plain) if flip_averaging else plain


def optimizer(train_params: dict[str, Any], steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam or AdamW, at a constant rate or on a cosine decay after a 5 % linear warm-up."""
    rate = train_params["learning_rate"]
    if train_params["lr_schedule"] == "cosine":
        total = train_params["epochs"] * steps_per_epoch
        rate = keras.optimizers.schedules.CosineDecay(
            0.0, total, warmup_target=rate, warmup_steps=max(1, total // 20))
    elif train_params["lr_schedule"] != "constant":
        raise ParamsError(f"train.lr_schedule must be constant or cosine, "
                          f"got {train_params['lr_schedule']!r}")
    if train_params["optimizer"] == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=train_params["weight_decay"])
    if train_params["optimizer"] == "adam":
        return keras.optimizers.Adam(rate)
    raise ParamsError(f"train.optimizer must be adam or adamw, got {train_params['optimizer']!r}")


def compile_model(model: keras.Model, train_params: dict[str, Any],
                  steps_per_epoch: int) -> keras.Model:
    # One-hot targets: label smoothing needs them (Keras' sparse loss has no smoothing).
    model.compile(optimizer=optimizer(train_params, steps_per_epoch),
                  loss=keras.losses.CategoricalCrossentropy(
                      label_smoothing=train_params["label_smoothing"]),
                  metrics=["accuracy"])
    return model


def one_hot(labels: np.ndarray) -> np.ndarray:
    return keras.utils.to_categorical(labels, NUM_CLASSES)


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Batches in one epoch, the last one partial: what fit runs and the schedule counts."""
    return math.ceil(examples / batch_size)


def fit(model: keras.Model, train: Split, val: Split | None, train_params: dict[str, Any],
        callbacks: Sequence[keras.callbacks.Callback]) -> dict[str, list[float]]:
    """Fit on one-hot labels; `val` None fits on everything (no val metrics, no early stopping)."""
    callbacks = list(callbacks)
    patience = train_params["early_stopping_patience"]
    if patience:
        callbacks = [*callbacks, keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=patience, restore_best_weights=True)]
    validation = (val[0], one_hot(val[1])) if val is not None else None
    history = model.fit(train[0], one_hot(train[1]), validation_data=validation,
                        epochs=train_params["epochs"], batch_size=train_params["batch_size"],
                        callbacks=callbacks, verbose=2)
    return {name: [float(v) for v in values] for name, values in history.history.items()}


@dataclass
class Prepared:
    """A seeded, built and compiled model, ready to fit: `trainer` is the model to fit (the
    training-only augmentation wrapper around `model`, sharing its weights)."""
    model: keras.Model
    trainer: keras.Model
    precision: str  # the dtype policy it trains under (`train.precision: auto` resolved)


@dataclass
class Trained:
    """What `train` leaves: `model` is the one to save and score (float32, flip averaged when
    asked for); `trainer` the model that was fitted."""
    model: keras.Model
    trainer: keras.Model
    history: dict[str, list[float]]
    seconds: float
    precision: str


def prepare(params: dict[str, Any], train_examples: int,
            start_from: Callable[[keras.Model], keras.Model] | None = None) -> Prepared:
    """The recipe up to the fit: seed, distribution, precision, build (`start_from` may set the
    fresh model's weights, e.g. a fine-tune's parent), augmentation wrapper, compile. Separate
    from `train` so a stage can meet a bad param or parent before it starts a tracked run."""
    train_params = params["train"]
    config.seed_everything(params["seed"])
    use_distribution(train_params["distribution"], train_params["batch_size"])
    use_precision(train_params["precision"])
    model = build_model(train_params["model"], **hyper_params(params))
    if start_from is not None:
        model = start_from(model)
    augment = train_params["augment"]
    trainer = compile_model(training_wrapper(model, augment["shift"], augment["erase"]),
                            train_params,
                            steps_per_epoch(train_examples, train_params["batch_size"]))
    return Prepared(model=model, trainer=trainer, precision=model.dtype_policy.name)


def train(params: dict[str, Any], train_split: Split, val: Split | None,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          prepared: Prepared | None = None) -> Trained:
    """The whole recipe from params.yaml's values: `prepare` (unless done already), fit (wall
    time measured), and the model to save."""
    prepared = prepared or prepare(params, len(train_split[1]))
    started = time.perf_counter()
    history = fit(prepared.trainer, train_split, val, params["train"], callbacks)
    seconds = time.perf_counter() - started
    return Trained(model=saved_model(prepared.model, params["train"]["flip_averaging"]),
                   trainer=prepared.trainer, history=history, seconds=seconds,
                   precision=prepared.precision)


def accuracy(model: keras.Model, split: tuple[np.ndarray, np.ndarray]) -> float:
    return float(np.mean(model.predict(split[0], batch_size=1024, verbose=0).argmax(axis=1)
                         == split[1]))


def training_summary(history: dict[str, list[float]], seconds: float, model: keras.Model,
                     kept_best: bool, val_accuracy: float, precision: str) -> dict:
    """Metrics of the weights kept (the best epoch's when early stopping restored them);
    `val_accuracy` is the saved model's, flip averaging included, which promotion compares;
    `precision` the dtype policy it trained under (`train.precision: auto` resolved)."""
    kept = int(np.argmax(history["val_accuracy"])) if kept_best else -1
    return {
        "train_accuracy": history["accuracy"][kept], "train_loss": history["loss"][kept],
        "fit_val_accuracy": history["val_accuracy"][kept], "val_loss": history["val_loss"][kept],
        "val_accuracy": val_accuracy,
        "epochs": len(history["loss"]), "train_seconds": round(seconds, 1),
        "parameters": int(model.count_params()), "precision": precision,
    }
