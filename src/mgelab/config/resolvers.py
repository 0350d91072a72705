"""OmegaConf resolvers that make paths absolute, so every job of a multirun (whatever
its working directory) writes to the same store and reads the same data cache."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def project_root() -> str:
    """``MGELAB_ROOT``, else the checkout holding this package (editable install), else cwd."""
    if os.environ.get("MGELAB_ROOT"):
        return str(Path(os.environ["MGELAB_ROOT"]).resolve())
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "conf" / "train.yaml").is_file():
        return str(checkout)
    return str(Path.cwd())


def user_cache() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base, "mgelab"))


def register_resolvers() -> None:
    for name, fn in (("mgelab_root", project_root), ("mgelab_cache", user_cache)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    if not OmegaConf.has_resolver("abspath"):
        OmegaConf.register_new_resolver("abspath", lambda p: str(Path(p).expanduser().resolve()))
