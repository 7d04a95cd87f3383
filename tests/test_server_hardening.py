"""`fmnist server` stops its whole stack on SIGHUP (a closed terminal or ssh session) and keeps
its home private: artifacts and logs are the user's alone; as root, PostgreSQL (run as the
postgres user) may only pass through the home to its own data dir."""
from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from fmnist.server import (StackConfig, free_port, make_home_private, stop_group,
                           stop_postgres)
from tests.conftest import REPO_ROOT, tail, wait_for_line
from tests.team_fixtures import START_TIMEOUT_S

STOP_TIMEOUT_S = 90  # MLflow's workers + PostgreSQL's fast shutdown, on a loaded 2-core CPU
HOME_MODE = 0o711 if os.geteuid() == 0 else 0o700


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process (postgres, when run as root): it exists
        pass
    try:  # an exited child of ours not yet reaped is gone for this purpose
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_sighup_stops_mlflow_and_postgres_and_the_home_is_private():
    # mkdtemp makes it 0700: the server itself must open it just enough for postgres (as root).
    home = Path(tempfile.mkdtemp(prefix="fmnist-team-hup-", dir="/tmp"))
    out = Path(tempfile.mkdtemp(prefix="fmnist-team-hup-out-")) / "server.out"
    log = open(out, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "fmnist.cli", "server", "--home", str(home), "--port",
         str(free_port()), "--db-port", str(free_port())], cwd=REPO_ROOT, stdout=log,
        stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        start_new_session=True)
    postgres_pid, mlflow_pids = None, []
    try:
        wait_for_line(server, out, "team server ready", START_TIMEOUT_S)
        # pg_ctl daemonises PostgreSQL, so it is found by its pid file, not as a child.
        postgres_pid = int((home / "postgres" / "postmaster.pid").read_text().splitlines()[0])
        mlflow_pids = [child.pid for child in psutil.Process(server.pid).children(recursive=True)]
        assert mlflow_pids, f"no mlflow server under fmnist server\n{tail(out)}"
        assert _alive(postgres_pid)

        assert _mode(home) == HOME_MODE
        assert _mode(home / "artifacts") == 0o700
        for log_name in ("postgres.log", "mlflow.log"):
            assert _mode(home / log_name) == 0o600, log_name
        assert _mode(home / "postgres") == 0o700

        server.send_signal(signal.SIGHUP)
        try:
            code = server.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"fmnist server did not exit on SIGHUP\n{tail(out)}")
        assert code == 0, tail(out)
        left = _wait_gone([postgres_pid, *mlflow_pids], STOP_TIMEOUT_S)
        assert not left, f"left running after SIGHUP: {left}\n{tail(out)}"
        assert not (home / "postgres" / "postmaster.pid").exists()
    finally:
        stop_group(server, timeout=60)
        log.close()
        for pid in mlflow_pids:  # orphans of a server that did not stop them
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if postgres_pid is not None and _alive(postgres_pid):
            stop_postgres(StackConfig(home))
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(out.parent, ignore_errors=True)


def test_a_home_made_before_is_made_private(tmp_path: Path):
    """An existing world-readable home (0755, 0644 logs) is closed on the next start."""
    home = tmp_path / "team"
    (home / "artifacts" / "1").mkdir(parents=True)
    for path in (home, home / "artifacts"):
        path.chmod(0o755)
    for log_name in ("postgres.log", "mlflow.log"):
        (home / log_name).write_text("old\n")
        (home / log_name).chmod(0o644)

    make_home_private(StackConfig(home))

    assert _mode(home) == HOME_MODE
    assert _mode(home / "artifacts") == 0o700
    for log_name in ("postgres.log", "mlflow.log"):
        assert _mode(home / log_name) == 0o600
        assert (home / log_name).read_text() == "old\n"  # kept, not truncated


def test_a_new_home_is_private(tmp_path: Path):
    home = tmp_path / "deeper" / "team"
    make_home_private(StackConfig(home))
    assert _mode(home) == HOME_MODE
    assert _mode(home / "artifacts") == 0o700
    assert sorted(path.name for path in home.iterdir()) == ["artifacts", "mlflow.log",
                                                            "postgres.log"]
    for log_name in ("postgres.log", "mlflow.log"):
        assert _mode(home / log_name) == 0o600
