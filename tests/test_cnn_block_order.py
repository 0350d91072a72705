"""The CNN and LeNet pool before their ReLU: the same outputs and gradients as ReLU then pool, bit for bit."""

from __future__ import annotations

import megengine as mge
import megengine.functional as F
import megengine.module as M
import numpy as np
import pytest
from megengine.autodiff import GradManager

from mgelab.models import create_model


def as_relu_then_pool(model: M.Module) -> M.Sequential:
    """The model's features with each (pool, ReLU) pair put back in the textbook order."""
    layers = list(model.features.layer_values)
    out = []
    for layer in layers:
        if isinstance(layer, M.ReLU) and out and isinstance(out[-1], M.MaxPool2d):
            out.insert(len(out) - 1, layer)
        else:
            out.append(layer)
    return M.Sequential(*out)


def outputs_and_grads(model: M.Module, features, x: np.ndarray):
    gm = GradManager().attach(model.parameters())
    head = model.head if hasattr(model, "head") else model.classifier
    with gm:
        out = head(F.flatten(features(mge.tensor(x)), 1))
        gm.backward((out ** 2).mean())
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    return out.numpy(), grads


MODELS = {
    "cnn": dict(input_shape=(3, 16, 16), channels=[4, 8], hidden_size=8),
    "cnn_bn": dict(input_shape=(3, 16, 16), channels=[4, 8], hidden_size=8, batch_norm=True),
    "lenet": dict(input_shape=(3, 32, 32)),
}


@pytest.mark.parametrize("variant", sorted(MODELS))
def test_pool_then_relu_is_relu_then_pool(variant):
    np.random.seed(0)
    settings = dict(MODELS[variant])
    shape = settings.pop("input_shape")
    model = create_model(variant.split("_")[0], input_shape=shape, num_outputs=4, **settings)
    kinds = [type(layer) for layer in model.features.layer_values]
    assert kinds.index(M.MaxPool2d) < kinds.index(M.ReLU)  # the fast order is the one built
    # Negative inputs make whole windows <= 0 and ties at zero: the case where the orders could differ.
    x = np.random.randn(6, *shape).astype(np.float32) - 0.5
    x[:, :, :4, :4] = -1.0
    fast, fast_grads = outputs_and_grads(model, model.features, x)
    plain, plain_grads = outputs_and_grads(model, as_relu_then_pool(model), x)
    np.testing.assert_array_equal(fast, plain)
    for a, b in zip(fast_grads, plain_grads, strict=True):
        np.testing.assert_array_equal(a, b)


def test_other_activations_keep_the_usual_order():
    model = create_model("cnn", input_shape=(1, 8, 8), num_outputs=2, channels=[4], activation="sigmoid")
    kinds = [type(layer) for layer in model.features.layer_values]
    assert kinds.index(M.Sigmoid) < kinds.index(M.MaxPool2d)
