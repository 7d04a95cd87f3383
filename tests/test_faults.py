"""Faults a team meets: a tracking server that hangs or breaks, SIGTERM/SIGINT mid-training, a
second writer on the sqlite store. Each ends in one line and a non-zero exit, never a hang."""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from fmnist import config, errors, jsonfiles, tracking
from fmnist.errors import TrackingUnavailable
from fmnist.server import free_port
from stages import train
from tests.conftest import REPO_ROOT, wait_for_url, write_tiny_splits
from tests.fake_servers import NO_PROXY_ENV, broken_tracking_server, silent_server


@pytest.fixture
def no_proxy(monkeypatch):
    for name, value in NO_PROXY_ENV.items():
        monkeypatch.setenv(name, value)


def test_a_hung_tracking_server_fails_train_in_seconds_before_training(dvc_workspace, capsys,
                                                                         monkeypatch, no_proxy):
    root = dvc_workspace(**{"train.epochs": 50})
    write_tiny_splits(root)
    shutil.copy(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")  # the hint names the stage's outputs
    monkeypatch.setenv("DVC_STAGE", "train")  # as `dvc repro` sets it
    with silent_server() as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        started = time.monotonic()
        with pytest.raises(SystemExit) as exit_info:
            train.main()
        elapsed = time.monotonic() - started
    assert exit_info.value.code == 1 and elapsed < 10
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: TrackingUnavailable: MLflow tracking server {uri} does not "
                          "answer /health")
    assert err.endswith("previous outputs: `dvc checkout train` and `git checkout -- "
                        "metrics/train.json metrics/train_history.csv "
                        "metrics/figures/training_curves.png`")
    assert not config.MODEL_FILE.exists() and not (root / "metrics" / "train.json").exists()


def test_the_restore_hint_only_where_dvc_deleted_something(tmp_path, monkeypatch):
    shutil.copy(REPO_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert errors.restore_hint() == ""  # run by hand: DVC deleted nothing
    monkeypatch.setenv("DVC_STAGE", "preprocess")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert errors.restore_hint() == "; previous outputs: `dvc checkout preprocess`"
    assert errors.restore_hint("register") == (
        "; previous outputs: `git checkout -- metrics/promotion.json`")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "workspace"))  # cwd is a queued run's copy
    assert errors.restore_hint() == ""


def test_a_server_that_breaks_after_the_health_check_fails_in_one_line(dvc_workspace,
                                                                       monkeypatch, no_proxy):
    """Short HTTP retries for pipeline processes: seconds, not MLflow's ~250 s default."""
    dvc_workspace()
    for name in tracking.HTTP_RETRY_DEFAULTS:  # start without them; monkeypatch restores that
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with broken_tracking_server() as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        started = time.monotonic()
        with pytest.raises(TrackingUnavailable, match=f"lost MLflow tracking server {uri} mid-run"):
            with tracking.start_run("fault-check"):
                pass
        assert time.monotonic() - started < 30
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"


def test_a_second_writer_on_the_sqlite_store_is_refused(dvc_workspace):
    """What a `dvc queue start -j 2` worker meets while another writes to the default store."""
    root = dvc_workspace()
    lock_file = root / "mlruns" / "writer.lock"
    lock_file.parent.mkdir(parents=True)
    with open(lock_file, "w") as other_writer:
        fcntl.flock(other_writer, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TrackingUnavailable, match=r"sqlite allows one writer.*-j 1.*fmnist "
                                                      "server"):
            with tracking.start_run("second-writer"):
                pass


def test_sigterm_mid_training_fails_the_run_in_one_line(dvc_workspace):
    """SIGTERM (docker stop, a CI cancel, a scheduler) ends like Ctrl-C does: one line, a
    non-zero exit (128 + 15), the MLflow run FAILED instead of RUNNING for ever, no model."""
    root = dvc_workspace(**{"train.epochs": 500, "train.batch_size": 32, "filters": 4})
    write_tiny_splits(root, per_class=20)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        for output_line in child.stdout:  # wait until the fit is under way
            if output_line.startswith("Epoch 3/"):
                break
        os.killpg(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 143, err
    assert err.strip().splitlines()[-1] == "error: terminated (SIGTERM)"
    assert "Traceback" not in err
    client = MlflowClient(tracking.default_tracking_uri())
    [run] = client.search_runs([client.get_experiment_by_name("fashion-mnist").experiment_id])
    assert run.info.status == "FAILED"  # not RUNNING for ever
    assert not (root / "models" / "model.keras").exists()


@pytest.mark.slow
def test_a_server_lost_mid_run_costs_no_training(dvc_workspace, tmp_path, no_proxy):
    """A real `mlflow server` dies (SIGKILL) while train fits: the stage fails in one line with
    the model saved and kept aside; the rerun logs that model, epochs included, without fitting."""
    root = dvc_workspace(**{"train.epochs": 12, "train.batch_size": 32, "filters": 4})
    write_tiny_splits(root, per_class=20)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    mlflow_server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    try:
        wait_for_url(f"{uri}/health", mlflow_server, seconds=180)
        child = subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=root,
                                 env={**env, "MLFLOW_TRACKING_URI": uri}, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        for output_line in child.stdout:
            if output_line.startswith("Epoch 3/"):
                break
        os.killpg(mlflow_server.pid, signal.SIGKILL)  # the server host goes away mid-fit
        stdout, err = child.communicate(timeout=300)
    finally:
        if mlflow_server.poll() is None:
            os.killpg(mlflow_server.pid, signal.SIGKILL)
        mlflow_server.wait()
    assert child.returncode == 1 and "Epoch 12/12" in stdout, err  # the fit went on to the end
    assert err.strip().splitlines()[-1].startswith(
        f"error: TrackingUnavailable: lost MLflow tracking server {uri} mid-run")
    kept = (root / "models" / "pending" / "model.keras").read_bytes()

    # DVC deletes train's outputs before the rerun; the kept copy is what remains.
    for output in ("models/model.keras", "metrics/train.json", "metrics/train_history.csv"):
        (root / output).unlink()
    rerun = subprocess.run([sys.executable, "-m", "stages.train"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "no retraining" in rerun.stdout and "Epoch 1/" not in rerun.stdout
    assert (root / "models" / "model.keras").read_bytes() == kept
    assert not (root / "models" / "pending").exists()
    client = MlflowClient(tracking.default_tracking_uri())
    run_id = jsonfiles.read_json(root / "models" / "mlflow_run.json")["run_id"]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.get_metric_history(run_id, "val_accuracy")) == 12
    assert client.search_logged_models(
        [client.get_run(run_id).info.experiment_id], filter_string=f"source_run_id = '{run_id}'")
