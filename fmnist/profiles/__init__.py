"""Named parameter profiles (the YAML files beside this module) as `dvc exp run` flags.

A profile is a flat map of dotted param names to values, so an experiment run with one records
exactly which params it changed:  dvc exp run -n fast $(fmnist profile fast)

`default` is no file: it sets every param any profile (or a fine-tune) sets back to its value in the committed
params.yaml, so `dvc exp run $(fmnist profile default)` runs the default even when an earlier
`dvc exp run` left a profile's values in the workspace's params.yaml.
"""
from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fmnist.errors import ParamsError

# Package data, so `fmnist profile` works from a wheel or a non-editable install too.
PROFILES = resources.files(__name__)


DEFAULT = "default"
STICKY = ("train.init_from",)  # set by fine-tuning, not by a profile


def _files() -> list[str]:
    return sorted(entry.name.removesuffix(".yaml") for entry in PROFILES.iterdir()
                  if entry.name.endswith(".yaml"))


def available() -> list[str]:
    return sorted([DEFAULT, *_files()])


def load(name: str, params_file: Path = Path("params.yaml")) -> dict[str, object]:
    if name == DEFAULT:
        return defaults(committed_params(params_file))
    path = PROFILES / f"{name}.yaml"
    if not path.is_file():
        raise ParamsError(f"no profile {name!r}; choose one of {available()}")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def committed_params(params_file: Path = Path("params.yaml")) -> dict[str, Any]:
    """params.yaml as git HEAD holds it (the workspace's copy may hold an experiment's values),
    else as it is on disk (no git, or a file not yet committed)."""
    try:
        text = subprocess.run(["git", "show", f"HEAD:./{params_file.name}"], capture_output=True,
                              text=True, check=True, timeout=30,
                              cwd=params_file.parent).stdout
    except (OSError, subprocess.SubprocessError):
        try:
            text = params_file.read_text(encoding="utf-8")
        except OSError as error:
            raise ParamsError(f"profile {DEFAULT}: cannot read {params_file} "
                              f"({error.strerror}); run from the repo root") from error
    return yaml.safe_load(text) or {}


def defaults(params: dict[str, Any]) -> dict[str, object]:
    """Every param some profile sets, and train.init_from (a fine-tune's parent sticks the
    same way), at its value in `params`, in the profiles' order."""
    keys = dict.fromkeys([*(key for name in _files() for key in load(name)), *STICKY])
    values: dict[str, object] = {}
    for dotted in keys:
        node: Any = params
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                raise ParamsError(f"params.yaml has no {dotted}, which a profile sets")
            node = node[key]
        values[dotted] = node
    return values


def apply(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested params dict, as `dvc exp run -S` would; returns params."""
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[leaf] = value
    return params


def set_flags(overrides: dict[str, object]) -> list[str]:
    """{'train.epochs': 8} -> ['-S', 'train.epochs=8'] (YAML-encoded values, as -S parses them)."""
    flags = []
    for key, value in overrides.items():
        encoded = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        flags += ["-S", f"{key}={encoded}"]
    return flags
