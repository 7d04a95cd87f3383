"""The seeds' experiment grid through `dvc queue`: the `baseline` profile (their recipe as
written), `-S filters=32,64 -S dropout=0,0.3`, once per seed, one queue worker.

Runs in a fresh `git clone` of this repo's HEAD with the profile committed (as bench/run.py
does); data stages run once there, then every cell is a queued `dvc exp run` that logs to the
clone's MLflow store and registers its model. Results are read back from that store after every
finished run, so a run cut short still reports what it finished.

    python bench/seed_grid.py                       # 4 cells x seeds 42, 43, 44 (~75 min here)
    python bench/seed_grid.py --seeds 42            # one seed per cell
    python bench/seed_grid.py --attach /tmp/fmnist-seed-grid-XXXX/seed   # follow one again

Queued in seed order (all cells with the first seed, then the next seed), so a cut-off leaves
whole rounds. Writes bench/seed_grid.json and bench/seed_grid.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench import report  # noqa: E402
from bench.run import machine, prepare_clone, run_timed  # noqa: E402

BENCH_DIR = REPO_ROOT / "bench"
EXPERIMENT = "fashion-mnist"
MODEL_NAME = "fashion-mnist-cnn"
# What the baseline reported per cell (docs/decisions/baseline-gap.md; none for 32/0.3).
SEEDS_REPORTED = {(32, 0.0): 0.911, (64, 0.0): 0.916, (64, 0.3): 0.919}


def queue_grid(clone: Path, seeds: list[int], filters: list[int], dropouts: list[float]) -> None:
    """One `dvc exp run --queue` per seed, so the queue (first in, first out) finishes every
    cell with one seed before it starts the next seed."""
    grid = ["-S", "filters=" + ",".join(map(str, filters)),
            "-S", "dropout=" + ",".join(map(str, dropouts))]
    for seed in seeds:
        subprocess.run(["dvc", "exp", "run", "--queue", "-S", f"seed={seed}", *grid], cwd=clone,
                       check=True)


def queue_counts(clone: Path) -> dict[str, int]:
    """Tasks per status from `dvc queue status` (Queued, Running, Success, Failed)."""
    lines = subprocess.run(["dvc", "queue", "status"], cwd=clone, capture_output=True,
                           text=True).stdout.splitlines()
    counts: dict[str, int] = {}
    for line in lines:
        words = line.split()
        if words and words[-1] in ("Queued", "Running", "Success", "Failed"):
            counts[words[-1]] = counts.get(words[-1], 0) + 1
    return counts


def finished_runs(clone: Path) -> list[dict]:
    """Every run of the clone's store that reached evaluate, with its registry outcome."""
    store = MlflowClient(f"sqlite:///{clone / 'mlruns' / 'mlflow.db'}")
    experiment = store.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    runs = []
    for run in store.search_runs([experiment.experiment_id], "metrics.test_accuracy > 0",
                                 order_by=["attributes.start_time ASC"]):
        params, metrics = run.data.params, run.data.metrics
        versions = store.search_model_versions(f"name = '{MODEL_NAME}' and "
                                               f"run_id = '{run.info.run_id}'")
        tags = versions[0].tags if versions else {}
        history = [m.value for m in sorted(store.get_metric_history(run.info.run_id,
                                                                    "val_accuracy"),
                                           key=lambda m: m.step)]
        runs.append({"seed": int(params["seed"]), "filters": int(params["filters"]),
                     "dropout": float(params["dropout"]), "epochs": int(params["train.epochs"]),
                     "val_accuracy": metrics["model_val_accuracy"],
                     "test_accuracy": metrics["test_accuracy"],
                     # The best epoch's val accuracy (MLflow's per-epoch curve), for comparison only.
                     "best_val_accuracy": max(history, default=None),
                     "best_val_epoch": history.index(max(history)) + 1 if history else None,
                     "train_seconds": metrics["train_seconds"],
                     "exp_name": run.data.tags.get("dvc.exp_name"),
                     "version": int(versions[0].version) if versions else None,
                     "promotion": tags.get("promotion.decision")})
    return runs


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def cells(runs: list[dict], filters: list[int], dropouts: list[float]) -> list[dict]:
    """Per (filters, dropout): mean and std over the seeds run, beside the seeds' figure."""
    rows = []
    for width in filters:
        for rate in dropouts:
            mine = [r for r in runs if (r["filters"], r["dropout"]) == (width, rate)]
            row = {"filters": width, "dropout": rate, "seeds": [r["seed"] for r in mine],
                   "seeds_reported": SEEDS_REPORTED.get((width, rate))}
            for key in ("val_accuracy", "best_val_accuracy", "test_accuracy"):
                if mine and all(r[key] is not None for r in mine):
                    row[f"{key}_mean"], row[f"{key}_std"] = mean_std([r[key] for r in mine])
            rows.append(row)
    return rows


def percent(row: dict, key: str) -> str:
    if f"{key}_mean" not in row:
        return "not run"
    if len(row["seeds"]) == 1:  # no spread to show
        return f"{row[f'{key}_mean']:.2%}"
    return f"{row[f'{key}_mean']:.2%} ± {row[f'{key}_std']:.2%}"


def markdown(results: dict, source: Path = BENCH_DIR / "seed_grid.json") -> str:
    where = results["machine"]
    rows = [{"`filters`": row["filters"], "`dropout`": f"{row['dropout']:g}",
             "val accuracy": percent(row, "val_accuracy"),
             "best epoch's val accuracy": percent(row, "best_val_accuracy"),
             "test accuracy": percent(row, "test_accuracy"),
             "seeds run": f"{len(row['seeds'])} ({', '.join(map(str, row['seeds']))})",
             "the seeds' report": f"{row['seeds_reported']:.1%}" if row["seeds_reported"] else ""}
            for row in results["cells"]]
    lines = [report.header("seed_grid.py --report-only", source,
                           f"The `baseline` profile's grid through `dvc queue`: {where['cores']} "
                           f"cores, {where['keras_backend']}, measured "
                           f"{report.when(where, where['commit'])}."),
             report.table(rows)]
    lines += ["", "Per run (val / test accuracy after the last epoch, the best epoch's val "
              "accuracy, train seconds, registry decision):", ""]
    lines += [f"- {r['filters']}/{r['dropout']:g}, seed {r['seed']}: {r['val_accuracy']:.2%} / "
              f"{r['test_accuracy']:.2%}, best val {r['best_val_accuracy']:.2%} at epoch "
              f"{r['best_val_epoch']}, {r['train_seconds']:.0f} s, version {r['version']} "
              f"{r['promotion']}" for r in results["runs"]]
    lines += ["", f"{where['cores']} cores, {where['keras_backend']}, commit {where['commit']}; "
              f"status {results['status']}"]
    return "\n".join(lines) + "\n"


def write(results: dict, out: Path) -> None:
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results, out))


def start_grid(clone: Path, args: argparse.Namespace) -> None:
    """Clone with the profile committed, data stages once, the grid queued, one worker."""
    prepare_clone("baseline", clone)
    print(f"[seed grid] data stages in {clone} ...", flush=True)
    run_timed(["dvc", "repro", "preprocess"], clone)
    # Queued runs start from the committed state; committing the lock spares each of them
    # the data stages (their outputs are in the clone's cache).
    subprocess.run(["git", "commit", "-qam", "data stages"], cwd=clone, check=True)
    queue_grid(clone, args.seeds, args.filters, args.dropouts)
    subprocess.run(["dvc", "queue", "start", "-j", "1"], cwd=clone, check=True)


def follow(clone: Path, args: argparse.Namespace) -> dict:
    """Read the finished runs back after every poll until the queue is empty."""
    results = {"machine": machine(), "profile": "baseline", "clone": str(clone), "runs": []}
    while True:
        counts = queue_counts(clone)
        runs = finished_runs(clone)
        if len(runs) != len(results["runs"]):
            print(f"[seed grid] {len(runs)} runs done", flush=True)
        # Counted from the queue, so tasks removed by hand (`dvc queue remove`) drop out.
        left = counts.get("Queued", 0) + counts.get("Running", 0)
        results.update(runs=runs, cells=cells(runs, args.filters, args.dropouts),
                       status=f"{len(runs)} runs finished, {left} to go", queue=counts)
        write(results, args.out)
        if not left:
            break
        time.sleep(args.poll)
    if counts.get("Failed"):
        print(f"[seed grid] {counts['Failed']} runs failed: see `dvc queue logs` in {clone}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--filters", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--dropouts", nargs="+", type=float, default=[0.0, 0.3])
    parser.add_argument("--poll", type=float, default=30, help="seconds between result reads")
    parser.add_argument("--attach", type=Path, metavar="CLONE",
                        help="follow a grid already queued in CLONE (kept afterwards)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "seed_grid.json")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the Markdown report from --out; run nothing")
    args = parser.parse_args()
    if args.report_only:
        args.out.with_suffix(".md").write_text(markdown(json.loads(args.out.read_text()), args.out))
        return
    if args.attach:
        results = follow(args.attach.resolve(), args)
    else:
        with tempfile.TemporaryDirectory(prefix="fmnist-seed-grid-") as workdir:
            start_grid(Path(workdir) / "seed", args)
            results = follow(Path(workdir) / "seed", args)
    print(markdown(results, args.out))


if __name__ == "__main__":
    main()
