"""Optimizer factory: config in, ``factory(parameters) -> megengine Optimizer`` out.

The trainer gets the factory rather than an optimizer because the parameters only
exist once the model is built, and the schedule travels with the optimizer settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import megengine.optimizer as mopt

from mgelab.train.schedule import LRSchedule

OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass
class OptimizerFactory:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: Sequence[float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: LRSchedule = field(default_factory=LRSchedule)

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optim.name={self.name!r} is unknown; choose one of {OPTIMIZERS}")
        if not self.lr > 0:
            raise ValueError(f"optim.lr={self.lr} must be > 0")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"optim.weight_decay={self.weight_decay} must be >= 0 and momentum in [0, 1)")
        if isinstance(self.schedule, dict):
            self.schedule = LRSchedule(**self.schedule)

    def __call__(self, parameters: Iterable) -> mopt.Optimizer:
        params = list(parameters)
        if self.name == "sgd":
            return mopt.SGD(
                params, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov and self.momentum > 0,
                weight_decay=self.weight_decay,
            )
        # Adam applies weight decay as L2 in the gradient; AdamW decouples it (Loshchilov & Hutter).
        cls = mopt.Adam if self.name == "adam" else mopt.AdamW
        return cls(params, lr=self.lr, betas=tuple(self.betas), eps=self.eps, weight_decay=self.weight_decay)


def set_lr(optimizer: mopt.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
