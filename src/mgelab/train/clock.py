"""Where an epoch's training time goes: waiting for the next batch, or inside the step.

The sums live in ``Progress`` (checkpointed), so an epoch resumed mid-way goes on adding to what
it had, as ``epoch_seconds`` does. Waits and steps are disjoint parts of the epoch's wall time, so
their sum never exceeds ``epoch_seconds``; the rest is the loop's own bookkeeping (metrics,
logging, mid-epoch checkpoints).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator, Tuple, TypeVar

from mgelab.train.state import Progress

T = TypeVar("T")


class EpochClock:
    """Times one (rest of an) epoch into ``progress``: started when made."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._started = time.perf_counter()
        self._seconds_before = progress.epoch_seconds

    def timed(self, batches: Iterable[T]) -> Iterator[T]:
        """``batches``, adding the time each one took to arrive to ``epoch_data_seconds``. The wait
        that only finds the end is not counted: no batch came of it."""
        iterator = iter(batches)
        while True:
            asked = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.progress.epoch_data_seconds += time.perf_counter() - asked
            yield batch

    def step(self, step_fn: Callable[..., Tuple[float, Any]], *inputs: Any) -> Tuple[float, Any]:
        """``step_fn(*inputs)``, adding its time (reading the loss back included) to ``epoch_step_seconds``."""
        started = time.perf_counter()
        result = step_fn(*inputs)
        self.progress.epoch_step_seconds += time.perf_counter() - started
        return result

    def tick(self) -> None:
        """Bring ``epoch_seconds`` up to now (what the epoch had before a resume, plus this stretch)."""
        self.progress.epoch_seconds = self._seconds_before + time.perf_counter() - self._started
