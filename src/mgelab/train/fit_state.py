"""What one ``Trainer.fit`` works with, and what it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import megengine.module as M
import numpy as np

from mgelab.checkpoint import CheckpointStore
from mgelab.train.distributed import World
from mgelab.train.optim import OptimizerFactory
from mgelab.train.signals import StopOnSignal
from mgelab.train.state import Progress
from mgelab.train.task import Task


@dataclass
class FitResult:
    best_epoch: int
    best_val: Dict[str, float]
    test: Dict[str, float]
    history: List[Dict[str, float]]
    best_checkpoint: Optional[Path]
    last_checkpoint: Optional[Path]
    confusion: Optional[np.ndarray] = None
    wall_time_s: float = 0.0
    train_samples_per_s: float = 0.0
    # The monitored metric, its mode and its value at the best epoch: what a sweeper is given.
    monitor: str = ""
    monitor_mode: str = ""
    best_value: float = math.nan


@dataclass
class FitContext:
    """What one ``fit`` works with (the trainer's own; passed between its steps)."""

    model: M.Module
    data: Any
    task: Task
    factory: OptimizerFactory
    optimizer: Any
    step_fn: Any
    logger: Any
    store: CheckpointStore
    progress: Progress
    run_meta: Mapping[str, Any]
    stop: StopOnSignal
    # Only models that draw random numbers (dropout) need MegEngine reseeded every step.
    reseed: bool
    world: World  # this process's rank among the data-parallel processes (one: a plain run)
    lr_scale: float  # trainer.scale_lr_by_world_size: the world size, else 1
