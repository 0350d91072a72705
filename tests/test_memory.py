"""Peak resident memory as runs log it and the benchmark reports it."""

from __future__ import annotations

import numpy as np

from mgelab.train.memory import peak_rss_mb, reset_peak_rss


def test_peak_follows_an_allocation_and_resets():
    reset_peak_rss()
    before = peak_rss_mb()
    block = np.ones(80 * 2**20, dtype=np.uint8)  # 80 MB, touched
    assert peak_rss_mb() >= before + 60
    del block
    reset_peak_rss()
    assert peak_rss_mb() < before + 60  # the next measurement does not inherit this peak
