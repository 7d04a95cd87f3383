"""Train and evaluate on generated data, as DVC runs them: dataset lineage in MLflow, the
error-analysis and Grad-CAM files, and fine-tuning from a registered version."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from fmnist import config, jsonfiles, tracking
from fmnist.data import formats
from fmnist.data.sources import describe
from fmnist.errors import ModelShapeError
from fmnist.model.architectures import build_model, with_flip_averaging
from fmnist.model.finetune import copy_weights
from stages import evaluate, preprocess, register, train
from tests.conftest import make_dataset

SMALL = {"train.model": "baseline", "filters": 4, "dense_units": 16, "train.epochs": 2,
         "train.batch_size": 32, "train.lr_schedule": "constant", "train.learning_rate": 0.01}
EVALUATION_FILES = ("gradcam.png", "misclassified.png", "per_class_accuracy.png",
                    "confused_pairs.csv")


def land_raw(root, seed: int, location: str) -> dict:
    """What download leaves: idx files of generated data and their manifest."""
    raw = root / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", 30), ("test", 6)):
        images, labels = make_dataset(per_class, seed=seed + len(split))
        images_file, labels_file = formats.IDX_FILES[split]
        formats.write_idx(raw / images_file, images)
        formats.write_idx(raw / labels_file, labels)
    manifest = {**describe(raw, "local"), "location": location}
    jsonfiles.write_json(raw / formats.MANIFEST, manifest)
    jsonfiles.write_json(root / "metrics" / "validation.json", {"success": True})
    return manifest


def set_param(root, dotted: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    *parents, key = dotted.split(".")
    section = params
    for name in parents:
        section = section[name]
    section[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def last_run(root):
    run_id = jsonfiles.read_json(root / tracking.RUN_FILE)["run_id"]
    return MlflowClient(tracking.tracking_uri()).get_run(run_id)


def test_copy_weights_unwraps_flip_averaging_and_names_a_misfit():
    hyper = {"kernel_size": 3, "dense_units": 8, "dropout": 0.0}
    parent = build_model("cnn", flip=True, filters=4, **hyper)
    child = copy_weights(with_flip_averaging(parent), build_model("cnn", filters=4, **hyper),
                         "models:/m/1")
    for mine, theirs in zip(child.get_weights(), parent.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ModelShapeError,
                       match=r"models:/m/1 is a 'cnn' model .* train.model 'baseline'"):
        copy_weights(parent, build_model("baseline", filters=4, **hyper), "models:/m/1")


@pytest.mark.slow
def test_runs_name_their_data_show_insight_and_fine_tune_from_the_champion(dvc_workspace,
                                                                            capsys):
    root = dvc_workspace(**SMALL)
    first = land_raw(root, seed=0, location="/srv/data/fashion-mnist")
    preprocess.main()
    train.main()
    run = last_run(root)
    by_context = {tag.value: d.dataset for d in run.inputs.dataset_inputs for tag in d.tags
                  if tag.key == "mlflow.data.context"}
    assert len(run.inputs.dataset_inputs) == 3
    assert {context: d.name for context, d in by_context.items()} == {
        "train": "fashion-mnist-train", "validation": "fashion-mnist-val",
        "test": "fashion-mnist-test"}
    for dataset in by_context.values():
        assert dataset.digest == first["fingerprint"][:32]
        assert "/srv/data/fashion-mnist" in dataset.source and dataset.source_type == "local"
    # The profile counts rows: 30 per class, preprocess.val_split of them held out.
    train_rows = round(300 * (1 - config.load_params()["preprocess"]["val_split"]))
    assert f'"features_shape": [{train_rows}, 28, 28, 1]' in by_context["train"].profile

    evaluate.main()
    for name in EVALUATION_FILES:
        folder = root / "metrics" if name.endswith(".csv") else root / "metrics" / "figures"
        assert (folder / name).stat().st_size > 0
    logged = {artifact.path for artifact in
              MlflowClient(tracking.tracking_uri()).list_artifacts(run.info.run_id, "evaluation")}
    assert {f"evaluation/{name}" for name in EVALUATION_FILES} <= logged
    pairs = (root / "metrics" / "confused_pairs.csv").read_text().splitlines()
    assert pairs[0].startswith("rank,pair,actual,predicted,count")

    register.main()
    parent_loss = float((root / "metrics" / "train_history.csv").read_text()
                        .splitlines()[1].split(",")[2])
    # Fine-tune from the champion: tagged with its version, starts where the parent ended.
    set_param(root, "train.init_from", "models:/fashion-mnist-cnn@champion")
    train.main()
    child = last_run(root)
    assert child.data.tags["finetune.parent_version"] == "1"
    assert child.data.tags["finetune.parent_run_id"] == run.info.run_id
    history = (root / "metrics" / "train_history.csv").read_text().splitlines()
    assert history[0].split(",")[2] == "loss"
    assert float(history[1].split(",")[2]) < parent_loss
    # A parent of another size is refused with a named one-line error, before any run starts.
    set_param(root, "filters", 6)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        train.main()
    assert exit_info.value.code == 1
    assert "ModelShapeError: train.init_from models:/fashion-mnist-cnn@champion" in \
        capsys.readouterr().err

    # Other data, same experiment: the run's datasets say so.
    set_param(root, "filters", 4)
    set_param(root, "train.init_from", "")
    second = land_raw(root, seed=100, location="/srv/data/other")
    assert second["fingerprint"] != first["fingerprint"]
    preprocess.main()
    train.main()
    digests = {d.dataset.digest for d in last_run(root).inputs.dataset_inputs}
    assert digests == {second["fingerprint"][:32]}


def test_a_parent_that_no_longer_fits_names_the_command_that_clears_it():
    hyper = {"kernel_size": 3, "dense_units": 8, "dropout": 0.0}
    with pytest.raises(ModelShapeError) as error:
        copy_weights(build_model("cnn", filters=4, **hyper),
                     build_model("cnn", filters=6, **hyper), "models:/m@champion")
    assert '`dvc exp run -S train.init_from=""`' in str(error.value)
    assert "`git checkout params.yaml`" in str(error.value)


def committed_params_repo(root, monkeypatch):
    """A git repo whose params.yaml is committed, as the cwd of a stage DVC runs there."""
    import subprocess

    root.mkdir()
    (root / "params.yaml").write_text("filters: 24\n")
    for args in (["init", "-q"], ["add", "params.yaml"], ["commit", "-q", "-m", "params"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root,
                       check=True, capture_output=True, timeout=30)
    monkeypatch.chdir(root)
    monkeypatch.setenv("DVC_STAGE", "train")
    monkeypatch.setenv("DVC_ROOT", str(root))


def failing_stage_line(capsys) -> str:
    from fmnist.errors import stage_entry

    @stage_entry
    def main():
        raise ModelShapeError("train.init_from models:/m@champion does not fit")

    with pytest.raises(SystemExit):
        main()
    return capsys.readouterr().err.strip()


def test_a_failed_stage_says_how_to_restore_params_an_experiment_left(tmp_path, monkeypatch,
                                                                      capsys):
    committed_params_repo(tmp_path / "workspace", monkeypatch)
    assert "params.yaml" not in failing_stage_line(capsys)  # unchanged: nothing to restore
    (tmp_path / "workspace" / "params.yaml").write_text("filters: 64\n")  # `-S filters=64`
    line = failing_stage_line(capsys)
    assert len(line.splitlines()) == 1
    assert line.endswith("; params.yaml differs from git HEAD (an experiment's -S values stay "
                         "in it): `git checkout params.yaml` restores it")
    # A queued or --temp run works in a copy: the workspace's params.yaml was never touched.
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert "params.yaml" not in failing_stage_line(capsys)
