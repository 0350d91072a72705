"""A small CNN: 3x3 conv blocks (conv, optional BatchNorm, ReLU and a 2x2 max-pool) and a fully connected head."""

from __future__ import annotations

from typing import Sequence

import megengine.functional as F
import megengine.module as M

from mgelab.models.init import apply_init
from mgelab.models.layers import make_activation, pooled_activation
from mgelab.models.registry import register_model
from mgelab.nn import BatchNorm2d, Conv2d, check_norm_impl


class CNN(M.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int] = (32, 64),
        hidden_size: int = 128,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "msra",
        conv_impl: str = "auto",
        norm_impl: str = "auto",
    ) -> None:
        super().__init__()
        check_norm_impl(norm_impl)
        in_channels, height, width = (int(s) for s in input_shape)
        blocks = []
        for out_channels in channels:
            # With BatchNorm the conv bias is redundant: BN's own shift replaces it.
            blocks.append(Conv2d(in_channels, int(out_channels), 3, padding=1, bias=not batch_norm, impl=conv_impl))
            if batch_norm:
                blocks.append(BatchNorm2d(int(out_channels), impl=norm_impl))
            blocks += pooled_activation(activation)
            in_channels, height, width = int(out_channels), height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for {len(channels)} pooling blocks")
        self.features = M.Sequential(*blocks)
        head = [M.Linear(in_channels * height * width, hidden_size), make_activation(activation)]
        if dropout > 0:
            head.append(M.Dropout(dropout))
        self.head = M.Sequential(*head, M.Linear(hidden_size, num_outputs))
        apply_init(self, init)

    def forward(self, x):
        return self.head(F.flatten(self.features(x), 1))


@register_model("cnn", input_ranks=(3,))
def cnn(input_shape: Sequence[int], num_outputs: int, **kwargs) -> CNN:
    return CNN(input_shape, num_outputs, **kwargs)
