"""A linear model: one affine map from flattened samples to K outputs.

Softmax regression for classification (chapter 3: pixels to class scores, trained with cross
entropy) and linear regression for regression (chapters 1-2: D features to K real values, trained
with a squared loss): the module is the same, the data's task picks the loss.
"""

from __future__ import annotations

from typing import Sequence

import megengine.functional as F
import megengine.module as M
import numpy as np

from mgelab.models.init import apply_init
from mgelab.models.registry import register_model


class Linear(M.Module):
    """``y = W x + b`` on flattened samples; zero init as in the tutorial (both losses are convex)."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, init: str = "zeros") -> None:
        super().__init__()
        self.fc = M.Linear(int(np.prod(input_shape)), num_outputs)
        apply_init(self, init)

    def forward(self, x):
        return self.fc(F.flatten(x, 1))


# Rank 1 is the regression chapters' (N, 1) and (N, 8) features, rank 3 images; the model
# flattens, so either needs no reshaping in the data module.
@register_model("linear", tasks=("classification", "regression"), input_ranks=(1, 3))
def linear(input_shape: Sequence[int], num_outputs: int, init: str = "zeros") -> Linear:
    return Linear(input_shape, num_outputs, init=init)
