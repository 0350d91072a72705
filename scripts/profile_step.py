"""Where the real training step's time goes, per MegEngine kernel kind, from MegEngine's own profiler.

    python scripts/profile_step.py                                   # conf/profile_step.yaml as is
    python scripts/profile_step.py models=[lenet] strategy=PROFILE
    python scripts/profile_step.py 'torch_samples_per_s={lenet: 9536, resnet: 287}' target_ratios.lenet=0.4

The step is mgelab's own (``make_train_step``: the fast convolution and BatchNorm, fused optimizer
updates, the loss read back), on random data of each model's shape. It is first timed alone
(median of ``steps`` steps), then run ``profiled_steps`` more times under
``megengine.utils.profiler.Profiler``, whose trace records when each kernel started and ended on
the device's thread. Unlike timing pieces in isolation (``scripts/profile_ops.py``), nothing is
counted twice: these are the kernels of the real step, in the order they ran. Printed per model:
the step, the kernel time of each op kind per step, and the rest (Python, dispatch, idle device).
Then a floor for the step with MegEngine's kernels and dispatch as they are: the kernels of its
convolutions, matrix products and max-pools (``FLOOR_KERNELS``: mgelab calls them as they are, and
``scripts/profile_alternatives.py`` times the other formulations MegEngine offers for the pools and
products), or the kernel count times the cost of one trivial eager op, whichever is longer (the
device and interpreter threads overlap). With a PyTorch rate for the model
(``torch_samples_per_s``) it prints the step the model's ``target_ratios`` entry of it allows,
and whether the floor is already longer: then no change to mgelab's side of the step reaches the
target. When the profiled kernels add up to more than the unprofiled step (the profiler slowed them, as for
ResNet-20 on two threads here), their times prove nothing and it says so. Run it on a quiet machine.
"""

from __future__ import annotations

import glob
import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import hydra
import megengine as mge
import numpy as np
from megengine.optimizer import SGD
from megengine.utils.profiler import Profiler
from omegaconf import DictConfig, OmegaConf

from mgelab.train.machine import describe_machine, measured_machine
from mgelab.train.measured_models import INPUT_SHAPES, NUM_CLASSES, build_measured, profiled_names
from mgelab.train.steps import make_train_step

# MegEngine's own compute kernels, which mgelab's step calls as they are (under the execution strategy in
# force); the device runs them one after another, so their sum bounds the step from below. Whether
# another formulation or strategy runs them faster is profile_alternatives.py's question.
FLOOR_KERNELS = ("Convolution", "MatrixMul", "Pooling", "PoolingBackwardV1")


@dataclass
class StepProfile:
    step_ms: float  # median of the unprofiled steps
    kernel_ms: Counter  # per kernel kind, per step
    launches: float  # kernels per step
    op_us: float  # one trivial eager op, Python to device and back: MegEngine's per-op floor

    def floor_ms(self) -> float:
        """A lower bound of the step with MegEngine's kernels and dispatch as they are: the
        ``FLOOR_KERNELS`` (device thread) or the dispatch of every kernel (interpreter thread),
        whichever is longer; the two threads overlap, so they are not added."""
        return max(self.floor_kernels_ms(), self.launches * self.op_us / 1e3)

    def floor_kernels_ms(self) -> float:
        return sum(self.kernel_ms.get(kind, 0.0) for kind in FLOOR_KERNELS)


def kernel_ms(trace_path: str) -> Tuple[Counter, int]:
    """Milliseconds per kernel name in a chrome-timeline trace (begin/end pairs per thread), and the
    number of kernels that ran."""
    events = json.loads(Path(trace_path).read_text())["traceEvents"]
    kernels = sorted((e for e in events if e.get("cat") == "Kernel"), key=lambda e: e["ts"])
    began: Dict[tuple, float] = {}
    totals: Counter = Counter()
    launches = 0
    for event in kernels:
        key = (event["tid"], event["name"])
        if event["ph"] == "B":
            began[key] = event["ts"]
        elif key in began:
            totals[event["name"]] += (event["ts"] - began.pop(key)) / 1e3  # trace times are µs
            launches += 1
    return totals, launches


def trivial_op_us(repeats: int = 500) -> float:
    """Microseconds per eager ``a + b`` on a 64x10 tensor (the loop read back once at the end)."""
    a = mge.tensor(np.ones((64, 10), np.float32))
    (a + a).numpy()
    started = time.perf_counter()
    out = a
    for _ in range(repeats):
        out = out + a
    out.numpy()
    return (time.perf_counter() - started) / repeats * 1e6


def profile_model(name: str, cfg: DictConfig) -> StepProfile:
    kwargs = OmegaConf.to_container(cfg.model_kwargs, resolve=True).get(name, {})
    model = build_measured(name, kwargs)
    model.train()
    step = make_train_step(model, SGD(model.parameters(), lr=0.01, momentum=0.9), "classification")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(cfg.batch, *INPUT_SHAPES[name])).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=cfg.batch).astype("int32")
    for _ in range(cfg.warmup):
        step(x, y)
    times = []
    for _ in range(cfg.steps):
        started = time.perf_counter()
        step(x, y)
        times.append((time.perf_counter() - started) * 1e3)
    with tempfile.TemporaryDirectory() as folder:
        with Profiler(path=folder):
            for _ in range(cfg.profiled_steps):
                step(x, y)
        totals, launches = kernel_ms(glob.glob(f"{folder}/*.json")[0])
    per_step = Counter({k: v / cfg.profiled_steps for k, v in totals.items()})
    return StepProfile(statistics.median(times), per_step, launches / cfg.profiled_steps, trivial_op_us())


def report(name: str, p: StepProfile, batch: int, torch_rate: Optional[float], ratio: float) -> None:
    busy = sum(p.kernel_ms.values())
    print(f"\n== {name}: step {p.step_ms:.1f} ms (median, unprofiled) = {batch / p.step_ms * 1e3:.0f} samples/s; "
          f"device kernels {busy:.1f} ms per profiled step, {p.launches:.0f} kernels")
    top = p.kernel_ms.most_common(8)
    for kind, ms in top:
        print(f"  {kind:28} {ms:8.2f} ms  {ms / p.step_ms:6.1%} of the step")
    print(f"  {'(other kernels)':28} {busy - sum(ms for _, ms in top):8.2f} ms; outside kernels "
          f"{max(p.step_ms - busy, 0):.1f} ms (Python, dispatch, waiting)")
    print(f"  one trivial eager op {p.op_us:.1f} us: dispatching {p.launches:.0f} kernels takes at least "
          f"{p.launches * p.op_us / 1e3:.1f} ms")
    if torch_rate:
        budget = batch / (ratio * torch_rate) * 1e3
        if busy > 1.05 * p.step_ms:  # the profiler slowed the kernels: their times bound nothing
            verdict = f"no proof: the profiled kernels ({busy:.1f} ms) outlast the unprofiled step"
        elif p.floor_ms() > budget:
            verdict = "out of reach with these kernels and this dispatch"
        else:
            verdict = "not ruled out"
        print(f"  target {ratio} of PyTorch's {torch_rate:.0f} samples/s allows {budget:.1f} ms a step; "
              f"floor (conv, matmul and pool kernels {p.floor_kernels_ms():.1f} ms, or dispatch, the longer) "
              f"{p.floor_ms():.1f} ms: {verdict}")


@hydra.main(version_base=None, config_path="../conf", config_name="profile_step")
def main(cfg: DictConfig) -> None:
    # Sets the device and the strategy for everything below, as bench.py's header does.
    print(f"{describe_machine(measured_machine(cfg.device, cfg.strategy, sgemm_size=None))}; batch {cfg.batch}")
    given = cfg.torch_samples_per_s
    rates: Dict[str, float] = OmegaConf.to_container(given, resolve=True) if given else {}
    names = profiled_names(cfg.models)
    for name in names:
        report(name, profile_model(name, cfg), int(cfg.batch), rates.get(name), float(cfg.target_ratios[name]))


if __name__ == "__main__":
    main()
