"""Checkpoints that cannot execute code and cannot be left half-written.

A checkpoint is a directory holding ``arrays.npz`` (read with ``allow_pickle=False``) and
``manifest.json`` (format version, the sha256 of every array file, and JSON metadata). It is
written under a temporary name, fsynced and renamed into place, so a crash or a full disk
while saving leaves every earlier checkpoint whole. ``CheckpointStore`` keeps the newest
``keep_last`` and the ``keep_best`` best of a run behind two small pointer files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from mgelab.checkpoint.files import atomic_write_text, fsync_directory, load_pickle_checkpoint

FORMAT_VERSION = 2
ARRAYS_FILE = "arrays.npz"
MANIFEST_FILE = "manifest.json"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".mge", ".pth", ".pt")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, untrusted or does not fit the model."""


@dataclass
class Checkpoint:
    arrays: Dict[str, np.ndarray]
    meta: Dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None

    def section(self, prefix: str) -> Dict[str, np.ndarray]:
        """Arrays under ``prefix/`` with the prefix removed (e.g. the model's state)."""
        start = f"{prefix}/"
        return {k[len(start) :]: v for k, v in self.arrays.items() if k.startswith(start)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(directory: Path | str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Write a new checkpoint directory atomically. Checkpoints are never overwritten: replacing one
    in place cannot be atomic, so an existing ``directory`` is an error (the store picks new names)."""
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"checkpoint {directory} exists; checkpoints are written once")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        arrays_path = staging / ARRAYS_FILE
        with open(arrays_path, "wb") as handle:
            np.savez(handle, **{name: np.asarray(value) for name, value in arrays.items()})
            handle.flush()
            os.fsync(handle.fileno())
        manifest = {
            "format_version": FORMAT_VERSION,
            "files": {ARRAYS_FILE: _sha256(arrays_path)},
            "meta": dict(meta),
        }
        atomic_write_text(staging / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True))
        fsync_directory(staging)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_directory(directory.parent)
    return directory


def load_checkpoint(path: Path | str, *, trust_pickle: bool = False) -> Checkpoint:
    """Load a checkpoint directory (or its manifest, or a store's folder: its newest checkpoint).

    Pickle files (``mge.save``, ``torch.save``) are refused unless ``trust_pickle``; even then
    only plain containers of numpy arrays are accepted.
    """
    path = Path(path)
    if path.is_file() and (path.suffix in PICKLE_SUFFIXES or _starts_like_pickle(path)):
        if not trust_pickle:
            raise CheckpointError(
                f"{path} is a pickle, which can run arbitrary code when loaded; mgelab refuses it. "
                "If you trust its origin, load it with load_checkpoint(path, trust_pickle=True): only plain "
                "containers of numpy arrays will be accepted from it."
            )
        return Checkpoint(load_pickle_checkpoint(path), {"source": "pickle"}, path)
    path, manifest = read_manifest(path)
    for name, expected in manifest["files"].items():
        actual = _sha256(path / name)
        if actual != expected:
            raise CheckpointError(f"{path / name} is damaged: sha256 {actual}, manifest says {expected}")
    with np.load(path / ARRAYS_FILE, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return Checkpoint(arrays, manifest["meta"], path)


def read_manifest(path: Path | str) -> Tuple[Path, Dict[str, Any]]:
    """(checkpoint directory, manifest) for a checkpoint, its manifest or a store folder (its newest);
    reads no arrays, so a caller that needs only the metadata pays for none of them."""
    path = Path(path)
    if path.name == MANIFEST_FILE:
        path = path.parent
    if (path / CheckpointStore.LAST).is_file():
        path = CheckpointStore(path).latest() or path
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{path} is not an mgelab checkpoint: {MANIFEST_FILE} is missing")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {manifest.get('format_version')} is not {FORMAT_VERSION}"
        )
    return path, manifest


def check_fits(state: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], where: str) -> None:
    """Raise naming every missing, unexpected, mis-shaped or mis-typed key."""
    problems: List[str] = []
    for key in sorted(set(expected) - set(state)):
        problems.append(f"{key}: missing")
    for key in sorted(set(state) - set(expected)):
        problems.append(f"{key}: not in the model")
    for key in sorted(set(state) & set(expected)):
        got, want = np.asarray(state[key]), np.asarray(expected[key])
        if got.shape != want.shape:
            problems.append(f"{key}: shape {got.shape}, model has {want.shape}")
        elif got.dtype != want.dtype:
            problems.append(f"{key}: dtype {got.dtype}, model has {want.dtype}")
    if problems:
        raise CheckpointError(f"{where} does not fit the model:\n  " + "\n  ".join(problems))


def _starts_like_pickle(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80"


class CheckpointStore:
    """A run's checkpoints: ``step-<N>`` directories plus ``last.json`` and ``best.json`` pointers.

    Scores are "higher is better" (the trainer negates metrics it minimises).
    """

    LAST = "last.json"
    BEST = "best.json"

    def __init__(self, root: Path | str, keep_last: int = 1, keep_best: int = 1) -> None:
        if keep_last < 1 or keep_best < 0:
            raise ValueError(f"trainer.keep_last={keep_last} must be >= 1 and trainer.keep_best={keep_best} >= 0")
        self.root = Path(root)
        self.keep_last, self.keep_best = keep_last, keep_best

    def save(self, step: int, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any],
             score: Optional[float] = None) -> Path:
        name = f"step-{step:09d}"
        # A second save at the same step (a run stopped on its epoch's last step, then resumed).
        suffix = 1
        while (self.root / name).exists():
            name, suffix = f"step-{step:09d}-{suffix}", suffix + 1
        save_checkpoint(self.root / name, arrays, {**meta, "step": step, "score": score})
        recent = ([name] + [n for n in self._read(self.LAST) if n != name])[: self.keep_last]
        atomic_write_text(self.root / self.LAST, json.dumps(recent))
        if score is not None and self.keep_best > 0:
            ranked = [e for e in self._read(self.BEST) if e["name"] != name] + [{"name": name, "score": score}]
            ranked.sort(key=lambda e: e["score"], reverse=True)
            atomic_write_text(self.root / self.BEST, json.dumps(ranked[: self.keep_best]))
        self._prune()
        return self.root / name

    def latest(self) -> Optional[Path]:
        names = self._read(self.LAST)
        return self.root / names[0] if names else None

    def best(self) -> Optional[Path]:
        entries = self._read(self.BEST)
        return self.root / entries[0]["name"] if entries else None

    def _read(self, pointer: str) -> list:
        path = self.root / pointer
        return json.loads(path.read_text()) if path.is_file() else []

    def _prune(self) -> None:
        """Delete step directories no pointer refers to (only after the pointers are on disk)."""
        keep = set(self._read(self.LAST)) | {e["name"] for e in self._read(self.BEST)}
        for directory in self.root.glob("step-*"):
            if directory.name not in keep:
                shutil.rmtree(directory, ignore_errors=True)
