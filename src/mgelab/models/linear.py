"""Softmax regression (chapter 3): one affine map from pixels to class scores."""

from __future__ import annotations

from typing import Sequence

import megengine.functional as F
import megengine.module as M
import numpy as np

from mgelab.models.init import apply_init
from mgelab.models.registry import register_model


class Linear(M.Module):
    def __init__(self, input_shape: Sequence[int], num_outputs: int, init: str = "zeros") -> None:
        super().__init__()
        self.fc = M.Linear(int(np.prod(input_shape)), num_outputs)
        apply_init(self, init)

    def forward(self, x):
        return self.fc(F.flatten(x, 1))


@register_model("linear", input_ranks=(1, 3))
def linear(input_shape: Sequence[int], num_outputs: int, init: str = "zeros") -> Linear:
    return Linear(input_shape, num_outputs, init=init)
