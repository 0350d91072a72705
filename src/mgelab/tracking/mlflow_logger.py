"""The run logger that writes to an MLflow store (``logger=mlflow``).

Two guarantees beyond writing:

- **A resume cannot damage its run.** A logger continuing ``run_id`` leaves the run untouched until
  its first new metric (a step above what the run holds): tags, params and artifacts logged before
  that wait in memory. Only then is the run reopened (RUNNING) and sent what waited. A resume that
  ends earlier (a damaged checkpoint, missing data, Ctrl-C) leaves status, end time, metrics and
  params as they were and only sets the ``resume/failed_attempt`` tag.
- **A tracking server that goes away costs no data.** Writes go through an ``outbox.Outbox``: held
  and retried with back-off while the server does not answer, spilled to the run directory's
  ``unsent_tracking.jsonl`` before every checkpoint, and what is still unsent at the end stays in
  that file, with the command that replays it printed.

A new run also gets MLflow's standard tags and a name unique in its experiment
(``TrackingStore.create_run``), its data splits as dataset inputs (``log_datasets``) and, unless
``system_metrics=False``, MLflow's ``system/...`` metrics while it is open (``system_metrics.py``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar, Dict, Mapping, Optional, Sequence, Set, Tuple

from mgelab.tracking.base import DatasetSplit, LoggerContext
from mgelab.tracking.datasets import describe_split, identity
from mgelab.tracking.metric_buffer import MetricBuffer
from mgelab.tracking.model_logging import log_pyfunc_model
from mgelab.tracking.outbox import Outbox
from mgelab.tracking.reachability import TrackingUnavailable
from mgelab.tracking.records import ERROR_TAG, FAILED_ATTEMPT_TAG, error_text, is_unreachable
from mgelab.tracking.spool import (
    Entry,
    Spool,
    artifact_entry,
    inputs_entry,
    metrics_entry,
    params_entry,
    replay_command,
    status_entry,
    tags_entry,
)
from mgelab.tracking.store import TrackingStore, prepare_store
from mgelab.tracking.system_metrics import start_monitor, stop_monitor

log = logging.getLogger(__name__)


class MLflowLogger(LoggerContext):
    """One run of ``experiment_name`` in the store at ``tracking_uri``: a new one, or ``run_id``
    continued. ``spool_dir``: where what could not be sent is kept (the run directory; default: the
    working directory). ``system_metrics``: sample CPU, memory (and GPU) use while the run is open."""

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
        spool_dir: Optional[str] = None,
        system_metrics: bool = True,
    ) -> None:
        self.tracking_uri = tracking_uri
        # logger.log_model / logger.register_as (registering implies logging the model).
        self.logs_models, self.register_as = bool(log_model or register_as), register_as or None
        self.store = TrackingStore(tracking_uri, bounded=True)
        self.client = self.store.client
        # A metric step at or below these was logged before a resume: not logged twice.
        self._logged_through: Dict[str, int] = {}
        # (name, digest, context) of the dataset inputs the run holds (a resume's): not logged twice.
        self._logged_inputs: Set[tuple] = set()
        try:
            self.experiment_id = prepare_store(tracking_uri, experiment_name, artifact_location)
            # The name it got: made unique in the experiment, or the resumed run's own.
            self.run_id, self.run_name = self._open_run(run_name, tags or {}, run_id)
        except Exception as exc:
            if is_unreachable(exc):
                raise TrackingUnavailable(tracking_uri, error_text(exc)) from exc
            raise
        self.resumed = bool(run_id)
        # A new run is open from the start; a resumed one once its first new metric arrives.
        self.reopened = not self.resumed
        self._failure: Optional[str] = None
        self._closed = False
        spool = Spool(spool_dir, self.run_id, tracking_uri, self.experiment_id)
        self.outbox = Outbox(self._send, is_unreachable, spool, label=tracking_uri, held=self.resumed)
        self._metrics = MetricBuffer(lambda rows: self.outbox.put(metrics_entry(rows)))
        self.system_metrics = bool(system_metrics)
        self._monitor = start_monitor(self.run_id, tracking_uri) if self.system_metrics and self.reopened else None

    def _open_run(
        self, run_name: Optional[str], tags: Mapping[str, Any], run_id: Optional[str]
    ) -> Tuple[str, Optional[str]]:
        """The run's id and name: a new run, or ``run_id`` continued."""
        if not run_id:
            return self.store.create_named_run(self.experiment_id, run_name, tags)
        # A resumed training continues the run its checkpoint names; reading it changes nothing.
        self._logged_through = self.store.last_steps(run_id)
        self._logged_inputs = set(self.store.dataset_inputs(run_id))
        return run_id, self.store.get_run(run_id).name

    def _send(self, entry: Entry) -> None:
        self.store.apply(self.run_id, entry)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.outbox.put(params_entry(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        fresh = {k: v for k, v in metrics.items() if step > self._logged_through.get(k, -1)}
        if fresh:
            self._reopen()
            self._metrics.add(fresh, step)

    def flush(self) -> None:
        """Everything logged so far is in the store, or (server away) in the spool file."""
        self._metrics.flush()
        if not self.outbox.held and not self.outbox.drain():
            self.outbox.spill()

    def log_artifact(self, path: Path | str, artifact_path: Optional[str] = None) -> None:
        self.outbox.put(artifact_entry(path, artifact_path))

    def log_datasets(self, datasets: Sequence[DatasetSplit]) -> None:
        """The splits as the run's dataset inputs (context tag ``mlflow.data.context``); those the run
        already holds (a resumed run's, same digest) are not logged again. Never fails the run."""
        try:
            described = [describe_split(split) for split in datasets]
        except Exception as exc:  # arrays MLflow cannot describe (an object dtype): the run goes on
            log.warning("the run's datasets are not recorded: %s", error_text(exc))
            return
        fresh = [d for d in described if identity(d) not in self._logged_inputs]
        self._logged_inputs.update(identity(d) for d in fresh)
        if fresh:
            self.outbox.put(inputs_entry(fresh))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.outbox.put(tags_entry(tags))

    def log_model(self, **package: Any) -> Optional[str]:
        """With ``logger.log_model=true``: ``package`` (``log_pyfunc_model``'s keyword arguments) as a
        pyfunc model of this run, registered if ``register_as`` is set; its URI."""
        if not self.logs_models:
            return None
        self._reopen()
        uri = log_pyfunc_model(self.tracking_uri, self.run_id, register_as=self.register_as, **package)
        self.set_tags({"pyfunc_model_uri": uri})
        return uri

    def _reopen(self) -> None:
        """A resumed run becomes RUNNING again, then gets what waited for that."""
        if not self.reopened:
            self.reopened = True
            self.outbox.put_first(status_entry("RUNNING"), keep=False)
            self.outbox.release()
            if self.system_metrics and not self._closed:  # its steps continue the run's
                self._monitor = start_monitor(self.run_id, self.tracking_uri, resume=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self._failure = error_text(exc)
        # A FAILED run says why, in the UI and for the sweep summary.
        try:
            if exc is not None and self.reopened and not self._closed and not isinstance(exc, KeyboardInterrupt):
                self.set_tags({ERROR_TAG: self._failure})
        finally:
            super().__exit__(exc_type, exc, tb)

    def close(self, status: str = "FINISHED") -> None:
        if self._closed:
            return
        self._closed = True
        stop_monitor(self._monitor)  # its last samples before the run's status
        self._monitor = None
        try:
            if self.reopened or status == "FINISHED":
                self._end(status)
            else:
                self._leave_as_it_was(status)
            self.outbox.drain(force=True)
        finally:
            self._report_unsent(self.outbox.finish())

    def _end(self, status: str) -> None:
        self._reopen()  # a resume whose every step was logged before, finishing now
        try:
            self._metrics.flush()
        except Exception:
            status = "FAILED"  # a metric the store refused: raised below, after the run has ended
            raise
        finally:
            self.outbox.put(status_entry(status, int(time.time() * 1000)))

    def _leave_as_it_was(self, status: str) -> None:
        """A resume that ended before its first new metric: its run keeps status, end time, metrics
        and params; only the failed attempt is recorded, as a tag (tags do not change a status)."""
        dropped = self.outbox.discard()
        log.info("resume of run %s ended (%s) before its first new step: the run is left as it was "
                 "(%d waiting writes dropped)", self.run_id, status, dropped)
        self.outbox.held = False
        self.outbox.put(tags_entry({FAILED_ATTEMPT_TAG: self._failure or f"{status} before its first new step"}))

    def _report_unsent(self, path: Optional[Path]) -> None:
        if path is None:
            return
        message = (f"The tracking store {self.tracking_uri} did not take everything of run {self.run_id}; "
                   f"what it did not take is in {path}. Once the store answers again, send it with: "
                   f"{replay_command(path)}")
        log.warning(message)
        print(message)
