"""What a run prints: one aligned epoch line through logging, job labels in a multirun's lines, and
no numpy subnormal warnings or MegEngine CUDA box when mgelab is imported on a CPU machine."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import mgelab
from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from mgelab.train.console import JobFormatter, epoch_line, interactive, job_prefix, number
from recording_logger import RecordingLogger

ROW = {
    "epoch": 3.0, "train/loss": 0.43216, "train/acc": 0.85, "val/loss": 3.1e-05, "val/acc": 0.9,
    "lr": 0.05, "train/samples_per_s": 14812.4, "train/epoch_seconds": 2.14, "train/elapsed_seconds": 6.0,
    "sys/peak_rss_mb": 300.0,
}
CUDA_BOX = "Failed to load CUDA driver library"
SUBNORMAL = "smallest subnormal"


def test_epoch_line_has_every_field_and_no_dict():
    line = epoch_line(ROW, 3, 10)
    assert line.startswith("epoch  3/10 | train loss    0.4322  acc    0.8500 | val loss 3.100e-05  acc    0.9000")
    assert "lr 0.05" in line and "2.1 s" in line and "14812 samples/s" in line
    for absent in ("{", "}", "elapsed", "peak_rss", "samples_per_s"):
        assert absent not in line


def test_epoch_lines_align_whatever_the_values():
    small = {**ROW, "train/loss": 2.5e-06, "val/acc": 1.0, "train/samples_per_s": 12.0}
    a, b = epoch_line(ROW, 3, 10), epoch_line(small, 10, 10)
    assert [i for i, c in enumerate(a) if c == "|"] == [i for i, c in enumerate(b) if c == "|"]
    assert number(25000.0) == "2.500e+04" and number(0.0) == "0.0000"


def test_a_fit_logs_one_line_per_epoch(tmp_path, caplog):
    seed_everything(0)
    data = SyntheticImages(batch_size=32, val_size=64, seed=3)
    model = create_model("mlp", input_shape=data.input_shape, num_outputs=data.num_outputs)
    trainer = Trainer(max_epochs=2, limit_train_batches=3, progress_bar=True, checkpoint_dir=str(tmp_path))
    with caplog.at_level(logging.INFO, logger="mgelab.train.trainer"):
        trainer.fit(model, data, OptimizerFactory(name="sgd", lr=0.05), RecordingLogger())
    lines = [r.getMessage() for r in caplog.records if r.name == "mgelab.train.trainer"]
    assert [line.split(" |")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    for line in lines:
        for field in ("train loss", "acc", "val loss", "lr ", " s ", "samples/s"):
            assert field in line, (field, line)
        assert "{" not in line


def test_no_bar_off_a_terminal(tmp_path):
    # pytest captures stderr: not a terminal, so even progress_bar=True draws no bar.
    assert not interactive()
    assert not interactive(open(tmp_path / "f", "w"))


def record(level: int = logging.INFO, message: str = "epoch 1/2") -> logging.LogRecord:
    return logging.LogRecord("mgelab.train.trainer", level, __file__, 1, message, None, None)


def test_single_run_lines_have_no_job_label():
    line = JobFormatter(mode="RunMode.RUN", job=None, overrides=["model=mlp"]).format(record())
    assert line.endswith(" epoch 1/2") and "[job" not in line and "INFO" not in line


def test_multirun_lines_name_the_job_by_its_swept_keys(monkeypatch):
    monkeypatch.setenv("TEST_SWEPT", '["model", "optim.lr"]')
    fmt = JobFormatter(mode="RunMode.MULTIRUN", job=1, overrides=["model=mlp", "trainer=smoke", "+optim.lr=0.1"],
                       swept_keys_env="TEST_SWEPT")
    assert fmt.format(record()).split(" ", 1)[1] == "[job 1 model=mlp +optim.lr=0.1] epoch 1/2"
    assert " WARNING disk full" in fmt.format(record(logging.WARNING, "disk full"))


def test_job_label_without_the_sweeps_keys_shows_all_overrides():
    assert job_prefix(0, ["model=linear", "trainer=smoke"], None) == "[job 0 model=linear trainer=smoke]"
    assert job_prefix(2, [], ["model"]) == "[job 2]"


def quiet_check(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter where a UserWarning is an error (unless filtered)."""
    return subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True,
                          text=True, timeout=300)


MEGENGINE_WORK = (
    "import megengine as mge, numpy as np\n"
    "from mgelab.train.device import select_device\n"
    "select_device('auto')\n"
    "print((mge.tensor([1.0, 2.0]) * 2).numpy().tolist(), np.finfo(np.float32).tiny > 0)\n"
)


def test_mgelab_starts_without_subnormal_warnings_or_cuda_box():
    proc = quiet_check("import mgelab\n" + MEGENGINE_WORK)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[2.0, 4.0] True"
    assert SUBNORMAL not in proc.stderr + proc.stdout
    assert CUDA_BOX not in proc.stderr + proc.stdout and "failed to load cuda func" not in proc.stderr


@pytest.mark.skipif(mgelab.cuda_driver_loadable(), reason="a CUDA driver is present: MegEngine prints no box")
def test_without_mgelab_megengine_prints_its_box():
    # The control: MegEngine alone (first) prints the box on this machine, so the test above can fail.
    proc = quiet_check("import megengine; megengine.is_cuda_available()")
    assert CUDA_BOX in proc.stderr


def test_numpy_warns_without_the_filter():
    # The control for the subnormal filter: MegEngine's first op flushes subnormals, numpy then warns.
    code = ("import megengine as mge, numpy as np\n(mge.tensor([1.0]) * 2).numpy()\n"
            "np.finfo(np.float32).smallest_subnormal\n")
    assert SUBNORMAL in quiet_check(code).stderr
