"""The value a run hands to a sweeper, as its record stores it: which metric was monitored, in
which direction, and its value at the best epoch. Written once by the run; read back by sweeps
that skip finished jobs and by their summaries, so nothing re-derives the trainer's rules."""

from __future__ import annotations

from typing import Optional, Tuple

from mgelab.tracking.records import RunRecord

MONITOR_TAG = "monitor/metric"
MONITOR_MODE_TAG = "monitor/mode"
MONITOR_VALUE_METRIC = "monitor/best_value"


def objective_of(run: RunRecord) -> Optional[Tuple[str, str]]:
    """(metric, "max"|"min") the run monitored; None for a run that ended before saying so."""
    metric, mode = run.tags.get(MONITOR_TAG), run.tags.get(MONITOR_MODE_TAG)
    if not metric or mode not in ("max", "min"):
        return None
    return metric, mode


def objective_value(run: RunRecord) -> Optional[float]:
    """What the run returned to its sweeper: the monitored metric at its best epoch."""
    return run.metrics.get(MONITOR_VALUE_METRIC)
