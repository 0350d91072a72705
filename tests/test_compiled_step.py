"""The compiled training step (jit.trace, symbolic) against eager MegEngine: same losses,
same weights, BatchNorm statistics and momentum included; and when it may be used."""

from __future__ import annotations

import numpy as np
import pytest

from mgelab.checkpoint import load_checkpoint
from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from mgelab.train.signals import TrainingInterrupted
from mgelab.train.steps import draws_random_numbers, make_train_step, should_compile
from recording_logger import InterruptAt, RecordingLogger

STEPS = 6
# (model, kwargs, sample shape): dense, conv with BatchNorm (running statistics are updated
# inside the graph), residual blocks, and a regression head.
CASES = [
    ("linear", {}, (1, 8, 8), "classification"),
    ("mlp", {"hidden_sizes": [32], "dropout": 0.0}, (1, 8, 8), "classification"),
    ("cnn", {"channels": [4, 8], "hidden_size": 16, "batch_norm": True}, (1, 8, 8), "classification"),
    ("resnet", {"depth": 20}, (3, 8, 8), "classification"),
    ("linear", {}, (5,), "regression"),
]


def batches(shape, task, rng):
    """Varying batch sizes: the last batch of an epoch is usually shorter."""
    for size in (8, 8, 5, 8, 5, 8)[:STEPS]:
        x = rng.normal(size=(size, *shape)).astype("float32")
        y = rng.integers(0, 10, size) if task == "classification" else rng.normal(size=(size, 1))
        yield x, y.astype("int32" if task == "classification" else "float32")


def run(name, kwargs, shape, task, compiled):
    seed_everything(0)
    outputs = 10 if task == "classification" else 1
    model = create_model(name, input_shape=shape, num_outputs=outputs, task=task, **kwargs)
    optimizer = OptimizerFactory(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4)(model.parameters())
    step = make_train_step(model, optimizer, task, compiled=compiled)
    model.train()
    losses = []
    for i, (x, y) in enumerate(batches(shape, task, np.random.default_rng(1))):
        for group in optimizer.param_groups:  # a schedule changes lr between steps
            group["lr"] = 0.05 / (1 + i)
        loss, out = step(x, y)
        assert out.shape[0] == len(x)
        losses.append(loss)
    return losses, {k: np.asarray(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name,kwargs,shape,task", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_compiled_step_matches_eager(name, kwargs, shape, task):
    eager_losses, eager_state = run(name, kwargs, shape, task, compiled=False)
    compiled_losses, compiled_state = run(name, kwargs, shape, task, compiled=True)
    np.testing.assert_allclose(compiled_losses, eager_losses, rtol=1e-5, atol=1e-6)
    assert eager_losses[-1] != eager_losses[0]  # the steps did train
    for key, value in eager_state.items():  # weights, BN running mean/var
        np.testing.assert_allclose(compiled_state[key], value, rtol=1e-4, atol=1e-6, err_msg=key)


def test_auto_compiles_only_models_without_dropout():
    plain = create_model("mlp", input_shape=(1, 8, 8), num_outputs=10, dropout=0.0)
    dropping = create_model("mlp", input_shape=(1, 8, 8), num_outputs=10, dropout=0.3)
    assert not draws_random_numbers(plain) and draws_random_numbers(dropping)
    assert should_compile("auto", plain) and not should_compile("auto", dropping)
    assert should_compile("True", plain) and not should_compile("false", plain)
    with pytest.raises(ValueError, match="trainer.compile=true.*dropout"):
        should_compile("true", dropping)
    with pytest.raises(ValueError, match="trainer.compile='fast' is unknown"):
        should_compile("fast", plain)
    with pytest.raises(ValueError, match="trainer.compile='fast' is unknown"):
        Trainer(compile="fast")  # refused when built, before any data is read


def fit(tmp_path, compile, logger=None, **kwargs):
    seed_everything(0)
    data = SyntheticImages(noise=90.0, batch_size=16, val_size=64, seed=3)
    model = create_model("cnn", input_shape=data.input_shape, num_outputs=data.num_outputs,
                         channels=[4, 8], hidden_size=16, batch_norm=True)
    trainer = Trainer(max_epochs=2, progress_bar=False, checkpoint_dir=str(tmp_path), compile=compile,
                      log_every_n_steps=1, **kwargs)
    return trainer.fit(model, data, OptimizerFactory(lr=0.05), logger or RecordingLogger())


def test_trainer_compiled_equals_eager(tmp_path):
    eager, compiled = fit(tmp_path / "eager", "false"), fit(tmp_path / "compiled", "true")
    np.testing.assert_allclose([r["train/loss"] for r in compiled.history],
                               [r["train/loss"] for r in eager.history], rtol=1e-5)
    assert compiled.test["acc"] == pytest.approx(eager.test["acc"], abs=1.5 / 64)


def test_compiled_run_resumes_exactly(tmp_path):
    reference = fit(tmp_path / "a", "true")
    with pytest.raises(TrainingInterrupted):
        fit(tmp_path / "b", "true", logger=InterruptAt(step=11))
    resumed = fit(tmp_path / "b", "true", resume=str(tmp_path / "b"))
    assert [r["train/loss"] for r in resumed.history] == [r["train/loss"] for r in reference.history]
    final_a, final_b = load_checkpoint(reference.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    for name, value in final_a.arrays.items():
        np.testing.assert_array_equal(value, final_b.arrays[name], err_msg=name)
