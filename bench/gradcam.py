"""Benchmark: which class activation map explains the trained default model.

For the workspace's trained model (`models/model.keras`, what `dvc repro` trains) and the first
--images test images, each candidate map is scored three ways:
- non-degenerate: the share of maps that show anything (not all zero, not flat);
- garment ratio: the share of the heat on the garment (pixels > 5 % bright) over the garment's
  share of the image (1.0: no better than spreading heat evenly);
- deletion: the mean probability of the predicted class as the hottest 5 ... 50 % of the pixels
  are blacked out (`fmnist.insight.gradcam.deletion_curve`; lower is more faithful), also
  with the ranking restricted to the garment's pixels, so that a map cannot win by merely
  avoiding the empty background.
Candidates: Grad-CAM (gradient averaged per channel) and HiResCAM (element-wise) at each
ReLU'd map and at the last convolution's raw output, against random maps and the pixels' own
brightness. The method `fmnist.insight.gradcam` uses is marked.

Usage, from the repo root:  python bench/gradcam.py [--model models/model.keras] [--images 200]
Writes bench/gradcam.json and the report bench/gradcam.md (`--report-only` rewrites the report
from the JSON). About a minute on the 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import report  # noqa: E402

RESULT_FILE = Path(__file__).with_name("gradcam.json")
REPORT_FILE = RESULT_FILE.with_suffix(".md")
GARMENT_LEVEL = 0.05


def candidate_maps(model, images: np.ndarray, classes: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate's maps (N, 28, 28) in [0, 1], keyed by `method @ layer (side)`."""
    import keras

    from fmnist.insight import gradcam
    from fmnist.model import anatomy

    inner = anatomy.classifier(model)
    used = anatomy.explained_layer(model)
    layers = [layer for layer in inner.layers
              if anatomy.is_activated(layer) and len(layer.output.shape) == 4]
    layers.append(anatomy.last_conv_layer(inner))
    maps = {}
    for layer in layers:
        features = keras.Model(inner.input, layer.output)
        head = keras.Model(layer.output, inner.output)
        activations = np.asarray(features(images, training=False))
        gradients = gradcam._gradient(head, activations, classes)
        side = activations.shape[1]
        kind = "ReLU'd" if anatomy.is_activated(layer) else "raw conv"
        for method, raw in (
                ("Grad-CAM", np.einsum("nhwc,nc->nhw", activations, gradients.mean(axis=(1, 2)))),
                ("HiResCAM", (gradients * activations).sum(axis=-1))):
            marker = " (used)" if method == "HiResCAM" and layer is used else ""
            name = f"{method} @ {layer.name}, {kind} {side}x{side}{marker}"
            maps[name] = np.stack([gradcam.normalise(gradcam.resize(np.maximum(cam, 0.0),
                                                                    images.shape[1:3]))
                                   for cam in raw])
    maps["random maps"] = np.random.default_rng(0).random(images.shape[:3])
    maps["pixel brightness"] = images[..., 0]
    return maps


def score(model, images: np.ndarray, classes: np.ndarray, heats: np.ndarray) -> dict:
    from fmnist.insight import gradcam

    garment = images[..., 0] > GARMENT_LEVEL
    shown = np.mean([heat.max() > 0 and heat.std() > 1e-3 for heat in heats])
    total = np.maximum(heats.sum(axis=(1, 2)), 1e-12)
    ratio = ((heats * garment).sum(axis=(1, 2)) / total) / garment.mean(axis=(1, 2))
    # Garment pixels first, in the map's order; then the background.
    within = heats / max(float(heats.max()), 1e-12) + 2.0 * garment
    return {"non_degenerate": float(shown),
            "garment_ratio": float(ratio.mean()),
            "deletion": float(gradcam.deletion_curve(model, images, classes, heats)[1:].mean()),
            "deletion_within_garment": float(
                gradcam.deletion_curve(model, images, classes, within)[1:].mean())}


def train_precision() -> str:
    """The trained model's maths (metrics/train.json), which its maps depend on."""
    train = Path("metrics/train.json")
    return json.loads(train.read_text())["precision"] if train.exists() else "unknown"


def measure(model_file: Path, count: int) -> dict:
    import keras

    from fmnist.data.splits import load_split

    model = keras.saving.load_model(model_file)
    images, _ = load_split("test")
    images = images[:count]
    classes = np.asarray(model.predict(images, verbose=0)).argmax(axis=1)
    rows = [{"map": name, **score(model, images, classes, heats)}
            for name, heats in candidate_maps(model, images, classes).items()]
    return {"measured": report.now(), "machine": f"{report.cpu_name()}, {os.cpu_count()} cores, "
            f"{train_precision()} training", "model": str(model_file),
            "model_name": model.name, "images": count, "rows": rows}


def write_report(results: dict) -> None:
    rows = [{"map": row["map"], "non-degenerate": report.percent(row["non_degenerate"], 0),
             "garment ratio": f"{row['garment_ratio']:.2f}",
             "deletion (lower: more faithful)": f"{row['deletion']:.3f}",
             "deletion within garment": f"{row['deletion_within_garment']:.3f}"}
            for row in results["rows"]]
    REPORT_FILE.write_text(
        report.header("gradcam.py", RESULT_FILE,
                      f"Class activation maps on the trained `{results['model_name']}` model, "
                      f"first {results['images']} test images; {results['machine']}, "
                      f"{results['measured']}.")
        + "\n" + report.table(rows) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.keras"))
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        RESULT_FILE.write_text(json.dumps(measure(args.model, args.images), indent=2) + "\n",
                               encoding="utf-8")
    write_report(json.loads(RESULT_FILE.read_text(encoding="utf-8")))
    print(REPORT_FILE.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
