"""MNIST-style datasets: four IDX files (train images/labels, test images/labels).

MNIST and Fashion-MNIST differ only in their files, URL, class names and system
directories; `IdxImageDataModule` holds everything else and they subclass it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

from mgelab.data.arrays import Split
from mgelab.data.augment import CropFlipAugmentation
from mgelab.data.errors import DataError
from mgelab.data.fetch import RemoteFile, fetch_files
from mgelab.data.idx import read_idx
from mgelab.data.remote import RemoteDataModule

Arrays = Tuple[np.ndarray, np.ndarray]


def load_idx_pair(images_path: Path | str, labels_path: Path | str) -> Arrays:
    """Images (N, H, W) uint8 and labels (N,) int32 from an IDX image/label pair."""
    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            "labels; the two files come from different releases or one is damaged: "
            "replace both with a matching pair."
        )
    # int32: the class index type the losses and metrics expect.
    return images, labels.astype(np.int32)


def _split_files(files: Sequence[RemoteFile]) -> Dict[str, Tuple[RemoteFile, RemoteFile]]:
    if len(files) != 4:
        raise ValueError(
            "expected 4 files (train images, train labels, test images, test labels), "
            f"got {len(files)}: {[f.name for f in files]}"
        )
    return {"train": (files[0], files[1]), "test": (files[2], files[3])}


def read_four_files(paths: Mapping[str, Path], files: Sequence[RemoteFile]) -> Dict[str, Arrays]:
    """{"train": (x, y), "test": (x, y)} from fetched files ordered as in `load_four_file_dataset`."""
    return {
        split: load_idx_pair(paths[images.name], paths[labels.name])
        for split, (images, labels) in _split_files(files).items()
    }


def load_four_file_dataset(
    cache_dir: Path,
    *,
    dataset: str,
    files: Sequence[RemoteFile],
    base_url: str,
    mirrors: Sequence[str] = (),
    system_dirs: Sequence[Path] = (),
    verify: bool = True,
    sha256_overrides: Mapping[str, str] | None = None,
    progressbar: bool = True,
    hint: str | None = None,
) -> Dict[str, Arrays]:
    """Fetch an MNIST-style dataset and return {"train": (x, y), "test": (x, y)}.

    files are ordered train images, train labels, test images, test labels.
    """
    _split_files(files)  # a wrong file list fails before any download
    paths = fetch_files(
        files, dataset=dataset, base_url=base_url, cache_dir=Path(cache_dir), mirrors=mirrors,
        system_dirs=system_dirs, verify=verify, progressbar=progressbar,
        sha256_overrides=sha256_overrides, hint=hint,
    )
    return read_four_files(paths, files)


class IdxImageDataModule(CropFlipAugmentation, RemoteDataModule):
    """Grey images (N, 1, H, W) uint8 and int32 labels from four IDX files.

    Subclasses set cache_name, remote_files (ordered as for `load_four_file_dataset`),
    default_base_url, default_name, default_class_names and optionally
    default_system_dirs and hint. Constructor: data_dir, augment=False, crop_padding=2,
    flip=True, then RemoteDataModule's options. augment=True crops and flips training
    batches (flip suits clothing, not digits: MNIST's own default is flip=False).
    """

    def __init__(self, data_dir: str, *, augment: bool = False, crop_padding: int = 2, flip: bool = True,
                 **options) -> None:
        super().__init__(data_dir, **options)
        self.set_augmentation(augment, crop_padding, flip)

    def load_splits(self) -> Dict[str, Split]:
        arrays = read_four_files(self.fetch(), self.remote_files)
        # IDX images are (N, H, W); the models take NCHW with one grey channel.
        return {name: Split(x[:, None], y) for name, (x, y) in arrays.items()}
