"""Metrics held back and written in batches, and held while the tracking server is away: nothing lost,
order and steps kept, nothing sent twice (a fake failing store stands in for the absent server)."""

from __future__ import annotations

import pytest

from mgelab.tracking.metric_buffer import MetricBuffer
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.tracking.outbox import Outbox
from mgelab.tracking.records import is_unreachable
from mgelab.tracking.replay import replay
from mgelab.tracking.retry import Backoff
from mgelab.tracking.spool import FILE_NAME, Spool, metrics_entry, read_spool, tags_entry
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


def test_rows_handed_to_a_failing_writer_are_not_handed_over_twice():
    attempts = []

    def write(rows):
        attempts.append(list(rows))
        raise OSError("disk full")

    buffer = MetricBuffer(write, max_age_s=60.0)
    buffer.add({"a": 1.0}, step=1)
    with pytest.raises(OSError):
        buffer.flush()
    buffer.flush()  # the writer owns what it was given (the logger's outbox keeps it)
    assert [[s for _, _, _, s in rows] for rows in attempts] == [[1]] and len(buffer) == 0


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


class ServerAway(Exception):
    """What MLflow's REST client raises when nothing answers (its wording, no server needed)."""

    def __init__(self) -> None:
        super().__init__("API request to http://127.0.0.1:1/api/2.0/mlflow/runs/log-batch failed with exception "
                         "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded (Connection refused)")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_outbox_holds_while_the_server_is_away_retries_with_back_off_and_sends_in_order(tmp_path):
    sent, attempts, away, clock = [], [], [True], Clock()

    def send(entry):
        attempts.append(entry["kind"])
        if away[0]:
            raise ServerAway()
        sent.append(entry)

    outbox = Outbox(send, is_unreachable, Spool(tmp_path, "run1", "http://127.0.0.1:1"), "http://127.0.0.1:1",
                    backoff=Backoff(first_delay_s=1.0, max_delay_s=8.0, clock=clock))
    outbox.put(tags_entry({"model": "mlp"}))
    outbox.put(metrics_entry([("loss", 0.5, 1000, 1)]))  # during the pause: no attempt
    assert attempts == ["tags"] and len(outbox.queue) == 2
    clock.now = 1.0
    assert outbox.drain() is False and attempts == ["tags", "tags"]  # next pause: 2 s
    spilled = outbox.spill()
    assert spilled == tmp_path / FILE_NAME
    assert [e["kind"] for e in read_spool(spilled)[1]] == ["tags", "metrics"]
    away[0] = False
    clock.now = 2.0
    assert outbox.drain() is False and len(attempts) == 2  # still pausing
    clock.now = 3.0
    assert outbox.drain() is True
    assert [e["kind"] for e in sent] == ["tags", "metrics"] and outbox.queue == []
    assert outbox.finish() is None and not spilled.exists()  # everything arrived: no file left


def test_a_refused_write_is_raised_and_kept_in_the_file_with_its_error(tmp_path):
    def send(entry):
        raise ValueError("Invalid metric name: 'a//b'")

    outbox = Outbox(send, is_unreachable, Spool(tmp_path, "run1", "sqlite:///x.db"), "sqlite:///x.db")
    with pytest.raises(ValueError, match="Invalid metric name"):
        outbox.put(metrics_entry([("a//b", 1.0, 1000, 1)]))
    header, entries = read_spool(outbox.finish())
    assert header["run_id"] == "run1" and entries[0]["rows"] == [["a//b", 1.0, 1000, 1]]
    assert entries[0]["error"] == "ValueError: Invalid metric name: 'a//b'"


def test_a_logger_whose_server_goes_away_keeps_training_and_its_file_replays_without_doubles(
        tmp_path, monkeypatch, capsys):
    uri, run_dir = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "run"
    logger = MLflowLogger(uri, "away", artifact_location=str(tmp_path / "art"), spool_dir=str(run_dir))
    clock, attempts, away = Clock(), [], [True]
    logger.outbox.backoff = Backoff(first_delay_s=1.0, clock=clock)
    real_apply = logger.store.apply

    def flaky_apply(run_id, entry):  # the store's one write path, failing like an absent server
        attempts.append(entry["kind"])
        if away[0]:
            raise ServerAway()
        real_apply(run_id, entry)

    monkeypatch.setattr(logger.store, "apply", flaky_apply)
    for step in range(1, 6):
        logger.log_metrics({"step/train_loss": 1.0 / step}, step=step)
    logger.flush()  # as before a checkpoint: fails once, spills the rows, returns
    for step in range(6, 11):
        logger.log_metrics({"step/train_loss": 1.0 / step}, step=step)
    logger.flush()  # inside the back-off pause: no attempt, the new rows spilled too
    assert attempts == ["metrics"]
    spool = run_dir / FILE_NAME
    assert [row[3] for e in read_spool(spool)[1] for row in e["rows"]] == list(range(1, 11))
    logger.close()  # one more attempt, then the file holds exactly what is unsent
    printed = capsys.readouterr().out
    assert str(spool) in printed and f"python -m mgelab.tracking.replay {spool}" in printed
    store = TrackingStore(uri)
    assert store.metric_history(logger.run_id, "step/train_loss") == []
    assert store.get_run(logger.run_id).status == "RUNNING"
    _, entries = read_spool(spool)
    assert [e["kind"] for e in entries] == ["metrics", "status"] and entries[-1]["status"] == "FINISHED"

    report = replay(spool)
    assert (report.metrics_sent, report.metrics_present, report.status) == (10, 0, "FINISHED")
    assert not spool.exists() and report.renamed_to.is_file()
    run = store.get_run(logger.run_id)
    assert run.status == "FINISHED" and run.end_time == entries[-1]["end_time"]
    again = replay(report.renamed_to)  # a second replay of the same rows sends nothing
    assert (again.metrics_sent, again.metrics_present) == (0, 10)
    steps = [s for s, _ in store.metric_history(logger.run_id, "step/train_loss")]
    assert steps == list(range(1, 11))


def test_rows_held_while_the_server_was_away_are_sent_live_when_it_answers_again(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logger = MLflowLogger(uri, "away", artifact_location=str(tmp_path / "art"), spool_dir=str(tmp_path / "run"))
    clock, away = Clock(), [True]
    logger.outbox.backoff = Backoff(first_delay_s=1.0, clock=clock)
    real_apply = logger.store.apply

    def flaky_apply(run_id, entry):
        if away[0]:
            raise ServerAway()
        real_apply(run_id, entry)

    monkeypatch.setattr(logger.store, "apply", flaky_apply)
    with logger:
        logger.log_metrics({"val/acc": 0.1}, step=1)
        logger.flush()
        away[0], clock.now = False, 5.0
        logger.log_metrics({"val/acc": 0.2}, step=2)
        logger.flush()
        assert TrackingStore(uri).metric_history(logger.run_id, "val/acc") == [(1, 0.1), (2, 0.2)]
    assert TrackingStore(uri).get_run(logger.run_id).status == "FINISHED"
    assert list((tmp_path / "run").glob("unsent_tracking*")) == []  # sent after all: the spilled file goes
