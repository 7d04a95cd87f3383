"""Named parameter profiles (the YAML files beside this module) as `dvc exp run` flags.

A profile is a flat map of dotted param names to values, so an experiment run with one records
exactly which params it changed:  dvc exp run -n fast $(fmnist profile fast)
"""
from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from fmnist.errors import ParamsError

# Package data, so `fmnist profile` works from a wheel or a non-editable install too.
PROFILES = resources.files(__name__)


def available() -> list[str]:
    return sorted(entry.name.removesuffix(".yaml") for entry in PROFILES.iterdir()
                  if entry.name.endswith(".yaml"))


def load(name: str) -> dict[str, object]:
    path = PROFILES / f"{name}.yaml"
    if not path.is_file():
        raise ParamsError(f"no profile {name!r}; choose one of {available()}")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


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
