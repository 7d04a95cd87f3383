"""The team stack for tests: `fmnist server` itself (PostgreSQL + mlflow server) on free ports of
127.0.0.1, started once per session and stopped (SIGTERM, as `docker stop` would) at the end."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from fmnist.server import free_port, stop_group
from tests.conftest import REPO_ROOT, wait_for_line

START_TIMEOUT_S = 240  # initdb + MLflow's ~60 tables on a loaded 2-core CPU


@dataclass(frozen=True)
class TeamServer:
    uri: str          # MLFLOW_TRACKING_URI for the team
    home: Path        # postgres/, artifacts/, *.log
    db_port: int


@pytest.fixture(scope="session")
def team_server() -> Iterator[TeamServer]:
    # Not under pytest's tmp_path: that is 0700, and PostgreSQL runs as the postgres user.
    home = Path(tempfile.mkdtemp(prefix="fmnist-team-", dir="/tmp"))
    home.chmod(0o755)
    port, db_port = free_port(), free_port()
    log = open(home / "server.out", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "fmnist.cli", "server", "--home", str(home), "--port", str(port),
         "--db-port", str(db_port)], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_line(server, home / "server.out", "team server ready", START_TIMEOUT_S)
        assert requests.get(f"{uri}/health", timeout=5).ok
        yield TeamServer(uri, home, db_port)
    finally:
        stop_group(server, timeout=60)
        log.close()
        stopped = not (home / "postgres" / "postmaster.pid").exists()
        shutil.rmtree(home, ignore_errors=True)
        assert stopped, "fmnist server left PostgreSQL running"
