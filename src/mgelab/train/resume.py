"""Finding what to resume from: ``trainer.resume=auto`` or an explicit checkpoint path."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from mgelab.checkpoint import CheckpointStore, read_manifest

# Where a run's checkpoints live below paths.output_dir (see conf/hydra/default.yaml).
RUN_PATTERNS = ("runs/*_{name}/checkpoints", "multiruns/*/*_{name}/checkpoints")


def find_latest_checkpoint(output_dir: Path, run_name: str) -> Optional[Path]:
    """The checkpoint store of the run named ``run_name`` that saved last, or None."""
    stores = [
        store
        for pattern in RUN_PATTERNS
        for store in Path(output_dir).glob(pattern.format(name=run_name))
        if (store / CheckpointStore.LAST).is_file()
    ]
    return max(stores, key=lambda s: (s / CheckpointStore.LAST).stat().st_mtime, default=None)


def resume_target(resume: Optional[str], output_dir: Path, run_name: str) -> Optional[Path]:
    """None (start afresh), or the checkpoint (store) to continue from."""
    if resume in (None, "", "null", "none"):
        return None
    if resume == "auto":
        found = find_latest_checkpoint(output_dir, run_name)
        if found is None:
            print(f"trainer.resume=auto: no checkpoint of a run named {run_name!r} under {output_dir}; starting afresh")
        return found
    path = Path(resume).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"trainer.resume={resume}: no such checkpoint (give a checkpoint directory or auto)")
    return path


def stored_meta(path: Path) -> dict:
    """The run metadata a checkpoint carries (tracking run id, resolved config); the trainer
    loads and verifies the arrays themselves, so only the manifest is read here."""
    return read_manifest(path)[1]["meta"]
