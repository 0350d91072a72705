"""trainer.execution_strategy: MegEngine's algorithm choice, checked, applied when a fit starts, recorded by
the run, and the same training whichever algorithms it picks."""

from __future__ import annotations

import numpy as np
import pytest
from megengine.optimizer import SGD

from float_tolerance import assert_close_across_kernels
from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from mgelab.train.machine import (
    STRATEGY_ENV,
    apply_execution_strategy,
    check_execution_strategy,
    execution_strategy,
    run_execution_strategy,
)
from mgelab.train.steps import make_train_step
from recording_logger import RecordingLogger


@pytest.fixture(autouse=True)
def heuristic_afterwards(monkeypatch):
    """The strategy is process-wide: every test here leaves MegEngine's default behind."""
    monkeypatch.delenv(STRATEGY_ENV, raising=False)
    yield
    apply_execution_strategy("HEURISTIC")


@pytest.mark.parametrize("value", ["heuristic", "PROFILE", "REPRODUCIBLE", "HEURISTIC_REPRODUCIBLE",
                                   "profile_reproducible"])
def test_megengine_strategies_are_taken_upper_cased(value):
    assert check_execution_strategy(value) == value.upper()


@pytest.mark.parametrize("value", ["FAST", "", "PROFILE_HEURISTIC", "PROFILE_PROFILE", "PROFILE-REPRODUCIBLE"])
def test_anything_else_is_refused_naming_the_key(value):
    with pytest.raises(ValueError, match=r"trainer.execution_strategy=.*choose HEURISTIC, PROFILE"):
        Trainer(execution_strategy=value)


def test_null_takes_the_environment_then_megengines_default(monkeypatch):
    assert run_execution_strategy(None) == "HEURISTIC"
    monkeypatch.setenv(STRATEGY_ENV, "profile")
    assert run_execution_strategy(None) == "PROFILE"
    assert run_execution_strategy("REPRODUCIBLE") == "REPRODUCIBLE"  # the config wins
    monkeypatch.setenv(STRATEGY_ENV, "SLOW")
    with pytest.raises(ValueError, match=f"{STRATEGY_ENV}='SLOW' is not an execution strategy"):
        Trainer()


def fit(tmp_path, **trainer_kwargs) -> Trainer:
    seed_everything(0)
    data = SyntheticImages(batch_size=32, val_size=32, seed=3)
    model = create_model("mlp", input_shape=data.input_shape, num_outputs=data.num_outputs)
    trainer = Trainer(max_epochs=1, progress_bar=False, checkpoint_dir=str(tmp_path / "ckpt"),
                      limit_train_batches=2, **trainer_kwargs)
    trainer.fit(model, data, OptimizerFactory(name="sgd", lr=0.05), RecordingLogger())
    return trainer


def test_a_fit_sets_its_strategy_and_the_next_fit_does_not_inherit_it(tmp_path):
    fit(tmp_path / "a", execution_strategy="PROFILE_REPRODUCIBLE")
    assert execution_strategy() == "PROFILE_REPRODUCIBLE"
    fit(tmp_path / "b")
    assert execution_strategy() == "HEURISTIC"


def losses_and_weights(strategy: str):
    apply_execution_strategy(strategy)
    seed_everything(0)
    model = create_model("cnn", input_shape=(1, 28, 28), num_outputs=10, channels=[8, 16], hidden_size=32)
    step = make_train_step(model, SGD(model.parameters(), lr=0.05, momentum=0.9), "classification")
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(4):
        x = rng.normal(size=(16, 1, 28, 28)).astype("float32")
        losses.append(step(x, rng.integers(0, 10, size=16).astype("int32"))[0])
    return np.array(losses, "float32"), {k: np.asarray(v) for k, v in model.state_dict().items()}


def test_profiled_algorithms_train_what_the_heuristic_ones_do():
    want_losses, want_weights = losses_and_weights("HEURISTIC")
    got_losses, got_weights = losses_and_weights("PROFILE_REPRODUCIBLE")
    assert_close_across_kernels(got_losses, want_losses, "losses")
    for name, value in want_weights.items():
        assert_close_across_kernels(got_weights[name], value, name)


def test_the_run_records_the_strategy_it_used(train_run, monkeypatch):
    monkeypatch.setenv(STRATEGY_ENV, "profile")
    run = train_run(["trainer=smoke", "data=synthetic", "model=linear"])
    assert run.cfg.trainer.execution_strategy == "PROFILE"
    assert run.run.data.params["trainer.execution_strategy"] == "PROFILE"
