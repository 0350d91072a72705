"""Learning-rate schedules as a pure function of training progress (epochs, fractional)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Literal, Tuple

SCHEDULES = ("none", "step", "cosine")
ScheduleKind = Literal[SCHEDULES]
# The settings ``LRSchedule.factor`` reads for each kind (warm-up applies to every kind); what a
# run logs as its schedule's params (``mgelab.run.params``). A test checks factor() ignores the rest.
SCHEDULE_KEYS: Dict[str, Tuple[str, ...]] = {
    "none": ("warmup_epochs",),
    "step": ("warmup_epochs", "step_size", "gamma"),
    "cosine": ("warmup_epochs", "min_factor"),
}


@dataclass
class LRSchedule:
    """``factor(progress, total)`` multiplies the base lr.

    Progress counts epochs as a float (2.5 = half-way through the third epoch), so the
    schedule is smooth within an epoch and independent of the batch size. The defaults are
    the default run's (``conf/optim/schedule/cosine.yaml`` adds nothing to them).
    """

    kind: ScheduleKind = "cosine"
    warmup_epochs: float = 0.0
    step_size: int = 10
    gamma: float = 0.1
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        problems = schedule_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def factor(self, progress: float, total_epochs: int) -> float:
        if self.warmup_epochs > 0 and progress < self.warmup_epochs:
            # Linear ramp; never exactly zero so the first step still moves.
            return max(progress / self.warmup_epochs, 1e-3)
        if self.kind == "step":
            return self.gamma ** int(progress // self.step_size)
        if self.kind == "cosine":
            span = max(total_epochs - self.warmup_epochs, 1e-8)
            t = min(max(progress - self.warmup_epochs, 0.0) / span, 1.0)
            return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0


def schedule_problems(s: LRSchedule) -> List[str]:
    """Each bad setting as ``key=value must be <allowed>``."""
    problems = []
    if s.kind not in SCHEDULES:
        problems.append(f"optim.schedule.kind={s.kind!r} must be one of {SCHEDULES}")
    if not s.warmup_epochs >= 0:
        problems.append(f"optim.schedule.warmup_epochs={s.warmup_epochs:g} must be >= 0")
    if not s.step_size >= 1:
        problems.append(f"optim.schedule.step_size={s.step_size} must be >= 1")
    if not 0 < s.gamma <= 1:
        problems.append(f"optim.schedule.gamma={s.gamma:g} must be in (0, 1]")
    if not 0 <= s.min_factor <= 1:
        problems.append(f"optim.schedule.min_factor={s.min_factor:g} must be in [0, 1]")
    return problems
