"""Metrics in numpy over a whole split (no averaging of per-batch means over unequal batches)."""

from __future__ import annotations

from typing import Dict

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    logp = log_softmax(logits.astype(np.float64))
    return float(-logp[np.arange(len(targets)), targets].mean())


def top_k_accuracy(logits: np.ndarray, targets: np.ndarray, k: int) -> float:
    top = np.argsort(-logits, axis=1)[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean())


def confusion_matrix(predictions: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    flat = targets.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_metrics(logits: np.ndarray, targets: np.ndarray) -> Dict[str, float]:
    metrics = {
        "loss": cross_entropy(logits, targets),
        "acc": float((logits.argmax(axis=1) == targets).mean()),
    }
    if logits.shape[1] > 5:
        metrics["top5"] = top_k_accuracy(logits, targets, 5)
    return metrics


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each true class; NaN for a class absent from the split."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / totals, np.nan)


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> Dict[str, float]:
    """MSE (the training loss), MAE, RMSE and R^2 over the whole split, in float64."""
    pred = predictions.astype(np.float64).reshape(targets.shape)
    true = targets.astype(np.float64)
    errors = pred - true
    mse = float(np.mean(errors**2))
    total = float(np.sum((true - true.mean(axis=0)) ** 2))
    return {
        "loss": mse,
        "mae": float(np.mean(np.abs(errors))),
        "rmse": float(np.sqrt(mse)),
        "r2": 1.0 - float(np.sum(errors**2)) / total if total > 0 else float("nan"),
    }
