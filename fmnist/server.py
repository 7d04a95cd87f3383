"""The team stack: PostgreSQL (Debian's `postgresql` package) holding MLflow's runs and registry,
and `mlflow server` in front of it, serving the artifacts from a directory (or S3, see docs/team.md).

`fmnist server` runs both in the foreground until Ctrl-C, SIGTERM or SIGHUP, then stops both. The
PostgreSQL cluster lives in a project-local folder (`.team/postgres`, git-ignored), listens on
127.0.0.1 only and trusts local connections: only the MLflow server, on the same machine, talks to
it; the team talks to MLflow over HTTP. Run as root, the database runs as the `postgres` user.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from fmnist import config
from fmnist.errors import ServerError

DB_USER, DB_NAME = "fmnist", "mlflow"
HEALTH_WAIT_S = 120.0  # MLflow's first start creates ~60 tables: about 15 s on a quiet 2-core CPU


@dataclass(frozen=True)
class StackConfig:
    home: Path                   # postgres/ (cluster), artifacts/, *.log
    host: str = "127.0.0.1"      # where MLflow listens; 0.0.0.0 for the team's machines
    port: int = 5000             # MLflow
    db_port: int = 5433          # PostgreSQL (5432 is the system cluster's)
    workers: int = 2
    allowed_hosts: str | None = None  # MLflow's Host-header check, for non-local names

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "StackConfig":
        home = Path(args.home) if args.home else config.repo_root() / ".team"
        return cls(home.resolve(), args.host, args.port, args.db_port, args.workers,
                   args.allowed_hosts)

    @property
    def data_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def db_url(self) -> str:
        return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.db_port}/{DB_NAME}"

    @property
    def tracking_uri(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def postgres_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps them off PATH, in /usr/lib/postgresql/N/bin."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda path: int(Path(path).parts[-3]))
    found = candidates[-1] if candidates else shutil.which(name)
    if not found:
        raise ServerError(f"PostgreSQL's {name} not found: `apt-get install postgresql`")
    return found


def _as_db_owner(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; root hands the cluster to Debian's postgres user.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], what: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ServerError(f"{what} failed: {last[0]}")
    return result


def make_home_private(stack: StackConfig) -> None:
    """The home and what is made in it belong to the user alone (runs, models and logs may be
    confidential). As root, the home is 0711: the postgres user may pass through it to its own
    data dir (0700, its own) but not list it; artifacts/ is 0700 and the logs 0600 either way."""
    stack.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    stack.home.chmod(0o711 if os.geteuid() == 0 else 0o700)
    stack.artifacts_dir.mkdir(mode=0o700, exist_ok=True)
    stack.artifacts_dir.chmod(0o700)  # a home made before it was private
    for log_name in ("postgres.log", "mlflow.log"):
        (stack.home / log_name).touch(mode=0o600)
        (stack.home / log_name).chmod(0o600)


def start_postgres(stack: StackConfig) -> None:
    """Create the cluster on first use, start it, create MLflow's database if missing."""
    make_home_private(stack)
    log_file = stack.home / "postgres.log"
    if not (stack.data_dir / "PG_VERSION").exists():
        stack.data_dir.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(stack.data_dir, "postgres", "postgres")
        _run(_as_db_owner([postgres_bin("initdb"), "-D", str(stack.data_dir), "-U", DB_USER,
                           "--auth=trust", "--encoding=UTF8"]), "initdb")
    if os.geteuid() == 0:
        shutil.chown(log_file, "postgres", "postgres")
    pg_ctl = [postgres_bin("pg_ctl"), "-D", str(stack.data_dir)]
    running = subprocess.run(_as_db_owner([*pg_ctl, "status"]), capture_output=True)
    if running.returncode != 0:  # else: left running by a server that was killed; reuse it
        # TCP on loopback only, no Unix socket (its default folder may not be writable).
        options = f"-p {stack.db_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        _run(_as_db_owner([*pg_ctl, "-l", str(log_file), "-o", options, "-w", "-t", "60",
                           "start"]),
             f"starting PostgreSQL on 127.0.0.1:{stack.db_port} (see {log_file})")
    psql = [postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(stack.db_port), "-U", DB_USER,
            "-d", "postgres", "-tAc"]
    exists = _run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"],
                  "psql").stdout.strip()
    if exists != "1":
        _run([*psql, f"CREATE DATABASE {DB_NAME}"], "creating the database")


def stop_postgres(stack: StackConfig) -> None:
    subprocess.run(_as_db_owner([postgres_bin("pg_ctl"), "-D", str(stack.data_dir), "-m", "fast",
                                 "-w", "stop"]), capture_output=True)


def start_mlflow(stack: StackConfig) -> subprocess.Popen:
    make_home_private(stack)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", stack.db_url,
               "--artifacts-destination", str(stack.artifacts_dir), "--host", stack.host,
               "--port", str(stack.port), "--workers", str(stack.workers)]
    if stack.allowed_hosts:
        command += ["--allowed-hosts", stack.allowed_hosts]
    log = open(stack.home / "mlflow.log", "ab")
    # Its own process group: `mlflow server` runs uvicorn workers as child processes.
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(stack: StackConfig, process: subprocess.Popen,
                 timeout: float = HEALTH_WAIT_S) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"mlflow server exited with code {process.returncode}; see "
                              f"{stack.home / 'mlflow.log'}")
        try:
            if requests.get(f"{stack.tracking_uri}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise ServerError(f"mlflow server did not answer {stack.tracking_uri}/health within "
                      f"{timeout:g} s; see {stack.home / 'mlflow.log'}")


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def serve(stack: StackConfig) -> int:
    """Start PostgreSQL and the MLflow server, wait for Ctrl-C, SIGTERM or SIGHUP (a closed
    terminal or ssh session), stop both."""
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    # What the children write (artifacts, logs, the database) is the user's alone too.
    os.umask(0o077)
    mlflow_server = None
    try:
        start_postgres(stack)
        mlflow_server = start_mlflow(stack)
        wait_healthy(stack, mlflow_server)
        print(f"team server ready: export MLFLOW_TRACKING_URI={stack.tracking_uri}\n"
              f"  runs + registry: PostgreSQL 127.0.0.1:{stack.db_port} ({stack.data_dir})\n"
              f"  artifacts: {stack.artifacts_dir}\n  logs: {stack.home}/*.log", flush=True)
        return mlflow_server.wait()
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        # A second signal (a hangup soon followed by a SIGTERM) must not cut the cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if mlflow_server is not None:
            stop_group(mlflow_server)
        stop_postgres(stack)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for a server started there."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the process's group (its own session: workers it started go too), SIGKILL
    after `timeout` seconds; nothing to do when it is gone already."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
