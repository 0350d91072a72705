"""Linear regression (chapters 1-2): one affine map from D features to K real outputs.

The module is the same flatten-and-affine map as the softmax ``linear`` model; what makes
it a regression is the task it is registered for (the trainer then uses a squared loss).
"""

from __future__ import annotations

from typing import Sequence

from mgelab.models.linear import Linear
from mgelab.models.registry import register_model


class LinearRegression(Linear):
    """``y = W x + b`` on flattened samples; zero init as in the tutorial (the loss is convex)."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, init: str = "zeros") -> None:
        super().__init__(input_shape, num_outputs, init=init)


# Rank 1 is the chapters' (N, 1) and (N, 8) features; rank 3 is allowed too because the
# model flattens, so an image-to-value regression needs no reshaping in the data module.
@register_model("linear_regression", tasks=("regression",), input_ranks=(1, 3), example_input_shape=(8,))
def linear_regression(input_shape: Sequence[int], num_outputs: int, init: str = "zeros") -> LinearRegression:
    return LinearRegression(input_shape, num_outputs, init=init)
