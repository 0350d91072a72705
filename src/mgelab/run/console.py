"""What a run says on the console: a header when it starts and a summary when it ends, as text.

Through Python logging (``mgelab.run``), one record per line, so Hydra's ``train.log`` holds the
same lines and a parallel sweep's job prefix (Hydra's log format) marks every one of them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Mapping

from mgelab.config.resolvers import paths_value

log = logging.getLogger("mgelab.run")

# Where `make ui` serves the MLflow UI for the default SQLite store.
LOCAL_UI = "http://127.0.0.1:5000"


def run_url(tracking_uri: str, experiment_id: Any, run_id: str) -> str:
    """The run's page in the MLflow UI: the tracking server's own, or the local ``make ui``'s."""
    base = tracking_uri.rstrip("/") if str(tracking_uri).startswith(("http://", "https://")) else LOCAL_UI
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def tracking_line(logger) -> str:
    """Where the run is tracked: its UI page, or that it is not tracked."""
    run_id = getattr(logger, "run_id", None)
    if not run_id:
        return "not tracked (logger=none)"
    uri = str(getattr(logger, "tracking_uri", ""))
    url = run_url(uri, logger.experiment_id, run_id)
    if url.startswith(uri.rstrip("/")):  # a tracking server: its own UI
        return url
    # `make ui` shows the default store; another one is named on its command line.
    serve = "make ui" if uri == paths_value("tracking_uri") else f"make ui TRACKING_URI={uri}"
    return f"{url} (`{serve}` serves it)"


def _sizes(info: Mapping[str, Any]) -> str:
    return " / ".join(f"{info[f'{s}_size']} {s}" for s in ("train", "val", "test") if f"{s}_size" in info)


def header_lines(
    *, name: str, experiment: str, run_dir: Path, logger, data_info: Mapping[str, Any], model_name: str,
    model_class: str, parameters: int, device: str, cpu_threads: int, debug: bool
) -> List[str]:
    """The run's header: what it is, where it goes, the data, the model and the device."""
    shape = "x".join(str(d) for d in data_info.get("input_shape", []))
    threads = f", {cpu_threads} CPU thread{'s' if cpu_threads != 1 else ''}" if device.startswith(("cpu", "multi")) \
        else ""
    return [
        f"run {name!r}" + (f" in experiment {experiment}" if getattr(logger, "run_id", None) else "")
        + (" (debug run)" if debug else ""),
        f"  run dir  {run_dir}",
        f"  MLflow   {tracking_line(logger)}",
        f"  data     {data_info.get('name')}: {_sizes(data_info)}, input {shape}, "
        f"{data_info.get('num_outputs')} outputs ({data_info.get('task')})",
        f"  model    {model_name} ({model_class}), {parameters:,} parameters",
        f"  device   {device}{threads}",
    ]


def summary_lines(result, max_epochs: int, run_dir: Path, logger) -> List[str]:
    """The run's ending as text: its best epoch and value, the test metrics, time, where it is."""
    tested = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.test.items()) if not k.startswith("acc_class_"))
    return [
        f"done: best epoch {result.best_epoch} of {max_epochs}, {result.monitor} {result.best_value:.4f}",
        f"  test     {tested or 'no test metrics'}",
        f"  time     {result.wall_time_s:.1f} s, {result.train_samples_per_s:.0f} train samples/s",
        f"  run dir  {run_dir}",
        f"  MLflow   {tracking_line(logger)}",
    ]


def say(lines: List[str], level: int = logging.INFO) -> None:
    for line in lines:
        log.log(level, "%s", line)


def complete_run_line(run_id: str, name: str, metrics: Mapping[str, float]) -> str:
    """A resume of a run that FINISHED: nothing to do, and how to train a new run instead."""
    tested = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())
                       if k.startswith("test/") and not k.startswith("test/acc_class_"))
    return (f"trainer.resume: run {run_id} ({name}) is complete (FINISHED; {tested or 'no test metrics'}); "
            "nothing to resume. Drop trainer.resume to train a new run.")
