"""The shared data interface: splits, seeded batches, normalisation, and Fashion-MNIST through it."""

from __future__ import annotations

import numpy as np
import pytest

from data_fixtures import payload_sha_of, write_tiny_dataset
from mgelab.data.arrays import Split, carve_validation
from mgelab.data.fashion_mnist import FashionMNIST
from mgelab.data.settings import SampleInfo
from mgelab.data.synthetic import SyntheticImages


def data(**kwargs) -> SyntheticImages:
    defaults = dict(train_size=100, test_size=30, batch_size=16, eval_batch_size=7, val_size=20, seed=5)
    return SyntheticImages(**{**defaults, **kwargs})


def test_validation_is_carved_disjoint_and_seeded():
    split = Split(np.arange(50)[:, None], np.arange(50, dtype=np.int32))
    train, val = carve_validation(split, 0.2, seed=1)
    assert len(val) == 10 and len(train) == 40
    assert set(train.targets) | set(val.targets) == set(range(50))
    assert not set(train.targets) & set(val.targets)
    again, _ = carve_validation(split, 0.2, seed=1)
    other, _ = carve_validation(split, 0.2, seed=2)
    np.testing.assert_array_equal(train.targets, again.targets)
    assert not np.array_equal(train.targets, other.targets)


def test_val_size_too_large_names_the_key():
    with pytest.raises(ValueError, match="data.val_size"):
        _ = data(val_size=100).splits


@pytest.mark.parametrize("value", ["abc", 1.5, -1, True])
def test_a_val_size_that_is_no_size_fails_when_built(value):
    """Not a fraction or a whole count: refused by the constructor, before any data is read."""
    with pytest.raises(ValueError, match=r"data.val_size=.* must be a fraction in \[0, 1\) or a whole count"):
        data(val_size=value)


def test_synthetic_images_state_their_sample_and_need_few_batches_by_default():
    images = SyntheticImages(image_shape=(3, 5, 7), num_classes=6)
    assert images.declared_sample() == SampleInfo((3, 5, 7), "classification", 6)
    assert images.split_size("val") == 64 and images.num_train_batches() == 6  # 192 rows, batches of 32
    assert images.declared_sample() == SampleInfo(images.input_shape, images.task, images.num_outputs)


def test_train_batches_cover_the_split_once_in_seeded_order():
    d = data()
    epoch1 = [y for _, y in d.train_batches(1)]
    assert sorted(np.concatenate(epoch1)) == sorted(d.targets("train"))
    assert [len(y) for y in epoch1] == [16] * 5
    again = np.concatenate([y for _, y in data().train_batches(1)])
    epoch2 = np.concatenate([y for _, y in d.train_batches(2)])
    np.testing.assert_array_equal(np.concatenate(epoch1), again)
    inputs1 = np.concatenate([x for x, _ in d.train_batches(1)])
    inputs2 = np.concatenate([x for x, _ in d.train_batches(2)])
    assert not np.array_equal(inputs1, inputs2)
    assert len(epoch2) == d.split_size("train")


def test_batches_are_float32_nchw_and_int32_labels_normalised_on_train():
    d = data()
    x, y = next(d.train_batches(1))
    assert x.dtype == np.float32 and x.shape == (16, 1, 8, 8) and y.dtype == np.int32
    train = np.concatenate([x for x, _ in d.train_batches(1)])
    assert abs(train.mean()) < 1e-4 and abs(train.std() - 1) < 1e-3


def test_eval_batches_follow_storage_order():
    d = data()
    labels = np.concatenate([y for _, y in d.eval_batches("test")])
    np.testing.assert_array_equal(labels, d.targets("test"))
    assert [len(y) for _, y in d.eval_batches("val")] == [7, 7, 6]


def test_fashion_mnist_module_downloads_and_batches(tmp_path, http_server):
    tiny = write_tiny_dataset(http_server.root)
    module = FashionMNIST(
        data_dir=str(tmp_path / "cache"),
        base_url=http_server.url,
        system_dirs=(),
        # The tiny files are not upstream's: their payload hashes stand in, as for a re-packed copy.
        sha256={name: payload_sha_of(tiny.path(name)) for name in tiny.arrays},
        val_size=4,
        batch_size=5,
    )
    assert module.input_shape == (1, 28, 28)
    assert module.num_classes == 10 and module.class_names[0] == "T-shirt/top"
    assert (module.split_size("train"), module.split_size("val"), module.split_size("test")) == (8, 4, 8)
    x, y = next(module.train_batches(1))
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(module.targets("test"), tiny.split("test")[1])


@pytest.mark.parametrize("axes", [(0, 2, 3), (0,), None])
def test_chunked_statistics_equal_numpy(axes):
    from mgelab.data.normalisation import mean_and_std

    images = np.random.default_rng(0).integers(0, 256, size=(1000, 3, 5, 4), dtype=np.uint8)
    mean, std = mean_and_std(images, axes, 255.0, chunk=64)
    exact = images.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, exact.mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(std, exact.std(axis=axes), rtol=1e-9)
