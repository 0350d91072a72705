"""This process's peak resident memory: logged by every run, reported by the benchmark."""

from __future__ import annotations

import gc
import resource
from pathlib import Path

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
