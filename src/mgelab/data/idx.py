"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

Layout: two zero bytes, a dtype byte, an ndim byte, then ndim big-endian
uint32 sizes and the payload. Only unsigned bytes (dtype 0x08) are supported,
which is all these datasets use. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mgelab.data.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
IDX_UBYTE = 0x08

_FIX_HINT = "delete it so it is fetched again, or replace it with a good copy"


def is_gzip(path: Path) -> bool:
    """True if the file is gzip: by name, or by its first bytes (a renamed copy)."""
    if path.name.endswith(".gz"):
        return True
    with open(path, "rb") as raw:
        return raw.read(2) == GZIP_MAGIC


def open_maybe_gzip(path: Path) -> BinaryIO:
    """Open for reading bytes, decompressing on the fly when the file is gzip."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _bad(path: Path, what: str) -> DataError:
    return DataError(f"{path}: {what}; the file is damaged or not an IDX file: {_FIX_HINT}.")


def _read_exact(stream: BinaryIO, count: int) -> bytes:
    """Read count bytes; fewer only at end of file (BufferedReader may return short)."""
    chunks = []
    while count > 0:
        chunk = stream.read(count)
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _read_header(stream: BinaryIO, path: Path, expected_ndim: int) -> tuple[int, ...]:
    head = _read_exact(stream, 4)
    if len(head) < 4:
        raise _bad(path, f"only {len(head)} byte(s), too short for an IDX header")
    if head[:2] != b"\x00\x00":
        raise _bad(path, f"wrong magic: first bytes are {head[:2].hex()}, an IDX file starts with 0000")
    dtype, ndim = head[2], head[3]
    if dtype != IDX_UBYTE:
        raise _bad(path, f"IDX dtype byte is 0x{dtype:02x}, only 0x08 (unsigned byte) is supported")
    if ndim != expected_ndim:
        raise _bad(path, f"IDX header says {ndim} dimension(s), expected {expected_ndim}")
    raw_sizes = _read_exact(stream, 4 * ndim)
    if len(raw_sizes) < 4 * ndim:
        raise _bad(path, f"header truncated: {ndim} sizes announced but the file ends early")
    return struct.unpack(f">{ndim}I", raw_sizes)


def _read_payload(stream: BinaryIO, path: Path, shape: tuple[int, ...]) -> np.ndarray:
    # Read straight into a writable array: no extra copy of a 47 MB payload.
    count = math.prod(shape)
    out = np.empty(count, dtype=np.uint8)
    view = memoryview(out)
    got = 0
    while got < count:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    if got < count:
        raise _bad(path, f"payload is {got} bytes but the header {shape} needs {count} (file is short)")
    extra = len(stream.read(1 << 16))
    if extra:
        raise _bad(path, f"payload is longer than the {count} bytes the header {shape} needs")
    return out.reshape(shape)


def read_idx(path: Path | str, expected_ndim: int) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a uint8 array of the header's shape."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path or let mgelab fetch the dataset again.")
    try:
        with open_maybe_gzip(path) as stream:
            shape = _read_header(stream, path, expected_ndim)
            return _read_payload(stream, path, shape)
    except (EOFError, zlib.error, OSError) as exc:
        # gzip raises EOFError on a truncated stream and BadGzipFile (an
        # OSError) on a bad header or CRC; both mean the copy is damaged.
        raise _bad(path, f"cannot decompress/read it ({type(exc).__name__}: {exc})") from exc


def _idx_header(array: np.ndarray) -> bytes:
    if array.ndim > 255 or any(size >= 2**32 for size in array.shape):
        raise ValueError(f"shape {array.shape} does not fit an IDX header")
    return bytes([0, 0, IDX_UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)


def write_idx(path: Path | str, array: np.ndarray, *, compresslevel: int = 9, mtime: int = 0) -> Path:
    """Write a uint8 array as IDX; gzip when the name ends in .gz.

    compresslevel and mtime only matter for .gz: a fixed mtime makes the bytes
    reproducible, and changing either gives a "re-packed" copy with the same
    payload but different .gz bytes (what a mirror may hold).
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx only writes uint8 arrays, got {array.dtype}")
    data = _idx_header(array) + np.ascontiguousarray(array).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=mtime
        ) as gz:
            gz.write(data)
    else:
        path.write_bytes(data)
    return path
