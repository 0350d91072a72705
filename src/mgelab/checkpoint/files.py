"""File-level pieces of checkpointing: durable small writes and the guarded pickle path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict

import numpy as np

from mgelab.checkpoint.safe_pickle import UnsafePickleError, restricted_loads


def fsync_directory(directory: Path) -> None:
    """Make renames inside ``directory`` durable; best effort where the OS does not allow it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def _flatten_arrays(value: Any, prefix: str, out: Dict[str, np.ndarray], source: Path) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            name = key.decode() if isinstance(key, bytes) else str(key)
            _flatten_arrays(item, f"{prefix}{name}.", out, source)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _flatten_arrays(item, f"{prefix}{index}.", out, source)
    elif isinstance(value, (np.ndarray, np.generic, int, float)):
        out[prefix[:-1]] = np.asarray(value)
    else:
        raise UnsafePickleError(f"{source}: {prefix[:-1] or 'the top level'} holds a {type(value).__name__}, "
                                "not a numpy array")


def load_pickle_checkpoint(path: Path) -> Dict[str, np.ndarray]:
    """Arrays from a trusted pickle, through the restricted unpickler, keyed by their dotted path."""
    value = restricted_loads(Path(path).read_bytes(), encoding="latin1")
    arrays: Dict[str, np.ndarray] = {}
    _flatten_arrays(value, "", arrays, Path(path))
    if not arrays:
        raise UnsafePickleError(f"{path} holds no numpy arrays")
    return arrays
