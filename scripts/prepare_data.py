"""Make sure the configured dataset is on disk before training (``make data``, run by ``make train``).

Looks in the cache, mirrors and system directories, then downloads. When that fails and
the dataset is Fashion-MNIST on a Debian machine where we are root, installs Debian's
``dataset-fashion-mnist`` (works on machines that reach only the package archive) and
tries once more.

    python scripts/prepare_data.py                      # the default data (Fashion-MNIST)
    python scripts/prepare_data.py data.mirror=/srv/fmnist
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

import mgelab.config  # noqa: F401  (registers the resolvers conf/ uses)
from mgelab.data.errors import DataError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
DEBIAN_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}


def can_apt_install() -> bool:
    return shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0


def apt_install(package: str) -> None:
    print(f"Download failed; installing Debian's {package} instead.", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", package], env=env).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, check=True)


def compose_config(overrides: list) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def load(cfg: DictConfig) -> str:
    data = instantiate(cfg.data)
    sizes = ", ".join(f"{k} {v}" for k, v in data.describe().items() if k.endswith("_size"))
    return f"{data.name} is ready: {sizes}"


def main(overrides: list) -> int:
    cfg = compose_config(overrides)
    try:
        print(load(cfg))
        return 0
    except DataError as first_error:
        package = DEBIAN_PACKAGES.get(cfg.data.name)
        if package is None or not can_apt_install():
            print(f"error: {first_error}", file=sys.stderr)
            return 1
        apt_install(package)
    try:
        print(load(cfg))
        return 0
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
