"""Small pieces the model families share."""

from __future__ import annotations

import megengine.module as M

ACTIVATIONS = {
    "relu": M.ReLU,
    "leaky_relu": M.LeakyReLU,
    "gelu": M.GELU,
    "silu": M.SiLU,
    "sigmoid": M.Sigmoid,
}


def make_activation(name: str) -> M.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation={name!r} is unknown; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def pooled_activation(activation: str) -> list:
    """A conv block's activation and 2x2 max-pool. ReLU goes after the pool: max and ReLU commute
    exactly, forward and backward (the gradient reaches the same window maximum, zeroed where it is not
    positive), and ReLU then runs on a quarter of the values. Other activations keep the usual order."""
    if activation == "relu":
        return [M.MaxPool2d(2), make_activation(activation)]
    return [make_activation(activation), M.MaxPool2d(2)]
