"""Checkpoints as plain ``.npz`` (no pickle), written atomically.

A checkpoint is a flat mapping of names to arrays plus a JSON ``meta`` dict. The file
is written beside its destination, fsynced and renamed into place, so a crash while
saving leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import numpy as np

META_KEY = "__meta__"
FORMAT_VERSION = 1


def save_checkpoint(path: Path | str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {name: np.asarray(value) for name, value in arrays.items()}
    if META_KEY in payload:
        raise ValueError(f"array name {META_KEY!r} is reserved")
    header = {"format_version": FORMAT_VERSION, **meta}
    payload[META_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def load_checkpoint(path: Path | str) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files if name != META_KEY}
        if META_KEY not in archive.files:
            raise ValueError(f"{path} is not an mgelab checkpoint (no {META_KEY} entry)")
        meta = json.loads(archive[META_KEY].tobytes().decode())
    return arrays, meta


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
