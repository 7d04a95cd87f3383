"""`fmnist publish`: a workspace that ran locally switches to a real `mlflow server` on
127.0.0.1; runs and predict name publish on the empty server, publish logs and registers the
workspace's run there without retraining, and publishing again changes nothing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import keras
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from fmnist import cli, config, jsonfiles, tracking
from fmnist.data.splits import load_split
from fmnist.model.evaluation import read_per_class
from fmnist.server import free_port, stop_group
from stages import evaluate, register, train
from tests.conftest import wait_for_url, write_tiny_splits
from tests.fake_servers import NO_PROXY_ENV
from tests.registry_helpers import export_pngs, real_test_images

START_S = 180  # mlflow server's first start creates its tables; slow on a loaded 2-core box


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A plain `mlflow server` (sqlite, artifacts proxied) on a free port; its URI."""
    home = tmp_path_factory.mktemp("server")
    port = free_port()
    log = home / "server.log"
    with open(log, "w") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"sqlite:///{home / 'mlflow.db'}", "--artifacts-destination", str(home / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(f"{uri}/health", server, START_S, log=log)
        yield uri
    finally:
        stop_group(server)


@pytest.fixture
def local_run(dvc_workspace) -> Path:
    """A workspace after a local `dvc repro`'s train, evaluate and register (two epochs on tiny
    generated splits, logged to the workspace's own sqlite store)."""
    root = dvc_workspace(**{"train.epochs": 2, "train.batch_size": 32, "filters": 8})
    write_tiny_splits(root, seed=42, val_split=0.2, subset=1)
    train.main()
    evaluate.main()
    register.main()
    return root


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_publish_logs_and_registers_the_workspace_run_on_the_server(local_run, mlflow_server,
                                                                    monkeypatch, capsys):
    root = local_run
    local_run_id = jsonfiles.read_json(tracking.RUN_FILE)["run_id"]
    promotion = (root / "metrics" / "promotion.json").read_text()
    png = export_pngs(real_test_images(1), root / "images")[0]
    # On the store the pipeline logged to, publish finds the workspace's own run: nothing new.
    assert cli.main(["publish"]) == 0
    printed = capsys.readouterr().out
    assert f"already logged as run {local_run_id}" in printed
    assert "already registered as version 1" in printed
    local_store = MlflowClient(tracking.default_tracking_uri())
    local = local_store.get_run(local_run_id)
    assert len(local_store.search_runs([local.info.experiment_id])) == 1

    # The empty server: both commands name publish, in one line, with the server's URI.
    for name, value in {**NO_PROXY_ENV, "MLFLOW_TRACKING_URI": mlflow_server}.items():
        monkeypatch.setenv(name, value)
    hint = f"no runs on {mlflow_server}: run `fmnist publish` to log this workspace's run there"
    assert cli.main(["runs"]) == 1
    assert hint in error_line(capsys)
    assert cli.main(["predict", str(png)]) == 1
    assert hint in error_line(capsys)

    assert cli.main(["publish"]) == 0
    printed = capsys.readouterr().out
    assert f"{mlflow_server}: logged as run" in printed and "registered version 1" in printed

    client = MlflowClient(mlflow_server)
    versions = client.search_model_versions("name = 'fashion-mnist-cnn'")
    assert [v.version for v in versions] == ["1"]
    assert client.get_model_version_by_alias("fashion-mnist-cnn", "champion").version == "1"
    run = client.get_run(versions[0].run_id)
    assert run.info.run_id != local_run_id and run.info.status == "FINISHED"
    assert run.data.tags["publish.source_run"] == local_run_id
    # What the stages logged locally, now on the server: params, metrics, epochs, tags, data.
    params = config.flatten(config.load_params())
    assert {k: str(v) for k, v in params.items()}.items() <= run.data.params.items()
    summary = jsonfiles.read_json(root / "metrics" / "train.json")
    evaluated = jsonfiles.read_json(root / "metrics" / "evaluate.json")
    assert run.data.metrics["model_val_accuracy"] == summary["val_accuracy"]
    assert run.data.metrics["test_accuracy"] == evaluated["test_accuracy"]
    per_class = read_per_class(root / "metrics" / "per_class.csv")
    assert run.data.metrics["test_f1.Ankle boot"] == pytest.approx(per_class["Ankle boot"]["f1"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1]
    for tag in ("data.fingerprint", "split.seed", "split.val_split", "split.subset", "precision"):
        assert run.data.tags[tag] == local.data.tags[tag], tag
    assert sorted(d.dataset.name for d in run.inputs.dataset_inputs) == [
        "fashion-mnist-test", "fashion-mnist-train", "fashion-mnist-val"]
    artifacts = {a.path for folder in ("figures", "metrics")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"figures/training_curves.png", "figures/confusion_matrix.png",
            "metrics/per_class.csv", "metrics/evaluate.json"} <= artifacts
    assert "metrics/promotion.json" not in artifacts  # the local store's decision
    # The registered model is the workspace's file: same predictions.
    test_images = load_split("test")[0]
    served = mlflow.keras.load_model("models:/fashion-mnist-cnn@champion")
    np.testing.assert_allclose(served.predict(test_images, verbose=0),
                               keras.saving.load_model(config.MODEL_FILE).predict(test_images,
                                                                                   verbose=0),
                               atol=1e-6)
    # The workspace still describes its local run.
    assert jsonfiles.read_json(tracking.RUN_FILE)["run_id"] == local_run_id
    assert (root / "metrics" / "promotion.json").read_text() == promotion

    # Now runs and predict answer from the server; a second publish adds nothing.
    assert cli.main(["runs"]) == 0
    assert run.info.run_id[:8] in capsys.readouterr().out
    assert cli.main(["predict", str(png)]) == 0
    assert "%" in capsys.readouterr().out
    assert cli.main(["publish"]) == 0
    assert "already logged as run" in capsys.readouterr().out
    assert len(client.search_model_versions("name = 'fashion-mnist-cnn'")) == 1
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_publish_without_a_trained_model_says_what_to_run(dvc_workspace, capsys):
    dvc_workspace()
    assert cli.main(["publish"]) == 1
    line = error_line(capsys)
    assert line.startswith("error: NothingToPublish: nothing to publish: models/model.keras")
    assert "`dvc repro`" in line
