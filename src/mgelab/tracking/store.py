"""The tracking store: created once (``prepare_store``), then read and written by run id (``TrackingStore``).

Calls name their run explicitly rather than using the fluent ``mlflow.start_run`` stack, so several
runs in one process (a Hydra multirun with the basic launcher, a sweep's parent run beside its jobs)
never see each other's active run. Everything read back leaves as plain ``RunRecord`` values, so
callers never touch MLflow types.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from mgelab.tracking.client import RetryingClient
from mgelab.tracking.datasets import identity, to_inputs
from mgelab.tracking.metric_buffer import MetricRow
from mgelab.tracking.params import fit_param
from mgelab.tracking.reachability import check_tracking_uri
from mgelab.tracking.records import RunRecord, chunks, sqlite_path, str_dict, to_record
from mgelab.tracking.run_context import standard_tags
from mgelab.tracking.run_names import create_uniquely_named

# MLflow 3's UI shows an experiment of this kind as a table of training runs (not its GenAI view).
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
# Per-request limits of MLflow's log_batch.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


def prepare_store(tracking_uri: str, experiment_name: str, artifact_location: Optional[str] = None) -> str:
    """Create the store (schema migrations) and the experiment; return the experiment id. Called once
    before multirun jobs start (concurrent first-time creation of an SQLite store or of one experiment
    races); safe to call again: it finds what exists. A tracking server that does not answer raises
    ``reachability.TrackingUnavailable`` within seconds."""
    check_tracking_uri(tracking_uri)
    db_file = sqlite_path(tracking_uri)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    client = RetryingClient(tracking_uri)
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


class TrackingStore:
    """Runs of one store addressed by id: a run logger's writes, a sweep's parent run, queries for reports.
    ``bounded``: calls to a tracking server make one short attempt (for callers that retry later)."""

    def __init__(self, tracking_uri: str, bounded: bool = False) -> None:
        self.tracking_uri = tracking_uri
        self.client = RetryingClient(tracking_uri, bounded=bounded)

    def create_run(self, experiment_id: str, run_name: Optional[str], tags: Mapping[str, Any]) -> str:
        """A new run: ``run_name`` made unique in the experiment (``name (2)``...), ``tags`` plus
        MLflow's standard ones (user, source, git; ``tags`` win); its id."""
        return self.create_named_run(experiment_id, run_name, tags)[0]

    def create_named_run(
        self, experiment_id: str, run_name: Optional[str], tags: Mapping[str, Any]
    ) -> Tuple[str, Optional[str]]:
        """``create_run``, returning the name the run got as well (MLflow's own pick without ``run_name``)."""
        resolved = standard_tags(tags)
        named: Dict[str, Optional[str]] = {}

        def create(name: Optional[str]) -> str:
            info = self.client.create_run(experiment_id, run_name=name, tags=resolved).info
            named["name"] = info.run_name
            return info.run_id

        run_id = create_uniquely_named(self.client, self.tracking_uri, experiment_id, run_name, create)
        return run_id, named["name"]

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        entries = [Param(*fit_param(k, v)) for k, v in params.items()]
        for chunk in chunks(entries, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.log_metric_rows(run_id, [(k, v, now, step) for k, v in metrics.items()])

    def log_metric_rows(self, run_id: str, rows: Sequence[MetricRow]) -> None:
        entries = [Metric(k, float(v), int(stamp), int(step)) for k, v, stamp, step in rows]
        for chunk in chunks(entries, MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        entries = [RunTag(k, v) for k, v in str_dict(tags).items()]
        for chunk in chunks(entries, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk)

    def log_artifact(self, run_id: str, path: Path | str, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def terminate(self, run_id: str, status: str, end_time_ms: Optional[int] = None) -> None:
        self.client.set_terminated(run_id, status, end_time_ms)

    def reopen(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def apply(self, run_id: str, entry: Mapping[str, Any]) -> None:
        """Send one ``spool`` entry (what a run logger writes, live or replayed) to the run."""
        kind = entry["kind"]
        if kind == "metrics":
            self.log_metric_rows(run_id, entry["rows"])
        elif kind == "tags":
            self.set_tags(run_id, entry["tags"])
        elif kind == "params":
            self.log_params(run_id, entry["params"])
        elif kind == "inputs":
            self.client.log_inputs(run_id, datasets=to_inputs(entry["datasets"]))
        elif kind == "artifact":
            self.log_artifact(run_id, entry["path"], entry.get("artifact_path"))
        elif kind == "status" and entry["status"] == "RUNNING":
            self.reopen(run_id)
        elif kind == "status":
            self.terminate(run_id, entry["status"], entry.get("end_time"))
        else:
            raise ValueError(f"unknown tracking entry kind {kind!r}: {dict(entry)}")

    def last_steps(self, run_id: str) -> Dict[str, int]:
        """The highest step logged so far for each metric of a run."""
        keys = self.client.get_run(run_id).data.metrics
        return {key: max(m.step for m in self.client.get_metric_history(run_id, key)) for key in keys}

    def dataset_inputs(self, run_id: str) -> List[tuple]:
        """``(name, digest, context)`` of every dataset input the run holds."""
        inputs = self.client.get_run(run_id).inputs
        found = []
        for held in inputs.dataset_inputs if inputs else []:
            context = {t.key: t.value for t in held.tags}.get(MLFLOW_DATASET_CONTEXT)
            found.append(identity({"name": held.dataset.name, "digest": held.dataset.digest, "context": context}))
        return found

    def experiment_id(self, name: str) -> Optional[str]:
        found = self.client.get_experiment_by_name(name)
        return None if found is None else found.experiment_id

    def experiment_ids(self) -> List[str]:
        return [e.experiment_id for e in self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]

    def get_run(self, run_id: str) -> RunRecord:
        return to_record(self.client.get_run(run_id))

    def find_run(self, run_id: str) -> Optional[RunRecord]:
        """The run, or None when this store has no run of that id (a checkpoint from another store)."""
        try:
            return self.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def search(
        self, experiment_ids: Sequence[str], filter_string: str = "", order_by: Optional[List[str]] = None,
        max_results: Optional[int] = None,
    ) -> List[RunRecord]:
        """Active runs matching an MLflow filter (e.g. ``tags.model = 'mlp'``), page by page."""
        records: List[RunRecord] = []
        token = None
        while max_results is None or len(records) < max_results:
            page = self.client.search_runs(
                list(experiment_ids), filter_string, ViewType.ACTIVE_ONLY, 1000, order_by, token
            )
            records.extend(to_record(run) for run in page)
            token = page.token
            if not token:
                break
        return records if max_results is None else records[:max_results]

    def metric_values(self, run_id: str, key: str) -> List[Tuple[int, int, float]]:
        """``(step, timestamp ms, value)`` of every logged value: what identifies one in MLflow."""
        return [(m.step, m.timestamp, m.value) for m in self.client.get_metric_history(run_id, key)]

    def metric_history(self, run_id: str, key: str) -> List[Tuple[int, float]]:
        """``(step, value)`` of every logged value, in step order."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))
