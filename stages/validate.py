"""validate: check the raw data with Great Expectations before anything trains on it.

Writes metrics/validation.json, GX Data Docs under reports/data_docs/ and the data figures. Any
failed expectation fails the stage, after those are written, so the user can see why.
"""
from __future__ import annotations

from fmnist import plots
from fmnist.config import FIGURES_DIR, RAW_DIR, load_params
from fmnist.data.formats import CLASS_NAMES, SPLITS, from_frame, read_raw_frames
from fmnist.data.validation import DOCS_DIR, VALIDATION_JSON, failure_message, run_validation
from fmnist.errors import ValidationFailed, stage_entry
from fmnist.jsonfiles import write_json


@stage_entry
def main() -> None:
    validate_params = load_params()["validate"]
    frames = read_raw_frames(RAW_DIR)
    # cwd is the workspace (or its temp copy under `dvc exp run --temp`): resolve it there.
    docs_dir = DOCS_DIR.resolve()
    summary = run_validation(frames, validate_params, docs_dir)
    write_json(VALIDATION_JSON, summary)
    # Drawn even on failure: it shows a class-balance problem at a glance.
    counts = {split: summary["splits"][split]["class_counts"] for split in SPLITS}
    plots.save(plots.class_distribution(counts, CLASS_NAMES),
               FIGURES_DIR / "class_distribution.png")
    print(f"validate: Data Docs at {docs_dir / 'index.html'}")
    if not summary["success"]:
        raise ValidationFailed(failure_message(summary))
    # Only valid data converts to uint8 images safely, so the sample grid waits for success.
    images, labels = from_frame(frames["train"])
    plots.save(plots.sample_grid(images, labels, CLASS_NAMES), FIGURES_DIR / "sample_grid.png")
    print(f"validate: all {summary['checks']} checks passed; "
          f"{summary['train_test_duplicates']} test images also in train")


if __name__ == "__main__":
    main()
