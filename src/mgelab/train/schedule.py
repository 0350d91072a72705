"""Learning-rate schedules as a pure function of training progress (epochs, fractional)."""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("none", "step", "cosine")


@dataclass
class LRSchedule:
    """``factor(progress, total)`` multiplies the base lr.

    Progress counts epochs as a float (2.5 = half-way through the third epoch), so the
    schedule is smooth within an epoch and independent of the batch size.
    """

    kind: str = "none"
    warmup_epochs: float = 0.0
    step_size: int = 10
    gamma: float = 0.1
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"optim.schedule.kind={self.kind!r} is unknown; choose one of {SCHEDULES}")
        if self.warmup_epochs < 0 or self.step_size < 1 or not 0 < self.gamma <= 1:
            raise ValueError(
                "optim.schedule needs warmup_epochs >= 0, step_size >= 1 and 0 < gamma <= 1, got "
                f"{self.warmup_epochs}, {self.step_size}, {self.gamma}"
            )

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
