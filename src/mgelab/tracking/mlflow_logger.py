"""The run logger that writes to an MLflow store (``logger=mlflow``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Dict, Mapping, Optional

from mgelab.tracking.base import LoggerContext
from mgelab.tracking.metric_buffer import MetricBuffer
from mgelab.tracking.model_logging import log_pyfunc_model
from mgelab.tracking.records import ERROR_TAG, error_text
from mgelab.tracking.store import TrackingStore, prepare_store


class MLflowLogger(LoggerContext):
    """One run of ``experiment_name`` in the store at ``tracking_uri``: a new one, or ``run_id`` continued."""

    resumes_runs: ClassVar[bool] = True
    has_store: ClassVar[bool] = True

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
        self.logs_models, self.register_as = bool(log_model or register_as), register_as or None
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

    def log_model(self, **package: Any) -> Optional[str]:
        """With ``logger.log_model=true``: ``package`` (``log_pyfunc_model``'s keyword arguments) as a
        pyfunc model of this run, registered if ``register_as`` is set; its URI."""
        if not self.logs_models:
            return None
        uri = log_pyfunc_model(self.tracking_uri, self.run_id, register_as=self.register_as, **package)
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
