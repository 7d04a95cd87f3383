"""preprocess: raw images -> float32 tensors in [0, 1], stratified train/validation split, and a
manifest naming the data (fingerprint, source) and the split (seed, val_split, subset)."""
from __future__ import annotations

from fmnist import config
from fmnist.data import formats, splits
from fmnist.errors import ValidationFailed, stage_entry
from fmnist.jsonfiles import read_json, write_json


@stage_entry
def main() -> None:
    params = config.load_params()
    summary = read_json(config.METRICS_DIR / "validation.json")
    if not summary.get("success"):  # guards a manual run after a failed validate
        raise ValidationFailed("metrics/validation.json records failed checks; fix the data first")
    raw_manifest = read_json(config.RAW_DIR / formats.MANIFEST)
    frames = formats.read_raw_frames(config.RAW_DIR)
    parts = splits.make_splits(*formats.from_frame(frames["train"]),
                               *formats.from_frame(frames["test"]),
                               params["preprocess"], params["seed"])
    for name, (images, labels) in parts.items():
        splits.save_split(name, images, labels)
        print(f"{name}: {len(labels)} images, {images.dtype} {images.shape[1:]}")
    write_json(config.PROCESSED_DIR / formats.MANIFEST, {
        "fingerprint": raw_manifest["fingerprint"], "source": raw_manifest["source"],
        "location": raw_manifest.get("location", raw_manifest["source"]),
        "seed": params["seed"], **params["preprocess"],
        "rows": {name: len(labels) for name, (_, labels) in parts.items()}})


if __name__ == "__main__":
    main()
