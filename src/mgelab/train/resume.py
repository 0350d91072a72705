"""Finding what to resume from, wherever runs keep their checkpoints: the newest of a set of
checkpoint stores (``trainer.resume=auto``; the run's side says which stores belong to the run),
or an explicit checkpoint path."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from mgelab.checkpoint import CheckpointStore


def newest_store(stores: Iterable[Path]) -> Optional[Path]:
    """The checkpoint store among ``stores`` that saved last, or None when none holds a checkpoint."""
    saved = [store for store in stores if (store / CheckpointStore.LAST).is_file()]
    return max(saved, key=lambda s: (s / CheckpointStore.LAST).stat().st_mtime, default=None)


def explicit_checkpoint(resume: str) -> Path:
    """``trainer.resume=<path>``: a checkpoint directory or a run's checkpoints/ folder."""
    path = Path(resume).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"trainer.resume={resume}: no such checkpoint (give a checkpoint directory or auto)")
    return path
