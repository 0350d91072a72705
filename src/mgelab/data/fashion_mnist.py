"""Fashion-MNIST (chapter 4): 28x28 grey images of ten kinds of clothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

from mgelab.data.arrays import ArrayDataModule, Split
from mgelab.data.fashion_mnist_files import DEBIAN_DIR, FASHION_MNIST_URL, load_fashion_mnist

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def mirror_sources(mirror: Optional[str]) -> list:
    """The configured mirror first, then the environment's; empty values are dropped."""
    return [m for m in (mirror, os.environ.get("MGELAB_DATA_MIRROR")) if m]


class FashionMNIST(ArrayDataModule):
    def __init__(
        self,
        data_dir: str,
        mirror: Optional[str] = None,
        base_url: str = FASHION_MNIST_URL,
        verify: bool = True,
        sha256: Optional[Mapping[str, str]] = None,
        system_dirs: Sequence[str] = (str(DEBIAN_DIR),),
        name: str = "fashion_mnist",
        **batching,
    ) -> None:
        super().__init__(name=name, class_names=CLASS_NAMES, **batching)
        self.data_dir = Path(data_dir).expanduser()
        self.mirror = mirror
        self.base_url = base_url
        self.verify = verify
        self.sha256 = dict(sha256 or {})
        self.system_dirs = [Path(d) for d in system_dirs]

    def load_splits(self) -> Dict[str, Split]:
        arrays = load_fashion_mnist(
            self.data_dir,
            mirrors=mirror_sources(self.mirror),
            base_url=self.base_url,
            system_dirs=self.system_dirs,
            verify=self.verify,
            sha256_overrides=self.sha256 or None,
        )
        # IDX images are (N, H, W); the models take NCHW with one grey channel.
        return {name: Split(x[:, None], y) for name, (x, y) in arrays.items()}
