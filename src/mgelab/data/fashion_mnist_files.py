"""Fashion-MNIST's four IDX files: where they live, their hashes, and a loader.

The four-file layout is MNIST's too: the generic loader lives in idx_datasets
(re-exported here, where it used to be).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from mgelab.data.fetch import RemoteFile
from mgelab.data.idx_datasets import Arrays, load_four_file_dataset, load_idx_pair

__all__ = ["DEBIAN_DIR", "DEBIAN_HINT", "FASHION_MNIST_FILES", "FASHION_MNIST_URL", "Arrays",
           "load_fashion_mnist", "load_four_file_dataset", "load_idx_pair"]

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
