"""scripts/profile_ops.py runs as a user types it and reports every conv and BatchNorm layer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import megengine.module as M

from mgelab.nn import BatchNorm2d
from script_module import load_script

ROOT = Path(__file__).resolve().parents[1]


def profile(*overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "profile_ops.py"), "batch=4", "repeats=1", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))


def test_every_layer_of_the_model_gets_a_row_and_the_step_its_total():
    proc = profile("models=[lenet]")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    # LeNet: two convolutions (3->6 and 6->16, 5x5), no BatchNorm.
    assert "features.0                   3->6 32x32 s1" in out
    assert "6->16 14x14 s1" in out
    assert "== lenet: one training step" in out and "explained" in out and "bn fwd" not in out


def test_an_unknown_model_is_refused_by_name():
    proc = profile("models=[vgg]")
    assert proc.returncode != 0
    assert "models: 'vgg' is not profiled here" in proc.stderr + proc.stdout



class CountedResult:
    def __init__(self, counts: dict) -> None:
        self.counts = counts

    def numpy(self) -> None:
        self.counts["read_back"] += 1


def test_each_timing_queues_its_calls_and_reads_back_only_the_last():
    counts = {"calls": 0, "read_back": 0}

    def fn():
        counts["calls"] += 1
        return CountedResult(counts)

    load_script("profile_ops").Timing(repeats=2, calls=4).best_ms(fn)
    # One warm-up call, then 2 timings of 4 calls; a read-back after the warm-up and each timing.
    assert counts == {"calls": 9, "read_back": 3}


def test_batchnorm_is_timed_with_the_kernels_the_model_trains_with():
    script = load_script("profile_ops")
    fast = script.bn_copy(BatchNorm2d(16, impl="fast"))
    assert isinstance(fast, BatchNorm2d) and fast.impl == "fast" and fast.num_features == 16
    native = script.bn_copy(M.BatchNorm2d(8))
    assert type(native) is M.BatchNorm2d and native.num_features == 8
