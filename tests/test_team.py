"""Team mode end to end, against `fmnist server` (PostgreSQL + mlflow server on 127.0.0.1): a
`dvc repro` logging there, `dvc push` to the DVC remote, a fresh clone that pulls instead of
recomputing and predicts with the team's champion, and three queued experiments run two at a time.

The server lives for the session; the slice's `dvc repro` against it runs once per module (the
baseline, committed and pushed). Tests read the baseline; the queue test works in its own copy
under its own experiment and model names, so no test sees another's runs."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO_ROOT, git, run_child
from tests.fake_servers import NO_PROXY_ENV
from tests.registry_helpers import export_pngs, real_test_images, real_test_labels
from tests.team_fixtures import TeamServer, free_port, team_server  # noqa: F401 (a fixture)
from tests.test_pipeline import MODEL_NAME, SLICE, copy_project, dvc, set_params, stages_run

pytestmark = pytest.mark.slow
EXPERIMENT = "fashion-mnist"
# A queue of three slice runs, two at a time, on a loaded 2-core box: minutes; only a stuck
# queue comes near this.
QUEUE_TIMEOUT_S = 1500
# Three small experiments; min_delta 0 so the champion must end on the best of them.
EXPERIMENTS = [("filters=4",), ("filters=6",), ("filters=12",)]
QUEUE_FLAGS = ("-S", "train.epochs=2", "-S", "promotion.min_delta=0")


def team_env(server: TeamServer) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": server.uri, **NO_PROXY_ENV}


@dataclass(frozen=True)
class TeamBaseline:
    repo: Path     # the slice's repro against the team server, committed and pushed
    output: str    # what that `dvc repro` printed
    remote: Path   # the shared DVC remote


@pytest.fixture(scope="module")
def team_baseline(tmp_path_factory, team_server) -> TeamBaseline:  # noqa: F811
    repo = copy_project(tmp_path_factory.mktemp("team"))
    set_params(repo, **SLICE)
    # The shared DVC remote: a per-user override of .dvc/config's default, as README says.
    remote = tmp_path_factory.mktemp("dvc-remote")
    dvc(repo, "remote", "modify", "--local", "shared", "url", str(remote))
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "slice", cwd=repo)
    result = dvc(repo, "repro", env=team_env(team_server))
    dvc(repo, "push")
    git("add", "-A", cwd=repo)  # dvc.lock and the metrics, as a team member would commit
    git("commit", "-qm", "team run", cwd=repo)
    return TeamBaseline(repo, result.stdout, remote)


def experiment_runs(client: MlflowClient, experiment: str = EXPERIMENT) -> list:
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def test_repro_logs_runs_and_registry_to_the_team_server(team_baseline, team_server):  # noqa: F811
    assert stages_run(team_baseline.output) == ["download", "validate", "preprocess", "train",
                                                "evaluate", "register"]
    assert not (team_baseline.repo / "mlruns").exists()  # nothing went to the local sqlite store
    client = MlflowClient(team_server.uri)
    [run] = experiment_runs(client)
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")} >= {
        "evaluation/confusion_matrix.png"}
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.run_id == run.info.run_id and champion.tags["split.subset"] == "0.05"
    # ... and it is PostgreSQL that holds them.
    with psycopg.connect(host="127.0.0.1", port=team_server.db_port, user="fmnist",
                         dbname="mlflow") as connection:
        statuses = connection.execute(
            "SELECT status FROM runs WHERE experiment_id = %s",
            (int(run.info.experiment_id),)).fetchall()
        versions = connection.execute("SELECT count(*) FROM model_versions WHERE name = %s",
                                      (MODEL_NAME,)).fetchone()[0]
    assert statuses == [("FINISHED",)] and versions == 1


def test_a_fresh_clone_pulls_instead_of_recomputing_and_predicts(team_baseline, team_server,  # noqa: F811
                                                                 tmp_path):
    clone = tmp_path / "clone"
    git("clone", "-q", str(team_baseline.repo), str(clone), cwd=tmp_path)
    dvc(clone, "remote", "modify", "--local", "shared", "url", str(team_baseline.remote))

    dvc(clone, "pull")
    assert (clone / "models" / "model.keras").read_bytes() == (
        team_baseline.repo / "models" / "model.keras").read_bytes()
    result = dvc(clone, "repro", env=team_env(team_server))
    assert stages_run(result.stdout) == [], result.stdout

    images, labels = real_test_images(20), real_test_labels(20)
    paths = export_pngs(images, tmp_path / "pngs")
    predicted = run_child(
        [sys.executable, "-m", "fmnist.cli", "predict", "--json", *map(str, paths)], cwd=clone,
        env={**os.environ, **team_env(team_server), "PYTHONPATH": str(REPO_ROOT)}, timeout=600)
    assert predicted.returncode == 0, predicted.stderr
    output = json.loads(predicted.stdout)
    assert output["model_uri"] == f"models:/{MODEL_NAME}@champion"
    top = [prediction["top"][0]["index"] for prediction in output["predictions"]]
    assert sum(int(a == b) for a, b in zip(top, labels)) >= 10  # chance would be 2 of 20


def wait_for_queue(repo: Path) -> str:
    """Poll `dvc queue status` until no task is queued or running; the status then."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        status = dvc(repo, "queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"the queue did not finish in {QUEUE_TIMEOUT_S} s:\n"
                        + failure_report(repo, status))
        time.sleep(2)  # each `dvc queue status` costs a second or two of CPU itself


def queue_experiment(repo: Path, flags: tuple[str, ...]) -> str:
    """`dvc exp run --queue` with these -S flags (and QUEUE_FLAGS); returns the task's name."""
    output = dvc(repo, "exp", "run", "--queue", *[x for f in flags for x in ("-S", f)],
                 *QUEUE_FLAGS).stdout
    return re.search(r"Queued experiment '([\w-]+)'", output).group(1)


def failed_tasks(status: str) -> list[str]:
    """Names of the tasks `dvc queue status` reports as Failed."""
    return [line.split()[1] for line in status.splitlines() if line.endswith("Failed")]


def task_log(repo: Path, task: str) -> str:
    """`dvc queue logs TASK` (empty when DVC kept none: a task that failed in DVC's setup)."""
    return dvc(repo, "queue", "logs", task, check=False).stdout


def stages_started(repo: Path, task: str) -> bool:
    return "Running stage" in task_log(repo, task)


def failure_report(repo: Path, status: str) -> str:
    """The queue's status, each failed task's log and the workers' errors: what a failed queued
    run leaves behind (a task that fails before its stages start has no log of its own)."""
    report = [status]
    for task in failed_tasks(status):
        report.append(f"--- dvc queue logs {task}:\n" + task_log(repo, task)[-4000:])
    for worker_log in sorted((repo / ".dvc" / "tmp" / "exps" / "celery").glob("*.out")):
        lines = worker_log.read_text(errors="replace").splitlines()
        errors = [i for i, line in enumerate(lines) if "ERROR" in line or "Traceback" in line]
        if errors:
            report.append(f"--- {worker_log.name}:\n" + "\n".join(lines[errors[0]:][:60]))
    return "\n".join(report)


@pytest.mark.timeout(2 * QUEUE_TIMEOUT_S + 600)  # the queue, perhaps once more, and its setup
def test_three_queued_experiments_run_two_at_a_time(team_baseline, team_server,  # noqa: F811
                                                    tmp_path):
    # Its own copy (the baseline's cache spares the data stages) and its own experiment and
    # registered model on the shared server: the champion race is among these three alone.
    repo = tmp_path / "repo"
    shutil.copytree(team_baseline.repo, repo, symlinks=True)
    names = {"mlflow.experiment": f"queue-{tmp_path.name}",
             "registry.model_name": f"queue-{tmp_path.name}-cnn"}
    set_params(repo, **names)
    git("commit", "-qam", "queue's own experiment and model", cwd=repo)
    client = MlflowClient(team_server.uri)
    queued = {queue_experiment(repo, flags): flags for flags in EXPERIMENTS}
    try:
        dvc(repo, "queue", "start", "-j", "2", env=team_env(team_server))
        status = wait_for_queue(repo)
        # DVC's own race between workers setting up at the same instant (treeverse/dvc#10673)
        # can fail a task before any stage starts; README's advice is to queue it again, so do
        # that, once. A task whose stages ran and failed is a failure of ours, not retried.
        lost = [name for name in failed_tasks(status) if not stages_started(repo, name)]
        if lost:
            for name in lost:
                queue_experiment(repo, queued[name])
            dvc(repo, "queue", "start", "-j", "2", env=team_env(team_server))
            status = wait_for_queue(repo)
    finally:  # no worker outlives the test, whatever happened
        dvc(repo, "queue", "stop", "--kill", check=False)
    assert status.count("Success") == 3 and len(failed_tasks(status)) == len(lost), (
        failure_report(repo, status))

    runs = experiment_runs(client, names["mlflow.experiment"])
    assert len(runs) == 3 and {run.info.status for run in runs} == {"FINISHED"}
    assert sorted(run.data.params["filters"] for run in runs) == ["12", "4", "6"]
    for run in runs:  # no lost metric, curves, confusion matrix and model for each
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [
            0, 1]
        artifacts = {a.path for folder in ("figures", "evaluation")
                     for a in client.list_artifacts(run.info.run_id, folder)}
        assert {"figures/training_curves.png", "evaluation/confusion_matrix.png"} <= artifacts
        assert client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    model_name = names["registry.model_name"]
    versions = client.search_model_versions(f"name = '{model_name}'")
    assert len(versions) == 3  # one per experiment
    best = max(float(version.tags["model_val_accuracy"]) for version in versions)
    champion = client.get_model_version_by_alias(model_name, "champion")
    assert float(champion.tags["model_val_accuracy"]) == best, [
        (version.version, version.tags["model_val_accuracy"]) for version in versions]


def test_server_that_cannot_start_says_why_in_one_line_and_stops_postgres():
    """MLflow's port already taken: one `error:` line naming the log, exit 1, no PostgreSQL left."""
    home = Path(tempfile.mkdtemp(prefix="fmnist-team-busy-", dir="/tmp"))
    home.chmod(0o755)
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            result = run_child(
                [sys.executable, "-m", "fmnist.cli", "server", "--home", str(home), "--port",
                 str(taken.getsockname()[1]), "--db-port", str(free_port())], cwd=REPO_ROOT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=300)
        assert result.returncode == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ServerError: mlflow server exited with code ")  # 0 or 1
        assert line.endswith(f"; see {home / 'mlflow.log'}")
        assert "address already in use" in (home / "mlflow.log").read_text().lower()
        assert (home / "postgres" / "PG_VERSION").exists()  # the cluster was made ...
        assert not (home / "postgres" / "postmaster.pid").exists()  # ... and stopped again
    finally:
        shutil.rmtree(home, ignore_errors=True)
