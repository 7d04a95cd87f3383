"""A trained model not yet logged to MLflow, kept so a rerun logs it instead of retraining.

train saves its outputs, copies them here, then logs. When the tracking server drops before the
logging is done, the stage fails and DVC, on the rerun, deletes train's outputs first; this copy
(in models/pending/, not a DVC output) survives, and the rerun restores it when nothing that
decides the training changed: the params, the data and split (data/processed/manifest.json) and
the code (the stage's file and every module of the fmnist package). A successful run discards it.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from fmnist import config
from fmnist.jsonfiles import read_json, write_json

PENDING_DIR = config.MODEL_DIR / "pending"
KEY_FILE = PENDING_DIR / "key.json"
# Params that only say where to log, not what to train.
NOT_TRAINING = ("mlflow", "registry", "promotion")


def training_key(params: dict[str, Any], manifest: dict[str, Any], stage_file: Path) -> str:
    """sha256 over what decides the trained model: params, data manifest, code. (All of the
    package, not only what train imports: a stale reuse costs more than a needless retrain.)"""
    digest = hashlib.sha256()
    decisive = {key: value for key, value in params.items() if key not in NOT_TRAINING}
    digest.update(json.dumps([decisive, manifest], sort_keys=True, default=str).encode())
    package = Path(__file__).resolve().parent
    for path in [Path(stage_file), *sorted(package.rglob("*.py"))]:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def keep(key: str, files: list[Path]) -> None:
    """Copy the saved outputs aside, before anything is logged."""
    discard()
    PENDING_DIR.mkdir(parents=True)
    for path in files:
        shutil.copy2(path, PENDING_DIR / Path(path).name)
    write_json(KEY_FILE, {"key": key, "files": [str(path) for path in files]})


def restore(key: str) -> bool:
    """Put a kept training's outputs back in place if it matches `key`; False when none does."""
    if not KEY_FILE.exists():
        return False
    kept = read_json(KEY_FILE)
    if kept["key"] != key:
        return False
    for name in kept["files"]:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PENDING_DIR / Path(name).name, name)
    return True


def discard() -> None:
    shutil.rmtree(PENDING_DIR, ignore_errors=True)


def read_history(path: Path) -> dict[str, list[float]]:
    """The per-epoch rows keras.callbacks.CSVLogger wrote, back as Keras' History.history."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = [name for name in (rows[0] if rows else {}) if name != "epoch"]
    return {name: [float(row[name]) for row in rows] for name in names}
