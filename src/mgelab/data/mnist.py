"""MNIST (chapter 3): 28x28 grey images of handwritten digits 0-9."""

from __future__ import annotations

from mgelab.data.fetch import RemoteFile
from mgelab.data.idx_datasets import IdxImageDataModule

# The S3 copy torchvision also uses: the original page (yann.lecun.com) has refused downloads at times.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist"

# Order matters: train images, train labels, test images, test labels. Only the
# upstream md5s are published; data.sha256 pins a re-packed copy.
MNIST_FILES = (
    RemoteFile("train-images-idx3-ubyte.gz", md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    RemoteFile("train-labels-idx1-ubyte.gz", md5="d53e105ee54ea40749a09fcbcd1e9432"),
    RemoteFile("t10k-images-idx3-ubyte.gz", md5="9fb629c4189551a2d022fa330f9573f3"),
    RemoteFile("t10k-labels-idx1-ubyte.gz", md5="ec29112dd5afa0611ce80d1b7f02629c"),
)
CLASS_NAMES = tuple(str(digit) for digit in range(10))


class MNIST(IdxImageDataModule):
    """Constructor: data_dir, flip=False, then IdxImageDataModule's options (mirror=None,
    base_url=MNIST_URL, verify=True, sha256=None, system_dirs=(), name="mnist", **batching)."""

    cache_name = "mnist"
    remote_files = MNIST_FILES
    default_base_url = MNIST_URL
    default_name = "mnist"
    default_class_names = CLASS_NAMES
    sample_shape = (1, 28, 28)

    def __init__(self, data_dir: str, *, flip: bool = False, **options) -> None:
        # No flip by default, even with augment=true: a mirrored digit is another glyph (or none).
        super().__init__(data_dir, flip=flip, **options)
