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
