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
