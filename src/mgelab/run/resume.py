"""What ``trainer.resume`` continues, decided before anything is opened or created.

``auto`` continues, in this order, (1) the checkpoints in this run's own directory, else (2) the
newest checkpoint under ``paths.output_dir`` whose stored resolved config equals this run's, apart
from the keys in ``RESUME_NEUTRAL_KEYS``. An explicit ``trainer.resume=<dir>`` (and case 1) must
hold the same config too: a checkpoint of another config names the keys that differ and stops.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

from mgelab.checkpoint import CheckpointError, CheckpointStore, load_checkpoint, read_manifest
from mgelab.tracking.params import flatten
from mgelab.train import Trainer
from mgelab.train.resume import explicit_checkpoint, newest_store

log = logging.getLogger(__name__)

# Keys that cannot change what is trained: how it is resumed and shown, and where files and the
# store live. A key ending in "." stands for everything below it.
RESUME_NEUTRAL_KEYS = (
    "trainer.resume",
    "trainer.progress_bar",
    "trainer.prefetch_batches",
    "trainer.checkpoint_dir",
    "paths.",
    "logger.tracking_uri",
    "logger.artifact_location",
    "logger.spool_dir",
    "logger.system_metrics",
    "logger.log_model",
    "logger.register_as",
    "data.data_dir",
    # Where and how the dataset files are fetched: the bytes are verified (or, with verify=false, logged
    # as unverified) and the run's logged input digest says which data it was.
    "data.base_url",
    "data.mirror",
    "data.system_dirs",
    "data.verify",
    "data.sha256",
    "sweep.",
)


class ResumeConfigMismatch(ValueError):
    """The checkpoint was written by a run of another config."""


@dataclass(frozen=True)
class ResumePlan:
    checkpoint: Path  # a checkpoint directory or a run's checkpoints/ folder (its newest)
    tracking_run_id: Optional[str]
    how: str  # "this run's directory", "matching config", "trainer.resume=<dir>"


def is_neutral(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUME_NEUTRAL_KEYS)


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> List[str]:
    """``key: stored -> current`` for every key (neutral ones aside) whose value differs."""
    old, new = flatten(stored), flatten(current)
    keys = sorted(k for k in set(old) | set(new) if not is_neutral(k) and not _same_setting(old, new, k))
    return [f"{k}: {_shown(old, k)} -> {_shown(new, k)}" for k in keys]


def _same_setting(old: Mapping[str, Any], new: Mapping[str, Any], key: str) -> bool:
    if key in old or key not in new:
        return old.get(key) == new.get(key)
    # A key an older checkpoint's config lacks (the schema gained it since) is the same setting when it
    # is null now, or, for the trainer, at the Trainer's own default: the value the older run trained with.
    value = new[key]
    return value is None or (key.startswith("trainer.") and _trainer_defaults().get(key[len("trainer."):]) == value)


@lru_cache(maxsize=1)
def _trainer_defaults() -> Dict[str, Any]:
    parameters = inspect.signature(Trainer.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _shown(config: Mapping[str, Any], key: str) -> str:
    return repr(config[key]) if key in config else "<absent>"


def stored_run_meta(checkpoint: Path) -> Dict[str, Any]:
    try:
        return read_manifest(checkpoint)[1]["meta"]
    except (CheckpointError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"trainer.resume: cannot read {checkpoint}: {exc}") from exc


def plan_resume(
    resume: Optional[str], config: Mapping[str, Any], own_store: Path, output_dir: Path
) -> Optional[ResumePlan]:
    """The checkpoint to continue and how it was found; None starts afresh. Only manifests are read:
    ``verified`` checks the arrays once the plan is known to be needed."""
    if resume in (None, "", "null", "none"):
        return None
    if resume != "auto":
        return _checked(explicit_checkpoint(str(resume)), config, f"trainer.resume={resume}")
    if (own_store / CheckpointStore.LAST).is_file():
        return _checked(own_store, config, "this run's directory")
    found = newest_store(_matching_stores(config, output_dir))
    if found is None:
        log.info("trainer.resume=auto: no checkpoint of this config under %s or in %s; starting afresh",
                 output_dir, own_store.parent)
        return None
    return ResumePlan(found, stored_run_meta(found).get("tracking_run_id"), "matching config")


def verified(plan: ResumePlan) -> ResumePlan:
    """The plan, once its checkpoint's files match their hashes; a damaged one names what is left."""
    try:
        load_checkpoint(plan.checkpoint)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}\n{_alternatives(plan.checkpoint)}") from exc
    return plan


def _alternatives(checkpoint: Path) -> str:
    """The other checkpoints of the damaged one's store, and how to resume from them."""
    store = checkpoint if (checkpoint / CheckpointStore.LAST).is_file() else checkpoint.parent
    damaged = CheckpointStore(store).latest() if store == checkpoint else checkpoint
    others = sorted((d for d in store.iterdir() if (d / "manifest.json").is_file() and d != damaged),
                    key=lambda d: d.stat().st_mtime, reverse=True) if store.is_dir() else []
    if not others:
        return "No other checkpoint of this run exists: start it afresh (without trainer.resume)."
    return (f"An earlier checkpoint of this run exists: {others[0]}. Resume from it with the same command and "
            f"trainer.resume={others[0]}")


def _checked(checkpoint: Path, config: Mapping[str, Any], how: str) -> ResumePlan:
    meta = stored_run_meta(checkpoint)
    stored = meta.get("config")
    if stored is not None:
        differences = config_differences(stored, config)
        if differences:
            raise ResumeConfigMismatch(
                f"{how}: the checkpoint {checkpoint} was written by a run of another config; differing keys:\n  "
                + "\n  ".join(differences)
                + "\nRun with the checkpoint's values, or start a new run (without trainer.resume)."
            )
    return ResumePlan(checkpoint, meta.get("tracking_run_id"), how)


def _matching_stores(config: Mapping[str, Any], output_dir: Path) -> Iterator[Path]:
    """Checkpoint stores below ``output_dir`` whose newest checkpoint holds this config."""
    for pointer in sorted(Path(output_dir).rglob(CheckpointStore.LAST)):
        store = pointer.parent
        try:
            stored = stored_run_meta(store).get("config")
        except CheckpointError:
            continue  # a damaged store is nobody's match; resuming it explicitly names the damage
        if stored is not None and not config_differences(stored, config):
            yield store
