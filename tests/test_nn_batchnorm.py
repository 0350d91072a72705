"""The fast training BatchNorm against MegEngine's: same outputs, gradients and running statistics,
eval untouched, and models built with either train alike."""

from __future__ import annotations

import megengine as mge
import numpy as np
import pytest
from megengine.autodiff import GradManager

from mgelab.models import create_model
from mgelab.nn import BatchNorm2d
from mgelab.train import OptimizerFactory, seed_everything
from mgelab.train.steps import make_train_step

SHAPE = (16, 8, 6, 6)


def steps_of(impl: str, inputs, grads, weight, bias):
    """Three training steps of one layer; what each returned, and the running statistics after."""
    layer = BatchNorm2d(SHAPE[1], impl=impl)
    layer.weight[...] = mge.tensor(weight)
    layer.bias[...] = mge.tensor(bias)
    layer.train()
    results = []
    for x_np, dy_np in zip(inputs, grads):
        x = mge.tensor(x_np)
        gm = GradManager().attach([x, layer.weight, layer.bias])
        with gm:
            y = layer(x)
            gm.backward(y, mge.tensor(dy_np))
        results.append([y.numpy(), x.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()])
    return results, layer


@pytest.mark.parametrize("mean, spread", [(0.0, 1.0), (0.5, 2.0), (3.0, 0.5)])
def test_fast_training_batchnorm_matches_megengines(mean, spread):
    rng = np.random.default_rng(0)
    inputs = [rng.normal(mean, spread, size=SHAPE).astype("float32") for _ in range(3)]
    grads = [rng.normal(size=SHAPE).astype("float32") for _ in range(3)]
    weight = rng.uniform(0.5, 1.5, size=(1, SHAPE[1], 1, 1)).astype("float32")
    bias = rng.normal(size=(1, SHAPE[1], 1, 1)).astype("float32")
    native, native_layer = steps_of("native", inputs, grads, weight, bias)
    fast, fast_layer = steps_of("fast", inputs, grads, weight, bias)
    assert fast_layer.uses_fast(mge.tensor(inputs[0])) and not native_layer.uses_fast(mge.tensor(inputs[0]))
    for step_native, step_fast in zip(native, fast):
        for name, want, got in zip(("y", "dx", "dweight", "dbias"), step_native, step_fast):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-4 * np.abs(want).max(), err_msg=name)
    for buffer in ("running_mean", "running_var"):
        want = getattr(native_layer, buffer).numpy()
        assert not np.allclose(want, 0 if buffer == "running_mean" else 1)  # the statistics did move
        np.testing.assert_allclose(getattr(fast_layer, buffer).numpy(), want, rtol=1e-5, atol=1e-6, err_msg=buffer)


def test_eval_mode_runs_megengines_inference_kernel():
    layer = BatchNorm2d(SHAPE[1], impl="fast")
    layer.eval()
    x = mge.tensor(np.random.default_rng(1).normal(size=SHAPE).astype("float32"))
    assert not layer.uses_fast(x)


def test_an_unknown_impl_is_named():
    with pytest.raises(ValueError, match="model.norm_impl='gpu'"):
        BatchNorm2d(4, impl="gpu")
    with pytest.raises(ValueError, match="model.norm_impl='gpu'"):
        create_model("cnn", input_shape=(1, 8, 8), num_outputs=10, batch_norm=True, norm_impl="gpu")


@pytest.mark.parametrize("name, kwargs, shape", [
    ("cnn", {"channels": [4, 8], "hidden_size": 16, "batch_norm": True}, (1, 8, 8)),
    # 16x16: the last stage then normalises 4x4 maps, not 2x2 ones whose weight-grads are sums of
    # a few near-cancelling terms (rounding differences there reached 1 % of the gradient).
    ("resnet", {"depth": 20}, (3, 16, 16)),
])
def test_models_train_alike_with_either_batchnorm(name, kwargs, shape):
    def trained(impl: str):
        seed_everything(0)
        model = create_model(name, input_shape=shape, num_outputs=10, norm_impl=impl, **kwargs)
        # A small lr: on random labels a larger one is chaotic, and float rounding alone then grows.
        optimizer = OptimizerFactory(name="sgd", lr=0.005, momentum=0.9)(model.parameters())
        step = make_train_step(model, optimizer, "classification")
        model.train()
        rng = np.random.default_rng(2)
        losses = [step(rng.normal(size=(8, *shape)).astype("float32"), rng.integers(0, 10, 8).astype("int32"))[0]
                  for _ in range(4)]
        return losses, {k: np.asarray(v) for k, v in model.state_dict().items()}

    native_losses, native_state = trained("native")
    fast_losses, fast_state = trained("fast")
    assert native_losses[-1] != native_losses[0]
    np.testing.assert_allclose(fast_losses, native_losses, rtol=1e-4, atol=1e-5)
    for key, value in native_state.items():
        np.testing.assert_allclose(fast_state[key], value, rtol=1e-3, atol=1e-4, err_msg=key)
