"""Stage outputs are written atomically: a writer that fails or is killed midway leaves the
previous file whole (or none), never a truncated one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from fmnist import plots
from fmnist.jsonfiles import replacing, write_json
from fmnist.model.evaluation import write_predictions
from tests.conftest import REPO_ROOT


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_a_csv_writer_failing_midway_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "test_predictions.csv"
    write_predictions(np.array([0, 1]), np.array([0, 1]), path)
    before = path.read_bytes()
    # The third row names class 99: csv has written the first rows when the IndexError comes.
    with pytest.raises(IndexError):
        write_predictions(np.array([0, 1, 2]), np.array([0, 1, 99]), path)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_a_figure_that_fails_to_draw_leaves_the_previous_png_whole(tmp_path):
    path = tmp_path / "curves.png"
    figure = Figure()
    figure.subplots().plot([0, 1], [1, 0])
    plots.save(figure, path)
    before = path.read_bytes()
    broken = Figure()
    broken.subplots().set_title(r"$\notacommand$")  # mathtext fails when drawn
    with pytest.raises(ValueError):
        plots.save(broken, path)
    assert path.read_bytes() == before and before.startswith(b"\x89PNG")
    assert leftovers(tmp_path) == []


def test_outputs_get_the_usual_permissions_not_the_temp_files_private_ones(tmp_path):
    umask = os.umask(0o022)
    try:
        write_json(tmp_path / "metrics.json", {"test_accuracy": 0.9})
    finally:
        os.umask(umask)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644


def test_a_writer_killed_midway_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "classification_report.txt"
    path.write_text("the previous report\n")
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\nfrom fmnist.jsonfiles import replacing\n"
         f"with replacing({str(path)!r}) as temporary:\n"
         "    with open(temporary, 'w') as handle:\n"
         "        handle.write('half a rep')\n"
         "        handle.flush()\n"
         "        print('writing', flush=True)\n"
         "        sys.stdin.readline()\n"],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        line = child.stdout.readline()  # the child is inside the write
        assert line == "writing\n", child.stderr.read()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert path.read_text() == "the previous report\n"


def test_replacing_swaps_in_the_new_file_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "split.npz"
    with replacing(path) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".npz"
        assert not path.exists()
        np.savez(temporary, labels=np.arange(3))
    with np.load(path) as arrays:
        assert arrays["labels"].tolist() == [0, 1, 2]
    assert leftovers(tmp_path) == []
