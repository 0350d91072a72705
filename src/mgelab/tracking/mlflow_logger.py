"""The MLflow implementation of the run logger and of the store queries — the only module that
imports mlflow.

It talks to the store through ``MlflowClient`` with explicit run ids rather than the fluent
``mlflow.start_run`` stack, so several runs in one process (a Hydra multirun with the basic
launcher, a sweep's parent run beside its jobs) never see each other's active run. Everything
read back leaves this module as plain ``RunRecord`` values, so callers never touch MLflow types.
"""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

import mlflow
import mlflow.pyfunc
import numpy as np
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mgelab.tracking import records as helpers
from mgelab.tracking.base import LoggerContext
from mgelab.tracking.metric_buffer import MetricBuffer, MetricRow
from mgelab.tracking.params import fit_param

# Also imported from here by the sweep, compare and callback modules.
from mgelab.tracking.records import ERROR_TAG, RunRecord, error_text, sqlite_path
from mgelab.tracking.retry import with_retries

# MLflow 3's UI shows an experiment of this kind as a table of training runs (not its GenAI view).
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
# Per-request limits of MLflow's log_batch.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
class RetryingClient:
    """``MlflowClient`` whose every call is retried while the database is locked (safe: a call that
    hit the lock was rolled back as a whole)."""

    def __init__(self, tracking_uri: str, registry_uri: Optional[str] = None) -> None:
        self._client = with_retries(MlflowClient, tracking_uri, registry_uri)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        return functools.partial(with_retries, attr) if callable(attr) else attr


def prepare_store(tracking_uri: str, experiment_name: str, artifact_location: Optional[str] = None) -> str:
    """Create the store (schema migrations) and the experiment; return the experiment id. Called once
    before multirun jobs start (concurrent first-time creation of an SQLite store or of one experiment
    races); safe to call again: it finds what exists."""
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
    """Runs of one store addressed by id: a sweep's parent run, queries for reports."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = RetryingClient(tracking_uri)

    def create_run(self, experiment_id: str, run_name: Optional[str], tags: Mapping[str, Any]) -> str:
        return self.client.create_run(experiment_id, run_name=run_name, tags=helpers.str_dict(tags)).info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        entries = [Param(*fit_param(k, v)) for k, v in params.items()]
        for chunk in helpers.chunks(entries, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.log_metric_rows(run_id, [(k, v, now, step) for k, v in metrics.items()])

    def log_metric_rows(self, run_id: str, rows: Sequence[MetricRow]) -> None:
        entries = [Metric(k, float(v), int(stamp), int(step)) for k, v, stamp, step in rows]
        for chunk in helpers.chunks(entries, MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        entries = [RunTag(k, v) for k, v in helpers.str_dict(tags).items()]
        for chunk in helpers.chunks(entries, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk)

    def log_artifact(self, run_id: str, path: Path | str, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def terminate(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def reopen(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def last_steps(self, run_id: str) -> Dict[str, int]:
        """The highest step logged so far for each metric of a run."""
        keys = self.client.get_run(run_id).data.metrics
        return {key: max(m.step for m in self.client.get_metric_history(run_id, key)) for key in keys}

    def experiment_id(self, name: str) -> Optional[str]:
        found = self.client.get_experiment_by_name(name)
        return None if found is None else found.experiment_id

    def experiment_ids(self) -> List[str]:
        return [e.experiment_id for e in self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]

    def get_run(self, run_id: str) -> RunRecord:
        return helpers.to_record(self.client.get_run(run_id))

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
            records.extend(helpers.to_record(run) for run in page)
            token = page.token
            if not token:
                break
        return records if max_results is None else records[:max_results]

    def metric_history(self, run_id: str, key: str) -> List[Tuple[int, float]]:
        """``(step, value)`` of every logged value, in step order."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))


class MLflowLogger(LoggerContext):
    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_name: Optional[str] = None,
        artifact_location: Optional[str] = None,
        tags: Optional[Mapping[str, Any]] = None,
        run_id: Optional[str] = None,
        log_model: bool = False,
        register_as: Optional[str] = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        # logger.log_model / logger.register_as (registering implies logging the model).
        self.model_logging, self.register_as = bool(log_model or register_as), register_as or None
        experiment_id = prepare_store(tracking_uri, experiment_name, artifact_location)
        self.store = TrackingStore(tracking_uri)
        self.client = self.store.client
        # A metric step at or below these was logged before a resume: not logged twice.
        self._logged_through: Dict[str, int] = {}
        if run_id:  # a resumed training continues the run its checkpoint names
            self.store.reopen(run_id)
            self.run_id = run_id
            self._logged_through = self.store.last_steps(run_id)
        else:
            self.run_id = self.store.create_run(experiment_id, run_name, tags or {})
        self.experiment_id = experiment_id
        self._closed = False
        self._metrics = MetricBuffer(lambda rows: self.store.log_metric_rows(self.run_id, rows))

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.store.log_params(self.run_id, params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        fresh = {k: v for k, v in metrics.items() if step > self._logged_through.get(k, -1)}
        if fresh:
            self._metrics.add(fresh, step)

    def flush(self) -> None:
        self._metrics.flush()

    def log_artifact(self, path: Path | str, artifact_path: Optional[str] = None) -> None:
        self.store.log_artifact(self.run_id, path, artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.store.set_tags(self.run_id, tags)

    def log_model(self, checkpoint_dir: Path | str, input_example: Any) -> Optional[str]:
        """With ``logger.log_model=true``: the checkpoint as a pyfunc model of this run; its URI."""
        if not self.model_logging:
            return None
        uri = log_pyfunc_model(self.tracking_uri, self.run_id, checkpoint_dir, input_example, self.register_as)
        self.set_tags({"pyfunc_model_uri": uri})
        return uri

    def __exit__(self, exc_type, exc, tb) -> None:
        # A FAILED run says why, in the UI and for the sweep summary.
        try:
            if exc is not None and not self._closed and not isinstance(exc, KeyboardInterrupt):
                self.set_tags({ERROR_TAG: error_text(exc)})
        finally:
            super().__exit__(exc_type, exc, tb)

    def close(self, status: str = "FINISHED") -> None:
        if not self._closed:
            try:
                self.flush()
            finally:  # the run still ends (FAILED if the flush raised) and the error surfaces
                self.store.terminate(self.run_id, status)
            self._closed = True


def download_run_artifacts(tracking_uri: str, run_id: str, artifact_path: str, dst_dir: Path | str) -> Path:
    """Copy a run's artifact folder (e.g. ``checkpoints/best``) under ``dst_dir``; return its local path."""
    client = RetryingClient(tracking_uri)
    try:
        found = client.list_artifacts(run_id, artifact_path)
    except MlflowException as exc:
        raise LookupError(f"run_id={run_id} is not a run in {tracking_uri}: {exc.message}") from exc
    if not found:
        raise FileNotFoundError(f"run {run_id} in {tracking_uri} has no artifacts under {artifact_path}/ (a "
                                "finished run logs its best checkpoint there; a failed or running one may not)")
    Path(dst_dir).mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, artifact_path, str(dst_dir)))


class MgelabPyfunc(mlflow.pyfunc.PythonModel):
    """An mgelab checkpoint as an MLflow model. ``mgelab.serving.pyfunc`` holds the logic and says what
    goes in (raw samples) and what comes out (the trainer's eval outputs: logits, or values)."""

    def load_context(self, context) -> None:
        from mgelab.serving import pyfunc  # megengine, only where a model is used

        self._trained = pyfunc.load(context.artifacts, context.model_config)

    # The ndarray hint tells MLflow not to validate by type hints: the logged signature does.
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        from mgelab.serving import pyfunc

        return pyfunc.predict(self._trained, model_input)


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """Model.log reads the process-wide tracking URI (and exports it): ours for the call, then as before."""
    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def log_pyfunc_model(tracking_uri: str, run_id: str, checkpoint_dir: Path | str, raw_samples: Any,
                     register_as: Optional[str] = None, name: str = "model") -> str:
    """A checkpoint as a pyfunc model of ``run_id`` (registered as ``register_as`` in the same store); its URI."""
    from mgelab.serving import pyfunc

    client = RetryingClient(tracking_uri, registry_uri=tracking_uri)
    example, outputs = pyfunc.example_io(checkpoint_dir, raw_samples)
    # Created here, in the run's experiment: MLflow would put it in the default experiment.
    model = client.create_logged_model(client.get_run(run_id).info.experiment_id, name=name, source_run_id=run_id)
    with _tracking_uri(tracking_uri):
        mlflow.models.Model.log(
            None, name=name, flavor=mlflow.pyfunc, python_model=MgelabPyfunc(), model_id=model.model_id,
            run_id=run_id, artifacts={pyfunc.CHECKPOINT_ARTIFACT: str(checkpoint_dir)},
            model_config=pyfunc.model_config_of(checkpoint_dir), code_paths=[str(pyfunc.package_dir())],
            signature=mlflow.models.infer_signature(example, outputs), input_example=example,
            pip_requirements=pyfunc.pip_requirements(),
        )
        if register_as:  # inside: the registry resolves the models:/ source through the tracking URI
            with contextlib.suppress(MlflowException):  # it exists: a new version of it
                client.create_registered_model(register_as)
            client.create_model_version(register_as, f"models:/{model.model_id}", run_id, model_id=model.model_id)
    return f"models:/{model.model_id}"
