"""The machine a measurement ran on, and how close a throughput figure comes to its limit.

``cpu_info`` reads the CPU model and the SIMD flags that decide MegEngine's CPU kernels (AVX2,
the AVX-512 family, AMX); ``execution_strategy`` is the algorithm choice MegEngine's convs use
(``HEURISTIC`` unless set), and ``mkl_cpu_type`` MKL's code-path switch (``mgelab.startup.mkl_dispatch``);
``device_threads`` the worker threads of a comp node name;
``sgemm_gflops`` the float32 matmul rate measured on the default device, the practical peak a
model's achieved rate (``gflops``) is read against.

FLOPs here are floating-point operations: one multiply-add is 2 (MegEngine's module statistics,
and so ``ModelSummary.flops``, count it as 1; ``train_flops_per_sample`` converts).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

import megengine as mge
import megengine.functional as F
import numpy as np
from megengine.functional import debug_param

from mgelab.startup.cpuinfo import PROC_CPUINFO, cpuinfo_pairs, read_cpuinfo
from mgelab.startup.mkl_dispatch import mkl_cpu_type

REPORTED_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")
STRATEGY_ENV = "MEGENGINE_EXECUTION_STRATEGY"
# A training step: the forward pass, the gradient w.r.t. each layer's input and the gradient
# w.r.t. its weights, each about one forward's worth of multiply-adds.
TRAIN_PASSES = 3
FLOPS_PER_MAC = 2
T = TypeVar("T")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical_cpus: int
    flags: Tuple[str, ...]  # those of REPORTED_FLAGS present, in that order

    def as_dict(self) -> Dict[str, object]:
        return {"cpu": self.model, "logical_cpus": self.logical_cpus, "cpu_flags": list(self.flags)}


def parse_cpuinfo(text: str) -> CpuInfo:
    """Model name, logical CPU count and reported flags from /proc/cpuinfo or ``lscpu`` text
    (``model name``/``Model name``, ``flags``/``Flags``; one ``processor`` entry per logical
    CPU, or lscpu's ``CPU(s)``)."""
    model, flags, processors, cpus = "", set(), 0, 0
    for key, value in cpuinfo_pairs(text):
        if key == "model name" and not model:
            model = re.sub(r"\s+", " ", value)
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "processor":
            processors += 1
        elif key == "cpu(s)" and value.isdigit():
            cpus = int(value)
    return CpuInfo(model or "unknown", processors or cpus or (os.cpu_count() or 0),
                   tuple(f for f in REPORTED_FLAGS if f in flags))


def cpu_info(cpuinfo: Path = PROC_CPUINFO) -> CpuInfo:
    """This machine's CPU: /proc/cpuinfo, else ``lscpu`` (non-Linux-proc systems)."""
    info = parse_cpuinfo(read_cpuinfo(cpuinfo))
    if info.model != "unknown":
        return info
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    return parse_cpuinfo(out)


def device_threads(device: str) -> Optional[int]:
    """Worker threads of a MegEngine comp node name: ``cpu0``/``cpux`` 1, ``multithreadN:0`` N,
    None for a GPU or anything unrecognised."""
    found = re.fullmatch(r"multithread(\d+):\d+", device)
    if found:
        return int(found.group(1))
    return 1 if re.fullmatch(r"cpu(\d+|x)(:\d+)?", device) else None


# The words MegEngine's set_execution_strategy combines with "_" (PROFILE and HEURISTIC exclude each other).
STRATEGY_WORDS = ("HEURISTIC", "PROFILE", "REPRODUCIBLE")


def check_execution_strategy(value: str, key: str = "trainer.execution_strategy") -> str:
    """``value`` upper-cased if MegEngine takes it (``PROFILE_REPRODUCIBLE``, ...), else one clear error."""
    words = str(value).upper().split("_")
    if any(w not in STRATEGY_WORDS for w in words) or len(set(words)) < len(words) or \
            {"HEURISTIC", "PROFILE"} <= set(words):
        raise ValueError(f"{key}={value!r} is not an execution strategy; choose HEURISTIC, PROFILE, REPRODUCIBLE, "
                         "HEURISTIC_REPRODUCIBLE or PROFILE_REPRODUCIBLE")
    return "_".join(words)


def run_execution_strategy(value: Optional[str]) -> str:
    """The strategy a run uses: ``value``, else ``MEGENGINE_EXECUTION_STRATEGY``, else HEURISTIC
    (MegEngine's default), so a run never inherits what an earlier run in the process set."""
    if value is not None:
        return check_execution_strategy(value)
    from_env = os.environ.get(STRATEGY_ENV)
    return check_execution_strategy(from_env, STRATEGY_ENV) if from_env else "HEURISTIC"


def apply_execution_strategy(strategy: Optional[str]) -> None:
    """Set MegEngine's execution strategy (e.g. ``PROFILE``, ``HEURISTIC_REPRODUCIBLE``).

    None leaves it as is, except that a ``MEGENGINE_EXECUTION_STRATEGY`` in the environment is
    applied: MegEngine 1.13 documents that variable but never reads it itself."""
    strategy = strategy or os.environ.get(STRATEGY_ENV)
    if strategy:
        debug_param.set_execution_strategy(str(strategy).upper())


def execution_strategy() -> str:
    """The strategy in force in this process, as the option string that sets it."""
    current = debug_param.get_execution_strategy()
    Strategy = debug_param.Strategy
    names = [name for name in ("PROFILE", "REPRODUCIBLE") if current & getattr(Strategy, name) != Strategy(0)]
    if "PROFILE" not in names:
        names.insert(0, "HEURISTIC")
    return "_".join(names)


def machine_info(device: str) -> Dict[str, object]:
    """The header of a benchmark: CPU, MegEngine, strategy in force and threads of ``device``."""
    return {
        **cpu_info().as_dict(),
        "megengine": mge.__version__,
        "strategy": execution_strategy(),
        "mkl_cpu_type": mkl_cpu_type() or None,
        "device": device,
        "threads": device_threads(device),
    }


def measured_machine(device: str, strategy: Optional[str] = None, sgemm_size: Optional[int] = 2048) -> Dict[str, Any]:
    """``machine_info`` on ``device`` with ``strategy`` applied, plus the measured sgemm peak
    (``sgemm_gflops`` None when ``sgemm_size`` is 0 or None)."""
    mge.set_default_device(device)
    apply_execution_strategy(strategy)
    peak = round(sgemm_gflops(int(sgemm_size)), 1) if sgemm_size else None
    return {**machine_info(device), "sgemm_size": sgemm_size or None, "sgemm_gflops": peak}


def in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a new (spawned) process: MegEngine's allocator never returns memory and
    its comp nodes and kernel caches are per process, so only a fresh one starts cold and clean.
    ``fn`` must be importable by name and ``args`` picklable."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def sgemm_gflops(size: int = 2048, repeats: int = 3) -> float:
    """GFLOP/s of a ``size``^3 float32 ``F.matmul`` on the default device: best of ``repeats``
    after one warm-up call (2 * size^3 FLOPs each)."""
    rng = np.random.default_rng(0)
    a, b = (mge.tensor(rng.standard_normal((size, size), dtype=np.float32)) for _ in range(2))
    F.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(max(1, repeats)):
        mge._full_sync()
        started = time.perf_counter()
        out = F.matmul(a, b)
        mge._full_sync()  # asynchronous: wait for the kernel, without copying the result out
        best = min(best, time.perf_counter() - started)
        del out
    return gflops(1.0 / best, 2.0 * size ** 3)


def train_flops_per_sample(forward_macs: int) -> int:
    """Training FLOPs of one sample from the forward multiply-adds (``ModelSummary.flops``):
    forward + input gradient + weight gradient, 2 FLOPs per multiply-add."""
    return TRAIN_PASSES * FLOPS_PER_MAC * int(forward_macs)


def gflops(per_second: float, flops_each: float) -> float:
    """Achieved GFLOP/s of ``per_second`` items of ``flops_each`` FLOPs."""
    return per_second * flops_each / 1e9


def of_peak(achieved: Optional[float], peak: Optional[float], digits: int = 4) -> Optional[float]:
    """``achieved`` as a fraction of ``peak``, rounded (None when either is unknown or the peak 0)."""
    if achieved is None or not peak:
        return None
    return round(achieved / peak, digits)


def describe_machine(machine: Dict[str, Any]) -> str:
    """One readable line of a ``measured_machine`` result."""
    peak = machine.get("sgemm_gflops")
    threads = machine.get("threads")
    threads = "? threads" if threads is None else f"{threads} thread{'s' if threads != 1 else ''}"
    return (f"machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, "
            f"flags {' '.join(machine['cpu_flags']) or '-'}; MegEngine {machine['megengine']}, "
            f"strategy {machine['strategy']}, MKL_DEBUG_CPU_TYPE {machine.get('mkl_cpu_type') or 'unset'}, "
            f"device {machine['device']} ({threads}); "
            + (f"sgemm {machine['sgemm_size']}^3 float32 {peak} GFLOP/s" if peak else "sgemm not measured"))


def timed(fn: Callable[[], mge.Tensor], warmup: int, repeats: int, sync_each: bool) -> float:
    """Seconds for ``repeats`` calls of ``fn`` after ``warmup`` calls, waiting for the last result
    (``sync_each``: reading every result back, as a real loop reading its loss does)."""
    for _ in range(warmup):
        fn().numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        out = fn()
        if sync_each:
            out.numpy()
    out.numpy()  # MegEngine runs asynchronously: the clock stops when the last result exists
    return time.perf_counter() - started
