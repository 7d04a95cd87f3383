"""Pipeline benchmark: cold and no-op `dvc repro`, per-stage wall times, `dvc status`,
`dvc exp run -S filters=64`, and test accuracy over several seeds, per profile.

Each profile runs in a fresh `git clone` of this repo's HEAD (so the DVC cache is cold), with
the profile's overrides (fmnist/profiles/<name>.yaml; `default` is params.yaml as it is) committed there.
The first seed is a cold `dvc repro`; further seeds are `dvc exp run -S seed=N`.

This machine's speed swings up to 2x between days, so seconds from different days do not
compare. `--reference COMMIT` times a cold `dvc repro` of that earlier commit (e.g. 48035e8,
the pre-issue-12 default: 276 s on the 2-core box when the 10-minute budget was set) before and
after the profiles, and states each profile's cold run as a multiple of it: the side-by-side
figure that cancels the day's speed.

    python bench/run.py                                  # default and fast, 3 seeds each
    python bench/run.py --profiles seed --seeds 1
    python bench/run.py --profiles default --seeds 1 --reference 48035e8
    KERAS_BACKEND=jax python bench/run.py --profiles gpu # on a GPU machine

Writes bench/results.json, bench/results.md and bench/accuracy_vs_time.png.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.figures import accuracy_vs_time  # noqa: E402
from bench import report  # noqa: E402
from fmnist import plots, profiles  # noqa: E402

BENCH_DIR = REPO_ROOT / "bench"
STAGE_LINE = re.compile(r"Running stage '([\w-]+)'")


def run_timed(command: list[str], cwd: Path) -> dict:
    """Run a command, timestamping each output line: wall time, and per-stage wall time from
    DVC's `Running stage` lines (a stage ends where the next starts, or the command ends)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    marks: list[tuple[str, float]] = []
    output = []
    for line in process.stdout:
        output.append(line)
        if match := STAGE_LINE.search(line):
            marks.append((match.group(1), time.perf_counter()))
    process.wait()
    ended = time.perf_counter()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{''.join(output[-40:])}")
    stage_seconds = {name: round((marks[i + 1][1] if i + 1 < len(marks) else ended) - at, 1)
                     for i, (name, at) in enumerate(marks)}
    return {"seconds": round(ended - started, 1), "stages": stage_seconds}


def median_seconds(command: list[str], cwd: Path, repeats: int = 3) -> float:
    return statistics.median(run_timed(command, cwd)["seconds"] for _ in range(repeats))


def prepare_clone(profile: str, destination: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(destination)], check=True)
    if profile != "default":
        params = profiles.apply(yaml.safe_load((destination / "params.yaml").read_text()),
                                profiles.load(profile))
        (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        subprocess.run(["git", "commit", "-qam", f"profile {profile}"], cwd=destination,
                       check=True)
    return destination


def reference_run(commit: str, destination: Path) -> dict:
    """Cold `dvc repro` of an earlier commit of this repo, as it was (its own params)."""
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(destination)], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=destination, check=True)
    print(f"[reference {commit}] cold dvc repro ...", flush=True)
    cold = run_timed(["dvc", "repro"], destination)
    return {"commit": commit, "cold_repro_seconds": cold["seconds"],
            "test_accuracy": test_accuracy(destination)}


def test_accuracy(clone: Path) -> float:
    return json.loads((clone / "metrics" / "evaluate.json").read_text())["test_accuracy"]


def bench_profile(profile: str, seeds: int, workdir: Path, overheads: bool) -> dict:
    clone = prepare_clone(profile, workdir / profile)
    first_seed = yaml.safe_load((clone / "params.yaml").read_text())["seed"]
    print(f"[{profile}] cold dvc repro ...", flush=True)
    cold = run_timed(["dvc", "repro"], clone)
    train = json.loads((clone / "metrics" / "train.json").read_text())
    result = {"machine": machine(), "precision": train["precision"],
              "cold_repro": cold, "train_seconds": [train["train_seconds"]],
              "runs": [{"seed": first_seed, "test_accuracy": test_accuracy(clone),
                        "val_accuracy": train["val_accuracy"]}]}
    # The baseline for the experiments below (and what `git checkout` restores after them).
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-qm", "cold run"], cwd=clone, check=True)
    if overheads:
        print(f"[{profile}] no-op repro, status, exp run -S filters=64 ...", flush=True)
        result["noop_repro_seconds"] = median_seconds(["dvc", "repro"], clone)
        result["status_seconds"] = median_seconds(["dvc", "status"], clone)
        # One epoch keeps this about the pipeline (which stages re-run), not the training time.
        exp = run_timed(["dvc", "exp", "run", "-S", "filters=64", "-S", "train.epochs=1"], clone)
        result["exp_run_filters_64_one_epoch"] = exp
        subprocess.run(["git", "checkout", "-q", "--", "."], cwd=clone, check=True)
        subprocess.run(["dvc", "checkout", "-q"], cwd=clone, check=True)
    for seed in range(first_seed + 1, first_seed + seeds):
        print(f"[{profile}] seed {seed} ...", flush=True)
        run = run_timed(["dvc", "exp", "run", "-S", f"seed={seed}"], clone)
        train = json.loads((clone / "metrics" / "train.json").read_text())
        result["train_seconds"].append(train["train_seconds"])
        result["runs"].append({"seed": seed, "test_accuracy": test_accuracy(clone),
                               "val_accuracy": train["val_accuracy"], "wall": run["seconds"]})
    accuracies = [run["test_accuracy"] for run in result["runs"]]
    result["test_accuracy_mean"] = statistics.mean(accuracies)
    result["test_accuracy_std"] = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    return result


def machine() -> dict:
    import keras

    return {"measured": report.now(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "keras_backend": keras.backend.backend(),
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                     capture_output=True, text=True).stdout.strip()}


def markdown(results: dict, source: Path) -> str:
    """The report: one row per profile, then each profile's details. The train column is the
    cold run's train stage: the other seeds' train times may overlap other work (see notes)."""
    rows = []
    for name, profile in results["profiles"].items():
        where = profile["machine"]
        rows.append({
            "profile": name, "commit": where["commit"],
            "measured": report.when(where, where["commit"]),
            "machine": f"{where['cpu']}, {where['cores']} cores, {where['keras_backend']}",
            "precision": profile.get("precision", ""),
            "cold `dvc repro` (s)": profile["cold_repro"]["seconds"],
            "its train stage (s)": profile["cold_repro"]["stages"].get("train", ""),
            "test accuracy": f"{profile['test_accuracy_mean']:.2%} ± "
                             f"{profile['test_accuracy_std']:.2%}",
            "seeds": len(profile["runs"])})
    lines = [report.header("run.py --report-only", source,
                           "Pipeline benchmark: each profile in a fresh clone, cold DVC cache."),
             report.table(rows)]
    for name, profile in results["profiles"].items():
        lines += ["", f"**{name}**", "", "- per-stage wall time of the cold `dvc repro` (s): "
                  + ", ".join(f"{k} {v}" for k, v in profile["cold_repro"]["stages"].items())]
        if "speed_reference" in profile:
            reference = profile["speed_reference"]
            lines += [f"- {reference['cold_vs_reference']:.2f}x the cold `dvc repro` of "
                      f"{reference['commit']} in the same session ("
                      + " / ".join(f"{run['cold_repro_seconds']} s" for run in reference["runs"])
                      + " before / after the profiles)"]
        if "noop_repro_seconds" in profile:
            exp = profile["exp_run_filters_64_one_epoch"]
            lines += [f"- no-op `dvc repro` {profile['noop_repro_seconds']} s, `dvc status` "
                      f"{profile['status_seconds']} s; `dvc exp run -S filters=64` "
                      f"(1 epoch) {exp['seconds']} s, ran: {', '.join(exp['stages'])}"]
        lines += ["- seeds (test accuracy; train seconds): " + ", ".join(
            f"{r['seed']}: {r['test_accuracy']:.2%}; {seconds} s"
            for r, seconds in zip(profile["runs"], profile["train_seconds"]))]
        if "note" in profile:  # conditions recorded with the run (e.g. other jobs alongside)
            lines += [f"- note: {profile['note']}"]
    return "\n".join(lines) + "\n"


def plot(results: dict) -> None:
    points = {name: (profile["cold_repro"]["seconds"], profile["test_accuracy_mean"],
                     profile["test_accuracy_std"])
              for name, profile in results["profiles"].items()}
    plots.save(accuracy_vs_time(points), BENCH_DIR / "accuracy_vs_time.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["default", "fast"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results.json")
    parser.add_argument("--reference", metavar="COMMIT",
                        help="also time a cold `dvc repro` of this earlier commit, before and "
                             "after the profiles, as the day's speed reference")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the Markdown report and figure from --out; run nothing")
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads(args.out.read_text()), args.out)
        return
    # Profiles measured earlier (possibly elsewhere, e.g. the GPU one) are kept.
    results = json.loads(args.out.read_text()) if args.out.exists() else {"profiles": {}}
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as workdir:
        if args.reference:
            reference_runs = [reference_run(args.reference, Path(workdir) / "reference-before")]
        for index, profile in enumerate(args.profiles):
            results["profiles"][profile] = bench_profile(profile, args.seeds, Path(workdir),
                                                         overheads=index == 0)
            args.out.write_text(json.dumps(results, indent=2) + "\n")  # keep partial results
        if args.reference:
            reference_runs.append(reference_run(args.reference, Path(workdir) / "reference-after"))
            reference_seconds = statistics.mean(run["cold_repro_seconds"] for run in reference_runs)
            # Kept with each profile measured in this session: profiles kept from earlier
            # sessions keep their own reference (or none).
            for name in args.profiles:
                profile = results["profiles"][name]
                profile["speed_reference"] = {
                    "commit": args.reference, "runs": reference_runs,
                    "cold_vs_reference": round(profile["cold_repro"]["seconds"]
                                               / reference_seconds, 3)}
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.out)
    print(markdown(results, args.out))


def write_report(results: dict, out: Path) -> None:
    out.with_suffix(".md").write_text(markdown(results, out))
    plot(results)


if __name__ == "__main__":
    main()
