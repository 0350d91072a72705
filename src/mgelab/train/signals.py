"""SIGINT/SIGTERM become a request to stop after the current step (the trainer then saves)."""

from __future__ import annotations

import signal
import threading
from typing import Dict, Optional


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing a checkpoint; the message says how to resume.

    A KeyboardInterrupt, so the run logger closes the run as KILLED.
    """


class StopOnSignal:
    """``with StopOnSignal() as stop: ... if stop.requested: ...``; handlers are restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: Optional[str] = None
        self._previous: Dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            # A second Ctrl-C means "now": give up on the clean stop.
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopOnSignal:
        # Handlers can only be installed from the main thread (not in a joblib worker thread).
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
