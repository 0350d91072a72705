"""MNIST through the shared IDX data module, and Fashion-MNIST on the same base class."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate

from data_fixtures import NAMES, payload_sha_of, write_tiny_dataset
from mgelab.data.errors import DataError
from mgelab.data.fashion_mnist import FashionMNIST
from mgelab.data.fashion_mnist_files import DEBIAN_DIR, FASHION_MNIST_URL
from mgelab.data.idx_datasets import IdxImageDataModule
from mgelab.data.mnist import MNIST, MNIST_FILES, MNIST_URL
from mgelab.data.settings import SampleInfo


def overrides(tiny) -> dict:
    """The tiny files are not upstream's: their payload hashes stand in, as for a re-packed copy."""
    return {name: payload_sha_of(tiny.path(name)) for name in NAMES}


def test_mnist_downloads_verifies_and_batches(tmp_path, http_server):
    tiny = write_tiny_dataset(http_server.root, seed=3)
    module = MNIST(data_dir=str(tmp_path / "data"), base_url=http_server.url, sha256=overrides(tiny),
                   val_size=4, batch_size=5)
    assert module._splits is None  # nothing fetched before the data is used
    declared = module.declared_sample()  # from the settings alone
    assert module._splits is None and module.input_shape == (1, 28, 28)
    assert declared == SampleInfo(module.input_shape, module.task, module.num_outputs)
    assert module.num_classes == 10 and module.class_names == [str(d) for d in range(10)]
    assert [module.split_size(s) for s in ("train", "val", "test")] == [8, 4, 8]
    np.testing.assert_array_equal(module.splits["test"].inputs[:, 0], tiny.split("test")[0])
    np.testing.assert_array_equal(module.targets("test"), tiny.split("test")[1])
    assert module.targets("test").dtype == np.int32 and module.splits["train"].inputs.dtype == np.uint8
    assert all(http_server.counts[name] == 1 for name in NAMES)
    assert all((tmp_path / "data" / "mnist" / name).is_file() for name in NAMES)
    x, y = next(module.train_batches(1))
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int32


def test_mnist_checks_the_published_md5(tmp_path, http_server):
    write_tiny_dataset(http_server.root)
    module = MNIST(data_dir=str(tmp_path / "data"), base_url=http_server.url)
    with pytest.raises(DataError) as error:
        _ = module.splits
    message = str(error.value)
    assert MNIST_FILES[0].md5 in message and MNIST_FILES[0].name in message
    assert "data.sha256" in message
    assert not any((tmp_path / "data" / "mnist").glob("*.gz"))  # nothing unverified kept


def test_mnist_and_fashion_mnist_share_the_idx_module(tmp_path, http_server):
    tiny = write_tiny_dataset(http_server.root)
    options = dict(base_url=http_server.url, sha256=overrides(tiny), system_dirs=(), val_size=2)
    digits = MNIST(data_dir=str(tmp_path / "a"), **options)
    clothes = FashionMNIST(data_dir=str(tmp_path / "b"), **options)
    assert isinstance(digits, IdxImageDataModule) and isinstance(clothes, IdxImageDataModule)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(digits.splits[split].inputs, clothes.splits[split].inputs)
    assert (tmp_path / "b" / "fashion-mnist" / NAMES[0]).is_file()
    assert (digits.name, clothes.name) == ("mnist", "fashion_mnist")
    assert clothes.class_names[0] == "T-shirt/top" and digits.class_names[0] == "0"


def test_constructor_defaults_are_each_datasets_own(tmp_path):
    clothes, digits = FashionMNIST(data_dir=str(tmp_path)), MNIST(data_dir=str(tmp_path))
    assert (clothes.base_url, clothes.system_dirs) == (FASHION_MNIST_URL, [DEBIAN_DIR])
    assert (digits.base_url, digits.system_dirs) == (MNIST_URL, [])
    assert clothes.verify and digits.verify and clothes.sha256 == {} == digits.sha256


def test_mnist_config_points_at_a_server_with_pinned_hashes(compose_cfg, http_server):
    tiny = write_tiny_dataset(http_server.root)
    pinned = ",".join(f"{name}:{sha}" for name, sha in overrides(tiny).items())
    cfg = compose_cfg(["data=mnist", f"data.base_url={http_server.url}", f"data.sha256={{{pinned}}}",
                       "data.val_size=2"])
    module = instantiate(cfg.data)
    assert isinstance(module, MNIST) and module.name == "mnist"
    assert module.split_size("train") == 10 and module.describe()["num_outputs"] == 10


def test_idx_images_augment_when_asked_and_keep_labels(tmp_path, http_server):
    tiny = write_tiny_dataset(http_server.root, seed=4)

    def make(**kwargs):
        return FashionMNIST(data_dir=str(tmp_path / "data"), base_url=http_server.url, sha256=overrides(tiny),
                            val_size=4, batch_size=8, system_dirs=[], **kwargs)

    plain, augmented, again = make(), make(augment=True), make(augment=True)
    assert not plain.augments and augmented.augments
    (x_plain, y_plain), (x_aug, y_aug) = next(plain.train_batches(1)), next(augmented.train_batches(1))
    np.testing.assert_array_equal(y_plain, y_aug)  # same order, same labels
    assert not np.array_equal(x_plain, x_aug)
    np.testing.assert_array_equal(next(again.train_batches(1))[0], x_aug)  # seeded per (epoch, batch)
    assert not make(augment=True, crop_padding=0, flip=False).augments
    with pytest.raises(ValueError, match="data.crop_padding=-1"):
        make(augment=True, crop_padding=-1)


def test_mnist_config_does_not_flip_digits(compose_cfg):
    cfg = compose_cfg(["data=mnist", "data.augment=true"])
    assert cfg.data.flip is False and cfg.data.crop_padding == 2


def test_mnist_does_not_flip_by_default_fashion_mnist_does(tmp_path):
    """A mirrored digit is another glyph; clothing is left-right symmetric enough."""
    digits, clothes = MNIST(data_dir=str(tmp_path), augment=True), FashionMNIST(data_dir=str(tmp_path), augment=True)
    assert (digits.flip, clothes.flip) == (False, True)
