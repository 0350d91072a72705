"""Retrying calls to the SQLite tracking store while another process holds its lock."""

from __future__ import annotations

import random
import time
from typing import Any, Callable, TypeVar

from mgelab.tracking.records import is_transient

# SQLite has one writer at a time. MLflow gives each session a busy timeout, but a transaction
# that reads before it writes can still fail at once with "database is locked" (SQLite refuses
# to wait where waiting could deadlock), so parallel jobs retry such calls with growing pauses.
RETRY_ATTEMPTS = 10
RETRY_FIRST_DELAY_S = 0.1
RETRY_MAX_DELAY_S = 5.0

T = TypeVar("T")


def with_retries(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    delay = RETRY_FIRST_DELAY_S
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # MlflowException, or sqlalchemy's OperationalError when connecting
            if attempt == RETRY_ATTEMPTS or not is_transient(exc):
                raise
            # Jitter, so that two jobs that collided do not collide again on the same beat.
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, RETRY_MAX_DELAY_S)
    raise AssertionError("unreachable")


class Backoff:
    """When to try a tracking server that stopped answering again: not before a pause that doubles
    with every failure (``first_delay_s`` up to ``max_delay_s``), so a training run spends at most one
    bounded attempt per pause on it; a success resets the pause."""

    def __init__(self, first_delay_s: float = 1.0, max_delay_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.first_delay_s, self.max_delay_s, self._clock = first_delay_s, max_delay_s, clock
        self.failures = 0
        self._next_try = 0.0

    def ready(self) -> bool:
        return self._clock() >= self._next_try

    def failed(self) -> float:
        """Record a failed attempt; the pause before the next one, in seconds."""
        delay = min(self.first_delay_s * 2 ** self.failures, self.max_delay_s)
        self.failures += 1
        self._next_try = self._clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self._next_try = 0, 0.0
