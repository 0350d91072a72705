"""Tests generated from the registry: every registered model is covered automatically."""

from __future__ import annotations

import megengine as mge
import megengine.functional as F
import numpy as np
import pytest
from megengine.autodiff import GradManager

from mgelab.models import create_model, list_models, model_spec

MODELS = list_models()


def test_registry_lists_the_foundation_models():
    assert {"linear", "mlp", "cnn"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape(name):
    shape = model_spec(name).example_input_shape
    model = create_model(name, input_shape=shape, num_outputs=7)
    out = model(mge.tensor(np.random.rand(3, *shape).astype("float32")))
    assert out.shape == (3, 7)


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name):
    shape = model_spec(name).example_input_shape
    model = create_model(name, input_shape=shape, num_outputs=5, init="msra")
    params = list(model.parameters())
    gm = GradManager().attach(params)
    x = mge.tensor(np.random.default_rng(0).normal(size=(4, *shape)).astype("float32"))
    with gm:
        loss = F.nn.cross_entropy(model(x), mge.tensor(np.array([0, 1, 2, 3], dtype="int32")))
        gm.backward(loss)
    for param in params:
        assert param.grad is not None and param.grad.shape == param.shape
        assert float(F.abs(param.grad).sum().item()) > 0


@pytest.mark.parametrize("name", MODELS)
def test_train_and_eval_modes_differ_only_with_dropout(name):
    shape = model_spec(name).example_input_shape
    kwargs = {"dropout": 0.5} if name in ("mlp", "cnn") else {}
    model = create_model(name, input_shape=shape, num_outputs=4, init="msra", **kwargs)
    x = mge.tensor(np.random.default_rng(1).normal(size=(8, *shape)).astype("float32"))
    model.eval()
    first, second = model(x).numpy(), model(x).numpy()
    np.testing.assert_array_equal(first, second)  # eval is deterministic
    if kwargs:
        model.train()
        assert not np.allclose(model(x).numpy(), first)


def test_unknown_model_lists_the_choices():
    with pytest.raises(KeyError, match="mlp"):
        create_model("vit", input_shape=(1, 8, 8), num_outputs=2)


def test_cnn_refuses_flat_features():
    with pytest.raises(ValueError, match="rank"):
        create_model("cnn", input_shape=(784,), num_outputs=10)


def test_models_reject_unknown_tasks():
    with pytest.raises(ValueError, match="regression"):
        create_model("cnn", input_shape=(1, 8, 8), num_outputs=1, task="regression")


def test_zero_init_linear_starts_at_uniform_prediction():
    model = create_model("linear", input_shape=(1, 8, 8), num_outputs=4, init="zeros")
    out = model(mge.tensor(np.ones((2, 1, 8, 8), "float32"))).numpy()
    np.testing.assert_array_equal(out, np.zeros((2, 4), "float32"))
