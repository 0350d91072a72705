"""CPU, memory, disk and network use of a run (and its GPUs', where present) as ``system/...``
metrics, sampled by MLflow's own monitor in a background thread.

GPU metrics come from MLflow's GPU monitor, which needs ``pynvml`` (NVIDIA) or ``pyrsmi`` (AMD);
mgelab does not depend on either: install one to get them. Without, the monitor skips GPUs.

The monitor must never cost the run anything: starting it and stopping it never raise, and stopping
waits at most ``STOP_TIMEOUT_S`` (its last write goes to a server that may be away, and MLflow's
HTTP client would retry that for minutes).
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

from mgelab.tracking.client import bounded_http
from mgelab.tracking.records import error_text

log = logging.getLogger(__name__)

# One sample every 5 s, each logged at once: an hour gets 720 points of about ten metrics, and every
# run at least the one taken when it stops. MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides it.
SAMPLING_INTERVAL_S = 5.0
STOP_TIMEOUT_S = 10.0


def start_monitor(run_id: str, tracking_uri: str, resume: bool = False) -> Optional[object]:
    """A started monitor of ``run_id`` (``resume``: its steps continue those the run holds), or None
    when it cannot start. The run must be RUNNING: the monitor stops once it is not."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # Its start/stop notices would interleave with the run's own console lines.
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
        with bounded_http():  # a resume reads the run's last system step: one short attempt
            monitor = SystemMetricsMonitor(run_id, sampling_interval=SAMPLING_INTERVAL_S, resume_logging=resume,
                                           tracking_uri=tracking_uri)
        monitor.start()
        return monitor
    except Exception as exc:  # a missing psutil, a server away while reading the resumed run's steps
        log.warning("system metrics of run %s are not recorded: %s", run_id, error_text(exc))
        return None


def stop_monitor(monitor: Optional[object]) -> None:
    """Stop sampling and send what was sampled, with one last sample taken now, waiting at most
    ``STOP_TIMEOUT_S``."""
    if monitor is None:
        return
    stopper = threading.Thread(target=_finish, args=(monitor,), name="stop-system-metrics", daemon=True)
    stopper.start()
    stopper.join(STOP_TIMEOUT_S)
    if stopper.is_alive():
        log.warning("the system metrics monitor did not stop within %.0f s (tracking server away?): "
                    "its last samples may be missing", STOP_TIMEOUT_S)


def _finish(monitor) -> None:
    try:
        monitor.finish()
        _publish_last_interval(monitor)
    except Exception as exc:
        log.warning("stopping the system metrics monitor failed: %s", error_text(exc))


def _publish_last_interval(monitor) -> None:
    """MLflow's monitor drops the samples of the interval it is stopped in, so a run shorter than one
    interval would get no system metrics at all: this sample, averaged with the interval's, is sent."""
    monitor.collect_metrics()
    monitor.publish_metrics(monitor.aggregate_metrics())
    monitor.mlflow_logger.flush()
