"""Shared fixtures: tiny generated data sets and throw-away DVC repos."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import yaml

from fmnist import profiles

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
CHROMIUM = Path("/usr/bin/chromium")

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Stage commands (`python -m stages.x`) and `dvc` itself must come from the test interpreter's env.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def tail(path: Path | None, chars: int = 3000) -> str:
    """The end of a child's log file (empty when there is none yet)."""
    return path.read_text(errors="replace")[-chars:] if path and path.exists() else ""


def _stop(process: subprocess.Popen) -> None:
    """SIGKILL the child and its process group (it was started in its own session)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
        process.wait()


def run_child(args: list[str], *, timeout: float, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`subprocess.run` for a child (and its children) that may hang: output captured as text;
    past `timeout` seconds the whole process group is killed and the test fails showing what the
    child had written to stdout and stderr."""
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(process)
        stdout, stderr = process.communicate()
        pytest.fail(f"{args} did not finish within {timeout:g} s\n--- stdout:\n{stdout[-3000:]}"
                    f"\n--- stderr:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def wait_for_line(process: subprocess.Popen, log: Path, text: str, seconds: float,
                  stderr_log: Path | None = None) -> str:
    """Return the first line of `log` (the child's output file) that contains `text`; fail the
    test, showing the log's tail and `stderr_log`'s, when the child exits first or `seconds`
    pass. Stopping a child still running is the caller's (a `finally`), as only it knows how."""
    deadline = time.monotonic() + seconds
    while True:
        lines = [line for line in tail(log, chars=10**9).splitlines() if text in line]
        if lines:
            return lines[0]
        if process.poll() is not None or time.monotonic() > deadline:
            why = (f"exited with {process.returncode}" if process.poll() is not None
                   else f"wrote no {text!r} within {seconds:g} s")
            pytest.fail(f"{process.args} {why}\n--- {log.name}:\n{tail(log)}"
                        + (f"\n--- {stderr_log.name}:\n{tail(stderr_log)}" if stderr_log else ""))
        time.sleep(0.2)


def wait_for_url(url: str, process: subprocess.Popen, seconds: float,
                 log: Path | None = None) -> None:
    """Return once `url` answers 2xx; fail the test (with the server's log, if any) when the
    process exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited with {process.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:  # refused, reset, timed out, or an HTTP error status
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds:g} s:\n{tail(log)}")


def assert_png_has_content(path: Path) -> None:
    """A figure that is not one flat colour (an empty canvas, an all-zero heat map)."""
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert pixels.std() > 5, f"{path.name} is (nearly) one flat colour: std {pixels.std():.2f}"


def make_dataset(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy uint8 images, `per_class` of each of the 10 classes, classes interleaved; class k
    has a bright bar at rows 2k+4..2k+5, so a model has something real to learn."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
    images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
    for index, label in enumerate(labels):
        images[index, 2 * label + 4: 2 * label + 6, 4:24] = rng.integers(200, 256)
    return images, labels


def write_tiny_splits(root: Path, per_class: int = 12, **manifest: Any) -> dict:
    """What preprocess leaves for train: generated train/val/test splits and a manifest."""
    from fmnist import jsonfiles
    from fmnist.data import formats, splits

    jsonfiles.write_json(root / "data" / "processed" / formats.MANIFEST,
                         {"fingerprint": "f" * 64, **manifest})
    images, labels = make_dataset(per_class)
    parts = splits.split_train_val(splits.scale(images), labels, 0.25, seed=0)
    test_images, test_labels = make_dataset(per_class=5, seed=3)
    parts["test"] = (splits.scale(test_images), test_labels)
    for name, (split_images, split_labels) in parts.items():
        splits.save_split(name, split_images, split_labels, root / "data" / "processed")
    return parts


@pytest.fixture(autouse=True)
def float32_policy_afterwards():
    """Keras' dtype policy is process-global and `train.precision` sets it: put it back so a
    test that trained in bf16 cannot change the next one's models."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].config.set_dtype_policy("float32")


@pytest.fixture
def dataset() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return make_dataset


def project_params(**overrides: Any) -> dict[str, Any]:
    """The project's params.yaml with dotted-key overrides, e.g. {"train.epochs": 1}."""
    return profiles.apply(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()), overrides)


def conv_widths(model) -> list[int]:
    """The width of each Conv2D layer of a Keras model, in order."""
    import keras  # here, not at the top: importing keras starts TensorFlow

    return [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True, timeout=300).stdout


@pytest.fixture
def dvc_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """An empty git + DVC repo as the cwd, with the project's params (overridable), so a stage's
    `main()` runs in-process exactly as DVC would run it. MLflow goes to the repo's own mlruns/."""

    def make(name: str = "workspace", **overrides: Any) -> Path:
        root = tmp_path / name
        root.mkdir()
        git("init", "-q", cwd=root)
        subprocess.run(["dvc", "init", "-q"], cwd=root, check=True, timeout=300)
        (root / "params.yaml").write_text(yaml.safe_dump(project_params(**overrides)))
        monkeypatch.chdir(root)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.setenv("DVC_ROOT", str(root))
        return root

    return make


@pytest.fixture
def browser() -> Iterator:
    """Debian's chromium driven by Playwright (installed by `make test` through apt; nothing is
    downloaded at test time)."""
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: `apt-get install chromium` (make setup does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        yield launched
        launched.close()
