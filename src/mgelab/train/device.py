"""Choosing where MegEngine computes.

MegEngine's wheels carry CUDA; on a machine without a usable NVIDIA driver it falls
back to the CPU. ``trainer.device=gpu`` asks for the GPU and fails clearly when there
is none, ``auto`` takes the GPU when one is usable, ``cpu`` never probes CUDA.
Call it before any model is built: parameters live on the device that was the
default when they were created.
"""

from __future__ import annotations

import megengine as mge

DEVICES = ("cpu", "gpu", "auto")


def select_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"trainer.device={device!r} is unknown; choose one of {DEVICES}")
    if device == "cpu":
        chosen = "cpu0"
    elif mge.is_cuda_available():
        chosen = "gpu0"
    elif device == "gpu":
        raise RuntimeError(
            "trainer.device=gpu but MegEngine finds no usable CUDA device on this machine; "
            "use trainer.device=cpu (or auto)"
        )
    else:
        chosen = "cpu0"
    mge.set_default_device(chosen)
    return chosen
