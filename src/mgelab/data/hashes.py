"""File hashes as dataset files are checked: of the bytes, or of the gzip payload."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import BinaryIO

from mgelab.data.errors import DataError
from mgelab.data.idx import open_maybe_gzip


def _hash_stream(stream: BinaryIO, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    for chunk in iter(lambda: stream.read(1 << 20), b""):  # 1 MiB: bounded memory
        digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: Path | str) -> str:
    """md5 of the file's bytes as stored."""
    with open(path, "rb") as raw:
        return _hash_stream(raw, "md5")


def file_sha256(path: Path | str) -> str:
    """sha256 of the file's bytes as stored (what `sha256sum` prints), even for gzip."""
    with open(path, "rb") as raw:
        return _hash_stream(raw, "sha256")


def payload_sha256(path: Path | str) -> str:
    """sha256 of the payload: decompressed for gzip files (a .tgz too), else the bytes."""
    path = Path(path)
    try:
        with open_maybe_gzip(path) as stream:
            return _hash_stream(stream, "sha256")
    except (EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{path}: cannot read it to check its hash ({type(exc).__name__}: "
                        f"{exc}); delete it or replace it with a good copy.") from exc
