"""Peak resident memory as runs log it and the benchmark reports it."""

from __future__ import annotations

import mmap

from mgelab.train.memory import peak_rss_mb, reset_peak_rss

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
