"""The download stage against the real Debian files, a fake Zalando mirror and a fake Kaggle, all
through the real clients (shutil, pooch, KaggleApi)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fmnist import jsonfiles
from fmnist.data import formats
from fmnist.data.sources import PINNED_SHA256, download, kaggle_credentials_available
from fmnist.errors import ChecksumError, DataFormatError, DataSourceError, ParamsError
from tests.conftest import run_child
from tests.fake_servers import KAGGLE_HOST, NO_PROXY_ENV, fake_http_server, fake_kaggle

REPO = Path(__file__).resolve().parents[1]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASET = "zalando-research/fashionmnist"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real Kaggle credentials or proxies leak in; cwd is a scratch folder."""
    for name in list(os.environ):
        if name.startswith("KAGGLE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name, value in NO_PROXY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "raw"


@pytest.fixture
def tiny_csv_dir(tmp_path: Path) -> Path:
    """Kaggle-layout CSVs of 20 train / 10 test random images, plus a file Kaggle's zip also has."""
    folder = tmp_path / "kaggle-files"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, rows in (("train", 20), ("test", 10)):
        images = rng.integers(0, 256, size=(rows, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=rows, dtype=np.uint8)
        formats.write_csv(folder / formats.CSV_FILES[split], images, labels)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"not wanted")
    return folder


def copy_debian(tmp_path: Path, tamper: str | None = None) -> Path:
    """A copy of the Debian files; `tamper` names one whose middle byte gets flipped."""
    folder = tmp_path / "copy"
    shutil.copytree(DEBIAN_DIR, folder)
    if tamper:
        data = bytearray((folder / tamper).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / tamper).write_bytes(bytes(data))
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def assert_real_idx_manifest(manifest: dict, raw_dir: Path, source: str) -> None:
    assert manifest["source"] == source and manifest["format"] == "idx"
    assert manifest["rows"] == {"train": 60000, "test": 10000}
    assert {entry["name"]: entry["sha256"] for entry in manifest["files"]} == PINNED_SHA256
    assert jsonfiles.read_json(raw_dir / formats.MANIFEST) == manifest


def test_local_real_data_lands_verified_and_replaces_stale_csv(raw_dir: Path) -> None:
    raw_dir.mkdir(parents=True)
    (raw_dir / formats.CSV_FILES["train"]).write_text("stale from an earlier kaggle run\n")

    manifest = download({"source": "local", "local_dir": str(DEBIAN_DIR)}, raw_dir)

    assert_real_idx_manifest(manifest, raw_dir, "local")
    assert manifest["fingerprint"] == formats.fingerprint(formats.read_raw_frames(raw_dir))
    assert sorted(os.listdir(raw_dir)) == sorted([*PINNED_SHA256, formats.MANIFEST])
    assert [p.name for p in raw_dir.parent.iterdir()] == ["raw"]  # no staging left behind


def test_local_corrupt_copy_raises_and_keeps_previous_output(
    tmp_path: Path, raw_dir: Path, tiny_csv_dir: Path
) -> None:
    shutil.copytree(tiny_csv_dir, raw_dir)  # a previous, good run's output
    before = snapshot(raw_dir)
    corrupt = copy_debian(tmp_path, tamper="t10k-labels-idx1-ubyte.gz")

    with pytest.raises(ChecksumError, match=r"t10k-labels-idx1-ubyte\.gz.*8d3605d196f4"):
        download({"source": "local", "local_dir": str(corrupt)}, raw_dir)

    assert snapshot(raw_dir) == before
    assert [p.name for p in raw_dir.parent.iterdir()] == ["raw"]


def test_local_missing_dir_says_how_to_install(tmp_path: Path, raw_dir: Path) -> None:
    with pytest.raises(DataSourceError, match="apt-get install dataset-fashion-mnist"):
        download({"source": "local", "local_dir": str(tmp_path / "nowhere")}, raw_dir)
    assert not raw_dir.exists()


def test_url_source_fetches_with_pooch(tmp_path: Path, raw_dir: Path) -> None:
    with fake_http_server(DEBIAN_DIR) as base_url:
        manifest = download({"source": "url", "url": base_url}, raw_dir)
    assert_real_idx_manifest(manifest, raw_dir, "url")


def test_url_tampered_file_raises_checksum_error(tmp_path: Path, raw_dir: Path) -> None:
    mirror = copy_debian(tmp_path, tamper="train-labels-idx1-ubyte.gz")
    with fake_http_server(mirror) as base_url:
        with pytest.raises(ChecksumError, match=r"train-labels-idx1-ubyte\.gz"):
            download({"source": "url", "url": base_url}, raw_dir)
    assert not raw_dir.exists()


def test_url_missing_file_is_a_data_source_error(tmp_path: Path, raw_dir: Path) -> None:
    with fake_http_server(tmp_path) as base_url:
        with pytest.raises(DataSourceError, match="404"):
            download({"source": "url", "url": base_url}, raw_dir)


def test_kaggle_source_downloads_csvs_without_leaking_the_key(
    raw_dir: Path, tiny_csv_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    with fake_kaggle(tiny_csv_dir) as fake:
        for name, value in fake.env.items():
            monkeypatch.setenv(name, value)
        # Random images, so the content check (tests/test_kaggle_fingerprint.py) is off here.
        manifest = download({"source": "kaggle", "kaggle_dataset": DATASET, "verify_content": False},
                            raw_dir)

    [asked] = fake.download_requests()
    assert asked.body == {"ownerSlug": "zalando-research", "datasetSlug": "fashionmnist"}
    assert asked.authorized and asked.host == KAGGLE_HOST  # kaggle's own LOCAL endpoint
    assert sorted(os.listdir(raw_dir)) == sorted([*formats.CSV_FILES.values(), formats.MANIFEST])
    frames = formats.read_raw_frames(raw_dir)
    assert {split: len(frame) for split, frame in frames.items()} == {"train": 20, "test": 10}
    assert manifest["format"] == "csv" and manifest["rows"] == {"train": 20, "test": 10}
    assert manifest["fingerprint"] == formats.fingerprint(frames)
    for entry in manifest["files"]:
        assert entry["sha256"] == formats.sha256_file(tiny_csv_dir / entry["name"])
    output = capfd.readouterr()
    for text in (output.out, output.err, (raw_dir / formats.MANIFEST).read_text()):
        assert fake.key not in text


def test_kaggle_csv_with_wrong_header_is_a_format_error(
    raw_dir: Path, tiny_csv_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tiny_csv_dir / formats.CSV_FILES["test"]).write_text("label,pixel_1\n3,0\n")
    with fake_kaggle(tiny_csv_dir) as fake:
        for name, value in fake.env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(DataFormatError, match="fashion-mnist_test.csv"):
            download({"source": "kaggle", "kaggle_dataset": DATASET}, raw_dir)
    assert not raw_dir.exists()


def test_kaggle_403_is_a_clean_data_source_error(
    raw_dir: Path, tiny_csv_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    with fake_kaggle(tiny_csv_dir, fail_status=403) as fake:
        for name, value in fake.env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(DataSourceError, match=r"HTTP 403") as raised:
            download({"source": "kaggle", "kaggle_dataset": DATASET}, raw_dir)
    assert fake.download_requests(), "the fake server was never asked"
    assert fake.key not in str(raised.value)
    assert fake.key not in "".join(capfd.readouterr())


@pytest.mark.parametrize(
    "env, kaggle_json, expected",
    [
        ({}, None, False),
        ({"KAGGLE_USERNAME": "u"}, None, False),
        ({"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}, None, True),
        ({"KAGGLE_API_TOKEN": "t"}, None, True),
        ({}, {"username": "u", "key": "k"}, True),
        ({"KAGGLE_KEY": "k"}, {"username": "u"}, True),
        ({}, {"username": "u"}, False),
    ],
)
def test_kaggle_credentials_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict, kaggle_json: dict | None, expected: bool
) -> None:
    config_dir = tmp_path / "kaggle-config"
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if kaggle_json is not None:
        config_dir.mkdir()
        (config_dir / "kaggle.json").write_text(json.dumps(kaggle_json))
    assert kaggle_credentials_available() is expected


def test_auto_without_kaggle_credentials_uses_local(
    raw_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert not kaggle_credentials_available()
    manifest = download({"source": "auto", "local_dir": str(DEBIAN_DIR), "url": "http://unused/"}, raw_dir)
    assert manifest["source"] == "local"
    assert "skipping kaggle" in capfd.readouterr().err


def test_auto_falls_back_to_local_when_kaggle_fails(
    raw_dir: Path, tiny_csv_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    params = {"source": "auto", "kaggle_dataset": DATASET, "local_dir": str(DEBIAN_DIR), "url": "http://unused/"}
    with fake_kaggle(tiny_csv_dir, fail_status=403) as fake:
        for name, value in fake.env.items():
            monkeypatch.setenv(name, value)
        manifest = download(params, raw_dir)
    assert fake.download_requests(), "kaggle was not tried first"
    assert_real_idx_manifest(manifest, raw_dir, "local")
    err = capfd.readouterr().err
    assert "kaggle failed" in err and "HTTP 403" in err and "Traceback" not in err


def test_auto_all_sources_failing_lists_each(
    tmp_path: Path, raw_dir: Path, tiny_csv_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_kaggle(tiny_csv_dir, fail_status=404) as fake, fake_http_server(tmp_path) as empty_mirror:
        for name, value in fake.env.items():
            monkeypatch.setenv(name, value)
        params = {"source": "auto", "kaggle_dataset": DATASET, "local_dir": str(tmp_path / "nowhere"), "url": empty_mirror}
        with pytest.raises(DataSourceError) as raised:
            download(params, raw_dir)
    message = str(raised.value)
    assert "kaggle: " in message and "HTTP 404" in message
    assert "local: " in message and "apt-get install" in message
    assert "url: " in message
    assert not raw_dir.exists()


def test_unknown_source_is_a_params_error(raw_dir: Path) -> None:
    with pytest.raises(ParamsError, match="'ftp'"):
        download({"source": "ftp"}, raw_dir)


def test_stage_exits_cleanly_on_bad_params(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(REPO)}
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, timeout=60)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True, env=env,
                   timeout=300)
    (repo / "params.yaml").write_text("download:\n  source: ftp\n")

    result = run_child([sys.executable, "-m", "stages.download"], cwd=repo, env=env, timeout=300)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: ParamsError: download.source is 'ftp'; use one of auto, kaggle, local, url"
    ]
    assert not (repo / "data" / "raw").exists()
