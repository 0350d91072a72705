"""Multi-layer perceptron (chapter 4): hidden sizes, activation and dropout configurable."""

from __future__ import annotations

from typing import Sequence

import megengine.functional as F
import megengine.module as M
import numpy as np

from mgelab.models.init import apply_init
from mgelab.models.layers import make_activation
from mgelab.models.registry import register_model


def check_dropout(dropout: float) -> None:
    """A dropout probability: 1 would drop every unit."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"model.dropout={dropout:g} must be in [0, 1)")


class MLP(M.Module):
    """The defaults are the default run's (conf/model/mlp.yaml states them, a test keeps them equal)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden_sizes: Sequence[int] = (512,),
        activation: str = "relu",
        dropout: float = 0.2,
        init: str = "default",
    ) -> None:
        super().__init__()
        check_dropout(dropout)
        layers = []
        width = int(np.prod(input_shape))
        for hidden in hidden_sizes:
            layers += [M.Linear(width, int(hidden)), make_activation(activation)]
            if dropout > 0:
                layers.append(M.Dropout(dropout))
            width = int(hidden)
        layers.append(M.Linear(width, num_outputs))
        self.layers = M.Sequential(*layers)
        apply_init(self, init)

    def forward(self, x):
        return self.layers(F.flatten(x, 1))


@register_model("mlp", tasks=("classification", "regression"), input_ranks=(1, 3))
def mlp(input_shape: Sequence[int], num_outputs: int, **kwargs) -> MLP:
    return MLP(input_shape, num_outputs, **kwargs)
