"""Progressive resizing: training images downscaled in the early epochs, full size at the end.

A 16 px ResNet-20 step costs ~0.3 of a 32 px one on this project's CPUs, so a short schedule that
spends its first epochs on small images fits about twice the epochs into the same minutes; its
last epochs at full size let the network (and its BatchNorm statistics) settle at the size it is
evaluated on. ``data.train_sizes`` lists the stages as [first epoch, side] pairs: the epoch a
stage starts at (counted from 1, as the console counts) and the side in pixels of its training
images; epochs before the first stage train at the data's own size. (A list, not a mapping: a
command-line list replaces the config's, where a mapping would be merged into it.) Validation
and test batches always keep the data's size. Images are resized after augmentation, bilinear
(``mgelab.data.resize``), and stay uint8.
Only models that pool globally take other sizes than the one they were built for: the registry's
``any_input_size`` (``mgelab.config.validate`` refuses the others before anything runs).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from mgelab.data.resize import is_positive_int, resize_batch

EXAMPLE = "[[1, 16], [13, 24], [18, 32]]"


def _pair(stage: object) -> Optional[tuple]:
    if isinstance(stage, Sequence) and not isinstance(stage, str) and len(stage) == 2:
        if all(is_positive_int(value) for value in stage):
            return int(stage[0]), int(stage[1])
    return None


def check_train_sizes(sizes: Optional[Sequence[Sequence[int]]]) -> Dict[int, int]:
    """``data.train_sizes`` as {first epoch: side in pixels}, sorted by epoch; {} for null.
    Raise ValueError naming the key, the bad entry and an example of a valid value."""
    if sizes is None:
        return {}
    usage = f"a list of [first epoch (>= 1), image side in pixels (>= 1)] pairs, e.g. {EXAMPLE}, or null"
    if isinstance(sizes, (str, Mapping)) or not isinstance(sizes, Sequence) or not sizes:
        raise ValueError(f"data.train_sizes={sizes!r} must be {usage}")
    stages: Dict[int, int] = {}
    for stage in sizes:
        pair = _pair(stage)
        if pair is None:
            raise ValueError(f"data.train_sizes entry {stage!r} is not valid; it must be {usage}")
        if pair[0] in stages:
            raise ValueError(f"data.train_sizes names epoch {pair[0]} twice; it must be {usage}")
        stages[pair[0]] = pair[1]
    return dict(sorted(stages.items()))


def as_pairs(stages: Mapping[int, int]) -> list:
    """The stages spelled as ``data.train_sizes`` takes them: [[first epoch, side], ...]."""
    return [[first, side] for first, side in stages.items()]


def size_at(stages: Mapping[int, int], epoch: int) -> Optional[int]:
    """The side of ``epoch``'s training images, or None when it trains at the data's own size."""
    started = [first for first in stages if first <= epoch]
    return stages[max(started)] if started else None


class ProgressiveResize:
    """Mixin for an image ``ArrayDataModule``: ``train_view`` downscales (or upscales) an epoch's
    training batches to the side ``data.train_sizes`` gives it. Call ``set_train_sizes`` in the
    constructor; the resumed run's batches are the same, as the size depends only on the epoch."""

    train_sizes: Dict[int, int] = {}

    def set_train_sizes(self, sizes: Optional[Sequence[Sequence[int]]]) -> None:
        self.train_sizes = check_train_sizes(sizes)

    def train_view(self, inputs: np.ndarray, epoch: int) -> np.ndarray:
        inputs = super().train_view(inputs, epoch)  # type: ignore[misc]
        side = size_at(self.train_sizes, epoch)
        return inputs if side is None else resize_batch(inputs, side)

    @property
    def costly_batches(self) -> bool:
        return bool(self.train_sizes) or super().costly_batches  # type: ignore[misc]
