"""scripts/profile_alternatives.py: the max-pool formulations compute native's gradient, the matrix
products are a linear layer's, and the script runs as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import megengine as mge
import megengine.functional as F
import numpy as np
import pytest

from script_module import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("shape", [(2, 3, 6, 4), (2, 3, 7, 5)], ids=["even", "odd-sides"])
def test_every_pool_formulation_gives_the_native_gradient(shape):
    # Odd sides are cnn3's third pool (7x7): max_pool2d drops the last row and column there.
    results = load_script("profile_alternatives").time_pool(shape, repeats=1, calls=1)
    assert sorted(results) == ["mask", "native", "reshape"]
    assert all(same for _, same in results.values()), results


def test_the_products_are_the_forward_and_both_gradients_of_a_linear_layer():
    script = load_script("profile_alternatives")
    rng = np.random.default_rng(0)
    x, w, dy = (rng.normal(size=s).astype("float32") for s in ((5, 7), (3, 7), (5, 3)))
    operands = {"fwd": (x, w), "dw": (dy, x), "dx": (dy, w)}
    expected = {"fwd": x @ w.T, "dw": dy.T @ x, "dx": dy @ w}
    for piece, ((shape_a, shape_b), flags) in script.linear_products(5, 7, 3).items():
        a, b = operands[piece]
        assert (a.shape, b.shape) == (shape_a, shape_b)
        got = F.matmul(mge.tensor(a), mge.tensor(b), **flags).numpy()
        np.testing.assert_allclose(got, expected[piece], rtol=1e-5, atol=1e-5)


def test_the_script_times_each_pool_and_each_product_under_each_strategy():
    cmd = [sys.executable, str(ROOT / "scripts" / "profile_alternatives.py"), "models=[lenet]", "batch=4",
           "repeats=1", "calls=1", "device=cpu0", "strategies=[HEURISTIC,PROFILE]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert len(re.findall(r"max-pool .* native +\d+\.\d+ ms +reshape +\d+\.\d+ ms +mask", out)) == 2
    assert "other gradient" not in out
    # LeNet's three linear layers, three products each, both strategies on every row.
    assert len(re.findall(r"linear .* HEURISTIC +\d+\.\d+ ms +PROFILE +\d+\.\d+ ms +fastest", out)) == 9


def test_an_unknown_model_is_refused_before_anything_is_measured():
    cmd = [sys.executable, str(ROOT / "scripts" / "profile_alternatives.py"), "models=[lenet,vgg]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode != 0 and "'vgg' is not profiled here" in proc.stderr
    assert "== lenet" not in proc.stdout
