"""Optimizer factory: config in, ``factory(parameters) -> megengine Optimizer`` out.

The trainer gets the factory rather than an optimizer because the parameters only
exist once the model is built, and the schedule travels with the optimizer settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Literal, Sequence, Tuple

import megengine.optimizer as mopt

from mgelab.train.schedule import LRSchedule

OPTIMIZERS = ("sgd", "adam", "adamw")
OptimName = Literal[OPTIMIZERS]
# The settings each optimizer is built from (``OptimizerFactory.settings``): the one list of what
# applies, so a run logs SGD's momentum but not Adam's betas (``mgelab.run.params``).
OPTIMIZER_KEYS: Dict[str, Tuple[str, ...]] = {
    "sgd": ("lr", "momentum", "nesterov", "weight_decay"),
    "adam": ("lr", "betas", "eps", "weight_decay"),
    "adamw": ("lr", "betas", "eps", "weight_decay"),
}


@dataclass
class OptimizerFactory:
    """The defaults are the default run's (SGD with momentum, cosine decay); the typed config
    schema (``mgelab.config.schema``) is derived from these fields."""

    name: OptimName = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: Sequence[float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: LRSchedule = field(default_factory=LRSchedule)

    def __post_init__(self) -> None:
        if isinstance(self.schedule, dict):
            self.schedule = LRSchedule(**self.schedule)
        problems = optim_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def settings(self) -> Dict[str, Any]:
        """The values the chosen optimizer is built from: ``OPTIMIZER_KEYS[name]``, nothing else."""
        return {key: getattr(self, key) for key in OPTIMIZER_KEYS[self.name]}

    def __call__(self, parameters: Iterable) -> mopt.Optimizer:
        params, settings = list(parameters), self.settings()
        if self.name == "sgd":
            settings["nesterov"] = settings["nesterov"] and settings["momentum"] > 0
            return mopt.SGD(params, **settings)
        # Adam applies weight decay as L2 in the gradient; AdamW decouples it (Loshchilov & Hutter).
        cls = mopt.Adam if self.name == "adam" else mopt.AdamW
        return cls(params, **{**settings, "betas": tuple(settings["betas"])})


def optim_problems(f: OptimizerFactory) -> List[str]:
    """Each bad setting as ``key=value must be <allowed>``."""
    problems = []
    if f.name not in OPTIMIZERS:
        problems.append(f"optim.name={f.name!r} must be one of {OPTIMIZERS}")
    if not f.lr > 0:
        problems.append(f"optim.lr={f.lr:g} must be > 0")
    if not f.weight_decay >= 0:
        problems.append(f"optim.weight_decay={f.weight_decay:g} must be >= 0")
    if not 0 <= f.momentum < 1:
        problems.append(f"optim.momentum={f.momentum:g} must be in [0, 1)")
    if not f.eps > 0:
        problems.append(f"optim.eps={f.eps:g} must be > 0")
    return problems


def set_lr(optimizer: mopt.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
