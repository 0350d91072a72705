"""The shared trainer on tiny synthetic data: the loss falls, checkpoints and metrics are right."""

from __future__ import annotations

import numpy as np
import pytest

from mgelab.checkpoint import load_checkpoint
from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from recording_logger import RecordingLogger


def small_data(**kwargs) -> SyntheticImages:
    return SyntheticImages(noise=90.0, batch_size=32, val_size=64, seed=3, **kwargs)


def fit(tmp_path, model_name="mlp", epochs=3, lr=0.05, data_kwargs=None, **trainer_kwargs):
    seed_everything(0)
    data = small_data(**(data_kwargs or {}))
    model = create_model(model_name, input_shape=data.input_shape, num_outputs=data.num_outputs)
    logger = RecordingLogger()
    checkpoints = str(tmp_path / "ckpt")
    trainer = Trainer(max_epochs=epochs, progress_bar=False, checkpoint_dir=checkpoints, **trainer_kwargs)
    result = trainer.fit(model, data, OptimizerFactory(name="sgd", lr=lr), logger)
    return result, logger, model, data


@pytest.mark.parametrize("model_name", ["linear", "mlp", "cnn"])
def test_loss_falls_and_beats_chance(tmp_path, model_name):
    result, _, _, data = fit(tmp_path, model_name, epochs=3, lr=0.02)
    losses = [row["train/loss"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.test["acc"] > 2.0 / data.num_classes


def test_epoch_and_step_metrics_have_proper_steps(tmp_path):
    result, logger, _, data = fit(tmp_path, epochs=3, log_every_n_steps=2)
    assert [step for step, _ in logger.series("val/acc")] == [1, 2, 3]
    steps_per_epoch = data.num_train_batches()
    step_losses = logger.series("step/train_loss")
    assert [s for s, _ in step_losses] == list(range(2, 3 * steps_per_epoch + 1, 2))
    assert logger.series("test/acc") == [(result.best_epoch, result.test["acc"])]
    # The value a sweeper gets: the monitored metric, at the epoch that did best on it.
    values = [v for _, v in logger.series("val/acc")]
    assert (result.monitor, result.monitor_mode) == ("val/acc", "max")
    assert result.best_value == max(values) == values[result.best_epoch - 1]


def test_val_metrics_are_computed_over_the_whole_split(tmp_path):
    result, _, model, data = fit(tmp_path, epochs=1)
    # Recompute in one batch: equal to the trainer's (which used eval batches of 256).
    data.eval_batch_size = 10_000
    again = Trainer(progress_bar=False).evaluate(model, data, "val")
    assert again["acc"] == pytest.approx(result.history[-1]["val/acc"]) or result.best_epoch != 1
    assert again["loss"] == pytest.approx(result.best_val["loss"], rel=1e-5)


def test_best_and_last_checkpoints(tmp_path):
    result, _, model, data = fit(tmp_path, epochs=3)
    best, last = load_checkpoint(result.best_checkpoint), load_checkpoint(result.last_checkpoint)
    steps_per_epoch = data.num_train_batches()
    assert last.meta["progress"]["global_step"] == 3 * steps_per_epoch
    assert best.meta["progress"]["global_step"] == result.best_epoch * steps_per_epoch
    # The model ends on the best weights (that is what was tested).
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, best.section("model")[name])


def test_limit_train_batches(tmp_path):
    result, logger, _, _ = fit(tmp_path, epochs=2, limit_train_batches=3, log_every_n_steps=1)
    assert [s for s, _ in logger.series("step/train_loss")] == [1, 2, 3, 4, 5, 6]
    assert all(row["train/samples_per_s"] > 0 for row in result.history)


def test_non_finite_loss_stops_with_step_and_lr(tmp_path):
    with pytest.raises(FloatingPointError, match=r"step \d+ .*lr"):
        fit(tmp_path, model_name="mlp", epochs=2, lr=1e6)


def test_same_seed_same_result(tmp_path):
    first, _, _, _ = fit(tmp_path / "a", epochs=2)
    second, _, _, _ = fit(tmp_path / "b", epochs=2)
    assert first.history[-1]["train/loss"] == second.history[-1]["train/loss"]
    assert first.test == second.test


def test_label_smoothing_changes_the_training_loss_only(tmp_path):
    plain, _, _, _ = fit(tmp_path / "a", epochs=1)
    smooth, _, _, _ = fit(tmp_path / "b", epochs=1, label_smoothing=0.2)
    # The smoothed targets' cross-entropy is larger; validation is scored with the plain loss either way.
    assert smooth.history[0]["train/loss"] > plain.history[0]["train/loss"]
    assert smooth.history[0]["val/loss"] < smooth.history[0]["train/loss"]


def test_bad_trainer_settings_name_the_key():
    with pytest.raises(ValueError, match="trainer.max_epochs"):
        Trainer(max_epochs=0)
    with pytest.raises(ValueError, match=r"trainer.label_smoothing=1 must be in \[0, 1\)"):
        Trainer(label_smoothing=1.0)
    with pytest.raises(ValueError, match="trainer.limit_train_batches"):
        Trainer(limit_train_batches=-2)._batches_per_epoch(10)


def test_limit_eval_batches_scores_only_the_first_batches(tmp_path):
    result, _, model, data = fit(tmp_path, epochs=1, limit_eval_batches=1, data_kwargs={"eval_batch_size": 50})
    assert data.split_size("test") > 50 and result.confusion.sum() == 50
    assert Trainer(progress_bar=False, limit_eval_batches=1).evaluate(model, data, "val")["acc"] == pytest.approx(
        result.history[0]["val/acc"]
    )
