"""CIFAR-10 (chapter 5): 32x32 colour images of ten classes, from the python archive.

The archive holds pickled batches made by Python 2. They are read from the tar in
memory (no extraction) and unpickled with `restricted_loads`: a tampered archive
cannot run code, it is refused with a DataError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mgelab.checkpoint.safe_pickle import UnsafePickleError, restricted_loads
from mgelab.data.arrays import Split
from mgelab.data.augment import CropFlipAugmentation
from mgelab.data.errors import DataError
from mgelab.data.fetch import RemoteFile
from mgelab.data.progressive import ProgressiveResize, as_pairs
from mgelab.data.remote import RemoteDataModule, iter_tar_members
from mgelab.data.resize import ResizeOnTheFly, Size

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz"
ARCHIVE = RemoteFile("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a")
FOLDER = "cifar-10-batches-py"
TRAIN_MEMBERS = tuple(f"{FOLDER}/data_batch_{i}" for i in range(1, 6))
TEST_MEMBER = f"{FOLDER}/test_batch"
META_MEMBER = f"{FOLDER}/batches.meta"
# Used until batches.meta is read, so num_classes needs no download.
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)  # each row of b"data": the R plane, then G, then B, each row-major

_FIX = "delete it so it is fetched again, or replace it with the official archive"


def _unpickle(data: bytes, where: str) -> object:
    try:
        return restricted_loads(data, encoding="bytes")
    except UnsafePickleError as exc:
        raise DataError(f"{where}: {exc}. The official batches reference only numpy, so this copy "
                        f"was tampered with: {_FIX}.") from exc
    except Exception as exc:  # a damaged pickle raises almost anything: EOFError, ValueError, ...
        raise DataError(f"{where}: not a readable pickle ({type(exc).__name__}: {exc}): {_FIX}.") from exc


def _entry(record: object, key: bytes, where: str) -> object:
    if not isinstance(record, dict) or key not in record:
        found = sorted(map(repr, record)) if isinstance(record, dict) else type(record).__name__
        raise DataError(f"{where}: expected a dict with key {key!r}, found {found}: {_FIX}.")
    return record[key]


def parse_batch(data: bytes, where: str) -> Tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int32 from one pickled batch."""
    record = _unpickle(data, where)
    images, labels = _entry(record, b"data", where), np.asarray(_entry(record, b"labels", where))
    size = int(np.prod(IMAGE_SHAPE))
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape[1:] == (size,)):
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"{where}: b'data' should be a uint8 array (N, {size}), got {got}: {_FIX}.")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: b'labels' should be {len(images)} integers, got {labels.dtype} "
                        f"{labels.shape}: {_FIX}.")
    return images.reshape((-1,) + IMAGE_SHAPE), labels.astype(np.int32)


def parse_meta(data: bytes, where: str) -> List[str]:
    names = _entry(_unpickle(data, where), b"label_names", where)
    if not isinstance(names, list) or not all(isinstance(n, bytes) for n in names):
        raise DataError(f"{where}: b'label_names' should be a list of byte strings: {_FIX}.")
    return [n.decode("utf-8", "replace") for n in names]


def load_cifar10_archive(archive: Path) -> Tuple[Dict[str, Split], List[str]]:
    """{"train", "test"} splits and the class names from cifar-10-python.tar.gz."""
    batches: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    names: List[str] = []
    # Parsed one member at a time: the raw bytes of a batch are dropped before the next.
    for member, data in iter_tar_members(archive, TRAIN_MEMBERS + (TEST_MEMBER, META_MEMBER)):
        where = f"{archive} (member {member})"
        if member == META_MEMBER:
            names = parse_meta(data, where)
        else:
            batches[member] = parse_batch(data, where)
    train = [batches[m] for m in TRAIN_MEMBERS]
    splits = {
        "train": Split(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
        "test": Split(*batches[TEST_MEMBER]),
    }
    for split in splits.values():
        if len(split) and not 0 <= split.targets.min() <= split.targets.max() < len(names):
            raise DataError(f"{archive}: labels outside 0..{len(names) - 1} (the classes in "
                            f"{META_MEMBER}): {_FIX}.")
    return splits, names


class CIFAR10(ResizeOnTheFly, ProgressiveResize, CropFlipAugmentation, RemoteDataModule):
    """Inputs (N, 3, 32, 32) uint8 RGB, labels int32; 50 000 train / 10 000 test.

    Constructor: data_dir, augment=False, crop_padding=4, flip=True, then
    RemoteDataModule's options (mirror, base_url, verify, sha256, system_dirs, name)
    and the batching options. augment=True applies, to training batches only, a
    random crop of the zero-padded image and a random horizontal flip. resize=S (or [H, W])
    enlarges every batch to S x S after augmentation (bilinear; ``mgelab.data.resize``).
    train_sizes=[[first epoch, side], ...] trains those epochs on images of that side instead
    (progressive resizing; ``mgelab.data.progressive``); it cannot be combined with resize=.
    """

    cache_name = "cifar-10"
    remote_files = (ARCHIVE,)
    default_base_url = CIFAR10_URL
    default_name = "cifar10"
    default_class_names = CLASS_NAMES
    sample_shape = IMAGE_SHAPE  # before resize=, which ResizeOnTheFly applies to it

    def __init__(self, data_dir: str, *, augment: bool = False, crop_padding: int = 4, flip: bool = True,
                 resize: Optional[Size] = None, train_sizes: Optional[Sequence[Sequence[int]]] = None,
                 **options) -> None:
        super().__init__(data_dir, **options)
        self.set_augmentation(augment, crop_padding, flip)
        self.set_resize(resize)
        self.set_train_sizes(train_sizes)
        if self.resize is not None and self.train_sizes:
            raise ValueError(f"data.train_sizes={as_pairs(self.train_sizes)} and data.resize={resize!r} cannot both "
                             "be set: resize= sizes every batch for a model built for that size; set one to null")

    def load_splits(self) -> Dict[str, Split]:
        splits, names = load_cifar10_archive(self.fetch()[ARCHIVE.name])
        self._class_names = names
        return splits
