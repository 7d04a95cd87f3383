"""Benchmark: what a tiny hostile file costs `fmnist predict` (and the demo) before it is refused.

Each file is made here: PNG headers declaring huge sizes (a 1-pixel-high strip that padding to a
square would blow up, a 13000x13000 image) and gzip idx files whose header or data claim far
more than the file's size. Each goes through predict's own loading code (predict.load_files);
the time to the refusal is recorded with its error line. Target: < 1 s each.

Usage, from the repo root:  python bench/hostile_inputs.py
Writes bench/hostile_inputs.json and the report bench/hostile_inputs.md.
"""
from __future__ import annotations

import gzip
import json
import os
import platform
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import report  # noqa: E402
from fmnist.serving import predict  # noqa: E402

RESULT_FILE = Path(__file__).with_name("hostile_inputs.json")
REPORT_FILE = RESULT_FILE.with_suffix(".md")
TARGET_S = 1.0


def png(path: Path, width: int, height: int, rows: bytes | None = None) -> Path:
    """A grayscale PNG declaring width x height; its data is `rows` (filter byte + pixels per
    row, compressed) or, when None, a few bytes only: a header that lies about a tiny file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    data = zlib.compress(rows if rows is not None else b"\0" * 16, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
                     + chunk(b"IEND", b""))
    return path


def idx_gz(path: Path, shape: tuple[int, ...], payload: bytes) -> Path:
    """A gzipped unsigned-byte idx file with this declared shape and these data bytes."""
    header = bytes([0, 0, 8, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)
    path.write_bytes(gzip.compress(header + payload, 9))
    return path


def hostile_files(folder: Path) -> dict[str, Path]:
    return {
        "80000x1 PNG strip": png(folder / "strip.png", 80_000, 1),
        "300000x1 PNG strip": png(folder / "long-strip.png", 300_000, 1),
        "13000x13000 PNG": png(folder / "square.png", 13_000, 13_000),
        "idx declaring 200,000 images": idx_gz(folder / "many-idx3-ubyte.gz",
                                               (200_000, 28, 28), b"\0" * (200_000 * 784)),
        "idx declaring 1 image, holding 64 MB": idx_gz(folder / "bomb-idx3-ubyte.gz",
                                                       (1, 28, 28), b"\0" * (64 * 2**20)),
    }


def bench() -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, path in hostile_files(Path(folder)).items():
            started = time.perf_counter()
            _, images, errors = predict.load_files([path])
            seconds = time.perf_counter() - started
            rows.append({"file": name, "bytes": path.stat().st_size, "seconds": seconds,
                         "images": len(images),
                         "error": errors[0]["message"].replace(str(path), path.name)
                         if errors else None})
    return {"files": rows, "measured": report.now(),
            "machine": {"cpu": report.cpu_name(), "cores": os.cpu_count(),
                        "python": platform.python_version()}}


def markdown(result: dict) -> str:
    rows = [{"file": row["file"], "size": f"{row['bytes']:,} B",
             "cost": f"{row['seconds'] * 1000:.1f} ms", "target": f"< {TARGET_S:.0f} s",
             "refused with": row["error"] or "NOT REFUSED"} for row in result["files"]]
    machine = result["machine"]
    return "\n".join([
        report.header("hostile_inputs.py", RESULT_FILE,
                      f"Hostile input files through predict's loading code, {machine['cpu']}, "
                      f"{machine['cores']} cores, measured {result['measured']}."),
        report.table(rows), ""])


def main() -> int:
    result = bench()
    RESULT_FILE.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    REPORT_FILE.write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0 if all(row["error"] and row["seconds"] < TARGET_S for row in result["files"]) else 1


if __name__ == "__main__":
    sys.exit(main())
