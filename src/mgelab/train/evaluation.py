"""Scoring a model on a whole split (or its first batches), in numpy."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import megengine.module as M
import numpy as np

from mgelab.train.metrics import confusion_matrix, per_class_accuracy, task_metrics
from mgelab.train.steps import predict


def predict_split(model: M.Module, data, split: str, limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Outputs and the matching targets; ``limit`` keeps only the first batches."""
    batches = data.eval_batches(split)
    if limit is not None:
        batches = (b for _, b in zip(range(limit), batches))
    outputs = predict(model, batches)
    return outputs, data.targets(split)[: len(outputs)]


def evaluate_split(model: M.Module, data, split: str, limit: Optional[int] = None) -> Dict[str, float]:
    outputs, targets = predict_split(model, data, split, limit)
    return task_metrics(data.task, outputs, targets)


def report_test_split(
    model: M.Module, data, limit: Optional[int] = None
) -> Tuple[Dict[str, float], Optional[np.ndarray]]:
    """Test metrics, with per-class accuracy and the confusion matrix for classification."""
    outputs, targets = predict_split(model, data, "test", limit)
    metrics = task_metrics(data.task, outputs, targets)
    if data.task != "classification":
        return metrics, None
    confusion = confusion_matrix(outputs.argmax(axis=1), targets, data.num_classes)
    for index, value in enumerate(per_class_accuracy(confusion)):
        metrics[f"acc_class_{index}"] = float(value)
    return metrics, confusion
