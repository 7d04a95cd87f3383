"""MLflow: where the store is, and what train + evaluate log into it."""
from __future__ import annotations

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from fmnist import config, jsonfiles, tracking
from fmnist.model import anatomy, training
from fmnist.model.evaluation import read_per_class
from stages import evaluate, train
from tests.conftest import write_tiny_splits


def test_default_store_is_sqlite_under_the_workspace(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


def test_env_var_overrides_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"
    assert not tracking.uses_default_store()


def test_temp_run_logs_artifacts_into_the_workspace(tmp_path, monkeypatch):
    """`dvc exp run --temp`: cwd is a throw-away copy, DVC_ROOT the workspace."""
    workspace, temp_copy = tmp_path / "workspace", tmp_path / "copy"
    workspace.mkdir()
    temp_copy.mkdir()
    monkeypatch.chdir(temp_copy)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(workspace))
    with tracking.start_run("temp-check") as run:
        mlflow.log_text("hello", "note.txt")
    assert (workspace / "mlruns" / "mlflow.db").exists()
    artifact_uri = MlflowClient().get_run(run.info.run_id).info.artifact_uri
    assert artifact_uri.startswith((workspace / "mlruns" / "artifacts").as_uri())
    assert not (temp_copy / "mlruns").exists()


def test_flatten_gives_dotted_names():
    assert config.flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}}) == {"a": 1, "b.c": 2,
                                                                      "b.d.e": 3}


def test_train_and_evaluate_log_one_complete_run(dvc_workspace):
    root = dvc_workspace(**{"train.epochs": 2, "train.batch_size": 32, "filters": 8})
    parts = write_tiny_splits(root, seed=42, val_split=0.2, subset=1)

    train.main()
    evaluate.main()

    run_id = jsonfiles.read_json(tracking.RUN_FILE)["run_id"]
    client = MlflowClient(tracking.tracking_uri())
    run = client.get_run(run_id)
    params = config.flatten(config.load_params())
    assert {k: str(v) for k, v in params.items()}.items() <= run.data.params.items()
    for metric in ("accuracy", "val_accuracy", "loss", "val_loss"):
        history = client.get_metric_history(run_id, metric)
        assert [m.step for m in history] == [0, 1], metric
    assert 0 <= run.data.metrics["test_accuracy"] <= 1
    assert run.data.tags["data.fingerprint"] == "f" * 64
    assert (run.data.tags["split.seed"], run.data.tags["split.subset"]) == ("42", "1.0")
    assert run.data.metrics["model_val_accuracy"] == jsonfiles.read_json(
        root / "metrics" / "train.json")["val_accuracy"]
    assert run.data.tags["dvc.exp_name"] == "workspace"
    assert len(run.data.tags["mlflow.source.git.commit"]) > 0
    # `train.precision: auto` trains in bf16 where the CPU has bf16 units; either way the saved
    # model computes in float32, and the run records what was used.
    summary = jsonfiles.read_json(root / "metrics" / "train.json")
    expected = "mixed_bfloat16" if training.cpu_has_bf16() else "float32"
    assert run.data.tags["precision"] == summary["precision"] == expected
    saved = keras.saving.load_model(config.MODEL_FILE)
    assert {layer.compute_dtype for layer in anatomy.classifier(saved).layers} == {"float32"}
    artifacts = {a.path for folder in ("figures", "evaluation")
                 for a in client.list_artifacts(run_id, folder)}
    assert {"figures/training_curves.png", "evaluation/confusion_matrix.png",
            "evaluation/classification_report.txt"} <= artifacts

    # The logged model has a signature and an input example, and predicts like the saved file.
    model_info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert model_info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 28, 28, 1)
    assert model_info.saved_input_example_info is not None
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    logged_predictions = np.asarray(loaded.predict(parts["test"][0]))
    evaluated = jsonfiles.read_json(root / "metrics" / "evaluate.json")
    assert evaluated["test_accuracy"] == pytest.approx(
        float(np.mean(logged_predictions.argmax(1) == parts["test"][1])))
    assert len((root / "metrics" / "test_predictions.csv").read_text().splitlines()) == 51
    # The DVC metrics hold the headline only; the per-class table is its own file (50 test
    # images, 5 per class) and per-class F1 still reaches MLflow.
    assert set(evaluated) == {"test_accuracy", "test_loss", "macro_f1", "misclassified"}
    per_class = read_per_class(root / "metrics" / "per_class.csv")
    assert [c["support"] for c in per_class.values()] == [5] * 10
    assert sum(c["misclassified"] for c in per_class.values()) == evaluated["misclassified"]
    assert run.data.metrics["test_f1.Trouser"] == pytest.approx(per_class["Trouser"]["f1"])
    assert "evaluation/per_class.csv" in artifacts



def test_a_model_uri_that_cannot_be_loaded_is_one_named_error_with_its_context(dvc_workspace):
    """predict and fine-tuning share the loader; each says in its own words what to do."""
    from fmnist.errors import ModelLoadError
    from fmnist.model.architectures import build_model
    from fmnist.model.finetune import initialised
    from fmnist.serving import predict

    dvc_workspace()
    missing = "models:/no-such-model@champion"
    with pytest.raises(ModelLoadError, match=r"^cannot load models:/no-such-model@champion .*"
                                             r"registered versions, `dvc repro` registers one$"):
        predict.load_model(missing)
    model = build_model("baseline", filters=4, kernel_size=3, dense_units=8, dropout=0.0)
    with pytest.raises(ModelLoadError, match=r"^train.init_from: cannot load models:/no-such"):
        initialised(model, missing)


def test_runs_after_the_same_seed_get_different_names_led_by_the_experiment(tmp_path,
                                                                            monkeypatch):
    """MLflow's generated names come from `random`, which seeding resets: names repeated."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "wider-filters")
    names = []
    for _ in range(2):
        config.seed_everything(42)
        with tracking.start_run("names") as run:
            pass
        names.append(MlflowClient().get_run(run.info.run_id).info.run_name)
    assert names[0] != names[1]
    assert all(name.startswith("wider-filters-") for name in names)
    monkeypatch.delenv("DVC_EXP_NAME")
    assert tracking.run_name().startswith("workspace-")


def test_the_logged_model_predicts_through_pyfunc_without_a_progress_bar(dvc_workspace, capfd):
    """`mlflow models serve` answers through pyfunc: a Keras progress bar per request was noise."""
    from tests.registry_helpers import log_candidate, make_dataset, tiny_model

    dvc_workspace()
    run_id = log_candidate(val_accuracy=0.9, test_accuracy=0.9)
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    images = np.asarray(make_dataset(per_class=1)[0], dtype="float32")[..., None] / 255
    capfd.readouterr()
    served = np.asarray(loaded.predict(images))
    printed = capfd.readouterr()
    assert "step" not in printed.out + printed.err, printed
    assert served == pytest.approx(tiny_model().predict(images, verbose=0), abs=1e-6)
