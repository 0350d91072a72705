"""The arithmetic of input normalisation: statistics over a training split, and the affine map
that turns a raw (uint8) batch into normalised float32 in one pass."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np


def mean_and_std(values: np.ndarray, axes: Optional[Tuple[int, ...]], scale: float,
                 chunk: int = 4096) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and std of ``values / scale`` over ``axes`` (None: all), ``chunk`` samples at a time.

    float64 sums, because a float32 sum over 50M pixels drifts; in chunks, because a float64
    copy of a whole training set (345 MB for Fashion-MNIST) would be a run's peak memory.
    """
    reduce_axes = tuple(range(values.ndim)) if axes is None else axes
    total = total_sq = 0.0
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk].astype(np.float64) / scale
        total = total + part.sum(axis=reduce_axes)
        total_sq = total_sq + np.square(part).sum(axis=reduce_axes)
    count = values.size / np.size(total)
    mean = np.asarray(total / count)
    return mean, np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))


def affine_map(mean: np.ndarray, std: np.ndarray, raw_scale: float,
               shape: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """(a, b) with ``x * a + b == (x / raw_scale - mean) / std``: the raw-to-float scale (255 for
    uint8) folded into the affine map, so a batch is normalised in one fused pass."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return ((1.0 / (raw_scale * std)).reshape(shape).astype(np.float32),
            (-mean / std).reshape(shape).astype(np.float32))
