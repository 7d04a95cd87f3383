"""Files the stages write, written atomically (a temp file in the same folder, then a rename), and
the JSON ones they hand each other (manifests, metrics, run ids).

DVC deletes a stage's outputs before running it and git tracks the `cache: false` ones, so a
stage killed mid-write must leave either the whole new file or none, never a truncated one that
looks like a result. Every output goes through `replacing`: JSON, CSV, text, figures, arrays and
the saved model."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` (same folder, so the rename is atomic; same suffix, so
    writers that go by the extension pick the right format) that replaces `path` when the block
    ends without an error and is removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would make outputs private
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically: a failed stage never leaves a half-written metrics file."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")
