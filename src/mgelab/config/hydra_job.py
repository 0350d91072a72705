"""This process's Hydra job as plain values: whether it is a multirun job, its number, overrides
and sweep, and the tags that say where a run came from. The only module of the run's side that
reads ``HydraConfig``; the tracking layer gets what it needs from here as arguments."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mgelab.tracking.provenance import git_commit
from mgelab.tracking.sweep_job import PARENT_ENV, SweepJob


def current_job(cfg: DictConfig) -> Optional[SweepJob]:
    """This process's multirun job, or None for a single run."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode is None or hydra_cfg.mode.name != "MULTIRUN":
        return None
    sweep = cfg.get("sweep") or {}
    return SweepJob(
        num=int(hydra_cfg.job.num),
        sweep_id=str(hydra_cfg.sweep.dir),
        name=sweep.get("name"),
        overrides=[str(o) for o in hydra_cfg.overrides.task],
        # Set by the sweep callback around every job (mgelab.config.callbacks.MlflowSweep).
        parent_run_id=os.environ.get(PARENT_ENV) or None,
    )


def run_tags(cfg: DictConfig) -> Dict[str, Any]:
    """Tags that say what the run is and where it came from (Hydra's view of it)."""
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    tags: Dict[str, Any] = {
        "data": choices.get("data"),
        "model": choices.get("model"),
        "optim": choices.get("optim"),
        "experiment": choices.get("experiment") or "none",
        "git_commit": git_commit(cfg.paths.root_dir),
        "hydra/overrides": " ".join(hydra_cfg.overrides.task) or "(none)",
        "hydra/run_dir": hydra_cfg.runtime.output_dir,
    }
    job = current_job(cfg)
    if job is not None:  # a multirun job: sweep id, job number and key, child of the sweep's run
        tags.update(job.tags())
    return tags
