"""Named errors a user can hit, and the one place that turns them into a clean exit."""
from __future__ import annotations

import functools
import sys
from typing import Callable


class PipelineError(Exception):
    """Base class: an error whose message tells the user what to do."""


class DataSourceError(PipelineError):
    """No data source could deliver the data set."""


class ChecksumError(DataSourceError):
    """A downloaded or copied file does not match its pinned sha256."""


class DataFormatError(PipelineError):
    """A data file cannot be decoded (bad magic number, wrong shape, bad CSV header)."""


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


class ModelLoadError(PipelineError):
    """The model to predict with cannot be found or loaded."""


class ModelShapeError(PipelineError):
    """A model lacks a part asked for: no convolution to explain, weights that do not fit."""


class UnsupportedBackend(PipelineError):
    """Grad-CAM needs gradients; only Keras' TensorFlow and JAX backends are wired."""


class InputFileError(PipelineError):
    """A file given to predict is missing or is not a readable image, idx file or CSV."""


def stage_entry(main: Callable[[], None]) -> Callable[[], None]:
    """Wrap a stage's main: PipelineError -> one clear line on stderr and exit code 1."""

    @functools.wraps(main)
    def wrapper() -> None:
        try:
            main()
        except PipelineError as error:
            print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
