"""A noisy straight line (chapter 1): the smallest regression, fitted by y = w x + b.

x ~ U(-10, 10) and y = slope * x + intercept + U(-noise, noise), drawn with the seed.
No normalisation by default, so the learned w and b compare directly with the
slope and intercept (5 and 2).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from mgelab.data.arrays import ArrayDataModule, Split, hold_out_test
from mgelab.data.settings import check_split_size


class SyntheticLine(ArrayDataModule):
    """Regression: inputs (N, 1) float32, targets (N, 1) float32, made in memory.

    Of ``size`` points, ``test_size`` (a count, or a fraction of size) are held out
    with the seed, then the base class carves ``val_size`` (a count, or a fraction of
    what is left) for validation: the defaults give 60/20/20 of 100 points.
    """

    task = "regression"
    sample_shape = (1,)
    target_size = 1

    def __init__(
        self,
        size: int = 100,
        slope: float = 5.0,
        intercept: float = 2.0,
        noise: float = 5.0,
        x_range: float = 10.0,
        test_size: float | int = 20,
        val_size: float | int = 20,
        normalization: str = "none",
        name: str = "synthetic_line",
        batch_size: int = 10,
        eval_batch_size: int = 100,
        **batching,
    ) -> None:
        super().__init__(name=name, val_size=val_size, normalization=normalization, batch_size=batch_size,
                         eval_batch_size=eval_batch_size, **batching)
        if int(size) < 3:
            raise ValueError(f"data.size={size}: need at least 3 points (train, val and test)")
        if noise < 0 or x_range <= 0:
            raise ValueError(f"data.noise={noise} must be >= 0 and data.x_range={x_range} > 0")
        check_split_size("data.test_size", test_size, allow_zero=False)
        self.size = int(size)
        self.slope = float(slope)
        self.intercept = float(intercept)
        self.noise = float(noise)
        self.x_range = float(x_range)
        self.test_size = test_size

    def sample(self) -> Split:
        """All ``size`` points, the same for the same seed."""
        # (seed, 0): a stream of its own, apart from the seeded split permutations.
        rng = np.random.default_rng((self.seed, 0))
        x = rng.uniform(-self.x_range, self.x_range, size=(self.size, 1))
        y = self.slope * x + self.intercept + rng.uniform(-self.noise, self.noise, size=(self.size, 1))
        return Split(x.astype(np.float32), y.astype(np.float32))

    def load_splits(self) -> Dict[str, Split]:
        whole = self.sample()
        return hold_out_test(whole, self.test_size, self.seed)
