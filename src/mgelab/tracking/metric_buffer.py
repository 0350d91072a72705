"""Metrics held back and written in few calls.

One write to the SQLite tracking store costs ~7 ms here (much more on a busy machine), as
much as several steps of a small model; a run logging every 50 steps then spends ~10 % of a
linear model's training time in the store. The buffer writes when its oldest value has
waited ``max_age_s``, when it holds ``max_rows`` values, and on ``flush()``: the trainer
flushes before every checkpoint and the logger when the run closes, so whatever a
checkpoint covers is in the store (the server away: in the run's spool file) before the
checkpoint exists (a resumed run re-logs only steps after it) and nothing is dropped.

Rows handed to ``write`` are its own from then on, even when it raises: the run logger's writer
(``outbox.Outbox.put``) keeps what it could not send, to retry it or keep it in a file, so the
buffer holding them too would send them twice.
"""

from __future__ import annotations

import time
from typing import Callable, List, Mapping, Tuple

# (key, value, timestamp in ms, step): the fields of one MLflow metric value.
MetricRow = Tuple[str, float, int, int]


class MetricBuffer:
    def __init__(self, write: Callable[[List[MetricRow]], None], max_age_s: float = 10.0,
                 max_rows: int = 1000) -> None:
        if max_age_s < 0 or max_rows < 1:
            raise ValueError(f"metric buffer: max_age_s={max_age_s} must be >= 0 and max_rows={max_rows} >= 1")
        self._write = write
        self.max_age_s, self.max_rows = float(max_age_s), int(max_rows)
        self._rows: List[MetricRow] = []
        self._oldest = 0.0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, metrics: Mapping[str, float], step: int) -> None:
        now = time.monotonic()
        if not self._rows:
            self._oldest = now
        stamp = int(time.time() * 1000)  # when it was measured, not when it was written
        self._rows.extend((key, float(value), stamp, int(step)) for key, value in metrics.items())
        if len(self._rows) >= self.max_rows or now - self._oldest >= self.max_age_s:
            self.flush()

    def flush(self) -> None:
        """Hand everything held to ``write``."""
        if self._rows:
            rows, self._rows = self._rows, []
            self._write(rows)
