"""Faults a team meets: a tracking server that hangs or breaks, SIGTERM/SIGINT mid-training, a
second writer on the sqlite store. Each ends in one line and a non-zero exit, never a hang."""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from fmnist import config, errors, jsonfiles, tracking
from fmnist.errors import TrackingUnavailable
from fmnist.server import free_port
from stages import train
from tests.conftest import (REPO_ROOT, run_child, tail, wait_for_line, wait_for_url,
                            write_tiny_splits)
from tests.fake_servers import NO_PROXY_ENV, broken_tracking_server, silent_server


# Each fault below must end the process by itself; a hang fails the test here, not at the
# suite's backstop. Generous: only a hang comes near it.
HANG_S = 240


@pytest.fixture
def no_proxy(monkeypatch):
    for name, value in NO_PROXY_ENV.items():
        monkeypatch.setenv(name, value)


def start_logged(args: list[str], logs: Path, **kwargs) -> subprocess.Popen:
    """A child in its own process group, stdout and stderr into logs/{stdout,stderr}.log, so
    neither pipe can fill up and both can be shown when the test fails."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "stdout.log", "w") as out, open(logs / "stderr.log", "w") as err:
        return subprocess.Popen(args, stdout=out, stderr=err, text=True, start_new_session=True,
                                **kwargs)


def finish(child: subprocess.Popen, logs: Path, seconds: float = HANG_S) -> tuple[str, str]:
    """Wait for the child to exit by itself; (stdout, stderr). Fails with both on a hang."""
    try:
        child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        pytest.fail(f"{child.args} did not exit within {seconds} s\n--- stdout:\n"
                    f"{tail(logs / 'stdout.log')}\n--- stderr:\n{tail(logs / 'stderr.log')}")
    return (logs / "stdout.log").read_text(), (logs / "stderr.log").read_text()


@pytest.mark.timeout(HANG_S)
def test_a_hung_tracking_server_fails_train_before_training(dvc_workspace, capsys,
                                                            monkeypatch, no_proxy):
    root = dvc_workspace(**{"train.epochs": 50})
    write_tiny_splits(root)
    shutil.copy(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")  # the hint names the stage's outputs
    monkeypatch.setenv("DVC_STAGE", "train")  # as `dvc repro` sets it
    with silent_server() as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(SystemExit) as exit_info:
            train.main()
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert "Epoch 1/" not in out  # the server is checked before any fitting
    err = err.strip()
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


@pytest.mark.timeout(HANG_S)
def test_a_server_that_breaks_after_the_health_check_fails_in_one_line(dvc_workspace,
                                                                       monkeypatch, no_proxy):
    """Short HTTP retries for pipeline processes: a few tries, not MLflow's default of 7 retries
    with doubling back-off (~250 s)."""
    dvc_workspace()
    for name in tracking.HTTP_RETRY_DEFAULTS:  # start without them; monkeypatch restores that
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with broken_tracking_server() as server:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        with pytest.raises(TrackingUnavailable,
                           match=f"lost MLflow tracking server {server.uri} mid-run"):
            with tracking.start_run("fault-check"):
                pass
    retries = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    # The first API call failed after its retries and nothing was asked after it.
    assert len(server.api_requests) == 1 + retries, server.api_requests


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


def test_sigterm_mid_training_fails_the_run_in_one_line(dvc_workspace, tmp_path):
    """SIGTERM (docker stop, a CI cancel, a scheduler) ends like Ctrl-C does: one line, a
    non-zero exit (128 + 15), the MLflow run FAILED instead of RUNNING for ever, no model."""
    root = dvc_workspace(**{"train.epochs": 500, "train.batch_size": 32, "filters": 4})
    write_tiny_splits(root, per_class=20)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    logs = tmp_path / "train-logs"
    child = start_logged([sys.executable, "-m", "stages.train"], logs, cwd=root, env=env)
    try:
        wait_for_line(child, logs / "stdout.log", "Epoch 3/", HANG_S, logs / "stderr.log")
        os.killpg(child.pid, signal.SIGTERM)
        _, err = finish(child, logs)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
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
    # Both trainings run one snapshot of the code: the rerun's reuse key covers the package's
    # sources, so an edit in the checkout while this test runs would rightly force a retrain.
    code = tmp_path / "code"
    for package in ("fmnist", "stages"):
        shutil.copytree(REPO_ROOT / package, code / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    server_logs, train_logs = tmp_path / "server-logs", tmp_path / "train-logs"
    mlflow_server = start_logged(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        server_logs)
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONUNBUFFERED": "1"}
    child = None
    try:
        wait_for_url(f"{uri}/health", mlflow_server, seconds=HANG_S,
                     log=server_logs / "stderr.log")
        child = start_logged([sys.executable, "-m", "stages.train"], train_logs, cwd=root,
                             env={**env, "MLFLOW_TRACKING_URI": uri})
        wait_for_line(child, train_logs / "stdout.log", "Epoch 3/", HANG_S,
                      train_logs / "stderr.log")
        os.killpg(mlflow_server.pid, signal.SIGKILL)  # the server host goes away mid-fit
        stdout, err = finish(child, train_logs)
    finally:
        for process in (mlflow_server, child):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert child.returncode == 1 and "Epoch 12/12" in stdout, err  # the fit went on to the end
    assert err.strip().splitlines()[-1].startswith(
        f"error: TrackingUnavailable: lost MLflow tracking server {uri} mid-run")
    kept = (root / "models" / "pending" / "model.keras").read_bytes()

    # DVC deletes train's outputs before the rerun; the kept copy is what remains.
    for output in ("models/model.keras", "metrics/train.json", "metrics/train_history.csv"):
        (root / output).unlink()
    rerun = run_child([sys.executable, "-m", "stages.train"], cwd=root, env=env, timeout=HANG_S)
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
