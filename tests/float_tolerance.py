"""How close float32 model outputs must be when the same model runs in another process, on
another batch size or through another kernel.

MegEngine picks its conv and matmul algorithms per shape (the batch size included) and per
process, and AVX-512 kernels block their sums differently from AVX2 ones: the same weights and
inputs then agree to float32 rounding of a dot product, not bit for bit (seen: `mlflow models
predict` on a batch of 5 differed from a batch of 128 in the 8th significant digit). Bit-exact
assertions stay where bit-exactness is the promise: resume, the same call repeated, copies.
"""

from __future__ import annotations

import numpy as np

# A dot product of K float32 terms carries about sqrt(K) * 6e-8 relative error; the chapter
# models' outputs sum at most a few thousand terms, so 1e-5 of the outputs' scale is ample and
# still far below any difference a real bug (a wrong weight, a missed normalisation) makes.
RTOL = 1e-5
ATOL_OF_SCALE = 1e-5


def assert_close_across_kernels(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    """Equal to float32 rounding: ``|got - want| <= RTOL * |want| + ATOL_OF_SCALE * max|want|``."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape, got.dtype)
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL_OF_SCALE * scale, err_msg=what)
