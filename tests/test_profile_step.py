"""scripts/profile_step.py: kernel time per op kind from MegEngine's profiler trace, and the script as
a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from script_module import load_script

ROOT = Path(__file__).resolve().parents[1]



def test_kernel_time_is_summed_per_name_from_begin_and_end_pairs(tmp_path):
    def kernel(name, phase, ts, tid=2):
        return {"cat": "Kernel", "name": name, "ph": phase, "ts": ts, "tid": tid, "pid": 1}

    events = [kernel("Convolution", "B", 1000.0), kernel("Convolution", "E", 3500.0),
              kernel("ADD", "B", 3600.0), kernel("ADD", "E", 3700.0),
              kernel("Convolution", "B", 4000.0), kernel("Convolution", "E", 4500.0),
              {"cat": "OpDispatch", "name": "ADD", "ph": "s", "ts": 10.0, "tid": 0, "pid": 1},
              kernel("ADD", "E", 9000.0)]  # an end without its begin (the trace started mid-kernel)
    trace = tmp_path / "1.chrome_timeline.json"
    trace.write_text(json.dumps({"traceEvents": events[::-1]}))  # any order: sorted by time
    totals, launches = load_script("profile_step").kernel_ms(str(trace))
    assert dict(totals) == {"Convolution": 3.0, "ADD": 0.1} and launches == 3  # milliseconds; kernels


def test_the_floor_is_the_longer_of_the_heavy_kernels_and_the_dispatch_not_their_sum():
    profile = load_script("profile_step").StepProfile
    kernels = Counter({"Convolution": 6.0, "PoolingBackwardV1": 2.0, "Pooling": 0.5, "MatrixMul": 0.5, "ADD": 1.0})
    heavy = profile(20.0, kernels, launches=100, op_us=10.0)
    assert heavy.floor_kernels_ms() == 9.0  # the elementwise ADD is not in it
    assert heavy.floor_ms() == 9.0  # 100 kernels x 10 us = 1 ms of dispatch
    dispatch = profile(5.0, Counter({"MatrixMul": 0.5}), launches=200, op_us=10.0)
    assert dispatch.floor_ms() == 2.0


def test_the_script_reports_the_step_its_kernels_and_the_budget():
    cmd = [sys.executable, str(ROOT / "scripts" / "profile_step.py"), "models=[linear,lenet]", "batch=4",
           "warmup=1", "steps=2", "profiled_steps=1", "device=cpu0", "torch_samples_per_s={linear: 1000, lenet: 1000}",
           "target_ratios.lenet=0.25"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "== lenet: step" in out and re.search(r"Convolution\s+\d+\.\d+ ms", out)
    # 4 samples at linear's 0.5 x 1000 samples/s: 8 ms a step; at LeNet's 0.25 (overridden): 16 ms.
    assert "target 0.5 of PyTorch's 1000 samples/s allows 8.0 ms a step" in out
    assert "target 0.25 of PyTorch's 1000 samples/s allows 16.0 ms a step" in out
    assert re.search(r"one trivial eager op \d+\.\d+ us: dispatching \d+ kernels", out)
