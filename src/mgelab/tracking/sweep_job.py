"""The job side of a tracked sweep, as ``scripts/train.py`` sees it: the tags that make a job's
run a child of the sweep's parent run, and skipping a job that already finished
(``sweep.skip_finished=true``). No mlflow import here."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mgelab.tracking.mlflow_logger import TrackingStore
from mgelab.tracking.sweep import (
    JOB_KEY_TAG,
    PARENT_RUN_TAG,
    SKIPPED_TAG_PREFIX,
    SWEEP_NAME_TAG,
    find_finished_job,
    job_key,
    objective_value,
)

log = logging.getLogger(__name__)

# Set by the sweep callback around every job (same process with the basic launcher, a joblib
# worker with the joblib launcher): the parent run's id.
PARENT_ENV = "MGELAB_SWEEP_PARENT_RUN_ID"


@dataclass
class SweepJob:
    num: int
    sweep_id: str
    name: Optional[str]
    overrides: List[str]
    parent_run_id: Optional[str]

    @property
    def key(self) -> str:
        return job_key(self.overrides, self.name)

    def tags(self) -> Dict[str, Any]:
        tags: Dict[str, Any] = {
            "hydra/job_num": self.num,
            "hydra/sweep_id": self.sweep_id,
            JOB_KEY_TAG: self.key,
            SWEEP_NAME_TAG: self.name or "(unnamed)",
        }
        if self.parent_run_id:
            tags[PARENT_RUN_TAG] = self.parent_run_id
        return tags


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
        parent_run_id=os.environ.get(PARENT_ENV) or None,
    )


def skip_finished(cfg: DictConfig) -> Optional[float]:
    """A finished job's stored value when ``sweep.skip_finished`` is on and it exists, else None."""
    job = current_job(cfg)
    sweep = cfg.get("sweep") or {}
    logger_cfg = cfg.get("logger") or {}
    if job is None or not sweep.get("skip_finished") or "tracking_uri" not in logger_cfg:
        return None
    store = TrackingStore(logger_cfg.tracking_uri)
    run = find_finished_job(store, logger_cfg.experiment_name, job.key)
    if run is None:
        return None
    value = objective_value(store, run)
    if value is None:
        log.warning("run %s finished but its monitored value cannot be read; training job %d again",
                    run.run_id, job.num)
        return None
    if job.parent_run_id:
        store.set_tags(job.parent_run_id, {f"{SKIPPED_TAG_PREFIX}{job.num}": run.run_id})
    print(f"job {job.num} ({' '.join(job.overrides)}) skipped: it finished as run {run.run_id} "
          f"({run.name}), value {value:.4f}")
    return value
