"""Where Fashion-MNIST comes from: Kaggle (CSVs), a local copy (Debian's idx files) or Zalando's
idx mirror (over HTTP with pooch), and how one of them lands in data/raw.

Every source fetches into a scratch folder next to data/raw; only when all files are verified and
the manifest is written does that folder replace data/raw, so a failure never leaves a mix.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import requests

from fmnist.data.formats import (
    CSV_FILES,
    IDX_FILES,
    KAGGLE_COLUMNS,
    MANIFEST,
    SPLITS,
    fingerprint,
    from_frame,
    raw_format,
    read_raw_frames,
    sha256_file,
)
from fmnist.errors import (ChecksumError, DataFormatError, DataLandingError,
                           DataSourceError, ParamsError)
from fmnist.jsonfiles import write_json

# Zalando's release as shipped by Debian's dataset-fashion-mnist and the S3 mirror.
PINNED_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
# content_digest() of that release (computed from Debian's idx files). Kaggle's CSVs have no file
# pins of their own and may list the rows in another order, so their content is checked instead.
PINNED_CONTENT_DIGEST = "7d62a31bcd333892ba57b078d0ff9c82171d7dc7009f078c1cbf9cf2e232ec0d"
IDX_NAMES = [name for pair in IDX_FILES.values() for name in pair]
SOURCES = ("kaggle", "local", "url")  # also auto's order of preference
APT_HINT = "run `apt-get install dataset-fashion-mnist` or point download.local_dir at the idx .gz files"

Say = Callable[[str], None]


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _mismatch(name: str, expected: str, actual: str, origin: str) -> ChecksumError:
    return ChecksumError(
        f"{name} from {origin}: sha256 {actual[:12]}... does not match the pinned "
        f"{expected[:12]}...; the file is corrupt or not Zalando's release"
    )


def _network_reason(error: Exception) -> str:
    """A one-line reason instead of urllib3's nested retry message."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}"
    if isinstance(error, requests.ConnectionError):
        return "cannot connect; check the network, or use download.source: local"
    return f"{type(error).__name__}: {error}"


def verify_sha256(path: Path, expected: str, origin: str) -> None:
    """Raise ChecksumError unless the file's sha256 is `expected`."""
    actual = sha256_file(path)
    if actual != expected:
        raise _mismatch(path.name, expected, actual, origin)


# --- local -------------------------------------------------------------------------------------

def fetch_local(local_dir: Path, dest: Path) -> list[Path]:
    """Copy the four idx .gz files from local_dir into dest, each checked against its pin."""
    local_dir = Path(local_dir)
    missing = [name for name in IDX_NAMES if not (local_dir / name).is_file()]
    if missing:
        raise DataSourceError(f"{local_dir} lacks {', '.join(missing)}: {APT_HINT}")
    copied = []
    for name in IDX_NAMES:
        target = Path(shutil.copyfile(local_dir / name, dest / name))
        verify_sha256(target, PINNED_SHA256[name], origin=str(local_dir))
        copied.append(target)
    return copied


# --- url (Zalando's mirror, via pooch) ----------------------------------------------------------

_POOCH_ACTUAL_HASH = re.compile(r"but got ([0-9a-f]{64})")


def fetch_url(base_url: str, dest: Path) -> list[Path]:
    """Download the four idx .gz files from base_url with pooch, which checks the pinned sha256
    before a file lands in dest."""
    import pooch  # only this source needs it

    progressbar = importlib.util.find_spec("tqdm") is not None
    fetched = []
    for name in IDX_NAMES:
        url = f"{base_url.rstrip('/')}/{name}"
        expected = PINNED_SHA256[name]
        try:
            path = pooch.retrieve(
                url, known_hash=f"sha256:{expected}", fname=name, path=dest, progressbar=progressbar
            )
        except ValueError as error:  # pooch's way of saying "hash mismatch"
            got = _POOCH_ACTUAL_HASH.search(str(error))
            if got is None:
                raise
            raise _mismatch(name, expected, got.group(1), origin=url) from None
        except (requests.RequestException, OSError) as error:
            raise DataSourceError(f"cannot download {url} ({_network_reason(error)})") from None
        fetched.append(Path(path))
    return fetched


# --- kaggle ------------------------------------------------------------------------------------

def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ["HOME"]) if environ.get("HOME") else Path.home()


def kaggle_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the kaggle library looks for kaggle.json (same rules as kaggle 2.x)."""
    environ = os.environ if environ is None else environ
    if environ.get("KAGGLE_CONFIG_DIR"):
        return Path(environ["KAGGLE_CONFIG_DIR"])
    legacy = _home(environ) / ".kaggle"
    if legacy.exists():
        return legacy
    xdg = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else _home(environ) / ".config"
    return xdg / "kaggle"


def _kaggle_json_fields(path: Path) -> set[str]:
    """Which of username/key kaggle.json sets (the values are not kept)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {field for field in ("username", "key") if isinstance(config, dict) and config.get(field)}


def kaggle_credentials_available(environ: Mapping[str, str] | None = None) -> bool:
    """Whether Kaggle credentials are configured, checked without importing kaggle (whose import
    prints a help banner and exits when there are none)."""
    environ = os.environ if environ is None else environ
    if environ.get("KAGGLE_API_TOKEN"):
        return True
    token_files = [_home(environ) / ".kaggle" / name for name in ("access_token", "access_token.txt")]
    if any(path.is_file() and path.stat().st_size > 0 for path in token_files):
        return True
    # The library merges kaggle.json with KAGGLE_* variables, so either may supply either field.
    fields = _kaggle_json_fields(kaggle_config_dir(environ) / "kaggle.json")
    fields |= {field for field in ("username", "key") if environ.get(f"KAGGLE_{field.upper()}")}
    return fields == {"username", "key"}


def _kaggle_api() -> Any:
    """An authenticated KaggleApi; its import-time banner is held back and SystemExit caught."""
    banner = io.StringIO()
    try:
        with contextlib.redirect_stdout(banner):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise DataSourceError(
            "Kaggle found no usable credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or "
            "KAGGLE_API_TOKEN, or put kaggle.json in ~/.kaggle (or KAGGLE_CONFIG_DIR)"
        ) from None
    # VERBOSE=1 would make the client print request headers, which carry the credentials.
    api.args = [arg for arg in api.args if arg not in ("--verbose", "-v")]
    if banner.getvalue().strip():
        _say(banner.getvalue().rstrip())  # e.g. its "kaggle.json is readable by others" warning
    return api


def _kaggle_http_message(dataset: str, status: int | None) -> str:
    hints = {
        401: "Kaggle rejected the credentials; check KAGGLE_USERNAME/KAGGLE_KEY, KAGGLE_API_TOKEN or kaggle.json",
        403: f"Kaggle denied access to {dataset}; check the credentials and accept the dataset's terms on kaggle.com",
        404: f"Kaggle has no dataset {dataset}; check download.kaggle_dataset",
    }
    return f"{hints.get(status, f'Kaggle request for {dataset} failed')} (HTTP {status})"


def _extract_csvs(archive: Path, dest: Path) -> list[Path]:
    """Pull the two Kaggle CSVs out of the dataset zip (it also holds raw idx files we skip)."""
    wanted = set(CSV_FILES.values())
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = {Path(info.filename).name: info for info in bundle.infolist() if not info.is_dir()}
            missing = sorted(wanted - members.keys())
            if missing:
                raise DataFormatError(f"the Kaggle download lacks {', '.join(missing)}")
            for name in sorted(wanted):
                with bundle.open(members[name]) as src, open(dest / name, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile as error:
        raise DataFormatError(f"the Kaggle download {archive.name} is not a valid zip ({error})") from None
    return [dest / name for name in sorted(wanted)]


def check_csv_header(path: Path) -> None:
    """Raise DataFormatError unless the CSV starts with label,pixel1..pixel784."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = handle.readline().strip()
    if header != ",".join(KAGGLE_COLUMNS):
        raise DataFormatError(f"{path.name}: header is not label,pixel1..pixel784 (starts {header[:40]!r})")


def fetch_kaggle(dataset: str, dest: Path) -> list[Path]:
    """Download the dataset's zip with the Kaggle API and extract the two CSVs into dest."""
    scratch = dest / ".kaggle-download"
    try:
        _kaggle_api().dataset_download_files(dataset, path=str(scratch), force=True, quiet=False)
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else None
        raise DataSourceError(_kaggle_http_message(dataset, status)) from None
    except requests.RequestException as error:
        raise DataSourceError(f"cannot reach Kaggle ({_network_reason(error)})") from None
    except SystemExit:  # the library exits on some auth failures instead of raising
        raise DataSourceError(f"the Kaggle library gave up on {dataset}; check the credentials") from None
    except ValueError as error:  # malformed dataset slug
        raise ParamsError(f"download.kaggle_dataset: {error}") from None
    archives = sorted(scratch.glob("*.zip"))
    if not archives:
        raise DataFormatError(f"the Kaggle download of {dataset} produced no zip")
    csvs = _extract_csvs(archives[0], dest)
    shutil.rmtree(scratch)
    for path in csvs:
        check_csv_header(path)
    return csvs


def content_digest(frames: Mapping[str, Any]) -> str:
    """sha256 of each split's (label, pixels) rows in sorted order: the same images and labels
    give the same digest in any row order and from idx or CSV."""
    digest = hashlib.sha256()
    for split in SPLITS:
        images, labels = from_frame(frames[split])
        rows = np.ascontiguousarray(
            np.concatenate([labels.astype(np.uint8).reshape(-1, 1),
                            images.astype(np.uint8).reshape(len(labels), -1)], axis=1))
        digest.update(split.encode())
        digest.update(np.sort(rows.view(np.dtype((np.void, rows.shape[1]))).ravel()).tobytes())
    return digest.hexdigest()


def verify_content(raw_dir: Path, dataset: str) -> None:
    """Raise ChecksumError unless raw_dir holds exactly Zalando's images and labels."""
    actual = content_digest(read_raw_frames(raw_dir))
    if actual != PINNED_CONTENT_DIGEST:
        raise ChecksumError(
            f"the Kaggle download of {dataset}: content digest {actual[:12]}... does not match "
            f"Zalando's release ({PINNED_CONTENT_DIGEST[:12]}...); for intentionally different "
            "data set download.verify_content: false (and validate.expected_rows)")


# --- choosing a source and landing it ----------------------------------------------------------

def _param(params: Mapping[str, Any], key: str) -> Any:
    if params.get(key) in (None, ""):
        raise ParamsError(f"download.{key} is not set in params.yaml")
    return params[key]


FETCHERS: dict[str, Callable[[Mapping[str, Any], Path], list[Path]]] = {
    "kaggle": lambda params, dest: fetch_kaggle(_param(params, "kaggle_dataset"), dest),
    "local": lambda params, dest: fetch_local(Path(_param(params, "local_dir")), dest),
    "url": lambda params, dest: fetch_url(_param(params, "url"), dest),
}


# Where each source got the data, as a URI or path a reader can follow (MLflow shows it as the
# dataset's source).
LOCATIONS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "kaggle": lambda params: f"https://www.kaggle.com/datasets/{params['kaggle_dataset']}",
    "local": lambda params: str(Path(params["local_dir"]).resolve()),
    "url": lambda params: params["url"],
}


def describe(raw_dir: Path, source: str) -> dict[str, Any]:
    """The manifest of a fetched folder: files with sizes and sha256, rows, content fingerprint."""
    fmt = raw_format(raw_dir)
    names = IDX_NAMES if fmt == "idx" else list(CSV_FILES.values())
    frames = read_raw_frames(raw_dir)
    return {
        "source": source,
        "format": fmt,
        "files": [
            {"name": name, "bytes": (raw_dir / name).stat().st_size, "sha256": sha256_file(raw_dir / name)}
            for name in sorted(names)
        ],
        "rows": {split: len(frame) for split, frame in frames.items()},
        "fingerprint": fingerprint(frames),
    }


@contextlib.contextmanager
def _staging_dir(raw_dir: Path) -> Iterator[Path]:
    """A scratch folder beside raw_dir (same file system, so the final rename is atomic)."""
    # Not tempfile.mkdtemp: its 0700 mode would become data/raw's; mkdir honours the umask.
    staging = raw_dir.parent / f".{raw_dir.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_into_place(staging: Path, raw_dir: Path) -> None:
    """Replace raw_dir by staging; the old folder, with any files of the other format, goes."""
    retired = staging.with_name(staging.name + "-old")
    try:
        if raw_dir.exists():
            raw_dir.rename(retired)
        try:
            staging.rename(raw_dir)
        except OSError:
            if retired.exists():  # put the previous output back rather than leave no data/raw
                retired.rename(raw_dir)
            raise
    except OSError as error:
        kept = (f"the previous data is in {retired}" if retired.exists()
                else f"{raw_dir} is as it was")
        raise DataLandingError(
            f"cannot put the download in place at {raw_dir} ({error.strerror or error}); {kept}; "
            f"make {raw_dir} a folder you can write (or remove it) and run again") from error
    shutil.rmtree(retired, ignore_errors=True)


def land(source: str, params: Mapping[str, Any], raw_dir: Path) -> dict[str, Any]:
    """Fetch from one source into a staging folder, verify, write the manifest, swap it in."""
    with _staging_dir(raw_dir) as staging:
        FETCHERS[source](params, staging)
        # idx files are pinned file by file; Kaggle's CSVs only by content.
        check = params.get("verify_content", True)
        if not isinstance(check, bool):
            raise ParamsError(f"download.verify_content is {check!r}; use true or false")
        if source == "kaggle" and check:
            verify_content(staging, params["kaggle_dataset"])
        manifest = {**describe(staging, source), "location": LOCATIONS[source](params)}
        write_json(staging / MANIFEST, manifest)
        _swap_into_place(staging, raw_dir)
    return manifest


def download(params: Mapping[str, Any], raw_dir: Path, say: Say = _say) -> dict[str, Any]:
    """Land Fashion-MNIST in raw_dir from params["source"] and return its manifest.

    auto tries kaggle (only with credentials), then local, then url, reporting each fallback;
    if all fail, one DataSourceError lists why each did.
    """
    source = params.get("source", "auto")
    if source not in ("auto", *SOURCES):
        raise ParamsError(f"download.source is {source!r}; use one of auto, {', '.join(SOURCES)}")
    if source != "auto":
        return land(source, params, Path(raw_dir))
    failures = []
    for candidate in SOURCES:
        if candidate == "kaggle" and not kaggle_credentials_available():
            failures.append("kaggle: no credentials")
            say("download: no Kaggle credentials, skipping kaggle")
            continue
        try:
            manifest = land(candidate, params, Path(raw_dir))
        except (DataSourceError, DataFormatError) as error:
            failures.append(f"{candidate}: {error}")
            say(f"download: {candidate} failed ({type(error).__name__}: {error}); trying the next source")
            continue
        if failures:
            say(f"download: used {candidate} after: {'; '.join(failures)}")
        return manifest
    raise DataSourceError("no source could deliver Fashion-MNIST. " + " | ".join(failures))
