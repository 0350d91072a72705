"""Choosing where MegEngine computes.

MegEngine's wheels carry CUDA; on a machine without a usable NVIDIA driver it falls
back to the CPU. ``trainer.device=gpu`` asks for the GPU and fails clearly when there
is none, ``auto`` takes the GPU when one is usable, ``cpu`` never probes CUDA.
Call it before any model is built: parameters live on the device that was the
default when they were created. Probing CUDA (``auto``, ``gpu``) on a machine without a
driver prints nothing: ``import mgelab`` has MegEngine's first probe run with its
CUDA-driver box kept off stderr (see ``mgelab/__init__.py``).
"""

from __future__ import annotations

import os
from typing import Literal

import megengine as mge

DEVICES = ("cpu", "gpu", "auto")
DeviceName = Literal[DEVICES]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container's or a SLURM job's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_threads_for(requested: int, parallel_jobs: int = 1) -> int:
    """``trainer.cpu_threads`` as a count: 0 (auto) shares this process's CPUs among the jobs
    running side by side (a parallel sweep), so they do not oversubscribe the cores."""
    if int(requested) < 0:
        raise ValueError(f"trainer.cpu_threads={requested} must be >= 1, or 0 for all CPUs this run may use")
    if int(requested) > 0:
        return int(requested)
    return max(1, available_cpus() // max(1, int(parallel_jobs)))


def cpu_node(threads: int) -> str:
    """MegEngine's CPU comp node: ``cpu0`` runs kernels on one worker thread,
    ``multithreadN:0`` splits each kernel (matmul, conv) over a pool of N threads."""
    if int(threads) < 1:
        raise ValueError(f"trainer.cpu_threads={threads} must be >= 1")
    return "cpu0" if int(threads) == 1 else f"multithread{int(threads)}:0"


def select_device(device: DeviceName, cpu_threads: int = 1) -> str:
    if device not in DEVICES:
        raise ValueError(f"trainer.device={device!r} is unknown; choose one of {DEVICES}")
    if device == "cpu":
        chosen = cpu_node(cpu_threads)
    elif mge.is_cuda_available():
        chosen = "gpu0"
    elif device == "gpu":
        raise RuntimeError(
            "trainer.device=gpu but MegEngine finds no usable CUDA device on this machine; "
            "use trainer.device=cpu (or auto)"
        )
    else:
        chosen = cpu_node(cpu_threads)
    mge.set_default_device(chosen)
    return chosen
