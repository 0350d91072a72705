"""A side-by-side table of tracked runs (``scripts/compare.py``): one row per run, as Markdown and
CSV. Works on plain run records and metric histories; the MLflow reads are in ``mgelab.tracking``.

Time to accuracy: a ``t@<threshold>`` column per ``CompareSpec.time_to`` value holds the training
seconds (``train/elapsed_seconds``, validation excluded) at the first epoch whose ``metric`` reached
the threshold (``>=`` for ``mode: max``, ``<=`` for ``mode: min``); none when it never did. Plain
seconds, so the CSV sorts and sums; the Markdown rounds them to whole seconds."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mgelab.tracking.sweep import NO_OVERRIDES, ROLE_TAG, identity_overrides, overrides_in_tags, varying_overrides

History = List[Tuple[int, float]]
Number = Union[int, float]

# Training seconds so far, logged every epoch at step=epoch (validation time excluded).
ELAPSED_METRIC = "train/elapsed_seconds"
DEFAULT_TIME_TO = (0.5, 0.6, 0.7, 0.8)
TIME_TO_PREFIX = "t@"


@dataclass
class CompareSpec:
    """Which metrics the report is about (``conf/compare.yaml``)."""

    metric: str = "val/acc"  # per epoch: best value and the overlaid curves
    mode: str = "max"  # what "best" means for ``metric``
    test_metric: str = "test/acc"
    loss_metric: str = "step/train_loss"  # per step
    # Past this many runs the curve plots draw only the best ones (the table has every run).
    max_curves: int = 20
    # Values of ``metric``; one time-to-reach column each (empty: no such columns).
    time_to: Sequence[Number] = DEFAULT_TIME_TO

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode={self.mode!r}: set mode to max or min (what 'best' means for {self.metric})")
        if isinstance(self.max_curves, bool) or not isinstance(self.max_curves, int) or self.max_curves < 1:
            raise ValueError(f"max_curves={self.max_curves!r}: set max_curves to a whole number of runs, 1 or more")
        self.time_to = checked_thresholds(self.time_to, self.metric)


def checked_thresholds(time_to: Any, metric: str) -> Tuple[Number, ...]:
    """``time_to`` as a tuple of distinct finite numbers (any sequence, e.g. Hydra's ListConfig)."""
    shown = list(time_to) if isinstance(time_to, Sequence) and not isinstance(time_to, str) else time_to
    hint = f"time_to={shown!r}: set time_to to a list of {metric} values, e.g. [0.5, 0.7], or [] for none"
    if not isinstance(shown, list):
        raise ValueError(hint)
    for value in shown:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{hint} ({value!r} is not a finite number)")
    repeated = sorted({v for v in shown if shown.count(v) > 1})
    if repeated:
        raise ValueError(f"{hint} ({', '.join(map(str, repeated))} given more than once)")
    return tuple(shown)


@dataclass
class RunData:
    """One run and the histories the report draws."""

    run: Any  # mgelab.tracking.records.RunRecord
    metric_history: History
    loss_history: History
    label: str = ""  # the overrides that set it apart from the other runs compared; "" when none do
    elapsed_history: History = field(default_factory=list)  # ELAPSED_METRIC by epoch


def gather(store: Any, runs: Sequence[Any], spec: CompareSpec) -> List[RunData]:
    """Fetch each run's per-epoch metric and per-step loss; label runs by what sets them apart.

    A sweep's parent run trained nothing (its metrics are the sweep's counts), so it is never a
    row, bar or curve, whichever way the runs were selected."""
    runs = [r for r in runs if not is_sweep_parent(r)]
    overrides = [identity_overrides(overrides_in_tags(r.tags)) for r in runs]
    labels = [" ".join(o) for o in varying_overrides(overrides)]
    return [
        RunData(
            run=run,
            metric_history=store.metric_history(run.run_id, spec.metric),
            loss_history=store.metric_history(run.run_id, spec.loss_metric),
            label=label,
            elapsed_history=store.metric_history(run.run_id, ELAPSED_METRIC) if spec.time_to else [],
        )
        for run, label in zip(runs, labels)
    ]


def is_sweep_parent(run: Any) -> bool:
    return run.tags.get(ROLE_TAG) == "parent"


def time_to_column(threshold: Number) -> str:
    return f"{TIME_TO_PREFIX}{threshold}"


def columns(spec: CompareSpec) -> List[str]:
    return [
        "run", "status", "data", "model", "overrides", "params", f"best {spec.metric}",
        spec.test_metric, "epochs", "wall time s", *map(time_to_column, spec.time_to), "samples/s", "run id",
    ]


def seconds_to_reach(item: RunData, threshold: Number, mode: str) -> Optional[float]:
    """Training seconds at the first epoch whose metric reached ``threshold``; None if none did
    (or that epoch has no elapsed time, as in runs from before it was logged)."""
    elapsed: Dict[int, float] = {}
    for step, seconds in item.elapsed_history:
        elapsed.setdefault(step, seconds)  # an epoch logged twice (a resume): its first, smallest time
    for step, value in item.metric_history:
        if (value >= threshold) if mode == "max" else (value <= threshold):
            return elapsed.get(step)
    return None


def table_rows(data: Sequence[RunData], spec: CompareSpec) -> List[Dict[str, Any]]:
    """One row per run; a value the run never logged (a failed run) is None."""
    names = columns(spec)
    rows = []
    for item in data:
        run, metrics = item.run, item.run.metrics
        values = [value for _, value in item.metric_history]
        best = (max if spec.mode == "max" else min)(values) if values else None
        params = run.params.get("model_info.num_parameters")
        epochs = metrics.get("epoch", len(values) or None)
        cells = [
            run.name, run.status, run.tags.get("data"), run.tags.get("model"), item.label or NO_OVERRIDES,
            int(params) if params else None, best, metrics.get(spec.test_metric),
            int(epochs) if epochs is not None else None, metrics.get("wall_time_s"),
            *(seconds_to_reach(item, t, spec.mode) for t in spec.time_to),
            metrics.get("train_samples_per_s"), run.run_id,
        ]
        rows.append(dict(zip(names, cells)))
    return rows


def to_markdown(rows: Sequence[Mapping[str, Any]], spec: CompareSpec) -> str:
    names = columns(spec)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[n], n).replace("|", "\\|") for n in names) + " |")
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[Mapping[str, Any]], spec: CompareSpec, path: Path) -> Path:
    """Full-precision values (the Markdown table rounds); empty cells for missing values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns(spec))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


def output_name(requested: Optional[str], selection_label: str) -> str:
    """A folder name: the one asked for, else the sweep's or experiment's name, made path-safe."""
    text = requested or selection_label
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "runs"


# Shown precision per column (the CSV keeps every digit); metrics get 4 decimals, times to reach a
# threshold whole seconds.
COLUMN_DECIMALS = {"wall time s": 1, "samples/s": 0}


def _decimals(column: str) -> int:
    return 0 if column.startswith(TIME_TO_PREFIX) else COLUMN_DECIMALS.get(column, 4)


def _cell(value: Any, column: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{_decimals(column)}f}"
    return str(value)
