"""Choosing the comp node: cpu0, a multithreaded CPU node, and the GPU guard."""

from __future__ import annotations

from pathlib import Path

import megengine as mge
import pytest

from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.run import train
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from mgelab.train.device import available_cpus, cpu_node, cpu_threads_for, select_device
from recording_logger import RecordingLogger


@pytest.fixture
def restore_default_device():
    before = mge.get_default_device()
    yield
    mge.set_default_device(before)


def test_cpu_node_names():
    assert cpu_node(1) == "cpu0"
    assert cpu_node(2) == "multithread2:0"
    with pytest.raises(ValueError, match="trainer.cpu_threads=0"):
        cpu_node(0)


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="trainer.device='tpu'"):
        select_device("tpu")


def test_gpu_request_fails_clearly_without_cuda(restore_default_device):
    if mge.is_cuda_available():
        pytest.skip("this machine has a usable GPU")
    with pytest.raises(RuntimeError, match="no usable CUDA device"):
        select_device("gpu")


def fit_on(threads: int, tmp_path) -> list:
    assert select_device("cpu", cpu_threads=threads) == cpu_node(threads)
    seed_everything(0)
    data = SyntheticImages(noise=90.0, batch_size=32, val_size=64, seed=3)
    model = create_model("cnn", input_shape=data.input_shape, num_outputs=data.num_outputs, channels=[4, 8])
    assert str(next(iter(model.parameters())).device).startswith(cpu_node(threads))
    trainer = Trainer(max_epochs=3, progress_bar=False, checkpoint_dir=str(tmp_path / str(threads)),
                      cpu_threads=threads)
    result = trainer.fit(model, data, OptimizerFactory(name="sgd", lr=0.02), RecordingLogger())
    return [row["train/loss"] for row in result.history]


def test_multithreaded_cpu_node_trains_like_cpu0(tmp_path, restore_default_device):
    single, pooled = fit_on(1, tmp_path), fit_on(2, tmp_path)
    assert pooled[-1] < 0.7 * pooled[0]
    # The same kernels split over threads: sums may be ordered differently, nothing more.
    assert pooled == pytest.approx(single, rel=1e-3)


def test_auto_threads_use_the_cpus_this_process_may_run_on(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert available_cpus() == 4
    assert cpu_threads_for(0) == 4
    assert cpu_threads_for(0, parallel_jobs=2) == 2
    assert cpu_threads_for(0, parallel_jobs=8) == 1  # never below one thread
    assert cpu_threads_for(3, parallel_jobs=2) == 3  # a count the user gave is kept
    with pytest.raises(ValueError, match="trainer.cpu_threads=-1"):
        cpu_threads_for(-1)


def test_a_run_records_the_thread_count_it_used(compose_cfg, monkeypatch, restore_default_device):
    """trainer.cpu_threads=0 (the default) becomes the count, in the saved config too."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    cfg = compose_cfg(["trainer=smoke", "logger=none", "data=synthetic", "model=linear"])
    assert cfg.trainer.cpu_threads == 0
    train(cfg)
    assert cfg.trainer.cpu_threads == 2
    assert mge.get_default_device().startswith("multithread2")
    saved = (Path(cfg.paths.run_dir) / "config.yaml").read_text()
    assert "cpu_threads: 2" in saved
