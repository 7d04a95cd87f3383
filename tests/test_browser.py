"""The web demo and the MLflow UI in a real browser: Playwright drives Debian's chromium
(installed by `make setup` / .ci/run through apt; nothing is downloaded at test time)."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from fmnist import tracking
from fmnist.server import free_port, stop_group
from fmnist.serving import predict
from stages import register
from tests.conftest import REPO_ROOT, wait_for_url
from tests.registry_helpers import export_pngs, log_candidate, real_test_images, tiny_model

SCREENSHOT = os.environ.get("FMNIST_DEMO_SCREENSHOT")  # also save the demo's screenshot there

pytestmark = pytest.mark.slow


def restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(command: list[str], root: Path, url: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "DVC_ROOT": str(root),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=restore_sigint)
    wait_for_url(url, process, seconds=180)
    return process


def test_demo_answers_an_upload_with_the_models_prediction(dvc_workspace, tmp_path, browser):
    root = dvc_workspace()
    log_candidate(0.9, 0.9)
    register.main()
    images = real_test_images(3)
    pngs = export_pngs(images, tmp_path / "pngs")
    expected = [predict.top_classes(row)[0]["class"]
                for row in predict.probabilities(tiny_model(), images)]
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start([sys.executable, "-m", "fmnist.cli", "demo", "--port", str(port)], root, url)
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(url)
        answer = page.locator("#answer")
        assert "version 1 (alias champion)" in page.content()

        page.set_input_files("#upload input[type=file]", str(pngs[0]))
        page.wait_for_function("() => document.querySelector('#answer').innerText"
                               ".includes('Prediction:')", timeout=60_000)
        text = answer.inner_text()
        assert f"Prediction: {expected[0]}" in text
        assert "fashion-mnist-cnn version 1 (alias champion)" in text
        assert page.locator("#gradcam img").count() == 1
        # A blank map is jet's dark blue over the image everywhere; a real one runs warm.
        heat = np.asarray(Image.open(io.BytesIO(page.locator("#gradcam img").screenshot()))
                          .convert("RGB")).astype(int)
        warm = (heat[..., 0] > heat[..., 2] + 60).mean()
        assert warm > 0.01, f"the demo's Grad-CAM is {warm:.2%} warm: a blank map"
        page.screenshot(path=str(tmp_path / "demo.png"))
        if SCREENSHOT:
            page.screenshot(path=SCREENSHOT)

        # Bad uploads: one friendly line each, no stack trace.
        (tmp_path / "notes.png").write_text("not an image")
        (tmp_path / "empty.png").write_bytes(b"")
        for bad, says in ((tmp_path / "notes.png", "not a PNG/JPEG image"),
                          (tmp_path / "empty.png", "is empty")):
            # The file box shows the previous upload: clear it to get the drop zone back.
            page.locator("#upload button[aria-label*='Clear']").first.click()
            page.set_input_files("#upload input[type=file]", str(bad))
            page.wait_for_function("(says) => document.querySelector('#answer').innerText"
                                   ".includes(says)", arg=says, timeout=60_000)
            text = answer.inner_text()
            assert "Cannot read this file" in text and "Traceback" not in page.content()
            assert str(tmp_path) not in text

        # A random test image takes the upload's path through the same code.
        page.locator("#random").click()
        page.wait_for_function("() => document.querySelector('#answer').innerText"
                               ".includes('Prediction:')", timeout=60_000)
        assert "test-image-" in page.locator("#upload").inner_text()
    finally:
        stop_group(server, timeout=30)


def test_mlflow_ui_runs_page_lists_both_runs_with_their_accuracy(dvc_workspace, browser):
    root = dvc_workspace()
    first, second = log_candidate(0.8123, 0.8011), log_candidate(0.8456, 0.8344)
    client = MlflowClient(tracking.tracking_uri())
    experiment = client.get_run(first).info.experiment_id
    names = [client.get_run(run_id).info.run_name for run_id in (first, second)]
    port = free_port()
    server = start(["mlflow", "ui", "--backend-store-uri", tracking.tracking_uri(),
                    "--host", "127.0.0.1", "--port", str(port)], root,
                   f"http://127.0.0.1:{port}/health")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        # Straight to the training runs table (3.17 opens an experiment on a traces overview).
        page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs")
        for name in names:
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        # The compare view: both runs with their accuracies side by side (3 decimals there).
        runs = ",".join(f'"{run_id}"' for run_id in (first, second))
        page.goto(f"http://127.0.0.1:{port}/#/compare-runs?runs=[{runs}]"
                  f"&experiments=[\"{experiment}\"]")
        page.get_by_text("Run details").first.wait_for(timeout=60_000)
        page.get_by_text("test_accuracy").first.wait_for(timeout=60_000)
        text = page.inner_text("body")
        metrics = text[text.rindex("Metrics"):]
        assert all(value in metrics for value in ("0.812", "0.846", "0.801", "0.834"))
        assert all(name in text for name in names)
    finally:
        stop_group(server, timeout=30)
