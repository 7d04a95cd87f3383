"""End to end: the real `dvc repro` in a copy of this repo, on a slice of the real data.

The slice's `dvc repro` runs once per module (the baseline, committed as the project commits its
metrics); a test that changes a repo gets its own copy of the baseline, so every test passes alone
and in any order."""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from fmnist import profiles
from fmnist.data import formats
from fmnist.model.evaluation import read_per_class
from tests.conftest import REAL_DATA_DIR, REPO_ROOT, assert_png_has_content, git, run_child
from tests.fake_servers import NO_PROXY_ENV, fake_kaggle, silent_server

pytestmark = pytest.mark.slow
MODEL_NAME = "fashion-mnist-cnn"
# A 5 % slice of each class, a narrow model, four epochs of small batches (so batch norm
# statistics settle): every stage runs for real, in about a minute. Slice runs may take
# `champion` here (by default only full-train-set runs compete).
SLICE = {"download.source": "local", "preprocess.subset": 0.05, "filters": 8, "stem_filters": 0,
         "train.epochs": 4, "train.batch_size": 32, "promotion.full_train_set_only": False}
DVC_TIMEOUT_S = 900  # one dvc command on the slice; only a hang comes near it


def copy_project(destination: Path) -> Path:
    """The working tree as git sees it (tracked and new files, nothing ignored), as a fresh repo."""
    files = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=REPO_ROOT)
    for name in filter(None, files.split("\0")):
        if (REPO_ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, destination / name)
    git("init", "-q", cwd=destination)
    return destination


def copy_run(repo: Path, destination: Path) -> Path:
    """A copy of a repo after a run, as its own repo: git, the DVC cache, the workspace and the
    MLflow store, whose absolute artifact paths are re-pointed at the copy (so the copy never
    writes into the original)."""
    shutil.copytree(repo, destination, symlinks=True)
    store = destination / "mlruns" / "mlflow.db"
    if store.exists():
        old, new = f"{repo}/", f"{destination}/"
        with sqlite3.connect(store) as connection:
            tables = [row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for column in connection.execute(f'PRAGMA table_info("{table}")').fetchall():
                    if "CHAR" in column[2].upper() or "TEXT" in column[2].upper():
                        connection.execute(
                            f'UPDATE "{table}" SET "{column[1]}" = replace("{column[1]}", ?, ?) '
                            f'WHERE instr("{column[1]}", ?) > 0', (old, new, old))
    return destination


def set_params(repo: Path, **overrides) -> None:
    params = profiles.apply(yaml.safe_load((repo / "params.yaml").read_text()), overrides)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(repo: Path, *args: str, env: dict | None = None, check: bool = True,
        timeout: float = DVC_TIMEOUT_S) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("MLFLOW_", "KAGGLE_", "DVC_ROOT"))}
    environment.update(env or {})
    result = run_child(["dvc", *args], cwd=repo, env=environment, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", output)


def mlflow_client(repo: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}")


@dataclass(frozen=True)
class Baseline:
    repo: Path     # the slice's repro, committed; tests read it and never change it
    output: str    # what that `dvc repro` printed


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Baseline:
    if not (REAL_DATA_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"{REAL_DATA_DIR} is missing: install Debian's dataset-fashion-mnist")
    repo = copy_project(tmp_path_factory.mktemp("pipeline"))
    set_params(repo, **SLICE)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "slice", cwd=repo)
    result = dvc(repo, "repro")
    git("add", "-A", cwd=repo)  # the project commits its metrics (cache: false) and dvc.lock
    git("commit", "-qm", "baseline run", cwd=repo)
    return Baseline(repo, result.stdout)


@pytest.fixture
def pipeline_repo(baseline: Baseline, tmp_path: Path) -> Path:
    """This test's own copy of the baseline, to change as it likes."""
    return copy_run(baseline.repo, tmp_path / "repo")


def test_repro_runs_every_stage_and_logs_to_mlflow(baseline):
    pipeline_repo = baseline.repo
    assert stages_run(baseline.output) == ["download", "validate", "preprocess", "train",
                                           "evaluate", "register"]
    metrics = yaml.safe_load((pipeline_repo / "metrics" / "evaluate.json").read_text())
    assert metrics["test_accuracy"] > 0.5  # four epochs on 2.7k images; chance is 0.1
    assert set(metrics) == {"test_accuracy", "test_loss", "macro_f1", "misclassified"}
    per_class = read_per_class(pipeline_repo / "metrics" / "per_class.csv")
    assert sum(c["support"] for c in per_class.values()) == 10000
    assert sum(c["misclassified"] for c in per_class.values()) == metrics["misclassified"]
    validation = yaml.safe_load((pipeline_repo / "metrics" / "validation.json").read_text())
    assert validation["success"] is True
    history = (pipeline_repo / "metrics" / "train_history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == 1 + 4  # header + 4 epochs
    for figure in ("training_curves", "confusion_matrix", "sample_grid", "class_distribution"):
        assert_png_has_content(pipeline_repo / "metrics" / "figures" / f"{figure}.png")
    assert "expect" in (pipeline_repo / "reports" / "data_docs" / "index.html").read_text().lower()

    plots = dvc(pipeline_repo, "plots", "show", "--json")
    assert "Confusion matrix (test)" in plots.stdout and "Accuracy per epoch" in plots.stdout

    client = mlflow_client(pipeline_repo)
    [run] = client.search_runs([client.get_experiment_by_name("fashion-mnist").experiment_id])
    assert run.data.params["filters"] == "8"
    assert "test_accuracy" in run.data.metrics and "model_val_accuracy" in run.data.metrics
    assert run.data.tags["split.subset"] == "0.05" and run.info.status == "FINISHED"
    artifacts = {a.path for folder in ("figures", "evaluation")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"figures/training_curves.png", "evaluation/confusion_matrix.png"} <= artifacts

    promotion = json.loads((pipeline_repo / "metrics" / "promotion.json").read_text())
    assert (promotion["version"], promotion["promoted"], promotion["newly_registered"]) == (
        1, True, True)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.run_id == run.info.run_id


def test_second_repro_runs_nothing(pipeline_repo):
    result = dvc(pipeline_repo, "repro")
    assert stages_run(result.stdout) == []
    assert len(mlflow_client(pipeline_repo).search_model_versions(f"name = '{MODEL_NAME}'")) == 1


def test_a_failed_stage_says_how_to_get_its_previous_outputs_back(pipeline_repo):
    """DVC deletes a stage's outputs before running it; when the stage then fails (here: the
    tracking server hangs), its error line names the commands that bring them back."""
    model = pipeline_repo / "models" / "model.keras"
    good_model, good_metrics = model.read_bytes(), (
        pipeline_repo / "metrics" / "train.json").read_text()
    with silent_server() as uri:
        result = dvc(pipeline_repo, "repro", "-f", "-s", "train", check=False,
                     env={"MLFLOW_TRACKING_URI": uri, **NO_PROXY_ENV})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: Tracking")]
    assert uri in line
    assert not model.exists()  # DVC removed it before the stage ran
    hint = re.search(r"previous outputs: `(dvc checkout train)` and `(git checkout -- [^`]+)`",
                     line)
    assert hint, line
    for command in hint.groups():
        restored = run_child(command.split(), cwd=pipeline_repo, timeout=DVC_TIMEOUT_S)
        assert restored.returncode == 0, restored.stderr
    assert model.read_bytes() == good_model
    assert (pipeline_repo / "metrics" / "train.json").read_text() == good_metrics
    assert stages_run(dvc(pipeline_repo, "repro").stdout) == []


def test_exp_run_with_wider_filters_reruns_only_the_model_stages(pipeline_repo):
    result = dvc(pipeline_repo, "exp", "run", "-S", "filters=64")  # the README's example
    assert stages_run(result.stdout) == ["train", "evaluate", "register"]
    shown = dvc(pipeline_repo, "exp", "show", "--json").stdout
    assert '"filters": 64' in shown and '"filters": 8' in shown
    client = mlflow_client(pipeline_repo)
    runs = client.search_runs([client.get_experiment_by_name("fashion-mnist").experiment_id])
    assert sorted(run.data.params["filters"] for run in runs) == ["64", "8"]
    # The new version is the challenger; champion moved only if val accuracy rose enough.
    versions = sorted(client.search_model_versions(f"name = '{MODEL_NAME}'"),
                      key=lambda version: int(version.version))
    assert len(versions) == 2
    assert str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == "2"
    gain = (float(versions[1].tags["model_val_accuracy"])
            - float(versions[0].tags["model_val_accuracy"]))
    min_delta = yaml.safe_load((pipeline_repo / "params.yaml").read_text())["promotion"]["min_delta"]
    expected_champion = "2" if gain >= min_delta else "1"
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == expected_champion


def test_bad_data_from_kaggle_stops_the_pipeline_at_validate(pipeline_repo, dataset, tmp_path):
    """Bad rows arrive through the real Kaggle client (fake server on 127.0.0.1): validate
    fails naming the check, preprocess never runs, the earlier good outputs stay intact."""
    processed = pipeline_repo / "data" / "processed" / "train.npz"
    good_processed, good_metrics = processed.read_bytes(), (
        pipeline_repo / "metrics" / "evaluate.json").read_text()
    csv_dir = tmp_path / "kaggle"
    csv_dir.mkdir()
    for split, per_class in (("train", 20), ("test", 5)):
        images, labels = dataset(per_class, seed=len(split))
        labels[3] = 12  # no such class
        formats.write_csv(csv_dir / formats.CSV_FILES[split], images, labels)
    # verify_content off: the download's own content check would stop these rows before validate.
    set_params(pipeline_repo, **{"download.source": "kaggle", "download.verify_content": False,
                                 "validate.expected_rows": {"train": 200, "test": 50},
                                 "validate.class_balance_tolerance": 0.2})

    with fake_kaggle(csv_dir) as kaggle:
        result = dvc(pipeline_repo, "repro", env=kaggle.env, check=False)

    assert result.returncode != 0
    assert stages_run(result.stdout) == ["download", "validate"]
    assert "ValidationFailed" in result.stderr and "label" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert kaggle.download_requests(), "the Kaggle client never asked the fake server"
    assert kaggle.key not in result.stdout + result.stderr
    assert processed.read_bytes() == good_processed
    assert (pipeline_repo / "metrics" / "evaluate.json").read_text() == good_metrics


def test_after_a_fine_tune_the_messages_lead_back_to_a_clean_experiment(pipeline_repo):
    """The README's fine-tune leaves `train.init_from` in params.yaml, so the next profile run
    cannot load it; following only what its error line says, the profile run and then
    `-S filters=64` go through."""
    dvc(pipeline_repo, "exp", "run", "-S", f"train.init_from=models:/{MODEL_NAME}@champion",
        "-S", "train.epochs=1")
    profile = run_child([sys.executable, "-m", "fmnist.cli", "profile", "fast"],
                        cwd=pipeline_repo, timeout=300)
    assert profile.returncode == 0, profile.stderr
    flags = [*profile.stdout.split(), "-S", "train.epochs=1"]

    failed = dvc(pipeline_repo, "exp", "run", *flags, check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stdout + failed.stderr
    [line] = [line for line in failed.stderr.splitlines()
              if line.startswith("error: ModelShapeError")]
    assert "`git checkout params.yaml` restores it" in line  # the experiment's values stuck
    clear = re.search(r'`dvc exp run (-S train\.init_from="")`', line)
    assert clear, line

    # What the line says, as a shell would pass it: the value is empty.
    followed = dvc(pipeline_repo, "exp", "run", "-S", "train.init_from=", *flags)
    # (preprocess too: the profile holds out a different share for validation)
    assert stages_run(followed.stdout)[-3:] == ["train", "evaluate", "register"]
    wider = dvc(pipeline_repo, "exp", "run", "-S", "filters=64", "-S", "train.epochs=1")
    assert stages_run(wider.stdout) == ["train", "evaluate", "register"]
    params = yaml.safe_load((pipeline_repo / "params.yaml").read_text())
    assert not params["train"]["init_from"] and params["filters"] == 64

def test_gradcam_shows_the_trained_default_model(baseline):
    """On the model the pipeline trained (the default architecture, a real data slice): the maps
    are not blank, and the figure evaluate wrote shows them (jet's warm colours, which a blank
    map never reaches). Their faithfulness is asserted in tests/test_gradcam.py for each
    profile's model, and measured on the fully trained default by bench/gradcam.py: this
    4-epoch slice model is too unsure for any map to beat random ones on a deletion curve."""
    import keras
    import numpy as np
    from PIL import Image

    from fmnist.insight import gradcam

    model = keras.saving.load_model(baseline.repo / "models" / "model.keras")
    with np.load(baseline.repo / "data" / "processed" / "test.npz") as split:
        images = split["images"][:200]
    classes = model.predict(images, verbose=0).argmax(axis=1)
    maps = gradcam.heatmaps(model, images, classes)
    non_degenerate = np.mean([heat.max() > 0 and heat.std() > 1e-3 for heat in maps])
    assert non_degenerate >= 0.95, f"only {non_degenerate:.0%} of the maps show anything"

    figure = np.asarray(Image.open(baseline.repo / "metrics" / "figures" / "gradcam.png")
                        .convert("RGB")).astype(int)
    red, green, blue = figure[..., 0], figure[..., 1], figure[..., 2]
    # Jet's yellow-to-orange (hot); the captions' crimson has little green, so it is not counted.
    hot = ((red > blue + 60) & (green > blue + 60)).mean()
    assert hot > 0.001, f"the Grad-CAM figure is {hot:.3%} hot: blank maps"
