"""trainer.devices=N without GPUs: the shards, the ranks' roles, the lr scaling, the MegEngine wiring
(with its collectives replaced by recorders) and the refusal on a machine without the GPUs.

The ranks are simulated in one process: ``World(rank, size)`` is handed to ``Trainer.fit``. The
real multi-process run (MegEngine's launcher, nccl) needs GPUs and is not run here."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mgelab.run.parallel as parallel
import mgelab.train.distributed as distributed
from mgelab.config.preflight import ConfigError, check_devices
from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.run import train
from mgelab.train import LRSchedule, OptimizerFactory, Trainer, seed_everything
from mgelab.train.distributed import World, lr_multiplier, num_shard_batches, shard_batches, shard_indices, usable_gpus
from recording_logger import RecordingLogger

ROOT = Path(__file__).resolve().parents[1]


class ShiftedImages(SyntheticImages):
    """Synthetic images with an augmentation that depends on its random stream."""

    @property
    def augments(self) -> bool:
        return True

    def augment(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.roll(inputs, int(rng.integers(1, 4)), axis=-1)


def small_data(cls=SyntheticImages) -> SyntheticImages:
    return cls(noise=90.0, batch_size=32, val_size=64, seed=3)


def fit(tmp_path: Path, world: World, data=None, epochs: int = 2, name: str = "ckpt", optim=None, **trainer_kwargs):
    seed_everything(0)
    data = data or small_data()
    model = create_model("mlp", input_shape=data.input_shape, num_outputs=data.num_outputs)
    logger = RecordingLogger()
    trainer = Trainer(max_epochs=epochs, progress_bar=False, checkpoint_dir=str(tmp_path / name), **trainer_kwargs)
    result = trainer.fit(model, data, optim or OptimizerFactory(name="sgd", lr=0.05), logger, world=world)
    return result, logger, model


def weights(model) -> dict:
    return {k: np.asarray(v) for k, v in model.state_dict().items()}


# --- shards ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_samples", [100, 103])
def test_shards_are_disjoint_equal_and_cover_the_epoch(num_samples):
    size = 4
    shards = [shard_indices(num_samples, seed=5, epoch=1, world=World(rank, size)) for rank in range(size)]
    assert {len(s) for s in shards} == {num_samples // size}
    together = np.concatenate(shards)
    assert len(set(together.tolist())) == len(together)  # disjoint
    # Together they are the single-process order of the epoch, less its last num_samples % size samples.
    order = np.random.default_rng((5, 1)).permutation(num_samples)
    np.testing.assert_array_equal(together, order[: len(together)])
    assert num_samples - len(together) == num_samples % size
    next_epoch = shard_indices(num_samples, seed=5, epoch=2, world=World(0, size))
    assert not np.array_equal(next_epoch, shards[0])


def test_one_process_takes_the_data_modules_own_batches():
    data = small_data(ShiftedImages)
    assert num_shard_batches(data, World()) == data.num_train_batches()
    for (x, y), (x0, y0) in zip(shard_batches(data, 2, 1, World()), data.train_batches(2, 1), strict=True):
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)


def test_a_rank_gets_batches_of_its_shard_augmented_its_own_way():
    data = small_data(ShiftedImages)
    world = World(1, 2)
    batches = list(shard_batches(data, 1, 0, world))
    assert len(batches) == num_shard_batches(data, world) == -(-(data.split_size("train") // 2) // 32)
    shard = shard_indices(data.split_size("train"), data.seed, 1, world)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), data.splits["train"].targets[shard])
    other = list(shard_batches(data, 1, 0, World(0, 2)))
    assert len(other) == len(batches)  # the same number of steps on every rank
    # A resumed rank skips its first batches and draws the same ones after them.
    for (x, _), (x0, _) in zip(shard_batches(data, 1, 2, world), batches[2:], strict=True):
        np.testing.assert_array_equal(x, x0)


# --- what each rank does --------------------------------------------------------------------------
def test_only_rank_0_logs_and_checkpoints(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="mgelab.train.trainer"):
        follower, follower_log, _ = fit(tmp_path, World(1, 2), name="rank1")
    assert follower_log.metrics == [] and follower_log.artifacts == []
    assert not (tmp_path / "rank1").exists()
    assert not [r for r in caplog.records if "epoch" in r.getMessage()]
    assert math.isnan(follower.best_value) and follower.best_checkpoint is None

    main, main_log, _ = fit(tmp_path, World(0, 2), name="rank0", log_every_n_steps=1)
    assert [step for step, _ in main_log.series("val/acc")] == [1, 2]
    assert main.best_checkpoint is not None and main.best_checkpoint.is_dir()
    assert "acc" in main.test and not math.isnan(main.best_value)
    # Rank 0 of 2 trains on half of every epoch: half the steps (rounded up to whole batches).
    per_rank = num_shard_batches(small_data(), World(0, 2))
    assert per_rank < small_data().num_train_batches()
    assert main_log.series("step/train_loss")[-1][0] == 2 * per_rank


def test_lr_scaled_by_world_size_only_when_asked(tmp_path):
    optim = OptimizerFactory(name="sgd", lr=0.05, schedule=LRSchedule(kind="none"))
    _, plain, _ = fit(tmp_path, World(0, 2), epochs=1, name="a", optim=optim, log_every_n_steps=1)
    _, scaled, _ = fit(tmp_path, World(0, 2), epochs=1, name="b", optim=optim, log_every_n_steps=1,
                       scale_lr_by_world_size=True)
    assert {lr for _, lr in plain.series("step/lr")} == {0.05}
    scaled_lrs = [lr for _, lr in scaled.series("step/lr")]
    assert scaled_lrs and scaled_lrs == pytest.approx([0.1] * len(scaled_lrs))
    assert lr_multiplier(World(0, 4), True) == 4.0 and lr_multiplier(World(0, 4), False) == 1.0


def test_one_device_trains_exactly_as_before(tmp_path):
    """devices=1 takes the data module's batches, no callbacks and lr x 1: the same weights, bit for bit,
    as a trainer that was never told about devices."""
    _, _, before = fit(tmp_path, World(), name="before")
    _, _, after = fit(tmp_path, World(), name="after", devices=1, scale_lr_by_world_size=True)
    for key, value in weights(before).items():
        np.testing.assert_array_equal(weights(after)[key], value)


def test_a_sharded_rank_resumes_exactly(tmp_path):
    """A checkpoint records the epoch and step; the shard comes from the seed, so rank 0 of 2 resumed
    mid-way ends with the weights of an uninterrupted rank 0 of 2."""
    optim = OptimizerFactory(name="sgd", lr=0.05, schedule=LRSchedule(kind="none"))
    data = small_data(ShiftedImages)
    _, _, straight = fit(tmp_path, World(0, 2), data=data, epochs=2, name="straight", optim=optim)
    fit(tmp_path, World(0, 2), data=data, epochs=1, name="first", optim=optim)
    _, _, resumed = fit(tmp_path, World(0, 2), data=data, epochs=2, name="second", optim=optim,
                        resume=str(tmp_path / "first"))
    for key, value in weights(straight).items():
        np.testing.assert_allclose(weights(resumed)[key], value, rtol=0, atol=0)


def test_a_connected_world_all_reduces_gradients_and_broadcasts_rank_0(tmp_path, monkeypatch):
    """The MegEngine calls, with the collectives replaced: every gradient passes the all-reduce callback,
    parameters and BatchNorm buffers are broadcast once."""
    reduced, broadcast = [], []

    def allreduce_cb(method):
        assert method == "mean"
        return lambda param, grad: reduced.append(param) or grad

    monkeypatch.setattr(distributed.dist, "make_allreduce_cb", allreduce_cb)
    monkeypatch.setattr(distributed.dist, "bcast_list_", lambda tensors: broadcast.extend(tensors))
    seed_everything(0)
    data = small_data()
    model = create_model("cnn", input_shape=data.input_shape, num_outputs=data.num_outputs, channels=[4],
                         batch_norm=True)
    trainer = Trainer(max_epochs=1, limit_train_batches=2, progress_bar=False, checkpoint_dir=str(tmp_path / "c"))
    trainer.fit(model, data, OptimizerFactory(), RecordingLogger(), world=World(0, 2, connected=True))
    parameters, buffers = list(model.parameters()), list(model.buffers())
    assert buffers and len(broadcast) == len(parameters) + len(buffers)
    assert len(reduced) == 2 * len(parameters)


def test_the_launcher_starts_one_worker_per_gpu_and_returns_rank_0s_value(monkeypatch):
    started = {}

    class FakeLauncher:  # MegEngine's launcher, minus the processes: runs the workers one after another
        def __init__(self, func, **options):
            started.update(options)
            self.func = func

        def __call__(self, *args):
            return [self.func(*args) for _ in range(started["n_gpus"])]

    monkeypatch.setattr(parallel.dist, "launcher", FakeLauncher)
    monkeypatch.setattr(parallel, "current_world", lambda: World(len(seen), 3))
    seen = []
    assert parallel.run_on_devices(3, lambda world: seen.append(world) or 10.0 + world.rank) == 10.0
    assert started == {"n_gpus": 3, "world_size": 3, "device_type": "gpu", "backend": "nccl"}
    assert [w.rank for w in seen] == [0, 1, 2]
    assert parallel.run_on_devices(1, lambda world: float(world.size)) == 1.0


# --- the guard ------------------------------------------------------------------------------------
def test_devices_beyond_the_gpus_found_fail_with_what_to_do(compose_cfg):
    cfg = compose_cfg(["trainer.devices=2", "trainer.device=gpu"])
    with pytest.raises(ConfigError) as error:
        check_devices(cfg.trainer, gpu_count=lambda: 1)
    assert "trainer.devices=2" in str(error.value) and "finds 1 usable GPU " in str(error.value)
    assert "trainer.devices=1" in str(error.value)
    check_devices(cfg.trainer, gpu_count=lambda: 2)  # enough: no error
    cfg.trainer.device = "cpu"
    with pytest.raises(ConfigError, match="trainer.device=cpu"):
        check_devices(cfg.trainer, gpu_count=lambda: 8)
    cfg.trainer.devices = 1
    check_devices(cfg.trainer, gpu_count=lambda: pytest.fail("one device must not probe the GPUs"))


def test_a_run_asking_for_missing_gpus_stops_before_any_tracked_run(compose_cfg, tmp_path):
    if usable_gpus() >= 2:
        pytest.skip("this machine has 2 GPUs")
    store = tmp_path / "store.db"
    cfg = compose_cfg(["trainer=smoke", "data=synthetic", "model=linear", "trainer.devices=2",
                       "trainer.device=auto", f"logger.tracking_uri=sqlite:///{store}"])
    with pytest.raises(ConfigError, match=rf"trainer.devices=2 .* finds {usable_gpus()} usable GPU"):
        train(cfg)
    assert not store.exists()  # the store was never opened: no run, not even a FAILED one


def test_the_command_line_refuses_missing_gpus_with_exit_status_2(tmp_path):
    if usable_gpus() >= 2:
        pytest.skip("this machine has 2 GPUs")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "data=synthetic", "trainer.devices=2",
           f"paths.output_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "config error: trainer.devices=2" in proc.stderr and "trainer.devices=1" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no run directory, no store
