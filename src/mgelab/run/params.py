"""The MLflow params of a run: the settings that decide its result, as plain values.

The whole resolved config is the run's ``config.yaml`` artifact; params are what the UI shows as
columns and what filters compare, so they hold only what tells runs apart: no ``_target_`` class
paths, no paths, no tracking connection, no bookkeeping (checkpoint retention, resume, progress
bar), and of the optimizer and schedule only the keys the chosen one reads (``OPTIMIZER_KEYS``,
``SCHEDULE_KEYS``, declared next to the code that reads them).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

from mgelab.run.resume import is_neutral
from mgelab.tracking.params import flatten
from mgelab.train.optim import OPTIMIZER_KEYS, OptimizerFactory
from mgelab.train.schedule import SCHEDULE_KEYS, LRSchedule

# Keys (a trailing "." covers everything below) that never change what is trained, beyond the
# resume-neutral ones: the run's own name and experiment (run attributes already), the tracking
# setup, the top-level ``epochs`` that ``trainer.max_epochs`` takes (and a smoke run overrides),
# the trainer's copy of ``seed``, checkpoint retention.
NOT_PARAMS = (
    "run_name",
    "experiment_name",
    "epochs",
    "logger.",
    "hydra.",
    "trainer.seed",
    "trainer.debug",
    "trainer.keep_last",
    "trainer.keep_best",
    "trainer.checkpoint_every_n_steps",
)
OPTIM_FIELDS = tuple(f for f in OptimizerFactory.__dataclass_fields__ if f not in ("name", "schedule"))
SCHEDULE_FIELDS = tuple(f for f in LRSchedule.__dataclass_fields__ if f != "kind")


def _listed(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in NOT_PARAMS)


def _not_applicable(config: Mapping[str, Any]) -> set:
    """``optim.*`` and ``optim.schedule.*`` keys the chosen optimizer and schedule kind do not read."""
    optim = config.get("optim") or {}
    skipped = set()
    if optim.get("name") in OPTIMIZER_KEYS:
        skipped |= {f"optim.{k}" for k in OPTIM_FIELDS if k not in OPTIMIZER_KEYS[optim["name"]]}
    kind = (optim.get("schedule") or {}).get("kind")
    if kind in SCHEDULE_KEYS:
        skipped |= {f"optim.schedule.{k}" for k in SCHEDULE_FIELDS if k not in SCHEDULE_KEYS[kind]}
    return skipped


def run_params(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The params of the run whose resolved plain config is ``config`` (``{"optim.lr": 0.05, ...}``)."""
    skipped = _not_applicable(config)
    return {
        key: value
        for key, value in flatten(config).items()
        if key.rsplit(".", 1)[-1] != "_target_" and not is_neutral(key) and not _listed(key) and key not in skipped
    }
