"""Peak resident memory as runs log it and the benchmark reports it, and the allocator threshold that keeps it down."""

from __future__ import annotations

import mmap
import subprocess
import sys

import pytest

from mgelab.train.memory import peak_rss_mb, reset_peak_rss, set_mmap_threshold

BLOCK_BYTES = 80 * 2**20


def touched_fresh_pages(size: int) -> mmap.mmap:
    """``size`` bytes of new anonymous memory, every page written. Fresh pages from the kernel:
    a heap block could reuse pages the allocator kept resident from earlier tests, and then
    the resident set would not grow (this test failed that way inside long test processes)."""
    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    return block


def test_peak_follows_an_allocation_and_resets():
    reset_peak_rss()
    before = peak_rss_mb()
    block = touched_fresh_pages(BLOCK_BYTES)
    assert peak_rss_mb() >= before + 60
    block.close()  # unmapped: the pages leave the resident set at once
    reset_peak_rss()
    assert peak_rss_mb() < before + 60  # the next measurement does not inherit this peak


# Run apart: the threshold is process-wide and stays set. mallinfo2().hblkhd is the bytes glibc holds in
# blocks mapped one by one; a 1 MiB block is mapped by itself under a 256 KiB threshold, not under 4 MiB.
MAPPED_BLOCK_PROBE = """
import ctypes, sys
from mgelab.train.memory import set_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
assert set_mmap_threshold(int(sys.argv[1]))
before = libc.mallinfo2().hblkhd
block = libc.malloc(2**20)
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""


def mapped_bytes_of_a_1mib_block(threshold_kb: int) -> int:
    proc = subprocess.run([sys.executable, "-c", MAPPED_BLOCK_PROBE, str(threshold_kb)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1])


def test_blocks_over_the_threshold_get_a_mapping_of_their_own():
    assert mapped_bytes_of_a_1mib_block(256) >= 2**20
    assert mapped_bytes_of_a_1mib_block(4096) == 0


@pytest.mark.parametrize("bad", [0, -5, 1.5, "256", True])
def test_a_bad_threshold_is_refused_by_its_key(bad):
    with pytest.raises(ValueError, match="trainer.mmap_threshold_kb"):
        set_mmap_threshold(bad)


def test_null_leaves_the_c_librarys_rule():
    assert set_mmap_threshold(None) is False


def test_the_trainer_refuses_a_bad_threshold_before_it_fits():
    from mgelab.train import Trainer

    with pytest.raises(ValueError, match="trainer.mmap_threshold_kb=0"):
        Trainer(mmap_threshold_kb=0)
