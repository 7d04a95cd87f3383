"""The model-selection record as Markdown: bench/cpu_candidates.json (screening runs, pipeline
benchmarks, step-time probes made while choosing the CPU default and the `fast` profile) and
bench/gpu_candidates.json (the `gpu` profile's candidates) -> bench/*_candidates.md.

The screening runs were trained by bench/gpu.py's harness under TensorFlow, the pipeline
benchmarks are bench/run.py results kept from earlier commits; this script only renders them,
so it runs in a second:

    python bench/candidates.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench import report  # noqa: E402

BENCH_DIR = REPO_ROOT / "bench"


def overrides(run: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in run.get("overrides", {}).items()) or "—"


def screening_rows(runs: list[dict]) -> list[dict]:
    return [{"model": run.get("model", ""), "overrides": overrides(run),
             "seed": run.get("seed", ""), "epochs": run.get("epochs", ""),
             "parameters": run.get("parameters", ""),
             "train (s)": run.get("train_seconds", ""),
             "val": report.percent(run.get("val_accuracy")),
             "test": report.percent(run.get("test_accuracy")),
             "conditions": run.get("how", "")} for run in runs]


def benchmark_rows(benchmarks: list[dict]) -> list[dict]:
    rows = []
    for bench in benchmarks:
        commit = bench["machine"]["commit"]
        rows.append({
            "commit": commit, "committed": report.commit_date(commit),
            "profile": bench.get("profile", "default"),
            "cold `dvc repro` (s)": bench["cold_repro"]["seconds"],
            "its train stage (s)": bench["cold_repro"]["stages"].get("train", ""),
            "test accuracy": (f"{bench['test_accuracy_mean']:.2%} ± "
                              f"{bench['test_accuracy_std']:.2%}"
                              if len(bench["runs"]) > 1 else
                              report.percent(bench["runs"][0]["test_accuracy"])),
            "seeds": len(bench["runs"]),
            "what": " ".join(filter(None, (bench.get("what"), bench.get("note"))))})
    return rows


def probe_rows(probes: list[dict]) -> list[dict]:
    rows = []
    for probe in probes:
        measured = {key: value for key, value in probe.items() if key not in ("what", "verdict")}
        rows.append({"probe": probe["what"],
                     "measured": json.dumps(measured, separators=(", ", ": ")),
                     "verdict": probe.get("verdict", "")})
    return rows


def cpu_report(record: dict, source: Path) -> str:
    environment = record["environment"]
    parts = [
        report.header("candidates.py", source,
                      f"CPU model selection on the project's 2-core machine (python "
                      f"{environment['python']}, keras {environment['keras']}, backend "
                      f"{environment['backend']}); each section says when it was measured."),
        "## Screening runs", "", record["note"], "", report.table(screening_rows(record["runs"])),
        "", "## Pipeline benchmarks (`bench/run.py`)", "",
        report.table(benchmark_rows(record["pipeline_benchmarks"])),
        "", "## Step-time probes", "", f"Measured {record['speed_probes']['when']}.", "",
        report.table(probe_rows(record["speed_probes"]["results"])),
        "", "## Speed reference", "", record["speed_reference"]["what"], "",
        report.table([{"when": run.get("when", ""), "cold `dvc repro` (s)":
                       run["cold_repro_seconds"], "test": report.percent(run["test_accuracy"])}
                      for run in record["speed_reference"]["runs"]]),
        "", f"Verdict: {record['speed_reference']['verdict']}",
        "", "## `fast` profile screening", "", record["fast_screening"]["how"], "",
        report.table(screening_rows(record["fast_screening"]["runs"])),
        "", f"Verdict: {record['fast_screening']['verdict']}", ""]
    return "\n".join(parts)


def gpu_report(record: dict, source: Path) -> str:
    environment = record["environment"]
    return "\n".join([
        report.header("candidates.py", source,
                      f"`gpu` profile candidates on {environment.get('device_kind', '?')} "
                      f"(python {environment['python']}, jax {environment['jax']}, keras "
                      f"{environment['keras']}), {report.committed(source)}."),
        record["note"], "", report.table(screening_rows(record["runs"])), ""])


def main() -> None:
    for name, render in (("cpu_candidates", cpu_report), ("gpu_candidates", gpu_report)):
        source = BENCH_DIR / f"{name}.json"
        source.with_suffix(".md").write_text(render(json.loads(source.read_text()), source))


if __name__ == "__main__":
    main()
