"""scripts/profile_ops.py runs as a user types it and reports every conv and BatchNorm layer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
