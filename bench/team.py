"""Team-mode benchmark: what the shared MLflow server costs, and what parallel queue workers buy.

1. Tracking overhead per run, sqlite vs the team server: the calls train and evaluate make
   (params, per-epoch metrics for `--epochs` epochs as MlflowCallback logs them, the figures and
   the default CNN logged as a model), timed against each store, as a share of the default
   profile's measured train time (bench/results.json).
2. Three small experiments through `dvc queue` against the team server, one worker vs two
   (`dvc queue start -j 1` / `-j 2`), on a 5 % slice, in a fresh copy of this repo.

    python bench/team.py            # about 10 minutes on a 2-core CPU

Starts its own PostgreSQL + MLflow server (fmnist.server) in a temporary folder and stops it.
Writes bench/team_results.json and bench/team_results.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench import report  # noqa: E402
from fmnist import profiles, server  # noqa: E402

BENCH_DIR = REPO_ROOT / "bench"
RESULT_FILE = BENCH_DIR / "team_results.json"
SLICE = {"download.source": "local", "preprocess.subset": 0.05, "filters": 8, "train.epochs": 4,
         "train.batch_size": 32, "promotion.full_train_set_only": False}
# Two disjoint sets of three experiments (identical ones would be restored from DVC's run cache).
EXPERIMENTS = {1: ["filters=4", "filters=6", "filters=12"],
               2: ["filters=5", "filters=7", "filters=11"]}


def tracking_seconds(uri: str, epochs: int, repeats: int) -> list[float]:
    """Wall time of one run's tracking calls against `uri`, `repeats` times (in a subprocess,
    so each store gets a fresh MLflow client)."""
    script = f"""
import json, os, sys, tempfile, time
os.environ["MLFLOW_TRACKING_URI"] = {uri!r}
import mlflow, numpy as np
sys.path.insert(0, {str(REPO_ROOT)!r})
from fmnist import config, tracking
from fmnist.model.architectures import build_model, with_flip_averaging
model = with_flip_averaging(build_model("cnn", filters=32, kernel_size=3, dense_units=128,
                                        dropout=0.3, flip=True, shift=0.0))
sample = np.zeros((8, 28, 28, 1), np.float32)
params = {{f"p{{i}}": i for i in range(40)}}
figure = tempfile.NamedTemporaryFile(suffix=".png", delete=False).name
open(figure, "wb").write(os.urandom(60_000))
times = []
for repeat in range({repeats}):
    started = time.perf_counter()
    with tracking.start_run("bench-tracking"):
        mlflow.log_params(params)
        for epoch in range({epochs}):
            mlflow.log_metrics({{"accuracy": 0.9, "loss": 0.3, "val_accuracy": 0.9,
                                "val_loss": 0.3}}, step=epoch, synchronous=False)
        mlflow.log_metrics({{"train_seconds": 1.0, "model_val_accuracy": 0.9}})
        for name in ("curves.png", "confusion.png"):
            mlflow.log_artifact(figure, artifact_path="figures")
        tracking.log_keras_model(model, sample)
        mlflow.log_metrics({{f"test_f1.{{k}}": 0.9 for k in range(10)}})
    times.append(time.perf_counter() - started)
print(json.dumps(times))
"""
    workdir = Path(tempfile.mkdtemp(prefix="fmnist-bench-track-"))
    result = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True,
                            text=True, env={**os.environ, "DVC_ROOT": str(workdir),
                                            "TF_CPP_MIN_LOG_LEVEL": "2"})
    shutil.rmtree(workdir, ignore_errors=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def copy_project(destination: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, files.split("\0")):
        if (REPO_ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, destination / name)
    params = profiles.apply(yaml.safe_load((destination / "params.yaml").read_text()), SLICE)
    (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com",
                     "commit", "-qm", "slice"]):
        subprocess.run(command, cwd=destination, check=True, capture_output=True)
    return destination


def dvc(repo: Path, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def queue_seconds(repo: Path, workers: int, experiments: list[str], env: dict[str, str]
                  ) -> float:
    for flag in experiments:
        dvc(repo, "exp", "run", "--queue", "-S", flag, "-S", "train.epochs=2", env=env)
    started = time.perf_counter()
    dvc(repo, "queue", "start", "-j", str(workers), env=env)
    while True:
        status = dvc(repo, "queue", "status", env=env)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    seconds = time.perf_counter() - started
    if status.count("Success") < len(experiments) or "Failed" in status:
        raise SystemExit(f"queued experiments failed:\n{status}")
    dvc(repo, "queue", "remove", "--success", env=env)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=24, help="per-epoch metric rows to log")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite team_results.md from team_results.json; run nothing")
    args = parser.parse_args()
    if args.report_only:
        RESULT_FILE.with_suffix(".md").write_text(markdown(json.loads(RESULT_FILE.read_text())))
        return
    default_train = statistics.mean(json.loads((BENCH_DIR / "results.json").read_text())
                                    ["profiles"]["default"]["train_seconds"])
    home = Path(tempfile.mkdtemp(prefix="fmnist-bench-team-", dir="/tmp"))
    home.chmod(0o755)
    stack = server.StackConfig(home, port=server.free_port(), db_port=server.free_port())
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_TRACKING_URI": stack.tracking_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    results: dict = {"measured": report.now(),
                     "machine": {"cpu": platform.machine(), "cores": os.cpu_count(),
                                 "note": "shared with other jobs while measured"}}
    mlflow_server = None
    try:
        server.start_postgres(stack)
        mlflow_server = server.start_mlflow(stack)
        server.wait_healthy(stack, mlflow_server)
        sqlite_dir = Path(tempfile.mkdtemp(prefix="fmnist-bench-sqlite-"))
        stores = {"sqlite": f"sqlite:///{sqlite_dir / 'mlflow.db'}", "server": stack.tracking_uri}
        tracking = {}
        for name, uri in stores.items():
            times = tracking_seconds(uri, args.epochs, args.repeats)
            median = statistics.median(times[1:] or times)  # the first pays for table creation
            tracking[name] = {"seconds": [round(t, 2) for t in times],
                              "median_s": round(median, 2),
                              "share_of_default_train": round(median / default_train, 4)}
        shutil.rmtree(sqlite_dir, ignore_errors=True)
        results["tracking_per_run"] = {"default_train_seconds": round(default_train, 1),
                                       "epochs_logged": args.epochs, **tracking}

        with tempfile.TemporaryDirectory(prefix="fmnist-bench-queue-") as folder:
            repo = copy_project(Path(folder))
            started = time.perf_counter()
            dvc(repo, "repro", env=env)
            results["queue"] = {"baseline_repro_s": round(time.perf_counter() - started, 1)}
            for workers, experiments in EXPERIMENTS.items():
                results["queue"][f"three_experiments_j{workers}_s"] = round(
                    queue_seconds(repo, workers, experiments, env), 1)
    finally:
        if mlflow_server is not None:
            server.stop_group(mlflow_server)
        server.stop_postgres(stack)
        shutil.rmtree(home, ignore_errors=True)

    RESULT_FILE.write_text(json.dumps(results, indent=2) + "\n")
    RESULT_FILE.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def markdown(results: dict) -> str:
    tracking, queue, machine = results["tracking_per_run"], results["queue"], results["machine"]
    measured = results.get("measured") or report.committed(RESULT_FILE)
    stores = [{"store": name, "tracking calls per run (median s)": tracking[name]["median_s"],
               "share of default train time": f"{tracking[name]['share_of_default_train']:.2%}"}
              for name in ("sqlite", "server")]
    queues = [{"three queued experiments (5 % slice)": f"`dvc queue start -j {workers}`",
               "wall (s)": queue[f"three_experiments_j{workers}_s"]} for workers in (1, 2)]
    return "\n".join([
        report.header("team.py --report-only", RESULT_FILE,
                      f"Team-mode benchmark: {machine['cpu']}, {machine['cores']} cores "
                      f"({machine['note']}), measured {measured}."),
        report.table(stores), "",
        f"Default train time {tracking['default_train_seconds']} s (bench/results.json at the "
        f"time); {tracking['epochs_logged']} epochs of metrics logged.", "",
        report.table(queues), ""])


if __name__ == "__main__":
    main()
