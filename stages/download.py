"""download: land Fashion-MNIST in data/raw with a manifest (sources in fmnist/data/sources.py)."""
from __future__ import annotations

from fmnist.config import RAW_DIR, load_params
from fmnist.data.sources import download
from fmnist.errors import ParamsError, stage_entry


@stage_entry
def main() -> None:
    params = load_params()
    if not isinstance(params.get("download"), dict):
        raise ParamsError("params.yaml has no `download` section")
    manifest = download(params["download"], RAW_DIR)
    rows = manifest["rows"]
    print(
        f"download: {manifest['source']} -> {RAW_DIR} ({manifest['format']}, "
        f"{rows['train']} train / {rows['test']} test rows, fingerprint {manifest['fingerprint'][:12]})"
    )


if __name__ == "__main__":
    main()
