"""``mgelab.nn.Conv2d``: the fast backward gives MegEngine's native values and gradients.

Speed is never asserted here (scripts/bench.py measures it); only equality to float32
tolerance, over the shapes that exercise the index arithmetic: strides that drop rows,
padding up to and past ``k - 1``, odd and non-square sizes.
"""

from __future__ import annotations

import itertools
import re
from typing import Dict, List, Optional

import megengine as mge
import megengine.module as M
import numpy as np
import pytest
from megengine.autodiff import GradManager

from mgelab.models import create_model
from mgelab.nn import CONV_IMPLS, Conv2d, conv_grad

# (kernel, stride, padding, batch, (in_channels, out_channels)); height 9 and width 7 are odd,
# so stride 2 leaves a remainder row for some paddings and not for others.
GRID = list(itertools.product((3, 5), (1, 2), (0, 1, 2), (1, 3), ((1, 4), (3, 6))))
# Off-grid corners: 1x1 strided (ResNet projections), padding > k - 1, stride 3.
EXTRA = [(1, 2, 0, 2, (3, 6)), (1, 1, 1, 2, (3, 6)), (3, 1, 3, 2, (1, 4)), (3, 3, 1, 2, (3, 6))]
HEIGHT, WIDTH = 9, 7


def make_pair(kernel: int, stride: int, padding: int, channels, bias: bool = True, seed: int = 0):
    """A native and a fast conv with the same (random) weights."""
    native = Conv2d(*channels, kernel, stride=stride, padding=padding, bias=bias, impl="native")
    fast = Conv2d(*channels, kernel, stride=stride, padding=padding, bias=bias, impl="fast")
    rng = np.random.default_rng(seed)
    native.weight[:] = rng.normal(size=native.weight.shape).astype("float32")
    if bias:
        native.bias[:] = rng.normal(size=native.bias.shape).astype("float32")
    fast.load_state_dict(native.state_dict())
    return native, fast


def run(conv: M.Module, x_value: np.ndarray, track_input: bool = True, track_weight: bool = True) -> Dict:
    """Output and the gradients of sum(out * g) for a fixed random g, as numpy."""
    x = mge.tensor(x_value)
    tracked: List[mge.Tensor] = [x] if track_input else []
    if track_weight:
        tracked += list(conv.parameters())
    gm = GradManager().attach(tracked)
    with gm:
        out = conv(x)
        probe = np.random.default_rng(7).normal(size=out.shape).astype("float32")
        gm.backward((out * mge.tensor(probe)).sum())
    grads: Dict[str, Optional[np.ndarray]] = {"out": out.numpy(), "x": _grad(x)}
    grads.update({name: _grad(p) for name, p in conv.named_parameters()})
    return grads


def _grad(t: mge.Tensor) -> Optional[np.ndarray]:
    return None if t.grad is None else t.grad.numpy()


def assert_close(fast: np.ndarray, native: np.ndarray) -> None:
    # Summation order differs (forward kernels vs backward kernels): relative to the scale.
    scale = float(np.abs(native).max()) or 1.0
    np.testing.assert_allclose(fast, native, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("kernel, stride, padding, batch, channels", GRID + EXTRA)
def test_fast_matches_native_values_and_gradients(kernel, stride, padding, batch, channels):
    native, fast = make_pair(kernel, stride, padding, channels)
    x = np.random.default_rng(1).normal(size=(batch, channels[0], HEIGHT, WIDTH)).astype("float32")
    expected, got = run(native, x), run(fast, x)
    for key in ("out", "x", "weight", "bias"):
        assert got[key].shape == expected[key].shape, key
        assert_close(got[key], expected[key])


def test_input_needing_no_gradient_is_skipped(monkeypatch):
    native, fast = make_pair(3, 2, 1, (3, 6))
    x = np.random.default_rng(2).normal(size=(2, 3, 9, 7)).astype("float32")
    expected = run(native, x, track_input=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the input gradient was computed for an input nobody tracks")

    # The first layer's images: no GradManager tracks them, so their gradient is never built.
    monkeypatch.setattr(conv_grad, "input_grad", refuse)
    got = run(fast, x, track_input=False)
    assert got["x"] is None and expected["x"] is None
    assert_close(got["weight"], expected["weight"])
    assert_close(got["bias"], expected["bias"])


def test_frozen_weight_gets_no_gradient_but_input_does(monkeypatch):
    native, fast = make_pair(3, 1, 1, (1, 4))
    x = np.random.default_rng(3).normal(size=(2, 1, 9, 7)).astype("float32")
    expected = run(native, x, track_weight=False)
    monkeypatch.setattr(conv_grad, "weight_grad", lambda *a, **k: pytest.fail("weight gradient computed"))
    got = run(fast, x, track_weight=False)
    assert got["weight"] is None and got["bias"] is None
    assert_close(got["x"], expected["x"])


def test_without_bias_and_outside_a_grad_manager():
    native, fast = make_pair(5, 1, 2, (3, 6), bias=False)
    assert fast.bias is None
    x = mge.tensor(np.random.default_rng(4).normal(size=(3, 3, 9, 7)).astype("float32"))
    assert_close(fast(x).numpy(), native(x).numpy())


def test_checkpoints_load_across_megengine_and_both_impls():
    plain = M.Conv2d(3, 6, 3, padding=1)
    fast = Conv2d(3, 6, 3, padding=1, impl="fast")
    assert set(fast.state_dict()) == set(plain.state_dict()) == {"weight", "bias"}
    fast.load_state_dict(plain.state_dict())
    x = mge.tensor(np.random.default_rng(5).normal(size=(2, 3, 8, 8)).astype("float32"))
    assert_close(fast(x).numpy(), plain(x).numpy())


@pytest.mark.parametrize("impl, expected", [("auto", True), ("fast", True), ("native", False)])
def test_auto_takes_the_fast_path_on_cpu(impl, expected):
    x = mge.tensor(np.zeros((1, 3, 8, 8), "float32"), device="cpu0")
    assert Conv2d(3, 6, 3, impl=impl).uses_fast(x) is expected


@pytest.mark.parametrize("bad", ["cudnn", "Fast", ""])
def test_unknown_impl_names_the_key_and_the_choices(bad):
    with pytest.raises(ValueError) as info:
        Conv2d(3, 6, 3, impl=bad)
    assert f"model.conv_impl={bad!r}" in str(info.value)
    assert all(choice in str(info.value) for choice in CONV_IMPLS)
    with pytest.raises(ValueError, match="model.conv_impl"):
        create_model("cnn", input_shape=(1, 8, 8), num_outputs=2, conv_impl=bad)


@pytest.mark.parametrize("kwargs, reason", [({"groups": 3}, "groups=3"), ({"dilation": 2}, "dilation=(2, 2)")])
def test_fast_refuses_what_it_cannot_do_and_auto_stays_native(kwargs, reason):
    with pytest.raises(ValueError, match=re.escape(f"conv_impl='fast' does not support {reason}")):
        Conv2d(3, 6, 3, impl="fast", **kwargs)
    x = mge.tensor(np.zeros((1, 3, 8, 8), "float32"), device="cpu0")
    assert not Conv2d(3, 6, 3, impl="auto", **kwargs).uses_fast(x)


def test_fast_path_on_a_multithread_comp_node():
    # "multithread2:0" runs the same CPU kernels on a thread pool: auto must pick fast there too.
    native, fast = make_pair(3, 2, 1, (3, 6))
    x_value = np.random.default_rng(6).normal(size=(2, 3, 9, 7)).astype("float32")
    device = mge.get_default_device()
    mge.set_default_device("multithread2:0")
    try:
        auto = Conv2d(3, 6, 3, stride=2, padding=1, impl="auto")
        auto.load_state_dict(native.state_dict())
        assert auto.uses_fast(mge.tensor(x_value))
        got = run(auto, x_value)
    finally:
        mge.set_default_device(device)
    expected = run(native, x_value)
    for key in ("out", "x", "weight", "bias"):
        assert_close(got[key], expected[key])
