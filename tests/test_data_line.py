"""The noisy line of chapter 1: seeded points around y = 5x + 2, split 60/20/20."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate

from mgelab.data.settings import SampleInfo
from mgelab.data.synthetic_line import SyntheticLine


def all_points(data: SyntheticLine) -> tuple:
    x = np.concatenate([data.splits[s].inputs for s in ("train", "val", "test")])
    y = np.concatenate([data.targets(s) for s in ("train", "val", "test")])
    return x[:, 0], y[:, 0]


def test_defaults_are_100_points_around_5x_plus_2():
    data = SyntheticLine(seed=0)
    assert data.declared_sample() == SampleInfo((1,), "regression", 1)  # stated before the points are drawn
    assert data.task == "regression" and data.num_outputs == 1 and data.input_shape == (1,)
    assert [data.split_size(s) for s in ("train", "val", "test")] == [60, 20, 20]
    split = data.splits["train"]
    assert split.inputs.dtype == np.float32 and split.targets.dtype == np.float32
    assert split.inputs.shape == (60, 1) and split.targets.shape == (60, 1)
    x, y = all_points(data)
    assert np.all(np.abs(x) <= 10) and x.min() < -8 and x.max() > 8
    residual = y - (5 * x + 2)
    assert np.all(np.abs(residual) <= 5 + 1e-4) and residual.std() > 2  # U(-5, 5): std 2.9
    slope, intercept = np.polyfit(x, y, 1)
    assert abs(slope - 5) < 0.3 and abs(intercept - 2) < 1.5


def test_points_and_splits_follow_the_seed():
    first, again, other = SyntheticLine(seed=1), SyntheticLine(seed=1), SyntheticLine(seed=2)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(first.splits[split].inputs, again.splits[split].inputs)
    assert not np.array_equal(first.splits["test"].inputs, other.splits["test"].inputs)
    x, _ = all_points(first)
    np.testing.assert_array_equal(np.sort(x), np.sort(first.sample().inputs[:, 0]))  # disjoint, complete


def test_no_normalisation_by_default_so_w_and_b_compare_with_5_and_2():
    data = SyntheticLine(seed=0, batch_size=16)
    inputs, targets = next(data.eval_batches("train"))
    np.testing.assert_array_equal(inputs, data.splits["train"].inputs)
    np.testing.assert_array_equal(targets, data.targets("train"))
    standardised = next(SyntheticLine(seed=0, normalization="per_channel").eval_batches("train"))[0]
    assert not np.allclose(standardised, inputs)


def test_size_slope_intercept_noise_and_split_sizes_are_configurable():
    data = SyntheticLine(size=40, slope=-1.5, intercept=3.0, noise=0.0, x_range=2.0, test_size=0.25,
                         val_size=6, seed=4)
    assert [data.split_size(s) for s in ("train", "val", "test")] == [24, 6, 10]
    x, y = all_points(data)
    np.testing.assert_allclose(y, -1.5 * x + 3.0, rtol=1e-6, atol=1e-6)
    assert np.all(np.abs(x) <= 2)


@pytest.mark.parametrize(
    "options, key",
    [({"test_size": 100}, "data.test_size"), ({"test_size": 0}, "data.test_size"), ({"size": 2}, "data.size"),
     ({"noise": -1.0}, "data.noise"), ({"val_size": 80}, "data.val_size"), ({"test_size": "abc"}, "data.test_size"),
     ({"test_size": 2.5}, "data.test_size"), ({"val_size": -1}, "data.val_size")],
)
def test_bad_sizes_name_the_key(options, key):
    with pytest.raises(ValueError, match=key):
        _ = SyntheticLine(**options).splits


def test_config_gives_the_documented_defaults(compose_cfg):
    cfg = compose_cfg(["data=synthetic_line"])
    data = instantiate(cfg.data)
    assert isinstance(data, SyntheticLine) and data.name == "synthetic_line" and data.seed == cfg.seed
    assert (data.size, data.slope, data.intercept, data.noise, data.normalization) == (100, 5.0, 2.0, 5.0, "none")
    assert [data.split_size(s) for s in ("train", "val", "test")] == [60, 20, 20]
