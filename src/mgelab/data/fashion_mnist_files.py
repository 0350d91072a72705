"""Fashion-MNIST's four IDX files: where they live, their hashes, and a loader.

The four-file layout (train images/labels, test images/labels) is the same as
MNIST's, so `load_four_file_dataset` takes the file list and dataset name and
another dataset module only has to supply its own constants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence, Tuple

import numpy as np

from mgelab.data.errors import DataError
from mgelab.data.fetch import RemoteFile, fetch_files
from mgelab.data.idx import read_idx

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_HINT = f"on Debian `apt-get install dataset-fashion-mnist` (fills {DEBIAN_DIR})"

# Order matters: train images, train labels, test images, test labels.
FASHION_MNIST_FILES: tuple[RemoteFile, ...] = (
    RemoteFile(
        "train-images-idx3-ubyte.gz",
        md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        payload_sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    RemoteFile(
        "train-labels-idx1-ubyte.gz",
        md5="25c81989df183df01b3e8a0aad5dffbe",
        payload_sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    RemoteFile(
        "t10k-images-idx3-ubyte.gz",
        md5="bef4ecab320f06d8554ea6380940ec79",
        payload_sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    RemoteFile(
        "t10k-labels-idx1-ubyte.gz",
        md5="bb300cfdad3c16e7a12a480ee83cd310",
        payload_sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
)

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


def _split_files(files: Sequence[RemoteFile]) -> dict[str, tuple[RemoteFile, RemoteFile]]:
    if len(files) != 4:
        raise ValueError(
            "expected 4 files (train images, train labels, test images, test labels), "
            f"got {len(files)}: {[f.name for f in files]}"
        )
    return {"train": (files[0], files[1]), "test": (files[2], files[3])}


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
) -> dict[str, Arrays]:
    """Fetch an MNIST-style dataset and return {"train": (x, y), "test": (x, y)}.

    files are ordered train images, train labels, test images, test labels.
    """
    splits = _split_files(files)
    paths = fetch_files(
        files,
        dataset=dataset,
        base_url=base_url,
        cache_dir=Path(cache_dir),
        mirrors=mirrors,
        system_dirs=system_dirs,
        verify=verify,
        progressbar=progressbar,
        sha256_overrides=sha256_overrides,
        hint=hint,
    )
    return {
        split: load_idx_pair(paths[images.name], paths[labels.name])
        for split, (images, labels) in splits.items()
    }


def load_fashion_mnist(
    cache_dir: Path,
    *,
    mirrors: Sequence[str] = (),
    base_url: str = FASHION_MNIST_URL,
    files: Sequence[RemoteFile] = FASHION_MNIST_FILES,
    system_dirs: Sequence[Path] = (DEBIAN_DIR,),
    verify: bool = True,
    sha256_overrides: Mapping[str, str] | None = None,
    progressbar: bool = True,
) -> dict[str, Arrays]:
    """Fashion-MNIST as {"train": (x, y), "test": (x, y)}: x uint8 (N, H, W), y int32.

    Files are cached under cache_dir/fashion-mnist; see fetch_files for the search order.
    """
    return load_four_file_dataset(
        cache_dir,
        dataset="fashion-mnist",
        files=files,
        base_url=base_url,
        mirrors=mirrors,
        system_dirs=system_dirs,
        verify=verify,
        sha256_overrides=sha256_overrides,
        progressbar=progressbar,
        hint=DEBIAN_HINT,
    )
