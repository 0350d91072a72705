"""mgelab: MegEngine tutorial chapters as Hydra-configured, MLflow-tracked runs.

Every script imports ``mgelab`` before it does any work, so the two start-up noises every script
used to print are silenced here, once:

* numpy's "smallest subnormal ... is zero" UserWarnings. MegEngine switches the FPU to flush
  subnormals to zero; numpy notices whenever it probes float32 limits and warns. Nothing is wrong
  (the tests' pyproject filter says the same).
* MegEngine's CUDA-driver box ("Failed to load CUDA driver library, MegEngine works under CPU mode")
  and its "failed to load cuda func" lines. MegEngine's CUDA stub writes them with C ``fprintf`` to
  file descriptor 2 when it cannot dlopen ``libcuda``, the first time a device count is asked for
  (``is_cuda_available``, the ``xpux`` comp node); no logging level reaches them. So when no CUDA
  driver library can be loaded, those first probes run once with fd 2 sent to /dev/null. A
  machine that has a driver keeps every message MegEngine prints.

It also lets MKL (inside MegEngine) use its AVX2 kernels on AMD CPUs (``mgelab.startup.mkl_dispatch``): MKL
reads its switch at its first call, so it has to be set before any MegEngine work.

``mgelab`` does not import MegEngine itself: processes that only read the tracking store (compare,
replay) stay free of it. The probe runs right after MegEngine's first import, wherever that is.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.util
import os
import sys
import warnings
from types import ModuleType
from typing import Callable, Optional, Sequence

from mgelab.startup.mkl_dispatch import use_mkl_avx2_on_amd

# Where MegEngine's CUDA stub looks for the driver (its built-in paths), and the loader's own search.
CUDA_DRIVER_LIBRARIES = ("libcuda.so.1", "libcuda.so", "/usr/local/nvidia/lib64/libcuda.so",
                         "/usr/lib/x86_64-linux-gnu/libcuda.so")


def silence_subnormal_warnings() -> None:
    warnings.filterwarnings("ignore", message="The value of the smallest subnormal", category=UserWarning)


def cuda_driver_loadable(candidates: Sequence[str] = CUDA_DRIVER_LIBRARIES) -> bool:
    """True when one of the driver libraries MegEngine would use can be loaded: a GPU machine."""
    for name in candidates:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def without_stderr(fn: Callable[[], object]) -> object:
    """``fn()`` with file descriptor 2 on /dev/null: C code's ``fprintf(stderr)`` goes nowhere."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        return fn()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def probe_cuda_quietly(megengine: ModuleType) -> None:
    """Ask MegEngine for its devices once, without its CUDA messages, when no driver is present.
    MegEngine remembers the answers, so later probes (``select_device``, new tensors) print nothing."""
    if cuda_driver_loadable():
        return

    def probe() -> None:
        megengine.is_cuda_available()
        megengine.core._imperative_rt.common.CompNode("xpux")

    without_stderr(probe)


class AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback(module)`` once, right after the module ``name`` is first imported."""

    def __init__(self, name: str, callback: Callable[[ModuleType], None]) -> None:
        self.name, self.callback = name, callback

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot; the real finders locate the module
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_then_call(module: ModuleType) -> None:
            execute(module)
            self.callback(module)

        spec.loader.exec_module = exec_then_call  # type: ignore[method-assign]
        return spec


def quiet_megengine_start() -> None:
    """Probe now if MegEngine is loaded already, else right after it is."""
    if "megengine" in sys.modules:
        probe_cuda_quietly(sys.modules["megengine"])
    elif not any(isinstance(f, AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, AfterImport("megengine", probe_cuda_quietly))


silence_subnormal_warnings()
use_mkl_avx2_on_amd()
quiet_megengine_start()
