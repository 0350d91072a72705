"""Tests generated from the registry: every registered model is covered automatically.

Each generated test builds the model for the first task it declares and feeds its
``example_input_shape``, with the loss that task trains on (cross entropy or MSE).
"""

from __future__ import annotations

import inspect
from typing import List

import megengine as mge
import megengine.functional as F
import megengine.module as M
import numpy as np
import pytest
from megengine.autodiff import GradManager

from mgelab.models import create_model, list_models, model_spec, models_for
from mgelab.models.init import INIT_SCHEMES, apply_init
from mgelab.models.registry import fit_problem
from mgelab.models.resnet import DEPTHS
from mgelab.nn import Conv2d

MODELS = list_models()


def build(name: str, num_outputs: int, **kwargs) -> M.Module:
    spec = model_spec(name)
    return create_model(name, spec.example_input_shape, num_outputs, task=spec.tasks[0], **kwargs)


def batch(name: str, n: int, seed: int = 0) -> mge.Tensor:
    shape = model_spec(name).example_input_shape
    return mge.tensor(np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32"))


def task_loss(name: str, out: mge.Tensor) -> mge.Tensor:
    n, k = out.shape
    if model_spec(name).tasks[0] == "regression":
        targets = np.random.default_rng(1).normal(size=(n, k)).astype("float32")
        return F.nn.square_loss(out, mge.tensor(targets))
    return F.nn.cross_entropy(out, mge.tensor(np.arange(n, dtype="int32") % k))


def batchnorms(model: M.Module) -> List[M.Module]:
    return [m for m in model.modules() if isinstance(m, (M.BatchNorm1d, M.BatchNorm2d))]


def takes_dropout(name: str) -> bool:
    return "dropout" in inspect.signature(type(build(name, 2)).__init__).parameters


# Decided at collection from the built models, so a new model with BN or dropout is covered.
BN_MODELS = [name for name in MODELS if batchnorms(build(name, 2))]
DROPOUT_MODELS = [name for name in MODELS if takes_dropout(name)]
CONV_MODELS = [name for name in MODELS if any(isinstance(m, Conv2d) for m in build(name, 2).modules())]


def test_registry_lists_the_models():
    assert {"linear", "mlp", "cnn", "lenet", "resnet"} <= set(MODELS)
    assert "resnet" in BN_MODELS and {"mlp", "cnn"} <= set(DROPOUT_MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape(name):
    out = build(name, 7)(batch(name, 3))
    assert out.shape == (3, 7)


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name):
    model = build(name, 5, init="msra")
    params = list(model.parameters())
    gm = GradManager().attach(params)
    with gm:
        gm.backward(task_loss(name, model(batch(name, 4))))
    for param in params:
        assert param.grad is not None and param.grad.shape == param.shape
        assert float(F.abs(param.grad).sum().item()) > 0


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic(name):
    model = build(name, 4, init="msra")
    model.eval()
    x = batch(name, 4, seed=1)
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())


@pytest.mark.parametrize("name", DROPOUT_MODELS)
def test_dropout_is_active_only_in_train_mode(name):
    model = build(name, 4, init="msra", dropout=0.5)
    x = batch(name, 8, seed=1)
    model.eval()
    first = model(x).numpy()
    model.train()
    assert not np.allclose(model(x).numpy(), first)


def running_stats(model: M.Module) -> List[np.ndarray]:
    return [t.numpy().copy() for bn in batchnorms(model) for t in (bn.running_mean, bn.running_var)]


@pytest.mark.parametrize("name", BN_MODELS)
def test_batchnorm_statistics_follow_mode(name):
    model = build(name, 4)
    x = batch(name, 4, seed=2)
    before = running_stats(model)
    model.eval()
    eval_out = model(x).numpy()
    # Eval mode normalises with the running statistics and leaves them alone.
    assert all(np.array_equal(a, b) for a, b in zip(before, running_stats(model)))
    model.train()
    train_out = model(x).numpy()
    after = running_stats(model)
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    # Train mode normalises with the batch's statistics, so the outputs differ.
    assert not np.allclose(train_out, eval_out)
    model.eval()
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    assert all(np.array_equal(a, b) for a, b in zip(after, running_stats(model)))


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
@pytest.mark.parametrize("name", BN_MODELS)
def test_every_init_scheme_keeps_batchnorm_at_identity(name, scheme):
    model = build(name, 3, init=scheme)
    for bn in batchnorms(model):
        np.testing.assert_array_equal(bn.weight.numpy(), 1.0)
        np.testing.assert_array_equal(bn.bias.numpy(), 0.0)
        bn.weight[:] = 5.0  # a later re-init must restore them too
        bn.bias[:] = -1.0
    apply_init(model, scheme)
    assert all(float(bn.weight.numpy().min()) == 1.0 for bn in batchnorms(model))
    assert all(not bn.bias.numpy().any() for bn in batchnorms(model))


# --- a model/data mismatch fails in create_model, naming the model and the data shape ---
@pytest.mark.parametrize(
    "name, shape, task, reason",
    [
        ("lenet", (1, 28, 28), "classification", "32 x 32"),  # MNIST without resize
        ("cnn", (784,), "classification", "rank"),
        ("cnn", (1, 8, 8), "regression", "regression"),
        ("resnet", (3072,), "classification", "rank"),
    ],
)
def test_mismatch_names_model_and_data_shape(name, shape, task, reason):
    with pytest.raises(ValueError) as info:
        create_model(name, input_shape=shape, num_outputs=10, task=task)
    message = str(info.value)
    assert f"model {name!r}" in message and str(shape) in message and reason in message
    # The message points at the models that would fit.
    assert str(models_for(shape, task)) in message


def test_the_fit_check_needs_only_the_sample_shape_and_names_the_data():
    assert fit_problem("cnn", (1, 28, 28), "classification") is None
    message = fit_problem("lenet", (1, 28, 28), "classification", data="mnist")
    assert message.startswith("model 'lenet' does not fit data 'mnist' (sample shape (1, 28, 28)")
    assert message.endswith(f"models that fit this data: {models_for((1, 28, 28))}")


def test_models_for_filters_by_task_and_shape():
    assert models_for((8,), "regression") == ["linear", "mlp"]
    assert "cnn" not in models_for((8,), "regression")
    assert "lenet" not in models_for((1, 28, 28)) and "resnet" in models_for((1, 28, 28))
    assert {"lenet", "resnet", "cnn"} <= set(models_for((3, 32, 32)))


def test_lenet_takes_any_channel_count_at_32x32():
    model = create_model("lenet", input_shape=(3, 32, 32), num_outputs=10)
    assert model(mge.tensor(np.zeros((2, 3, 32, 32), "float32"))).shape == (2, 10)
    # conv 3*6*25+6, conv 6*16*25+16, fc 400*120+120, fc 120*84+84, fc 84*10+10.
    assert sum(p.size for p in model.parameters()) == 456 + 2416 + 48120 + 10164 + 850 == 62006


def test_unknown_model_lists_the_choices():
    with pytest.raises(KeyError, match="mlp"):
        create_model("vit", input_shape=(1, 8, 8), num_outputs=2)


@pytest.mark.parametrize("key, value, allowed", [("depth", 21, "(20, 32, 56)"), ("shortcut", "C", "zero_pad")])
def test_resnet_rejects_bad_knobs_naming_key_and_choices(key, value, allowed):
    with pytest.raises(ValueError) as info:
        create_model("resnet", input_shape=(3, 32, 32), num_outputs=10, **{key: value})
    assert f"model.{key}={value!r}" in str(info.value) and allowed in str(info.value)


def basic_block_params(c_in: int, c: int) -> int:
    """Two 3x3 convs (no bias) and two BatchNorms (gamma and beta per channel)."""
    return c_in * c * 9 + 2 * c + c * c * 9 + 2 * c


def resnet20_params(projection: bool) -> int:
    """ResNet-20 parameters by hand, from the architecture in the paper."""
    stem = 3 * 16 * 9 + 2 * 16
    # Option B adds a 1x1 conv + BN on the two downsampling shortcuts; option A adds nothing.
    proj16, proj32 = (16 * 32 + 2 * 32, 32 * 64 + 2 * 64) if projection else (0, 0)
    stage1 = 3 * basic_block_params(16, 16)
    stage2 = basic_block_params(16, 32) + proj16 + 2 * basic_block_params(32, 32)
    stage3 = basic_block_params(32, 64) + proj32 + 2 * basic_block_params(64, 64)
    return stem + stage1 + stage2 + stage3 + (64 * 10 + 10)


def test_resnet20_parameter_count():
    # 464 + 14016 + (14528 + 37120) + (57728 + 147968) + 650; the paper's "0.27M".
    assert resnet20_params(projection=True) == 272474
    assert resnet20_params(projection=False) == 272474 - (16 * 32 + 64) - (32 * 64 + 128) == 269722
    for shortcut, expected in (("projection", 272474), ("zero_pad", 269722)):
        model = create_model("resnet", input_shape=(3, 32, 32), num_outputs=10, shortcut=shortcut)
        assert sum(p.size for p in model.parameters()) == expected


@pytest.mark.parametrize("depth", DEPTHS)
def test_resnet_depth_counts_weighted_layers(depth):
    model = create_model("resnet", input_shape=(3, 32, 32), num_outputs=10, depth=depth)
    # 6n + 2 = the 3x3 convs plus the fc; the 1x1 projections are not counted, as in the paper.
    convs3 = [m for m in model.modules() if isinstance(m, M.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in model.modules() if isinstance(m, M.Linear)]
    assert len(convs3) + len(linears) == depth


def test_resnet_zero_pad_shortcut_runs_forward_and_backward():
    model = create_model("resnet", input_shape=(3, 8, 8), num_outputs=4, shortcut="zero_pad")
    gm = GradManager().attach(model.parameters())
    with gm:
        out = model(batch("resnet", 2))
        gm.backward(F.nn.cross_entropy(out, mge.tensor(np.array([0, 3], "int32"))))
    assert out.shape == (2, 4)
    assert all(p.grad is not None for p in model.parameters())


def test_zero_init_linear_starts_at_uniform_prediction():
    model = create_model("linear", input_shape=(1, 8, 8), num_outputs=4, init="zeros")
    out = model(mge.tensor(np.ones((2, 1, 8, 8), "float32"))).numpy()
    np.testing.assert_array_equal(out, np.zeros((2, 4), "float32"))


def test_zero_init_linear_regression_predicts_zero_from_features():
    model = create_model("linear", input_shape=(8,), num_outputs=1, task="regression")
    assert model(mge.tensor(np.ones((3, 8), "float32"))).numpy().tolist() == [[0.0]] * 3


def test_the_old_linear_regression_name_builds_linear():
    """Checkpoints and tracked runs from before the merge name ``linear_regression``."""
    old = create_model("linear_regression", input_shape=(8,), num_outputs=1, task="regression")
    new = create_model("linear", input_shape=(8,), num_outputs=1, task="regression")
    assert old.registry_name == "linear" and "linear_regression" not in MODELS
    assert old.state_dict().keys() == new.state_dict().keys()


def outputs_and_grads(model: M.Module, x: mge.Tensor, name: str):
    gm = GradManager().attach(model.parameters())
    with gm:
        out = model(x)
        gm.backward(task_loss(name, out))
    return out.numpy(), {key: p.grad.numpy() for key, p in model.named_parameters()}


@pytest.mark.parametrize("name", CONV_MODELS)
def test_conv_impls_agree_on_outputs_and_gradients(name):
    assert {"cnn", "lenet", "resnet"} <= set(CONV_MODELS)
    native = build(name, 5, init="msra", conv_impl="native")
    fast = build(name, 5, conv_impl="fast")
    fast.load_state_dict(native.state_dict())
    x = batch(name, 3, seed=3)
    out_native, grads_native = outputs_and_grads(native, x, name)
    out_fast, grads_fast = outputs_and_grads(fast, x, name)
    np.testing.assert_allclose(out_fast, out_native, rtol=1e-4, atol=1e-5)
    assert grads_fast.keys() == grads_native.keys()
    for key, expected in grads_native.items():
        # float32 with a different summation order: tolerance relative to each gradient's scale
        scale = float(np.abs(expected).max()) or 1.0
        np.testing.assert_allclose(grads_fast[key], expected, rtol=1e-4, atol=1e-4 * scale, err_msg=key)
