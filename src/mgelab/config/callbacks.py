"""Hydra callbacks (``conf/hydra/default.yaml`` lists them).

MLflow is imported lazily (inside the hooks), so ``logger=none`` runs never load it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
from datetime import datetime
from typing import Any, Dict, List, Optional

from hydra.experimental.callback import Callback
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from mgelab.config.hydra_job import SWEPT_KEYS_ENV, sweep_overrides, swept_keys
from mgelab.tracking.params import flatten

log = logging.getLogger(__name__)

# MLflow's own variable, which conf/paths/default.yaml's tracking_uri reads first.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


class PrepareTrackingStore(Callback):
    """Create the MLflow store and experiment once, before any multirun job starts.

    Jobs that start together would otherwise race to run the schema migrations of a new
    SQLite file and to insert the same experiment.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.prepare(config)

    def prepare(self, config: DictConfig) -> Optional[str]:
        """The experiment id, or None when the run is not tracked in MLflow."""
        logger_cfg = config.get("logger")
        if logger_cfg is None or not get_class(logger_cfg._target_).has_store:
            return None
        from mgelab.tracking.store import prepare_store

        experiment_id = prepare_store(
            logger_cfg.tracking_uri, logger_cfg.experiment_name, logger_cfg.get("artifact_location")
        )
        log.info("MLflow store %s ready, experiment id %s", logger_cfg.tracking_uri, experiment_id)
        return experiment_id


class MlflowSweep(PrepareTrackingStore):
    """One MLflow parent run per sweep; every job's run becomes its child.

    The parent is created here, in the process that starts the multirun, and its id reaches the
    jobs through ``on_job_start`` (Hydra hands this object, pickled, to joblib's workers too).
    Every job reports its outcome to the parent in ``on_job_end``; ``on_multirun_end`` writes
    the summary and closes the parent. A failing job makes Hydra raise before
    ``on_multirun_end``, so the same ending is registered with ``atexit`` as well.
    """

    def __init__(self) -> None:
        self.tracking_uri: Optional[str] = None
        self.parent_run_id: Optional[str] = None
        self.swept: List[str] = []
        self._ended = False
        self._uri_before: Optional[str] = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Named jobs need the swept keys whether or not the sweep is tracked.
        self.swept = sweep_overrides(config.hydra.overrides.task, OmegaConf.select(config, "hydra.sweeper.params"))
        experiment_id = self.prepare(config)
        if experiment_id is None:
            return
        from mgelab.tracking.store import TrackingStore

        self.tracking_uri = str(config.logger.tracking_uri)
        store = TrackingStore(self.tracking_uri)
        self.parent_run_id = store.create_run(experiment_id, _parent_name(config, self.swept), _parent_tags(config))
        store.log_params(self.parent_run_id, _parent_params(config))
        atexit.register(self._end, "Hydra ended the sweep with an error (a failed job, or interrupted)")
        log.info("MLflow parent run of this sweep: %s", self.parent_run_id)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Runs where the job runs (this object travels pickled to joblib workers and submitit
        # jobs), so what it sets reaches the job whatever environment the job was started with.
        os.environ[SWEPT_KEYS_ENV] = json.dumps(swept_keys(self.swept))
        if self.parent_run_id is not None:
            from mgelab.tracking.sweep_job import PARENT_ENV

            os.environ[PARENT_ENV] = self.parent_run_id
            # The job logs to the store its parent is in: paths.tracking_uri reads this variable,
            # which a SLURM job may lack or a compute node may set to a store of its own.
            self._uri_before = os.environ.get(TRACKING_URI_ENV)
            os.environ[TRACKING_URI_ENV] = str(self.tracking_uri)

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        if self.parent_run_id is None:
            return
        from mgelab.tracking.records import error_text
        from mgelab.tracking.store import TrackingStore
        from mgelab.tracking.sweep import JOB_TAG_PREFIX, outcome_of
        from mgelab.tracking.sweep_job import PARENT_ENV

        os.environ.pop(PARENT_ENV, None)
        _restore_env(TRACKING_URI_ENV, self._uri_before)
        if job_return is None:
            return
        try:  # JobReturn.return_value re-raises the job's exception when it failed
            value, error, status = job_return.return_value, None, "COMPLETED"
        except Exception as exc:
            value, error, status = None, error_text(exc), "FAILED"
        num = int(config.hydra.job.num)
        outcome = outcome_of(num, list(job_return.overrides or []), status, value, error)
        TrackingStore(self.tracking_uri).set_tags(self.parent_run_id, {f"{JOB_TAG_PREFIX}{num}": outcome.to_tag()})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end()
        # Here, not inside _end: a callback that unregisters itself while atexit runs it crashes
        # some CPython versions (bpo-46025).
        atexit.unregister(self._end)

    def _end(self, stopped_early: Optional[str] = None) -> None:
        """Summarise the jobs on the parent run, close it and print which jobs failed and why."""
        if self.parent_run_id is None or self._ended:
            return
        self._ended = True
        from mgelab.tracking.store import TrackingStore
        from mgelab.tracking.sweep import summarize

        store = TrackingStore(self.tracking_uri)
        summary = summarize(store, self.parent_run_id)
        store.log_metrics(self.parent_run_id, summary.metrics(), step=0)
        store.set_tags(self.parent_run_id, {**summary.tags(), "sweep/stopped_early": stopped_early or "no"})
        # FAILED when Hydra raised (with the basic and joblib launchers: any job failed) or no job
        # reported; a sweep Hydra completed is FINISHED, its tolerated failures counted in sweep/failed.
        store.terminate(self.parent_run_id, "FAILED" if stopped_early or not summary.outcomes else "FINISHED")
        lines = summary.lines() + ([f"  {stopped_early}"] if stopped_early else [])
        print("\n".join(lines + [f"  MLflow parent run {self.parent_run_id}"]), flush=True)


def _restore_env(name: str, value: Optional[str]) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _parent_name(config: DictConfig, swept: List[str]) -> str:
    """``sweep.name``, else when it started and what it varies: ``2026-12-01 14:05 model=linear,mlp``."""
    from mgelab.tracking.sweep import parent_name

    return parent_name(OmegaConf.select(config, "sweep.name"), datetime.now(), swept)


def _parent_tags(config: DictConfig) -> Dict[str, Any]:
    from mgelab.tracking.sweep import OVERRIDES_TAG, ROLE_TAG, SWEEP_NAME_TAG, overrides_tag_value

    choices = config.hydra.runtime.choices
    return {
        ROLE_TAG: "parent",
        SWEEP_NAME_TAG: OmegaConf.select(config, "sweep.name") or "(unnamed)",
        "hydra/sweep_id": str(config.hydra.sweep.dir),
        OVERRIDES_TAG: overrides_tag_value(config.hydra.overrides.task),
        "sweep/launcher": choices.get("hydra/launcher"),
        "sweep/sweeper": choices.get("hydra/sweeper"),
    }


def _parent_params(config: DictConfig) -> Dict[str, Any]:
    """The sweep's overrides (``override.model = linear,mlp,cnn``) and its sweeper/launcher setup,
    by the runs' rule: none of what cannot change a result (paths, logger, sweep and Hydra output
    settings: the job key's neutral overrides), no ``_target_``, no unset (null) setting."""
    from mgelab.tracking.sweep import identity_overrides

    params: Dict[str, Any] = {}
    for override in identity_overrides([str(o) for o in config.hydra.overrides.task]):
        key, _, value = override.partition("=")
        params[f"override.{key}"] = value
    for node in ("sweeper", "launcher"):
        settings = OmegaConf.to_container(config.hydra[node], resolve=True)
        params.update({k: v for k, v in flatten(settings, prefix=f"hydra.{node}.").items()
                       if not k.endswith("._target_") and v is not None})
    return params
