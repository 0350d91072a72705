"""Resizing image batches on the fly (e.g. 32 px CIFAR-10 to the 224 px an ImageNet model expects).

Bilinear interpolation with pixel centres aligned (``align_corners=False``, as cv2's
INTER_LINEAR and MegEngine's ``T.Resize``), written as two small matrix products per batch,
``rows @ image @ cols.T``, so a whole (N, C, H, W) uint8 batch is resized in one vectorised
pass with no per-image loop. The stored dataset stays at its original size (a 224 px copy of
CIFAR-10 would take 7.5 GB); only the batch being cut is enlarged, and it stays uint8 so
normalisation works as for any other batch.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from mgelab.data.settings import SampleInfo

Size = Union[int, Tuple[int, int]]


@lru_cache(maxsize=16)
def interpolation_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float32 rows of bilinear weights: ``out = matrix @ in`` along one axis."""
    # Output pixel i covers input coordinate (i + 0.5) * in / out - 0.5, clamped to the edge pixels.
    coords = np.clip((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0, in_size - 1)
    low = np.floor(coords).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = coords - low
    matrix = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix.astype(np.float32)


def is_positive_int(value: object) -> bool:
    """A whole number >= 1 (numpy's too; not a bool): a size in pixels, an epoch number."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def target_size(size: Size) -> Tuple[int, int]:
    """(height, width) of ``size``: one size for both, or a pair. The config schema cannot type this
    union, so it is checked here, when the data module is built."""
    pair = size if isinstance(size, Sequence) and not isinstance(size, str) else (size, size)
    if len(pair) != 2 or not all(is_positive_int(side) for side in pair):
        raise ValueError(f"data.resize={size!r} must be a positive size in pixels or [height, width] "
                         "of them (or null: no resize)")
    return int(pair[0]), int(pair[1])


def resize_batch(images: np.ndarray, size: Size) -> np.ndarray:
    """(..., H, W) images -> (..., h, w), bilinear; uint8 in gives uint8 out (rounded), floats stay float32."""
    height, width = target_size(size)
    if images.shape[-2:] == (height, width):
        return images
    rows = interpolation_matrix(images.shape[-2], height)
    cols = interpolation_matrix(images.shape[-1], width)
    out = rows @ (images.astype(np.float32) @ cols.T)  # broadcast over the leading (N, C) axes
    if images.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


class ResizeOnTheFly:
    """Mixin for an ``ArrayDataModule``: every batch (train and eval) is resized before normalising.

    Put it first among the bases; call ``set_resize(size)`` in the constructor. ``input_shape``
    then reports the resized shape, which is what the model is built for.
    """

    resize: Optional[Tuple[int, int]] = None

    def set_resize(self, size: Optional[Size]) -> None:
        self.resize = None if size is None else target_size(size)

    @property
    def input_shape(self) -> Tuple[int, ...]:
        shape = super().input_shape  # type: ignore[misc]
        return shape if self.resize is None else tuple(shape[:-2]) + self.resize

    def declared_sample(self) -> Optional[SampleInfo]:
        sample = super().declared_sample()  # type: ignore[misc]
        if sample is None or self.resize is None:
            return sample
        return replace(sample, shape=tuple(sample.shape[:-2]) + self.resize)

    @property
    def costly_batches(self) -> bool:
        return self.resize is not None or super().costly_batches  # type: ignore[misc]

    def _prepare(self, inputs: np.ndarray) -> np.ndarray:
        if self.resize is not None:
            inputs = resize_batch(inputs, self.resize)
        return super()._prepare(inputs)  # type: ignore[misc]

    def inference_meta(self) -> dict:
        """The data's inference description plus ``resize`` ([H, W] or None): predicting on a raw
        image must resize it the same way before the affine normalisation."""
        meta = dict(super().inference_meta())  # type: ignore[misc]
        meta["resize"] = list(self.resize) if self.resize is not None else None
        return meta
