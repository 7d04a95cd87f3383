"""fmnist.pending: a kept model is restored only when nothing that decides the training changed.
A stale reuse would log a model trained on other params, other data or other code as if it were
this run's, so each of the three is a case; where the run is only logged is not one of them."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from fmnist import config, pending
from tests.conftest import REPO_ROOT, project_params

MANIFEST = {"fingerprint": "f" * 64, "source": "local", "seed": 42, "val_split": 0.1,
            "subset": 1.0}
OUTPUTS = {config.MODEL_FILE: b"weights of the kept training",
           config.METRICS_DIR / "train.json": b'{"val_accuracy": 0.9}'}


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A training kept aside under the key of (the project's params, MANIFEST, a copy of the
    train stage), then its outputs deleted as DVC deletes them before the rerun."""
    monkeypatch.chdir(tmp_path)
    stage_file = tmp_path / "train.py"
    shutil.copy(REPO_ROOT / "stages" / "train.py", stage_file)
    key = pending.training_key(project_params(), MANIFEST, stage_file)
    for path, content in OUTPUTS.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    pending.keep(key, list(OUTPUTS))
    for path in OUTPUTS:
        path.unlink()
    return key, stage_file


def restored() -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in OUTPUTS if path.exists()}


def test_an_unchanged_training_is_restored_and_the_log_only_params_do_not_count(kept):
    _, stage_file = kept
    params = project_params(**{"mlflow.experiment": "elsewhere",
                               "registry.model_name": "another-name"})
    assert pending.restore(pending.training_key(params, MANIFEST, stage_file)) is True
    assert restored() == OUTPUTS


@pytest.mark.parametrize("change", ["param", "data", "stage code"])
def test_a_changed_param_data_or_stage_code_refuses_the_kept_model(kept, change):
    key, stage_file = kept
    params, manifest = project_params(), dict(MANIFEST)
    if change == "param":
        params = project_params(**{"train.learning_rate": 0.001})
    elif change == "data":
        manifest["fingerprint"] = "e" * 64  # other images, same split
    else:
        stage_file.write_text(stage_file.read_text() + "\n# an edit\n")
    new_key = pending.training_key(params, manifest, stage_file)
    assert new_key != key
    assert pending.restore(new_key) is False
    assert restored() == {}  # nothing stale put in place
    assert pending.restore(key) is True  # the kept copy itself is still there


def test_an_edit_anywhere_in_the_package_refuses_the_kept_model(tmp_path, kept):
    """Code train does not import counts too (e.g. the serving code): the key covers the whole
    package. Checked on a copy of the package, so the real one is never edited."""
    key, stage_file = kept
    package = tmp_path / "copy" / "fmnist"
    shutil.copytree(REPO_ROOT / "fmnist", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    spec = importlib.util.spec_from_file_location("copied_pending", package / "pending.py")
    copied = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copied)  # its __file__ is in the copy: the key hashes the copy
    assert copied.training_key(project_params(), MANIFEST, stage_file) == key

    demo = package / "serving" / "demo.py"
    demo.write_text(demo.read_text() + "\n# an edit\n")
    new_key = copied.training_key(project_params(), MANIFEST, stage_file)
    assert new_key != key and pending.restore(new_key) is False
    assert restored() == {}
