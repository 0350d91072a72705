"""The trainer's step updates weights with MegEngine's fused in-place optimizer ops: the same
weights as the separate ops, for every optimizer the project builds, and the user's setting wins."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mgelab.models import create_model
from mgelab.train import OptimizerFactory, seed_everything
from mgelab.train.steps import INPLACE_UPDATE_ENV, fused_updates, make_train_step

SHAPE = (1, 8, 8)
OPTIMIZERS = [
    {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
    {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"name": "adam", "lr": 0.01, "weight_decay": 1e-4},
    {"name": "adamw", "lr": 0.01, "weight_decay": 1e-2},
]


def train(settings, monkeypatch, env_value):
    """Six steps of a small CNN; ``env_value`` None leaves MEGENGINE_INPLACE_UPDATE unset."""
    if env_value is None:
        monkeypatch.delenv(INPLACE_UPDATE_ENV, raising=False)
    else:
        monkeypatch.setenv(INPLACE_UPDATE_ENV, env_value)
    seed_everything(0)
    model = create_model("cnn", input_shape=SHAPE, num_outputs=10, channels=[4, 8], hidden_size=16,
                         batch_norm=True)
    optimizer = OptimizerFactory(**settings)(model.parameters())
    step = make_train_step(model, optimizer, "classification")
    model.train()
    rng = np.random.default_rng(1)
    for _ in range(6):
        step(rng.normal(size=(8, *SHAPE)).astype("float32"), rng.integers(0, 10, 8).astype("int32"))
    return {k: np.asarray(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("settings", OPTIMIZERS, ids=lambda s: s["name"] + ("-nesterov" if s.get("nesterov") else ""))
def test_fused_updates_give_the_separate_ops_weights(settings, monkeypatch):
    fused = train(settings, monkeypatch, None)
    separate = train(settings, monkeypatch, "0")
    seed_everything(0)  # the initial weights both runs started from
    start = {k: np.asarray(v) for k, v in create_model(
        "cnn", input_shape=SHAPE, num_outputs=10, channels=[4, 8], hidden_size=16, batch_norm=True
    ).state_dict().items()}
    moved = [k for k in fused if fused[k].dtype.kind == "f" and not np.allclose(fused[k], start[k])]
    assert moved, "the steps changed no weight"
    for key, value in separate.items():
        np.testing.assert_allclose(fused[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_fused_updates_set_the_switch_only_inside_the_block(monkeypatch):
    monkeypatch.delenv(INPLACE_UPDATE_ENV, raising=False)
    with fused_updates():
        assert os.environ[INPLACE_UPDATE_ENV] == "1"
    assert INPLACE_UPDATE_ENV not in os.environ


def test_a_users_setting_wins(monkeypatch):
    monkeypatch.setenv(INPLACE_UPDATE_ENV, "0")
    with fused_updates():
        assert os.environ[INPLACE_UPDATE_ENV] == "0"
    assert os.environ[INPLACE_UPDATE_ENV] == "0"


def test_the_step_runs_the_optimizer_inside_the_switch(monkeypatch):
    """Otherwise the two runs above would both take the separate ops and agree trivially."""
    monkeypatch.delenv(INPLACE_UPDATE_ENV, raising=False)
    seed_everything(0)
    model = create_model("linear", input_shape=SHAPE, num_outputs=10)
    optimizer = OptimizerFactory(name="sgd", lr=0.1, momentum=0.9)(model.parameters())
    seen = []
    original = optimizer.step

    def spying_step():
        seen.append(os.environ.get(INPLACE_UPDATE_ENV))
        return original()

    monkeypatch.setattr(optimizer, "step", spying_step)
    step = make_train_step(model, optimizer, "classification")
    step(np.zeros((4, *SHAPE), "float32"), np.zeros(4, "int32"))
    assert seen == ["1"]
