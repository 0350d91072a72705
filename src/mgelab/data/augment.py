"""Batch-wise image augmentation in numpy: random crop of the zero-padded image and a
random horizontal flip, applied to uint8 (N, C, H, W) training batches only.

Data modules mix in `CropFlipAugmentation`; `ArrayDataModule.train_batches` hands its
`augment` a generator seeded per (epoch, batch), so resumed runs see the same images.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def random_crop(images: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by up to ``padding`` pixels each way, filling the gap with zeros."""
    if padding <= 0:
        return images
    height, width = images.shape[-2:]
    pad = ((0, 0),) * (images.ndim - 2) + ((padding, padding), (padding, padding))
    # Every (height, width) window of the padded batch, as a view: (N, C, 2p+1, 2p+1, H, W).
    windows = sliding_window_view(np.pad(images, pad), (height, width), axis=(-2, -1))
    dy, dx = rng.integers(0, 2 * padding + 1, size=(2, len(images)))
    # One window per image in a single gather; the advanced indices put N first: (N, C, H, W).
    return windows[np.arange(len(images)), :, dy, dx]


def random_flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror each image left-right with probability 1/2."""
    flip = rng.random(len(images)) < 0.5
    return np.where(flip.reshape((-1,) + (1,) * (images.ndim - 1)), images[..., ::-1], images)


class CropFlipAugmentation:
    """Mixin for image data modules: ``augment=True`` crops and flips training batches."""

    use_augmentation: bool = False
    crop_padding: int = 0
    flip: bool = False

    def set_augmentation(self, augment: bool, crop_padding: int, flip: bool) -> None:
        if int(crop_padding) < 0:
            raise ValueError(f"data.crop_padding={crop_padding} must be 0 (no crop) or more pixels")
        self.use_augmentation = bool(augment)
        self.crop_padding = int(crop_padding)
        self.flip = bool(flip)

    @property
    def augments(self) -> bool:
        return self.use_augmentation and (self.crop_padding > 0 or self.flip)

    def augment(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.use_augmentation:
            return inputs
        if self.crop_padding:
            inputs = random_crop(inputs, self.crop_padding, rng)
        return random_flip(inputs, rng) if self.flip else inputs
