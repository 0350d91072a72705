"""Metrics against independent references, and the least-squares baseline."""

from __future__ import annotations

import megengine as mge
import megengine.functional as F
import numpy as np
import pytest

from mgelab.data.arrays import ArrayDataModule, Split
from mgelab.train.baseline import fit_least_squares, least_squares_baseline
from mgelab.train.metrics import (
    classification_metrics,
    confusion_matrix,
    cross_entropy,
    per_class_accuracy,
    regression_metrics,
    top_k_accuracy,
)

RNG = np.random.default_rng(0)


def test_cross_entropy_matches_megengine():
    logits = RNG.normal(size=(50, 10)).astype("float32") * 4
    targets = RNG.integers(0, 10, 50).astype("int32")
    reference = F.nn.cross_entropy(mge.tensor(logits), mge.tensor(targets)).item()
    assert cross_entropy(logits, targets) == pytest.approx(reference, rel=1e-5)


def test_accuracy_top_k_and_confusion_against_loops():
    logits = RNG.normal(size=(200, 7))
    targets = RNG.integers(0, 7, 200)
    predicted = logits.argmax(axis=1)
    loop = np.zeros((7, 7), int)
    for t, p in zip(targets, predicted):
        loop[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(predicted, targets, 7), loop)
    ranks = [sorted(range(7), key=lambda c: -row[c]).index(t) for row, t in zip(logits, targets)]
    assert top_k_accuracy(logits, targets, 5) == pytest.approx(np.mean([r < 5 for r in ranks]))
    metrics = classification_metrics(logits, targets)
    assert metrics["acc"] == pytest.approx(np.mean([r == 0 for r in ranks]))
    assert "top5" in metrics
    assert "top5" not in classification_metrics(logits[:, :5], np.minimum(targets, 4))
    per_class = per_class_accuracy(loop)
    assert per_class[3] == pytest.approx(loop[3, 3] / loop[3].sum())


def test_per_class_accuracy_marks_absent_classes():
    per_class = per_class_accuracy(np.array([[2, 0], [0, 0]]))
    assert per_class[0] == 1.0 and np.isnan(per_class[1])


def test_regression_metrics_against_hand_formulas():
    y = RNG.normal(size=(40, 1))
    pred = y + RNG.normal(scale=0.3, size=(40, 1))
    m = regression_metrics(pred.astype("float32"), y.astype("float32"))
    err = pred - y
    assert m["loss"] == pytest.approx(np.mean(err**2), rel=1e-5)
    assert m["mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-5)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-5)
    assert m["r2"] == pytest.approx(1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2), rel=1e-5)
    # A perfect prediction has R^2 = 1; predicting the mean has R^2 = 0.
    assert regression_metrics(y, y)["r2"] == 1.0
    assert regression_metrics(np.full_like(y, y.mean()), y)["r2"] == pytest.approx(0.0, abs=1e-12)


def test_least_squares_recovers_noiseless_coefficients():
    x = RNG.normal(size=(30, 3))
    weights, bias = fit_least_squares(x, x @ np.array([[1.0], [-2.0], [0.5]]) + 3.0)
    np.testing.assert_allclose(weights.ravel(), [1.0, -2.0, 0.5], atol=1e-10)
    np.testing.assert_allclose(bias, [3.0], atol=1e-10)


class _Line(ArrayDataModule):
    task = "regression"

    def load_splits(self):
        x = np.linspace(-1, 1, 60, dtype="float32")[:, None]
        y = 4 * x - 1
        return {"train": Split(x[::2], y[::2]), "val": Split(x[1::4], y[1::4]), "test": Split(x[3::4], y[3::4])}


def test_baseline_metrics_and_coefficients_are_logged_for_small_problems():
    metrics = least_squares_baseline(_Line(name="line", normalization="none", batch_size=8, eval_batch_size=7))
    assert metrics["baseline/test_r2"] == pytest.approx(1.0)
    assert metrics["baseline/w_0"] == pytest.approx(4.0, abs=1e-5)
    assert metrics["baseline/b_0"] == pytest.approx(-1.0, abs=1e-5)
