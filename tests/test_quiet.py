"""Quiet by default: the train stage shows no TensorFlow log lines, unless a user asks."""
from __future__ import annotations

import os
import sys

from tests.conftest import REPO_ROOT, run_child, write_tiny_splits


def absl_lines(stderr: str) -> list[str]:
    """TensorFlow's C++ log lines ("E0000 00:00:... node_def_util.cc:682] ..."), except the
    oneDNN line, which TensorFlow prints before any log level applies."""
    return [line for line in stderr.splitlines() if line[:1] in "IWE" and line[1:5].isdigit()
            and "oneDNN custom operations" not in line]


def run_train(root, **env: str):
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return run_child([sys.executable, "-m", "stages.train"], cwd=root, timeout=300,
                     env={**base, "PYTHONPATH": str(REPO_ROOT), **env})


def test_the_train_stage_prints_no_tensorflow_log_lines(dvc_workspace):
    root = dvc_workspace(**{"train.epochs": 1, "train.batch_size": 32, "filters": 4})
    write_tiny_splits(root, seed=42, val_split=0.2, subset=1)
    result = run_train(root)
    assert result.returncode == 0, result.stderr
    assert absl_lines(result.stderr) == [], result.stderr


def test_a_users_own_log_level_still_wins(dvc_workspace):
    root = dvc_workspace(**{"train.epochs": 1, "train.batch_size": 32, "filters": 4})
    write_tiny_splits(root, seed=42, val_split=0.2, subset=1)
    result = run_train(root, TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0, result.stderr
    assert absl_lines(result.stderr) != [], result.stderr  # what level 3 hides by default
