"""Scoring a model on a whole split (or its first batches), in numpy."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import megengine.module as M
import numpy as np

from mgelab.train.steps import predict
from mgelab.train.task import get_task


def predict_split(model: M.Module, data, split: str, limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Outputs and the matching targets; ``limit`` keeps only the first batches."""
    batches = data.eval_batches(split)
    if limit is not None:
        batches = (b for _, b in zip(range(limit), batches))
    outputs = predict(model, batches)
    return outputs, data.targets(split)[: len(outputs)]


def evaluate_split(model: M.Module, data, split: str, limit: Optional[int] = None) -> Dict[str, float]:
    outputs, targets = predict_split(model, data, split, limit)
    return get_task(data.task).metrics(outputs, targets)


def report_test_split(
    model: M.Module, data, limit: Optional[int] = None
) -> Tuple[Dict[str, float], Optional[np.ndarray]]:
    """Test metrics, with per-class accuracy and the confusion matrix where the task has classes."""
    task = get_task(data.task)
    outputs, targets = predict_split(model, data, "test", limit)
    return task.test_report(outputs, targets, data.num_classes if task.has_classes else None)
