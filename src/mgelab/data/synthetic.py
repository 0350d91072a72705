"""Small seeded datasets made in memory, for tests and quick smoke runs (no download)."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from mgelab.data.arrays import ArrayDataModule, Split


class SyntheticImages(ArrayDataModule):
    """Each class is a fixed random uint8 template; samples are templates plus noise.

    Learnable in a few steps by any model in the registry, which is what a test needs
    to show that the loss falls.
    """

    def __init__(
        self,
        num_classes: int = 4,
        image_shape: Sequence[int] = (1, 8, 8),
        train_size: int = 256,
        test_size: int = 128,
        noise: float = 40.0,
        name: str = "synthetic",
        batch_size: int = 32,
        eval_batch_size: int = 256,
        val_size: float | int = 64,
        **batching,
    ) -> None:
        # A few batches of each split of a few hundred samples.
        super().__init__(name=name, class_names=[f"class{i}" for i in range(num_classes)], batch_size=batch_size,
                         eval_batch_size=eval_batch_size, val_size=val_size, **batching)
        self._num_classes = int(num_classes)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.train_size = int(train_size)
        self.test_size = int(test_size)
        self.noise = float(noise)

    @property
    def sample_shape(self) -> Tuple[int, ...]:
        return self.image_shape

    def _sample(self, rng: np.random.Generator, templates: np.ndarray, n: int) -> Split:
        labels = rng.integers(0, self._num_classes, size=n).astype(np.int32)
        noisy = templates[labels] + rng.normal(0.0, self.noise, size=(n,) + self.image_shape)
        return Split(np.clip(noisy, 0, 255).astype(np.uint8), labels)

    def load_splits(self) -> Dict[str, Split]:
        rng = np.random.default_rng(self.seed)
        templates = rng.uniform(0, 255, size=(self._num_classes,) + self.image_shape)
        return {
            "train": self._sample(rng, templates, self.train_size),
            "test": self._sample(rng, templates, self.test_size),
        }
