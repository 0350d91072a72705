"""The MLflow implementation of the run logger — the only module that imports mlflow.

It talks to the store through ``MlflowClient`` with an explicit run id rather than the
fluent ``mlflow.start_run`` stack, so several runs in one process (a Hydra multirun with
the basic launcher) never see each other's active run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional
from urllib.parse import urlparse

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mgelab.tracking.base import LoggerContext
from mgelab.tracking.params import fit_param

# MLflow 3's UI shows an experiment of this kind as a table of training runs (not its GenAI view).
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
# Per-request limits of MLflow's log_batch.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


def sqlite_path(tracking_uri: str) -> Optional[Path]:
    """The database file behind a ``sqlite:///`` URI, or None for other stores."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :])


def prepare_store(tracking_uri: str, experiment_name: str, artifact_location: Optional[str] = None) -> str:
    """Create the store (schema migrations) and the experiment; return the experiment id.

    Called once before multirun jobs start, because concurrent first-time creation of an
    SQLite store or of one experiment races. Safe to call again: it finds what exists.
    """
    db_file = sqlite_path(tracking_uri)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri)
    existing = client.get_experiment_by_name(experiment_name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if artifact_location and urlparse(tracking_uri).scheme in ("sqlite", "file", ""):
        location = Path(artifact_location, experiment_name).resolve().as_uri()
    try:
        return client.create_experiment(
            experiment_name, artifact_location=location, tags=dict([EXPERIMENT_KIND_TAG])
        )
    except MlflowException:
        # Another process created it between our look-up and our insert.
        found = client.get_experiment_by_name(experiment_name)
        if found is None:
            raise
        return found.experiment_id


class MLflowLogger(LoggerContext):
    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_name: Optional[str] = None,
        artifact_location: Optional[str] = None,
        tags: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        experiment_id = prepare_store(tracking_uri, experiment_name, artifact_location)
        self.client = MlflowClient(tracking_uri)
        run = self.client.create_run(experiment_id, run_name=run_name, tags=_str_dict(tags or {}))
        self.run_id = run.info.run_id
        self.experiment_id = experiment_id
        self._closed = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        entries = [Param(*fit_param(k, v)) for k, v in params.items()]
        for chunk in _chunks(entries, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        for chunk in _chunks(entries, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_artifact(self, path: Path | str, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        entries = [RunTag(k, v) for k, v in _str_dict(tags).items()]
        for chunk in _chunks(entries, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=chunk)

    def close(self, status: str = "FINISHED") -> None:
        if not self._closed:
            self.client.set_terminated(self.run_id, status)
            self._closed = True


def _str_dict(values: Mapping[str, Any]) -> Dict[str, str]:
    return {str(k): str(v) for k, v in values.items()}


def _chunks(items: List, size: int) -> Iterable[List]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
