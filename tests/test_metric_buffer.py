"""Metrics held back and written in batches: nothing lost, order and steps kept."""

from __future__ import annotations

import pytest

from mgelab.tracking.metric_buffer import MetricBuffer
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.tracking.store import TrackingStore


def test_buffer_writes_when_full_when_old_and_on_flush(monkeypatch):
    writes = []
    buffer = MetricBuffer(writes.append, max_age_s=60.0, max_rows=4)
    buffer.add({"a": 1.0, "b": 2.0}, step=1)
    assert writes == [] and len(buffer) == 2
    buffer.add({"a": 3.0, "b": 4.0}, step=2)  # 4 rows: full
    assert [[(k, v, s) for k, v, _, s in rows] for rows in writes] == [[("a", 1.0, 1), ("b", 2.0, 1),
                                                                     ("a", 3.0, 2), ("b", 4.0, 2)]]
    buffer.add({"a": 5.0}, step=3)
    buffer.flush()
    assert [(k, v, s) for k, v, _, s in writes[-1]] == [("a", 5.0, 3)] and len(buffer) == 0
    buffer.flush()  # nothing held: nothing written
    assert len(writes) == 2

    clock = iter([100.0, 100.5, 111.0])
    monkeypatch.setattr("mgelab.tracking.metric_buffer.time.monotonic", lambda: next(clock))
    aged = []
    buffer = MetricBuffer(aged.append, max_age_s=10.0, max_rows=1000)
    buffer.add({"a": 1.0}, step=1)
    buffer.add({"a": 2.0}, step=2)
    assert aged == []
    buffer.add({"a": 3.0}, step=3)  # the oldest value has waited 11 s
    assert [s for _, _, _, s in aged[0]] == [1, 2, 3]


def test_a_failed_write_keeps_the_rows_for_the_next_flush():
    attempts = []

    def write(rows):
        attempts.append(list(rows))
        if len(attempts) == 1:
            raise OSError("disk full")

    buffer = MetricBuffer(write, max_age_s=60.0)
    buffer.add({"a": 1.0}, step=1)
    with pytest.raises(OSError):
        buffer.flush()
    buffer.flush()
    assert attempts[0] == attempts[1] and len(buffer) == 0


def test_mlflow_logger_batches_step_metrics_and_flushes_on_close(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    store = TrackingStore(uri)
    with MLflowLogger(uri, "buffered", artifact_location=str(tmp_path / "art")) as logger:
        for step in range(1, 6):
            logger.log_metrics({"step/train_loss": 1.0 / step}, step=step)
        assert store.metric_history(logger.run_id, "step/train_loss") == []  # held back
        logger.flush()
        assert [s for s, _ in store.metric_history(logger.run_id, "step/train_loss")] == [1, 2, 3, 4, 5]
        logger.log_metrics({"val/acc": 0.5}, step=1)
    assert store.metric_history(logger.run_id, "val/acc") == [(1, 0.5)]
    assert store.get_run(logger.run_id).status == "FINISHED"
