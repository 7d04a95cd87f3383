"""Benchmark: predict latency and throughput through `fmnist predict`'s own code path.

- one image, warm (model loaded once): a real test image as PNG -> decode, preprocess, model,
  top-3; p50/p95 over --repeats calls. Target: p50 <= 20 ms.
- the 10k test set: the idx file -> read, scale, predict in batches, top-3; median of --rounds.
  Target: <= 5 s.
- cold: one `fmnist predict` process (interpreter, TensorFlow import, model load), for scale.

Usage, from the repo root:  python bench/predict_latency.py [--model-uri URI]
The model defaults to the champion of the workspace's MLflow store (`dvc repro` makes one).
Writes bench/predict_latency.json and the report bench/predict_latency.md (`--report-only`
rewrites the report from the JSON). Other processes on the machine
skew the figures; the load average at the start is recorded with them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import report  # noqa: E402
from fmnist import config  # noqa: E402
from fmnist.data import formats  # noqa: E402
from fmnist.errors import PipelineError  # noqa: E402
from fmnist.serving import predict  # noqa: E402

TEST_IMAGES = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
RESULT_FILE = Path(__file__).with_name("predict_latency.json")
REPORT_FILE = RESULT_FILE.with_suffix(".md")
TARGET_P50_MS, TARGET_10K_S = 20.0, 5.0


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def bench(model_uri: str, repeats: int, rounds: int, images_file: Path) -> dict:
    model = predict.load_model(model_uri)
    with tempfile.TemporaryDirectory() as folder:
        png = Path(folder) / "test_00000.png"
        Image.fromarray(formats.read_idx(images_file)[0], mode="L").save(png)
        for _ in range(10):  # warm-up: graph tracing, allocator, file cache
            predict.predict_files(model, [png])
        single = np.array([timed(lambda: predict.predict_files(model, [png]))
                           for _ in range(repeats)]) * 1000
        cold = timed(lambda: subprocess.run(
            [str(Path(sys.executable).with_name("fmnist")), "predict", str(png),
             "--model-uri", model_uri], check=True, capture_output=True))
    predict.predict_files(model, [images_file])  # warm-up for the batch shapes
    full = [timed(lambda: predict.predict_files(model, [images_file])) for _ in range(rounds)]
    count = len(formats.read_idx(images_file))
    p50, p95, seconds = float(np.percentile(single, 50)), float(np.percentile(single, 95)), \
        statistics.median(full)
    return {
        "measured": report.now(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, cwd=report.REPO_ROOT).stdout.strip(),
        "model_uri": model_uri,
        "model": {"architecture": model.name, "parameters": int(model.count_params())},
        "single_image_ms": {"p50": round(p50, 2), "p95": round(p95, 2),
                                                    "repeats": repeats},
        "test_set": {"images": count, "seconds": round(seconds, 3),
                     "images_per_second": round(count / seconds), "rounds": rounds},
        "cold_cli_seconds": round(cold, 2),
        "targets_met": {"p50_le_20ms": p50 <= TARGET_P50_MS,
                        "test_set_le_5s": seconds <= TARGET_10K_S},
        "machine": {"cpu": report.cpu_name(), "cores": os.cpu_count(),
                    "load_average_1m": os.getloadavg()[0], "python": platform.python_version()},
    }


def markdown(result: dict) -> str:
    single, full = result["single_image_ms"], result["test_set"]
    machine = result["machine"]
    measured = (report.when(result, result["commit"]) if "commit" in result
                else result.get("measured") or report.committed(RESULT_FILE))
    rows = [
        {"measure": "one PNG, warm, p50", "result": f"{single['p50']:.1f} ms",
         "target": f"≤ {TARGET_P50_MS:.0f} ms"},
        {"measure": "one PNG, warm, p95", "result": f"{single['p95']:.1f} ms", "target": ""},
        {"measure": f"{full['images']:,} test images (idx), end to end",
         "result": f"{full['seconds']:.2f} s ({full['images_per_second']:,}/s)",
         "target": f"≤ {TARGET_10K_S:.0f} s"},
        {"measure": "one `fmnist predict` process, cold",
         "result": f"{result['cold_cli_seconds']:.1f} s", "target": ""}]
    return "\n".join([
        report.header("predict_latency.py --report-only", RESULT_FILE,
                      f"Predict benchmark: `{result['model']['architecture']}` model "
                      f"({result['model']['parameters']:,} parameters), {machine['cpu']}, "
                      f"{machine['cores']} cores (1-min load average "
                      f"{machine['load_average_1m']:.1f} at start), measured {measured}."),
        report.table(rows), ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-uri", help="default: the workspace's champion")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=Path, default=TEST_IMAGES, help="idx file of images")
    parser.add_argument("--report-only", action="store_true",
                        help=f"rewrite {REPORT_FILE.name} from {RESULT_FILE.name}; run nothing")
    args = parser.parse_args()
    if args.report_only:
        REPORT_FILE.write_text(markdown(json.loads(RESULT_FILE.read_text())), encoding="utf-8")
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        model_uri = args.model_uri or predict.champion_uri(
            config.load_params()["registry"]["model_name"])
        result = bench(model_uri, args.repeats, args.rounds, args.images)
    except PipelineError as error:
        print(f"error: {type(error).__name__}: {error}\n(no model to benchmark: run `dvc repro` "
              "to register a champion, or pass --model-uri)", file=sys.stderr)
        return 1
    RESULT_FILE.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    REPORT_FILE.write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
