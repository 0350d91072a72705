"""What a run shows while it trains: one aligned line per epoch (logged, so Hydra's train.log holds
it too), in an interactive terminal only a progress bar within the epoch, and the short log format
whose lines, in a multirun, say which job they belong to."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Iterable, List, Mapping, Optional, Sequence

from tqdm import tqdm

# Keys of the epoch row shown in their own fields (lr, seconds, throughput), or not at all.
_NOT_METRICS = ("train/samples_per_s", "train/epoch_seconds", "train/elapsed_seconds", "train/data_seconds",
                "train/step_seconds")
# Formatting the progress bar's numbers costs as much as a small model's step.
SHOW_EVERY_N_STEPS = 10


def number(value: float) -> str:
    """Four decimals where that reads well (losses, accuracies), else three significant digits in
    exponent form, so a loss of 3e-05 or an MSE of 25000 stays legible at the same width."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4f}"
    return f"{value:.3e}"


def metric_fields(row: Mapping[str, float], prefix: str) -> str:
    """``loss 0.4321  acc 0.8512`` from the row's ``<prefix>/...`` entries, in the row's order."""
    names = [k for k in row if k.startswith(prefix + "/") and k not in _NOT_METRICS]
    return "  ".join(f"{k[len(prefix) + 1:]} {number(row[k]):>9}" for k in names)


def epoch_line(row: Mapping[str, float], epoch: int, max_epochs: int) -> str:
    """``epoch  3/10 | train loss 0.4321  acc 0.8512 | val loss ... | lr 0.05 | 2.1 s 14800 samples/s |
    data 0.1 s step 1.9 s``: where the epoch's time went, waiting for batches or stepping (a row
    without those sums, from before they were measured, ends at samples/s). The epoch number is
    padded to the width of ``max_epochs`` so the columns line up."""
    width = len(str(max_epochs))
    parts = [
        f"epoch {epoch:>{width}}/{max_epochs}",
        f"train {metric_fields(row, 'train')}",
        f"val {metric_fields(row, 'val')}",
        f"lr {row['lr']:<9.3g}",
        f"{row['train/epoch_seconds']:5.1f} s {row['train/samples_per_s']:7.0f} samples/s",
    ]
    if "train/data_seconds" in row and "train/step_seconds" in row:
        parts.append(f"data {row['train/data_seconds']:5.1f} s step {row['train/step_seconds']:5.1f} s")
    return " | ".join(parts)


def interactive(stream=None) -> bool:
    """A bar helps only someone watching a terminal; in a log file, a pipe or a parallel sweep's
    worker it is carriage-return noise, and the epoch line says the same once per epoch."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def limited(batches: Iterable, total: int) -> Iterable:
    """The first ``total`` items of ``batches``."""
    return (b for _, b in zip(range(total), batches))


def epoch_bar(batches: Iterable, total: int, title: str, wanted: bool) -> Iterable:
    """The epoch's batches; behind a transient bar only when one is ``wanted`` and someone watches a
    terminal (the epoch line is logged either way)."""
    if not (wanted and interactive()):
        return batches
    return tqdm(batches, total=total, desc=title, leave=False)


def show_on_bar(bar: Iterable, loss: float, rate: float) -> None:
    """The latest loss and samples/s on the bar, when there is one."""
    if isinstance(bar, tqdm):
        bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{rate:.0f}", refresh=False)


class JobFormatter(logging.Formatter):
    """Short lines: time, the level only when it is not INFO, then the message; in a multirun each
    line also says which job it is (``[job 1 model=mlp]``), since parallel jobs share one console.

    Built by Hydra's ``hydra.job_logging`` (``conf/hydra/default.yaml``) once per job, with that
    job's ``hydra.mode``, ``hydra.job.num`` and overrides resolved. The job is labelled by the
    overrides whose keys the sweep varies, when the sweep callback has put those keys in the
    environment variable named ``swept_keys_env`` (a JSON list), else by all of its overrides. The
    callback does so in ``on_job_start``, after Hydra built this formatter: the label is made at
    the first line.
    ``names``: the logger's name too (for the file, where the source of a line matters)."""

    def __init__(self, mode: object = None, job: object = None, overrides: Sequence[str] = (),
                 swept_keys_env: str = "", names: bool = False, datefmt: str = "%H:%M:%S") -> None:
        super().__init__(datefmt=datefmt)
        self.multirun = str(mode).rsplit(".", 1)[-1] == "MULTIRUN"
        self.job, self.overrides, self.swept_keys_env = job, list(overrides), swept_keys_env
        self.names = names
        self._prefix: Optional[str] = None

    @property
    def prefix(self) -> str:
        if self._prefix is None:
            swept = swept_keys(self.swept_keys_env)
            self._prefix = job_prefix(self.job, self.overrides, swept) if self.multirun else ""
        return self._prefix

    def format(self, record: logging.LogRecord) -> str:
        parts = [self.formatTime(record, self.datefmt)]
        if self.prefix:
            parts.append(self.prefix)
        if record.levelno != logging.INFO or self.names:
            parts.append(record.levelname)
        if self.names:
            parts.append(record.name + " -")
        record.message = record.getMessage()
        parts.append(record.message)
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def swept_keys(env_name: str) -> Optional[List[str]]:
    """The keys a sweep varies, as its callback published them; None when nobody did."""
    raw = os.environ.get(env_name) if env_name else None
    if not raw:
        return None
    keys = json.loads(raw)
    return [str(k) for k in keys] if isinstance(keys, list) else None


def job_prefix(job: object, overrides: List[str], swept: Optional[List[str]]) -> str:
    """``[job 1 model=mlp]``: the job's number and the overrides that tell it from its siblings."""
    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    shown = [o for o in overrides if swept is None or key(o) in swept]
    return f"[job {job}{' ' if shown else ''}{' '.join(shown)}]"
