"""GPU check: the project's own model and training code on an accelerator, with only numpy,
JAX, Keras, pandas, scikit-learn and PyYAML installed (no TensorFlow, MLflow or DVC).

Prints versions and devices, then per run: the first compiled step's time (compile included),
the steady step time, progress inside each epoch, and val/test accuracy of the saved
(flip-averaged) model. Results go to a JSON file after every run, so a cut-off run still
reports; a Markdown table is written beside it.

    KERAS_BACKEND=jax python -u bench/gpu.py --smoke              # one epoch of every profile
    KERAS_BACKEND=jax python -u bench/gpu.py --profiles gpu --seeds 42 43 44
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import jax  # noqa: E402
import keras  # noqa: E402
import yaml  # noqa: E402

from fmnist import profiles  # noqa: E402
from fmnist.data import formats, splits  # noqa: E402
from fmnist.model.training import accuracy, train  # noqa: E402

DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")


class StepTimer(keras.callbacks.Callback):
    """Times the first train step (compilation included) and the steady steps, and prints
    progress inside each epoch (Keras' verbose=2 stays silent until an epoch ends)."""

    def __init__(self, report_every: int = 50) -> None:
        super().__init__()
        self.report_every = report_every
        self.first_step_seconds: float | None = None
        self.step_seconds: list[float] = []
        self.epoch_seconds: list[float] = []

    def on_train_begin(self, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch, self.epoch_started = epoch, time.perf_counter()
        self.last = self.epoch_started

    def on_train_batch_end(self, batch, logs=None) -> None:
        now = time.perf_counter()
        if self.first_step_seconds is None:
            self.first_step_seconds = now - self.started
        elif batch > 0:
            self.step_seconds.append(now - self.last)
        self.last = now
        if batch % self.report_every == 0:
            print(f"  epoch {self.epoch + 1} step {batch}: loss {logs['loss']:.4f} "
                  f"({now - self.epoch_started:.1f} s into the epoch)", flush=True)

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.epoch_seconds.append(time.perf_counter() - self.epoch_started)


def load_params(profile: str, overrides: dict) -> dict:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    if profile != "default":
        profiles.apply(params, profiles.load(profile))
    return profiles.apply(params, overrides)


def load_data(data_dir: Path, params: dict) -> dict:
    """The pipeline's preprocess, in memory: the same stratified split and scaling."""
    frames = formats.read_raw_frames(data_dir)
    return splits.make_splits(*formats.from_frame(frames["train"]),
                              *formats.from_frame(frames["test"]),
                              params["preprocess"], params["seed"])


def train_once(profile: str, seed: int, data_dir: Path, overrides: dict) -> dict:
    params = load_params(profile, {**overrides, "seed": seed})
    parts = load_data(data_dir, params)
    timer = StepTimer()
    trained = train(params, parts["train"], parts["val"], callbacks=[timer])
    model, train_params = trained.model, params["train"]
    return {
        "profile": profile, "seed": seed, "overrides": overrides,
        "model": train_params["model"], "epochs": train_params["epochs"],
        "precision": trained.precision,
        "jit_compile": bool(trained.trainer.jit_compile),
        "first_step_seconds": round(timer.first_step_seconds, 2),
        "step_ms_median": round(1000 * statistics.median(timer.step_seconds), 2)
        if timer.step_seconds else None,
        "epoch_seconds": [round(s, 2) for s in timer.epoch_seconds],
        "train_seconds": round(trained.seconds, 1),
        "parameters": int(model.count_params()),
        "val_accuracy": accuracy(model, parts["val"]),
        "test_accuracy": accuracy(model, parts["test"]),
    }


def environment() -> dict:
    return {"python": platform.python_version(), "jax": jax.__version__,
            "keras": keras.__version__, "backend": keras.backend.backend(),
            "devices": [str(device) for device in jax.devices()],
            "device_kind": jax.devices()[0].device_kind}


def write_markdown(results: dict, path: Path) -> None:
    lines = [f"Machine: {results['environment']['device_kind']} "
             f"({len(results['environment']['devices'])} device(s)), jax "
             f"{results['environment']['jax']}, keras {results['environment']['keras']}", "",
             "| profile | seed | epochs | compiled | first step (s) | step (ms) | train (s) "
             "| val acc | test acc |", "|---|---|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        lines.append(f"| {run['profile']} | {run['seed']} | {run['epochs']} | "
                     f"{run['jit_compile']} | {run['first_step_seconds']} | "
                     f"{run['step_ms_median']} | {run['train_seconds']} | "
                     f"{run['val_accuracy']:.2%} | {run['test_accuracy']:.2%} |")
    for profile, summary in results.get("summary", {}).items():
        lines.append(f"\n**{profile}**: test accuracy {summary['test_mean']:.2%} ± "
                     f"{summary['test_std']:.2%} over {summary['n']} seeds, "
                     f"train {summary['train_seconds_mean']:.0f} s per run")
    path.write_text("\n".join(lines) + "\n")


def summarize(runs: list[dict]) -> dict:
    by_profile: dict[str, list[dict]] = {}
    for run in runs:
        if run["epochs"] > 1:
            by_profile.setdefault(run["profile"], []).append(run)
    return {profile: {"n": len(group),
                      "test_mean": statistics.mean(r["test_accuracy"] for r in group),
                      "test_std": statistics.pstdev(r["test_accuracy"] for r in group),
                      "train_seconds_mean": statistics.mean(r["train_seconds"] for r in group)}
            for profile, group in by_profile.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="one epoch of the default and every profile, seed 42")
    parser.add_argument("--profiles", nargs="+", default=["gpu"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="param overrides, e.g. train.epochs=50")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "gpu_results.json")
    args = parser.parse_args()
    overrides = {key: yaml.safe_load(value) for key, value in
                 (item.split("=", 1) for item in args.set)}
    results = {"environment": environment(), "runs": []}
    print(json.dumps(results["environment"], indent=1), flush=True)
    plan = ([(name, 42, {**overrides, "train.epochs": 1})
             for name in ["default", *profiles.available()]] if args.smoke else
            [(name, seed, overrides) for name in args.profiles for seed in args.seeds])
    for profile, seed, run_overrides in plan:
        print(f"== {profile} seed {seed} {run_overrides}", flush=True)
        run = train_once(profile, seed, args.data_dir, run_overrides)
        print(json.dumps(run), flush=True)
        results["runs"].append(run)
        results["summary"] = summarize(results["runs"])
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        write_markdown(results, args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
