"""Reading /proc/cpuinfo (and ``lscpu``'s text, which has the same ``key: value`` lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Tuple

PROC_CPUINFO = Path("/proc/cpuinfo")


def read_cpuinfo(path: Path = PROC_CPUINFO) -> str:
    """The file's text; "" where it cannot be read (not Linux)."""
    try:
        return path.read_text()
    except OSError:
        return ""


def cpuinfo_pairs(text: str) -> Iterator[Tuple[str, str]]:
    """Every ``key: value`` line as (lower-cased key, value), both stripped; other lines are skipped."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            yield key.strip().lower(), value.strip()
