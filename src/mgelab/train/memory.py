"""This process's peak resident memory (logged by every run, reported by the benchmark), and the
allocator setting that keeps it down.

``set_mmap_threshold`` (``trainer.mmap_threshold_kb``, off by default) trades speed for memory.
MegEngine's CPU tensors come from the C library's ``malloc``. glibc serves a large block with a
mapping of its own, but each time such a block is freed it raises that threshold to the block's
size (up to 32 MiB), so after the first steps a model's activation buffers come from the heap,
whose freed pages stay resident. A fixed threshold (glibc's ``mallopt(M_MMAP_THRESHOLD)``) ends the
raising: every large buffer is mapped afresh and returned when freed. Measured with the trainer
bench (batch 64, 2 threads, docs/results.md): ResNet-20 peaked at 1 355 MB with glibc's rule, 883 MB
at 4 MiB and 431 MB at 256 KiB, but trained 22 % and 38 % slower (130 -> 101 and 80 samples/s): the
kernel zeroes every fresh page on first touch, every step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
from pathlib import Path
from typing import Optional

import megengine as mge


def peak_rss_mb() -> float:
    """Peak resident set size so far (Linux VmHWM, which ``reset_peak_rss`` can reset)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux


def reset_peak_rss() -> None:
    """Start a new peak: free what is garbage first, or its pages count towards the next one."""
    gc.collect()
    mge.device.coalesce_free_memory()
    try:  # "5" resets VmHWM (Linux >= 4.0); harmless to skip elsewhere.
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
DEFAULT_MMAP_THRESHOLD_KB: Optional[int] = None  # trainer.mmap_threshold_kb's default: glibc's own rule


def check_mmap_threshold(kilobytes: Optional[int]) -> Optional[int]:
    if kilobytes is not None and (isinstance(kilobytes, bool) or not isinstance(kilobytes, int) or kilobytes < 1):
        raise ValueError(f"trainer.mmap_threshold_kb={kilobytes!r} must be an int >= 1 (KiB), or null for the "
                         "C library's own rule")
    return kilobytes


def set_mmap_threshold(kilobytes: Optional[int]) -> bool:
    """Serve every host allocation of at least ``kilobytes`` KiB with a mapping of its own, returned
    to the system when freed; None leaves the C library's own rule. Returns whether a threshold was
    set: False also where the C library has no glibc ``mallopt`` (then nothing changes)."""
    if check_mmap_threshold(kilobytes) is None:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, kilobytes * 1024) == 1  # glibc: 1 on success
