"""Typed schemas for the config groups whose keys are fixed (trainer, optim), registered in
Hydra's ConfigStore; group files list them first in their defaults, so a wrong type or an
unknown choice fails while composing, naming the key and the allowed values. Ranges, and the
groups whose keys differ per option (data, model), are checked by ``validate.py`` right after."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore


class OptimName(str, Enum):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class ScheduleKind(str, Enum):
    none = "none"
    step = "step"
    cosine = "cosine"


class Device(str, Enum):
    cpu = "cpu"
    gpu = "gpu"
    auto = "auto"


@dataclass
class ScheduleSchema:
    _target_: str = "mgelab.train.schedule.LRSchedule"
    kind: ScheduleKind = ScheduleKind.cosine
    warmup_epochs: float = 0.0
    step_size: int = 10
    gamma: float = 0.1
    min_factor: float = 0.0


@dataclass
class OptimSchema:
    _target_: str = "mgelab.train.optim.OptimizerFactory"
    name: OptimName = OptimName.sgd
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: ScheduleSchema = field(default_factory=ScheduleSchema)


@dataclass
class TrainerSchema:
    _target_: str = "mgelab.train.Trainer"
    max_epochs: int = 10
    # An int (batches) or a float (fraction): OmegaConf has no unions, so Any; validate.py checks it.
    limit_train_batches: Any = None
    limit_eval_batches: Optional[int] = None
    log_every_n_steps: int = 50
    checkpoint_dir: str = "checkpoints"
    checkpoint_every_n_steps: Optional[int] = None
    keep_last: int = 1
    keep_best: int = 1
    resume: Optional[str] = None
    monitor: str = "auto"
    monitor_mode: str = "auto"
    progress_bar: bool = True
    device: Device = Device.cpu
    cpu_threads: int = 1
    seed: int = 0
    # auto | true | false; a str, not an Enum: YAML reads true/false as booleans (str() of
    # them is "True"/"False", which the trainer accepts case-blind).
    compile: str = "false"


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(group="trainer", name="schema", node=TrainerSchema)
    store.store(group="optim", name="schema", node=OptimSchema)
