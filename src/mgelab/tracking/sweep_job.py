"""The job side of a tracked sweep: the tags that make a job's run a child of the sweep's parent
run, and skipping a job that already finished (``sweep.skip_finished=true``). Which job this
process is comes from Hydra, on the Hydra side (``mgelab.config.hydra_job``); no mlflow import here."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from mgelab.tracking.objective import objective_value
from mgelab.tracking.store import TrackingStore
from mgelab.tracking.sweep import (
    JOB_KEY_TAG,
    PARENT_RUN_TAG,
    SKIPPED_TAG_PREFIX,
    SWEEP_NAME_TAG,
    find_finished_job,
    job_key,
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


def skip_finished(job: Optional[SweepJob], tracking_uri: str, experiment_name: str) -> Optional[float]:
    """The stored value of this job when an earlier sweep finished it, else None (train it)."""
    if job is None:
        return None
    store = TrackingStore(tracking_uri)
    run = find_finished_job(store, experiment_name, job.key)
    if run is None:
        return None
    value = objective_value(run)
    if value is None:
        log.warning("run %s finished but recorded no monitored value; training job %d again", run.run_id, job.num)
        return None
    if job.parent_run_id:
        store.set_tags(job.parent_run_id, {f"{SKIPPED_TAG_PREFIX}{job.num}": run.run_id})
    print(f"job {job.num} ({' '.join(job.overrides)}) skipped: it finished as run {run.run_id} "
          f"({run.name}), value {value:.4f}")
    return value
