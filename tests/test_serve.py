"""REST: `mlflow models serve` on the champion answers like `fmnist predict`."""
from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from typing import Iterator

import numpy as np
import pytest

from fmnist import cli, tracking
from fmnist.server import free_port, stop_group
from stages import register
from tests.conftest import wait_for_url
from tests.registry_helpers import export_pngs, log_candidate, real_test_images

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 90


@pytest.fixture
def served_champion(dvc_workspace, tmp_path) -> Iterator[str]:
    """The README's command on a freshly registered champion; stopped whatever the test does."""
    dvc_workspace()
    log_candidate(val_accuracy=0.9, test_accuracy=0.9)
    register.main()
    url, log = f"http://127.0.0.1:{free_port()}", tmp_path / "serve.log"
    with open(log, "wb") as log_handle:
        # Its own session, so stopping it stops the uvicorn worker it starts as well.
        server = subprocess.Popen(
            ["mlflow", "models", "serve", "-m", "models:/fashion-mnist-cnn@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1]],
            env={**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri()},
            stdout=log_handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_url(f"{url}/ping", server, START_TIMEOUT_S, log)
        yield url
    finally:
        stop_group(server, timeout=15)


def test_served_champion_answers_like_predict(served_champion, tmp_path, capsys):
    pngs = [str(path) for path in export_pngs(real_test_images(10), tmp_path / "pngs")]
    capsys.readouterr()
    assert cli.main(["payload", *pngs]) == 0  # the README's request.json
    body = capsys.readouterr().out.encode()
    assert cli.main(["predict", *pngs, "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)["predictions"]

    request = urllib.request.Request(f"{served_champion}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        served = np.asarray(json.loads(response.read())["predictions"])

    assert served.shape == (10, 10)
    assert list(served.argmax(axis=1)) == [p["top"][0]["index"] for p in predicted]
    for row, prediction in zip(served, predicted):
        assert [row[c["index"]] for c in prediction["top"]] == pytest.approx(
            [c["probability"] for c in prediction["top"]], abs=1e-5)
