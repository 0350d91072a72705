"""The task object: what classification and regression mean to the trainer, in one place."""

from __future__ import annotations

import megengine as mge
import numpy as np
import pytest

from mgelab.train.task import CLASSIFICATION, REGRESSION, get_task, resolve_monitor


def test_tasks_by_name_and_an_unknown_one_is_named():
    assert get_task("classification") is CLASSIFICATION and get_task("regression") is REGRESSION
    with pytest.raises(ValueError, match=r"'ranking' is unknown.*classification.*regression"):
        get_task("ranking")


@pytest.mark.parametrize("metric,mode,want", [
    ("auto", "auto", ("val/acc", "max")),
    ("val/loss", "auto", ("val/loss", "min")),
    ("val/top5", "auto", ("val/top5", "max")),
    ("val/acc", "min", ("val/acc", "min")),
])
def test_classification_monitor(metric, mode, want):
    assert CLASSIFICATION.monitor(metric, mode) == want


def test_regression_monitors_its_loss_and_reads_errors_as_lower_is_better():
    assert REGRESSION.monitor() == ("val/loss", "min")
    assert REGRESSION.monitor("val/mae") == ("val/mae", "min")
    assert REGRESSION.monitor("val/r2") == ("val/r2", "max")
    with pytest.raises(ValueError, match="monitor_mode='best'"):
        resolve_monitor("val/loss", "auto", "best")


def test_batch_statistics_and_epoch_metrics():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]], np.float32)
    targets = np.array([0, 0, 0])
    assert CLASSIFICATION.batch_correct(logits, targets) == 2
    assert CLASSIFICATION.epoch_train_metrics(3.0, 2, 3) == {"loss": 1.0, "acc": pytest.approx(2 / 3)}
    assert REGRESSION.batch_correct(logits, targets) == 0
    assert REGRESSION.epoch_train_metrics(3.0, 0, 3) == {"loss": 1.0}


def test_losses_are_cross_entropy_and_squared_error():
    logits = mge.tensor(np.array([[0.0, 0.0]], np.float32))
    assert CLASSIFICATION.loss(logits, mge.tensor(np.array([1], np.int32))).item() == pytest.approx(np.log(2))
    values = mge.tensor(np.array([[3.0]], np.float32))
    assert REGRESSION.loss(values, mge.tensor(np.array([[1.0]], np.float32))).item() == pytest.approx(4.0)


def test_label_smoothing_is_cross_entropy_against_smoothed_targets_for_classes_only():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], np.float32)
    targets = np.array([0, 2], np.int32)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    smoothed = np.full_like(log_p, 0.1 / 3)
    smoothed[np.arange(2), targets] += 0.9
    want = float(-(smoothed * log_p).sum(axis=1).mean())
    got = CLASSIFICATION.training_loss(0.1)(mge.tensor(logits), mge.tensor(targets)).item()
    assert got == pytest.approx(want, rel=1e-5) and got != pytest.approx(float(-log_p[[0, 1], targets].mean()))
    assert CLASSIFICATION.training_loss(0.0) is CLASSIFICATION.loss
    with pytest.raises(ValueError, match=r"trainer.label_smoothing=0.1 applies to classification only"):
        REGRESSION.training_loss(0.1)


def test_test_report_adds_classes_only_where_there_are_some():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]], np.float32)
    metrics, confusion = CLASSIFICATION.test_report(logits, np.array([0, 1, 1]), 2)
    assert confusion.tolist() == [[1, 0], [1, 1]] and metrics["acc_class_1"] == 0.5
    metrics, confusion = REGRESSION.test_report(np.ones((3, 1), np.float32), np.zeros((3, 1), np.float32), None)
    assert confusion is None and metrics["mae"] == pytest.approx(1.0)
    assert REGRESSION.baseline is not None and CLASSIFICATION.baseline is None
