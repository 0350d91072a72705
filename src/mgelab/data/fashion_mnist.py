"""Fashion-MNIST (chapter 4): 28x28 grey images of ten kinds of clothing."""

from __future__ import annotations

from mgelab.data.fashion_mnist_files import DEBIAN_DIR, DEBIAN_HINT, FASHION_MNIST_FILES, FASHION_MNIST_URL
from mgelab.data.fetch import mirror_sources
from mgelab.data.idx_datasets import IdxImageDataModule

__all__ = ["CLASS_NAMES", "FashionMNIST", "mirror_sources"]  # mirror_sources used to live here

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


class FashionMNIST(IdxImageDataModule):
    """Constructor: data_dir, mirror=None, base_url=FASHION_MNIST_URL, verify=True,
    sha256=None, system_dirs=(Debian's directory,), name="fashion_mnist", **batching
    (see RemoteDataModule). Debian's dataset-fashion-mnist package is looked at first."""

    cache_name = "fashion-mnist"
    remote_files = FASHION_MNIST_FILES
    default_base_url = FASHION_MNIST_URL
    default_system_dirs = (str(DEBIAN_DIR),)
    default_name = "fashion_mnist"
    default_class_names = CLASS_NAMES
    hint = DEBIAN_HINT
    sample_shape = (1, 28, 28)
