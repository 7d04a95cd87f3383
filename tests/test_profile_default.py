"""`fmnist profile default`: the committed defaults as -S flags, undoing any profile's values."""
from __future__ import annotations

import shlex
import subprocess

import yaml

from fmnist import cli, profiles
from tests.conftest import project_params


def git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, timeout=30)


def test_default_restores_the_committed_values_an_experiment_left_behind(tmp_path):
    params = project_params()
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    git(tmp_path, "init", "-q")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "add", "params.yaml")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "params")
    # What `dvc exp run $(fmnist profile fast)` and a fine-tune leave in the workspace:
    left_behind = profiles.apply(project_params(), {**profiles.load("fast"),
                                                    "train.init_from": "models:/m@champion"})
    params_file.write_text(yaml.safe_dump(left_behind))

    restored = profiles.load("default", params_file)
    assert set(profiles.load("fast")) | {"train.init_from"} <= set(restored)
    assert profiles.apply(left_behind, restored) == params


def test_default_without_git_reads_params_yaml_as_it_is(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(project_params()))
    assert profiles.load("default", tmp_path / "params.yaml")["filters"] == \
        project_params()["filters"]


def test_the_command_prints_flags_for_the_listed_default(capsys, monkeypatch, tmp_path):
    assert "default" in profiles.available()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(project_params()))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["profile", "default"]) == 0
    flags = shlex.split(capsys.readouterr().out)  # as the shell hands them to dvc
    assert flags[0::2] == ["-S"] * (len(flags) // 2)
    assert f"filters={project_params()['filters']}" in flags[1::2]
    assert "train.init_from=''" in flags[1::2]


def test_default_outside_a_workspace_is_one_named_error(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["profile", "default"]) == 1
    assert capsys.readouterr().err.startswith("error: ParamsError: profile default: cannot read")
