"""fmnist.data.sources' last step: the verified download replaces data/raw by a rename. When that
rename fails, the previous data/raw is what stays (put back if it was already moved aside), no
scratch folder is left, and the stage says so in one named line instead of an OSError
traceback. The failures are real ones, provoked without root: data/raw a symlink to a disk that
is not mounted (the rename meets a non-directory), and the download's folder gone before the
rename (e.g. removed by a cleaner)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from fmnist.data import sources
from fmnist.errors import DataLandingError
from stages import download


def entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("source", ["local", "auto"])
def test_a_failed_final_rename_keeps_data_raw_and_says_so_in_one_line(dvc_workspace, tmp_path,
                                                                    monkeypatch, capsys, source):
    for name in [name for name in os.environ if name.startswith("KAGGLE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no Kaggle credentials: auto uses local
    # auto must stop at the landing failure, not try the next source: a dead port if it did.
    root = dvc_workspace(**{"download.source": source, "download.url": "http://127.0.0.1:9/"})
    unmounted = tmp_path / "usb-disk" / "fashion-mnist"
    (root / "data").mkdir()
    (root / "data" / "raw").symlink_to(unmounted, target_is_directory=True)

    with pytest.raises(SystemExit) as exit_info:
        download.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()  # auto first says it skips Kaggle
    assert [line for line in err if "error" in line.lower()] == err[-1:], err
    assert err[-1].startswith("error: DataLandingError: cannot put the download in place at "
                              "data/raw (Not a directory); data/raw is as it was"), err
    assert not any("trying the next source" in line for line in err), err
    assert os.readlink(root / "data" / "raw") == str(unmounted)  # the symlink, untouched
    assert entries(root / "data") == ["raw"]  # no staging or retired folder left behind


def test_a_rename_that_fails_after_data_raw_moved_aside_puts_it_back(tmp_path):
    raw_dir = tmp_path / "data" / "raw"
    raw_dir.mkdir(parents=True)
    previous = {"fashion-mnist_train.csv": "label,pixel1\n", "manifest.json": "{}"}
    for name, content in previous.items():
        (raw_dir / name).write_text(content)
    vanished = tmp_path / "data" / ".raw-0123abcd"  # the download's folder, gone before the swap

    with pytest.raises(DataLandingError, match=r"cannot put the download in place at "
                                               r".*data/raw \(No such file or directory\); "
                                               r".*data/raw is as it was"):
        sources._swap_into_place(vanished, raw_dir)
    assert {path.name: path.read_text() for path in raw_dir.iterdir()} == previous
    assert entries(tmp_path / "data") == ["raw"]  # the moved-aside copy went back, not beside it
