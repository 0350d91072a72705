"""This process's Hydra job as plain values: whether it is a multirun job, its number, overrides
and sweep, and the tags that say where a run came from. The only module of the run's side that
reads ``HydraConfig``; the tracking layer gets what it needs from here as arguments."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from mgelab.tracking.sweep import OVERRIDES_TAG, override_key, overrides_tag_value
from mgelab.tracking.sweep_job import PARENT_ENV, SweepJob
from mgelab.train.device import available_cpus

# Set by the sweep callback around every job (as PARENT_ENV is): the keys the sweep varies, as a
# JSON list, so a job's run is named by its values of those keys only.
SWEPT_KEYS_ENV = "MGELAB_SWEPT_KEYS"


def _is_multirun(hydra_cfg: DictConfig) -> bool:
    return hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN"


def current_job(cfg: DictConfig) -> Optional[SweepJob]:
    """This process's multirun job, or None for a single run."""
    hydra_cfg = HydraConfig.get()
    if not _is_multirun(hydra_cfg):
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


def parallel_jobs() -> int:
    """How many jobs of this process's sweep share the CPUs it may use (1 for a single run), so
    that ``trainer.cpu_threads=0`` gives each job its part of them (``jobs_sharing_cpus``)."""
    hydra_cfg = HydraConfig.get()
    if not _is_multirun(hydra_cfg):
        return 1
    return jobs_sharing_cpus(hydra_cfg.launcher, available_cpus())


def jobs_sharing_cpus(launcher: Mapping[str, Any], cpus: int) -> int:
    """How many jobs run side by side on the ``cpus`` this job may use, by its launcher's settings.

    joblib: ``n_jobs`` (-1: one per CPU). submitit: each job is a task of ``cpus_per_task`` CPUs;
    SLURM pins it to them (its affinity mask holds just those: 1 job), submitit's local executor
    pins none (every job sees every CPU: as many jobs as fit, rounded up so that none gets more
    than its ``cpus_per_task``). Otherwise (the basic launcher, one job at a time): 1.
    """
    n_jobs = launcher.get("n_jobs")
    if n_jobs is not None:
        return (os.cpu_count() or 1) if int(n_jobs) < 0 else max(1, int(n_jobs))
    per_task = launcher.get("cpus_per_task")
    if per_task is not None:
        if int(per_task) < 1:
            raise ValueError(f"hydra.launcher.cpus_per_task={per_task} must be >= 1")
        return max(1, -(-int(cpus) // int(per_task)))
    return 1


def run_tags(cfg: DictConfig) -> Dict[str, Any]:
    """Tags that say what the run is and where it came from (Hydra's view of it)."""
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    tags: Dict[str, Any] = {
        "data": choices.get("data"),
        "model": choices.get("model"),
        "optim": choices.get("optim"),
        "experiment": choices.get("experiment") or "none",
        OVERRIDES_TAG: overrides_tag_value(hydra_cfg.overrides.task),
        "hydra/run_dir": hydra_cfg.runtime.output_dir,
    }
    job = current_job(cfg)
    if job is not None:  # a multirun job: sweep id, job number and key, child of the sweep's run
        tags.update(job.tags())
    return tags


def sweep_overrides(task_overrides: Sequence[str], sweeper_params: Optional[Mapping[str, Any]]) -> List[str]:
    """What a sweep varies, as written: its sweep overrides (``model=linear,mlp``) and the search
    space a sweeper such as Optuna draws from (``hydra.sweeper.params``: ``optim.lr=interval(...)``)."""
    parsed = OverridesParser.create().parse_overrides([str(o) for o in task_overrides])
    swept = [o.input_line for o in parsed if o.is_sweep_override()]
    return swept + [f"{key}={value}" for key, value in (sweeper_params or {}).items()]


def swept_keys(swept: Sequence[str]) -> List[str]:
    """``["model=linear,mlp", "+optim.lr=0.1,0.2"]`` -> ``["model", "optim.lr"]``."""
    return [override_key(str(o)) for o in swept]


def naming_inputs() -> Tuple[List[str], Optional[List[str]]]:
    """This job's overrides, and in a multirun the keys its sweep varies (None for a single run);
    what ``mgelab.run.naming.run_name`` names the run by."""
    hydra_cfg = HydraConfig.get()
    overrides = [str(o) for o in hydra_cfg.overrides.task]
    if not _is_multirun(hydra_cfg):
        return overrides, None
    keys = os.environ.get(SWEPT_KEYS_ENV)
    # Without the callback's list (it is not configured): every override shown, as for a single run.
    return overrides, (json.loads(keys) if keys else None)
