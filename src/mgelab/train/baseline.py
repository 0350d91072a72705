"""The closed-form least-squares fit of a regression split: the optimum a linear model
trained by SGD should approach, logged beside it so a learner sees how close SGD got."""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from mgelab.train.metrics import regression_metrics

# Coefficients are logged one by one only for small problems (chapter 1's line has two).
MAX_LOGGED_COEFFICIENTS = 16


def stacked_split(data, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """A whole split as the model sees it (normalised, flattened features)."""
    inputs, targets = zip(*data.eval_batches(split))
    x = np.concatenate(inputs).reshape(sum(len(t) for t in targets), -1).astype(np.float64)
    y = np.concatenate(targets).astype(np.float64)
    return x, y.reshape(len(y), -1)


def fit_least_squares(x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Weights (D, K) and bias (K,) minimising squared error; lstsq copes with ill-conditioned X."""
    design = np.hstack([x, np.ones((len(x), 1))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    return solution[:-1], solution[-1]


def least_squares_baseline(data) -> Dict[str, float]:
    """``baseline/{val,test}_{loss,mae,rmse,r2}`` and, for small problems, the coefficients."""
    weights, bias = fit_least_squares(*stacked_split(data, "train"))
    metrics: Dict[str, float] = {}
    for split in ("val", "test"):
        x, y = stacked_split(data, split)
        for name, value in regression_metrics(x @ weights + bias, y).items():
            metrics[f"baseline/{split}_{name}"] = value
    if weights.size + bias.size <= MAX_LOGGED_COEFFICIENTS:
        metrics.update({f"baseline/w_{i}": float(w) for i, w in enumerate(weights.ravel())})
        metrics.update({f"baseline/b_{i}": float(b) for i, b in enumerate(bias.ravel())})
    return metrics
