"""Named parameter profiles (profiles/<name>.yaml) as `dvc exp run` flags.

A profile is a flat map of dotted param names to values, so an experiment run with one records
exactly which params it changed:  dvc exp run -n fast $(fmnist profile fast)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stages.errors import ParamsError

PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"


def available() -> list[str]:
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def load(name: str) -> dict[str, object]:
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        raise ParamsError(f"no profile {name!r}; choose one of {available()}")
    return yaml.safe_load(path.read_text()) or {}


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
