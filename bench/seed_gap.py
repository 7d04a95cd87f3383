"""Where the gap to the seeds' figures comes from: their recipe (the `baseline` profile) trained
outside the pipeline on three choices of training data, with test accuracy after every epoch.

- `stratified`: our pipeline's split (stratified 80 %, shuffled by `seed`): 48k images;
- `keras`: Keras' `validation_split=0.2`, the last 12k images held out unshuffled: 48k images;
- `full`: all 60k training images, nothing held out (the epochs fixed beforehand: 50).

The train stage's recipe (fmnist.model.training.train), so `stratified` with seed 42 is the
pipeline's run. Per run: val and test accuracy after the last epoch, the test accuracy of the
epoch with the best val accuracy, and the best test accuracy of any epoch (a figure that peeks
at the test set, shown only to size what picking an epoch can be worth).

    python bench/seed_gap.py --variants keras full --cells 32/0 --seeds 42 43

Writes bench/seed_gap.json and bench/seed_gap.md after every run; runs already there are kept
and not run again.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import keras
import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench import report  # noqa: E402
from bench.run import machine  # noqa: E402
from fmnist import profiles  # noqa: E402
from fmnist.data import formats, splits  # noqa: E402
from fmnist.model.training import train  # noqa: E402

BENCH_DIR = REPO_ROOT / "bench"
VARIANTS = ("stratified", "keras", "full")
VAL_SPLIT = 0.2  # the seeds' 20 %


def baseline_params(epochs: int | None) -> dict:
    params = profiles.apply(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()),
                            profiles.load("baseline"))
    if epochs:
        params["train"]["epochs"] = epochs
    return params


def training_data(variant: str, images: np.ndarray, labels: np.ndarray, seed: int
                  ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """(train, val or None) for one variant; images already scaled."""
    if variant == "stratified":
        parts = splits.split_train_val(images, labels, VAL_SPLIT, seed)
        return parts["train"], parts["val"]
    if variant == "keras":  # what model.fit(validation_split=0.2) holds out: the last 20 %
        cut = int(len(labels) * (1 - VAL_SPLIT))
        return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])
    if variant == "full":
        return (images, labels), None
    raise SystemExit(f"unknown variant {variant!r}; choose from {VARIANTS}")


class TestAccuracy(keras.callbacks.Callback):
    """Test accuracy after every epoch (measurement only: nothing is chosen by it)."""

    def __init__(self, test: tuple[np.ndarray, np.ndarray]):
        super().__init__()
        self.test, self.per_epoch = test, []

    def on_epoch_end(self, epoch, logs=None):
        predicted = self.model.predict(self.test[0], batch_size=2048, verbose=0).argmax(axis=1)
        self.per_epoch.append(float(np.mean(predicted == self.test[1])))


def train_once(variant: str, filters: int, dropout: float, seed: int, params: dict,
               data: dict) -> dict:
    params = {**params, "seed": seed, "filters": filters, "dropout": dropout}
    train_split, val = training_data(variant, *data["train"], seed)
    tester = TestAccuracy(data["test"])
    trained = train(params, train_split, val, callbacks=[tester])
    history = trained.history
    run = {"variant": variant, "filters": filters, "dropout": dropout, "seed": seed,
           "train_images": len(train_split[1]), "epochs": params["train"]["epochs"],
           "seconds": round(trained.seconds, 1),
           "test_accuracy": tester.per_epoch[-1], "best_test_any_epoch": max(tester.per_epoch),
           "test_per_epoch": tester.per_epoch}
    if val:
        best = int(np.argmax(history["val_accuracy"]))
        run.update(val_accuracy=history["val_accuracy"][-1], best_val_epoch=best + 1,
                   best_val_accuracy=history["val_accuracy"][best],
                   test_at_best_val=tester.per_epoch[best], val_per_epoch=history["val_accuracy"])
    return run


def metric(run: dict, key: str) -> float | None:
    if key == "best_val_accuracy" and "val_per_epoch" in run:  # also for runs saved without it
        return max(run["val_per_epoch"])
    return run.get(key)


def summary_rows(runs: list[dict]) -> list[dict]:
    """Mean and std per (variant, filters, dropout) over the seeds run."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["variant"], run["filters"], run["dropout"]), []).append(run)
    rows = []
    for (variant, filters, dropout), members in groups.items():
        row = {"variant": variant, "filters": filters, "dropout": dropout,
               "seeds": [r["seed"] for r in members], "train_images": members[0]["train_images"]}
        for key in ("val_accuracy", "best_val_accuracy", "test_accuracy", "test_at_best_val",
                    "best_test_any_epoch"):
            values = [metric(r, key) for r in members if metric(r, key) is not None]
            if values:
                row[key] = (statistics.mean(values),
                            statistics.stdev(values) if len(values) > 1 else 0.0)
        rows.append(row)
    return rows


def markdown(results: dict) -> str:
    def cell(row: dict, key: str) -> str:
        if key not in row:
            return "—"
        return f"{row[key][0]:.2%}" + (f" ± {row[key][1]:.2%}" if len(row["seeds"]) > 1 else "")

    rows = [{"variant": row["variant"], "train images": row["train_images"],
             "filters/dropout": f"{row['filters']}/{row['dropout']:g}",
             "seeds": ", ".join(map(str, row["seeds"])),
             "val (last epoch)": cell(row, "val_accuracy"),
             "best epoch's val": cell(row, "best_val_accuracy"),
             "test (last epoch)": cell(row, "test_accuracy"),
             "test at best-val epoch": cell(row, "test_at_best_val"),
             "best test of any epoch (peeks)": cell(row, "best_test_any_epoch")}
            for row in summary_rows(results["runs"])]
    lines = [report.table(rows)]
    where = results["machine"]
    lines += ["", f"{where['cores']} cores, {where['keras_backend']}, commit {where['commit']}; "
              f"{len(results['runs'])} runs"]
    return "\n".join(lines) + "\n"


def parse_cell(text: str) -> tuple[int, float]:
    filters, dropout = text.split("/")
    return int(filters), float(dropout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["keras", "full"], choices=VARIANTS)
    parser.add_argument("--cells", nargs="+", type=parse_cell, default=[(32, 0.0)],
                        help="filters/dropout pairs, e.g. 32/0 64/0.3")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--epochs", type=int, help="override the profile's 50 (quick checks)")
    parser.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "seed_gap.json")
    args = parser.parse_args()
    params = baseline_params(args.epochs)
    frames = formats.read_raw_frames(args.data_dir)
    data = {name: (splits.scale(images), labels) for name, (images, labels) in
            ((name, formats.from_frame(frame)) for name, frame in frames.items())}
    results = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    results["machine"] = machine()
    done = {(r["variant"], r["filters"], r["dropout"], r["seed"], r["epochs"])
            for r in results["runs"]}
    # Seed-major order, so a cut-off run has every variant and cell with the first seeds.
    for seed in args.seeds:
        for filters, dropout in args.cells:
            for variant in args.variants:
                key = (variant, filters, dropout, seed, params["train"]["epochs"])
                if key in done:
                    continue
                run = train_once(variant, filters, dropout, seed, params, data)
                print(f"{variant} {filters}/{dropout:g} seed {seed}: test "
                      f"{run['test_accuracy']:.2%} ({run['seconds']:.0f} s)", flush=True)
                results["runs"].append(run)
                args.out.write_text(json.dumps(results, indent=2) + "\n")
                args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
