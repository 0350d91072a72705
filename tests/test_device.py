"""Choosing the comp node: cpu0, a multithreaded CPU node, and the GPU guard."""

from __future__ import annotations

import megengine as mge
import pytest

from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from mgelab.train.device import cpu_node, select_device
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
