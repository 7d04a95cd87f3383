"""fmnist.errors.stage_entry on Ctrl-C: a real stage process, interrupted by a real SIGINT while
it waits on the network, exits 130 with one line (and, under DVC, how to get the stage's previous
outputs back), no traceback, and leaves the previous data/raw as it was."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

ACCEPT_TIMEOUT_S = 120  # the child imports DVC and pooch before it connects


def restore_sigint() -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored, and a child
    inherits that; with the default back, Python raises KeyboardInterrupt on SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("under_dvc, expected", [
    (False, "error: interrupted"),
    (True, "error: interrupted; previous outputs: `dvc checkout download`"),
])
def test_ctrl_c_during_a_download_exits_130_in_one_line(dvc_workspace, under_dvc, expected):
    # A mirror that accepts the connection and never answers: the stage is then surely
    # inside main(), blocked on the network, when the signal comes.
    with socket.create_server(("127.0.0.1", 0)) as mirror:
        mirror.settimeout(ACCEPT_TIMEOUT_S)
        port = mirror.getsockname()[1]
        root = dvc_workspace(**{"download.source": "url",
                                "download.url": f"http://127.0.0.1:{port}/"})
        previous = root / "data" / "raw" / "previous-download.txt"
        previous.parent.mkdir(parents=True)
        previous.write_text("the last good download")
        shutil.copy(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")  # the hint names the outputs
        env = {name: value for name, value in os.environ.items()
               if name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "dvc_stage")}
        env.update({"PYTHONPATH": str(REPO_ROOT), "NO_PROXY": "127.0.0.1,localhost",
                    **({"DVC_STAGE": "download"} if under_dvc else {})})
        child = subprocess.Popen([sys.executable, "-m", "stages.download"], cwd=root, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True, preexec_fn=restore_sigint)
        try:
            try:
                connection, _ = mirror.accept()
            except TimeoutError:
                child.kill()
                pytest.fail(f"the stage never connected:\n{child.communicate(timeout=30)[1]}")
            with connection:
                os.killpg(child.pid, signal.SIGINT)
                out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.communicate(timeout=30)
    assert child.returncode == 130, err
    lines = err.strip().splitlines()  # pooch's "Downloading data from ..." comes first
    assert lines[-1] == expected and [line for line in lines if "error" in line] == [expected], err
    assert "Traceback" not in err + out
    assert previous.read_text() == "the last good download"
    assert [path.name for path in (root / "data").iterdir()] == ["raw"]  # no scratch left
