"""Profiles (named param sets), the GPU profile under the JAX backend, and determinism."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import yaml

from fmnist import config, jsonfiles, profiles
from fmnist.data import formats, splits
from fmnist.model.architectures import build_model
from fmnist.model.evaluation import read_per_class
from fmnist.model.training import hyper_params
from stages import evaluate, train
from tests.conftest import REAL_DATA_DIR, REPO_ROOT, conv_widths, project_params, run_child


@pytest.mark.parametrize("name", profiles.available())
def test_profile_only_sets_params_that_exist(name):
    """A typo in a profile would make `-S` add a stray key and leave the real one unchanged."""
    assert set(profiles.load(name)) <= set(config.flatten(project_params()))


def test_set_flags_round_trip_through_yaml():
    flags = profiles.set_flags({"train.augment.flip": False, "dropout": 0.25,
                                "train.model": "baseline"})
    assert flags == ["-S", "train.augment.flip=false", "-S", "dropout=0.25",
                     "-S", "train.model=baseline"]
    parsed = {flag.split("=")[0]: yaml.safe_load(flag.split("=")[1]) for flag in flags[1::2]}
    assert parsed == {"train.augment.flip": False, "dropout": 0.25, "train.model": "baseline"}


def test_expected_profiles_exist():
    assert {"baseline", "fast", "gpu"} <= set(profiles.available())


HYPER_KEYS = ("filters", "stem_filters", "kernel_size", "dense_units", "dropout")


@pytest.mark.parametrize("name", profiles.available())
def test_each_profile_builds_what_its_yaml_says(name):
    """The model the pipeline builds under a profile is the one its yaml describes: every
    architecture key the yaml sets wins over params.yaml's (e.g. the default's wide stem must not
    leak into a profile measured without one); only keys it leaves out come from params.yaml."""
    profile, base = profiles.load(name), project_params()
    params = profiles.apply(project_params(), profile)
    built = build_model(params["train"]["model"], **hyper_params(params))
    described = build_model(profile.get("train.model", base["train"]["model"]),
                            **{key: profile.get(key, base[key]) for key in HYPER_KEYS})
    assert built.name == described.name  # the architecture
    assert conv_widths(built) == conv_widths(described)
    assert built.count_params() == described.count_params()


def real_slice(per_class_train: int, test_rows: int) -> dict:
    """A small slice of the real data, already preprocessed."""
    frames = formats.read_raw_frames(REAL_DATA_DIR)
    images, labels = formats.from_frame(frames["train"])
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class_train] for c in range(10)])
    parts = splits.split_train_val(splits.scale(images[keep]), labels[keep], 0.2, 0)
    test_images, test_labels = formats.from_frame(frames["test"].iloc[:test_rows])
    parts["test"] = (splits.scale(test_images), test_labels)
    return parts


def write_processed(parts: dict) -> None:
    for name, (images, labels) in parts.items():
        splits.save_split(name, images, labels)
    jsonfiles.write_json(config.PROCESSED_DIR / formats.MANIFEST, {"fingerprint": "slice"})


def test_same_seed_same_cpu_gives_identical_results(dvc_workspace):
    """Determinism: two trainings with one seed give the same test predictions, bit for bit."""
    parts = real_slice(per_class_train=50, test_rows=300)
    outcomes = []
    for attempt in ("first", "second"):
        root = dvc_workspace(attempt, **{"train.epochs": 2, "train.batch_size": 64, "filters": 8})
        write_processed(parts)
        train.main()
        evaluate.main()
        outcomes.append(((root / "metrics" / "evaluate.json").read_text(),
                         (root / "metrics" / "test_predictions.csv").read_text()))
    assert outcomes[0] == outcomes[1]


@pytest.mark.slow
def test_gpu_profile_trains_under_jax_on_cpu(dvc_workspace):
    """The GPU profile is plain Keras: it must also run on a CPU with KERAS_BACKEND=jax (a GPU
    is never required). Small batches so a few epochs on a small slice make real progress."""
    overrides = {**profiles.load("gpu"), "train.epochs": 3, "train.batch_size": 32}
    root = dvc_workspace(**overrides)
    write_processed(real_slice(per_class_train=60, test_rows=200))
    env = {**os.environ, "KERAS_BACKEND": "jax", "DVC_ROOT": str(root),
           "PYTHONPATH": str(REPO_ROOT)}  # the stages live in the repo, not the workspace
    for stage in ("train", "evaluate"):
        result = run_child([sys.executable, "-m", f"stages.{stage}"], cwd=root, env=env,
                           timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    history = (root / "metrics" / "train_history.csv").read_text().splitlines()
    header, rows = history[0].split(","), [list(map(float, line.split(","))) for line in history[1:]]
    losses = [row[header.index("loss")] for row in rows]
    assert len(rows) == 3 and losses[-1] < losses[0]
    per_class = read_per_class(root / "metrics" / "per_class.csv")
    assert sum(c["support"] for c in per_class.values()) == 200
    from mlflow.tracking import MlflowClient

    from fmnist import tracking

    run_id = jsonfiles.read_json(tracking.RUN_FILE)["run_id"]
    run = MlflowClient(tracking.tracking_uri()).get_run(run_id)
    assert run.data.tags["keras.backend"] == "jax"
    assert run.data.params["filters"] == "64"


def test_cli_prints_a_profile_as_exp_run_flags(capsys):
    from fmnist import cli

    assert cli.main(["profile", "fast"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[::2] == ["-S"] * len(profiles.load("fast"))
    # What `-S key=value` would set, read back the way DVC reads it: the profile, key for key.
    assert {flag.split("=", 1)[0]: yaml.safe_load(flag.split("=", 1)[1])
            for flag in printed[1::2]} == profiles.load("fast")
    assert cli.main(["profile", "no-such-profile"]) == 1
    assert "ParamsError" in capsys.readouterr().err
