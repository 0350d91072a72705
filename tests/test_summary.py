"""Parameter and FLOPs summary: every registered model, and hand counts for conv and linear layers."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import megengine as mge
import megengine.functional as F
import megengine.module as M
import numpy as np
import pytest
from omegaconf import OmegaConf

from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model, list_models, model_spec
from mgelab.models.summary import ModelSummary, model_summary
from mgelab.nn import Conv2d
from mgelab.run.experiment import run_experiment
from mgelab.train import OptimizerFactory, Trainer
from recording_logger import RecordingLogger

ROOT = Path(__file__).resolve().parents[1]


def build(name: str) -> M.Module:
    spec = model_spec(name)
    return create_model(name, spec.example_input_shape, 3, task=spec.tasks[0])


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_has_a_summary(name):
    model = build(name)
    summary = model_summary(model, model_spec(name).example_input_shape)
    assert summary.num_parameters == sum(p.size for p in model.parameters()) > 0
    assert summary.trainable_parameters == summary.num_parameters
    assert summary.parameter_bytes == 4 * summary.num_parameters  # float32
    assert summary.flops == sum(layer.flops for layer in summary.layers) > 0
    # Every parameter sits in a layer MegEngine's statistics hook, so nothing is left uncounted.
    assert summary.uncounted == ()
    assert sum(layer.parameters for layer in summary.layers) == summary.num_parameters
    params = summary.as_params()
    assert params["model_info.flops"] == summary.flops
    assert params["model_info.num_parameters"] == summary.num_parameters
    assert "total" in summary.table() and "FLOPs" in summary.headline()


class ConvThenLinear(M.Module):
    def __init__(self, conv: M.Module, features: int) -> None:
        super().__init__()
        self.conv = conv
        self.fc = M.Linear(features, 4)

    def forward(self, x):
        return self.fc(F.flatten(self.conv(x), 1))


@pytest.mark.parametrize("conv_class", [Conv2d, M.Conv2d], ids=["mgelab", "native"])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_and_linear_flops_match_hand_counts(conv_class, bias):
    # 3 -> 5 channels, 3x3, stride 2, padding 1 on 9x9: a 5x5 output.
    conv = conv_class(3, 5, 3, stride=2, padding=1, bias=bias)
    summary = model_summary(ConvThenLinear(conv, 5 * 5 * 5), (3, 9, 9))
    conv_row, fc_row = summary.layers
    # One multiply-add per input tap for every output value, plus one bias add.
    assert conv_row.flops == 5 * 5 * 5 * (3 * 3 * 3 + int(bias))
    assert conv_row.parameters == 5 * 3 * 3 * 3 + 5 * int(bias)
    assert (conv_row.input_shape, conv_row.output_shape) == ((1, 3, 9, 9), (1, 5, 5, 5))
    assert fc_row.flops == 125 * 4 + 4
    assert summary.flops == conv_row.flops + fc_row.flops
    assert summary.num_parameters == conv_row.parameters + 125 * 4 + 4


def test_mgelab_conv_is_counted_like_the_native_conv_whatever_its_impl():
    counts = set()
    for conv in (M.Conv2d(2, 4, 3), Conv2d(2, 4, 3, impl="fast"), Conv2d(2, 4, 3, impl="native")):
        counts.add(model_summary(ConvThenLinear(conv, 4 * 4 * 4), (2, 6, 6)).flops)
    assert len(counts) == 1


def test_cnn_flops_are_the_sum_of_its_layers_by_hand():
    model = create_model("cnn", (1, 8, 8), 3, channels=[4, 6], hidden_size=5)
    summary = model_summary(model, (1, 8, 8))
    conv1 = 4 * 8 * 8 * (1 * 9 + 1)
    pool1 = 4 * 4 * 4 * 4  # each output reads a 2x2 window
    conv2 = 6 * 4 * 4 * (4 * 9 + 1)
    pool2 = 6 * 2 * 2 * 4
    head = (24 * 5 + 5) + (5 * 3 + 3)
    assert summary.flops == conv1 + pool1 + conv2 + pool2 + head


class WithLooseParameter(M.Module):
    """A parameter that belongs to no module MegEngine's statistics hook."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = M.Linear(4, 2)
        self.scale = mge.Parameter(np.ones((1, 2), dtype="float32"))

    def forward(self, x):
        return self.fc(x) * self.scale


def test_parameters_outside_hooked_layers_are_counted_and_named():
    summary = model_summary(WithLooseParameter(), (4,))
    assert summary.num_parameters == 4 * 2 + 2 + 2
    assert summary.flops == 4 * 2 + 2
    assert summary.uncounted == ("(root) (WithLooseParameter)",)
    assert "not counted in FLOPs" in summary.table()


def test_frozen_prefixes_reduce_the_trainable_count():
    model = create_model("cnn", (1, 8, 8), 3, channels=[4, 6], hidden_size=5)
    summary = model_summary(model, (1, 8, 8), frozen_prefixes=["features."])
    assert summary.trainable_parameters == (24 * 5 + 5) + (5 * 3 + 3)
    model.frozen_prefixes = ("head.",)
    assert model_summary(model, (1, 8, 8)).trainable_parameters == summary.num_parameters - (24 * 5 + 5) - 18


class FreezesItsFirstLayer(M.Module):
    """Freezes as ResNet-18's freeze_stages does: by naming modules in ``frozen_modules()``."""

    def __init__(self) -> None:
        super().__init__()
        self.first = M.Linear(4, 3)
        self.second = M.Linear(3, 2)

    def frozen_modules(self):
        return [self.first]

    def forward(self, x):
        return self.second(self.first(x).detach())


def test_frozen_modules_are_not_trainable():
    summary = model_summary(FreezesItsFirstLayer(), (4,))
    assert (summary.num_parameters, summary.trainable_parameters) == (4 * 3 + 3 + 3 * 2 + 2, 3 * 2 + 2)


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_summary_is_quiet_and_keeps_the_training_mode(capsys):
    # module_stats logs its tables through its own handler (bound to the stderr of import time, not
    # propagated): listen on that logger itself.
    stats_logger = logging.getLogger("megengine.utils.module_stats")
    recorder = Recorder()
    stats_logger.addHandler(recorder)
    model = build("resnet")
    model.train()
    try:
        summary = model_summary(model, model_spec("resnet").example_input_shape)
    finally:
        stats_logger.removeHandler(recorder)
    assert isinstance(summary, ModelSummary)
    assert recorder.records == [] and capsys.readouterr().out == ""
    assert stats_logger.level == logging.INFO  # restored
    assert model.training and all(m.training for m in model.modules())


def run_summary(tmp_path, *args: str) -> str:
    env = {**os.environ, "MEGENGINE_LOGGING_LEVEL": "ERROR"}
    cmd = [sys.executable, str(ROOT / "scripts" / "summary.py"), *args, f"paths.output_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def test_summary_script_prints_totals_and_the_layer_table(tmp_path):
    out = run_summary(tmp_path, "model=cnn", "data=synthetic", "verbose=true")
    # The script builds model=cnn as conf/model/cnn.yaml sets it, which differs from the class's defaults.
    yaml = OmegaConf.load(ROOT / "conf" / "model" / "cnn.yaml")
    sizes = {k: OmegaConf.to_container(yaml)[k] for k in ("channels", "hidden_size", "batch_norm")}
    expected = model_summary(create_model("cnn", (1, 8, 8), 4, **sizes), (1, 8, 8))
    assert f"{expected.num_parameters:,} parameters" in out and f"{expected.flops:,} FLOPs" in out
    # One row per layer that has parameters or FLOPs: the second block's conv (after the first's pool and ReLU).
    assert "features.4" in out and "Conv2d" in out and "MaxPool2d" in out


def test_summary_script_with_a_given_shape_reads_no_data(tmp_path):
    # Nowhere to read Fashion-MNIST from: any attempt would fail the script.
    out = run_summary(
        tmp_path, "model=mlp", "model.hidden_sizes=[256]", "data=fashion_mnist",
        "input_shape=[1,28,28]", "num_outputs=10",
        f"paths.data_dir={tmp_path / 'empty'}", "data.system_dirs=[]", "data.base_url=http://127.0.0.1:9",
    )
    assert "reading" not in out
    assert f"{784 * 256 + 256 + 256 * 10 + 10:,} parameters" in out


def test_every_run_logs_the_summary_as_params(tmp_path):
    data = SyntheticImages(image_shape=(1, 8, 8), batch_size=32, val_size=32, seed=3)
    model = create_model("cnn", input_shape=data.input_shape, num_outputs=data.num_outputs, channels=[4, 8])
    logger = RecordingLogger()
    trainer = Trainer(max_epochs=1, progress_bar=False, checkpoint_dir=str(tmp_path / "ckpt"))
    run_experiment(model=model, data=data, optimizer_factory=OptimizerFactory(lr=0.05), trainer=trainer,
                   logger=logger, run_dir=tmp_path / "run")
    expected = model_summary(model, data.input_shape)
    assert logger.params["model_info.flops"] == expected.flops > 0
    assert logger.params["model_info.num_parameters"] == expected.num_parameters
    assert logger.params["model_info.trainable_parameters"] == expected.num_parameters  # nothing frozen
