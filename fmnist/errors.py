"""Named errors a user can hit, and the one place that turns them into a clean exit."""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Callable


class PipelineError(Exception):
    """Base class: an error whose message tells the user what to do."""


class DataSourceError(PipelineError):
    """No data source could deliver the data set."""


class ChecksumError(DataSourceError):
    """A downloaded or copied file does not match its pinned sha256."""


class DataFormatError(PipelineError):
    """A data file cannot be decoded (bad magic number, wrong shape, bad CSV header)."""


class DataLandingError(PipelineError):
    """A verified download cannot be moved into data/raw (the previous data/raw is kept); not
    a DataSourceError, so `download.source: auto` does not fetch again from the next source."""


class ValidationFailed(PipelineError):
    """One or more Great Expectations checks failed."""


class ParamsError(PipelineError):
    """A value in params.yaml is missing or out of range."""


class RegistryError(PipelineError):
    """The model registry lacks what was asked for (no champion, nothing to roll back to)."""


class UnknownVersion(RegistryError):
    """No such version of the registered model."""


class MissingReason(RegistryError):
    """A manual promotion or rollback was asked for without saying why."""


class RegistryBusy(RegistryError):
    """Another process holds the champion lock longer than we are willing to wait."""


class TrackingUnavailable(PipelineError):
    """The MLflow tracking server does not answer, or the store refuses a second writer."""


class ServerError(PipelineError):
    """The team stack cannot start (PostgreSQL missing, a port taken, MLflow failing)."""


class ModelLoadError(PipelineError):
    """The model to predict with cannot be found or loaded."""


class UntrustedModel(ModelLoadError):
    """A model that would run code when loaded (a SavedModel, a Lambda layer, no Keras flavor)
    and the user did not say they trust it."""


class ModelShapeError(PipelineError):
    """A model lacks a part asked for: no convolution to explain, weights that do not fit."""


class UnsupportedBackend(PipelineError):
    """Grad-CAM needs gradients; only Keras' TensorFlow and JAX backends are wired."""


class InputFileError(PipelineError):
    """A file given to predict is missing or is not a readable image, idx file or CSV."""


class Terminated(BaseException):
    """SIGTERM (docker stop, a CI cancel, a scheduler), raised like KeyboardInterrupt is for
    SIGINT, so `with mlflow.start_run()` ends the run as FAILED instead of leaving it RUNNING."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def restore_hint(stage: str | None = None, dvc_file: Path = Path("dvc.yaml")) -> str:
    """How to get a failed stage's previous outputs back: DVC deletes a stage's outputs before
    running it, so after a failure they are gone from the workspace; the cached ones come back
    with `dvc checkout`, the uncached (committed) metrics and plots with `git checkout`."""
    stage = stage or os.environ.get("DVC_STAGE")
    if not stage:  # not run by DVC: nothing was deleted
        return ""
    root = os.environ.get("DVC_ROOT")
    if root and Path(root).resolve() != Path.cwd().resolve():
        return ""  # a queued or --temp run works in a copy: the workspace's outputs are intact
    import yaml  # imported here: only a failing stage needs it

    try:
        spec = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["stages"][stage]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return f"; previous outputs: `dvc checkout {stage}`"
    cached, uncached = [], []
    for section in ("outs", "metrics", "plots"):
        for entry in spec.get(section) or []:
            path, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            (cached if (options or {}).get("cache", True) else uncached).append(path)
    commands = [f"`dvc checkout {stage}`"] if cached else []
    commands += [f"`git checkout -- {' '.join(uncached)}`"] if uncached else []
    return "; previous outputs: " + " and ".join(commands) if commands else ""


def params_hint(params_file: Path = Path("params.yaml")) -> str:
    """How to get the committed params back: `dvc exp run` writes its -S values (a profile, a
    fine-tune's train.init_from) into the workspace's params.yaml and leaves them there, so after
    a failed experiment the next run would start from them. Said only under DVC, in the
    workspace itself, when params.yaml differs from git HEAD."""
    if not os.environ.get("DVC_STAGE"):
        return ""
    root = os.environ.get("DVC_ROOT")
    if root and Path(root).resolve() != Path.cwd().resolve():
        return ""  # a queued or --temp run changed a copy's params, not the workspace's
    try:
        differs = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", str(params_file)],
                                 capture_output=True, timeout=30).returncode == 1
    except (OSError, subprocess.SubprocessError):
        return ""
    return (f"; {params_file} differs from git HEAD (an experiment's -S values stay in it): "
            f"`git checkout {params_file}` restores it") if differs else ""


def stage_entry(main: Callable[[], None]) -> Callable[[], None]:
    """Wrap a stage's main: PipelineError -> one clear line on stderr and exit code 1; SIGINT
    and SIGTERM -> one line and 130 / 143. Under `dvc repro` the line also says how to get the
    stage's previous outputs back (DVC removed them before the stage ran) and, after an
    experiment changed params.yaml, the committed params."""

    @functools.wraps(main)
    def wrapper() -> None:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            main()
        except PipelineError as error:
            print(f"error: {type(error).__name__}: {error}{restore_hint()}{params_hint()}",
                  file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print(f"error: interrupted{restore_hint()}", file=sys.stderr)
            sys.exit(130)
        except Terminated:
            print(f"error: terminated (SIGTERM){restore_hint()}", file=sys.stderr)
            sys.exit(143)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper
