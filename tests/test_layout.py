"""The layout contract: stages/ holds the six steps only, the library never imports a stage, and
dvc.yaml declares every project file each stage imports, so the cache can never hide a code edit."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, run_child

PIPELINE = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
STEPS = ("download", "validate", "preprocess", "train", "evaluate", "register")
PROJECT_PACKAGES = ("fmnist", "stages")


def module_file(name: str) -> Path | None:
    """The source file of a project module (package __init__ or plain module), else None."""
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Project modules one file imports, anywhere in it (function-level imports too). For
    `from pkg import name`, name counts when it is a module of its own."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names
                     if name.split(".")[0] in PROJECT_PACKAGES and module_file(name))
    return found


def import_closure(module: str) -> set[Path]:
    """Every project file that `python -m module` executes: the module, what it imports
    transitively, and each package's __init__ on the way."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        pending += [".".join(parts[:depth]) for depth in range(1, len(parts))]  # parents
        pending += imported_modules(module_file(name))
    return {module_file(name).relative_to(REPO_ROOT) for name in seen}


def stage_module(stage: str) -> str:
    return PIPELINE[stage]["cmd"].removeprefix("python -m ").split()[0]


def test_stages_folder_holds_the_six_steps_only():
    assert {path.stem for path in (REPO_ROOT / "stages").glob("*.py")} == {*STEPS, "__init__"}
    assert list(PIPELINE) == list(STEPS)
    assert all(stage_module(stage) == f"stages.{stage}" for stage in STEPS)


def test_nothing_imports_a_stage():
    """Stages are entry points, not a library (tests may still call a stage's main)."""
    importers = [path.relative_to(REPO_ROOT) for folder in ("fmnist", "bench")
                 for path in (REPO_ROOT / folder).rglob("*.py")
                 if any(name.split(".")[0] == "stages" for name in imported_modules(path))]
    assert importers == []


def test_closure_sees_through_function_level_imports():
    """Guards the checker itself: cli imports registry inside a function."""
    closure = import_closure("fmnist.cli")
    assert Path("fmnist/registry.py") in closure and Path("fmnist/__init__.py") in closure


@pytest.mark.parametrize("stage", STEPS)
def test_dvc_deps_are_exactly_the_stage_import_closure(stage):
    declared = {Path(dep) for dep in PIPELINE[stage]["deps"]}
    declared_code = {dep for dep in declared if dep.suffix == ".py"}
    closure = import_closure(stage_module(stage))
    assert closure - declared == set(), f"{stage} imports these but dvc.yaml does not list them"
    assert declared_code - closure == set(), f"{stage} lists these but never imports them"


@pytest.mark.slow
def test_non_editable_install_ships_the_profiles(tmp_path):
    """A wheel install (no source tree beside it) still finds the profiles' YAML files."""
    import shutil
    import sys

    from fmnist import profiles

    source = tmp_path / "source"  # built from a copy: setuptools leaves build/ in the tree
    shutil.copytree(REPO_ROOT / "fmnist", source / "fmnist",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    installed = run_child([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--no-build-isolation", "--target", str(tmp_path / "site"),
                           str(source)], timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = run_child(
        [sys.executable, "-c", "import sys; from fmnist.cli import main; sys.exit(main())",
         "profile", "fast"],
        cwd=outside, env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        timeout=300)
    assert result.returncode == 0, result.stderr
    # The installed copy prints the profile as shipped: every key of fast.yaml, as `-S` flags.
    flags = result.stdout.split()
    assert flags[::2] == ["-S"] * len(profiles.load("fast"))
    assert {flag.split("=", 1)[0] for flag in flags[1::2]} == set(profiles.load("fast"))
    imported_from = run_child(
        [sys.executable, "-c", "import fmnist; print(fmnist.__file__)"], cwd=outside,
        env={"PYTHONPATH": str(tmp_path / "site")}, timeout=300).stdout
    assert imported_from.startswith(str(tmp_path / "site"))
