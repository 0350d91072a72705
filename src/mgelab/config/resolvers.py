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


# Where debug runs go: ``<experiment>_debug``, apart from the runs a chapter compares.
DEBUG_SUFFIX = "_debug"


def tracked_experiment(name: str, debug: object = False) -> str:
    """The MLflow experiment a run logs to: ``name``, or ``name_debug`` for a debug run
    (``trainer.debug``, set by ``trainer=smoke``), as lightning-hydra-template's debug configs keep
    their own task name. One resolver, so the logger, the sweep callback and skip_finished agree."""
    is_debug = debug if isinstance(debug, bool) else str(debug).lower() == "true"
    return f"{name}{DEBUG_SUFFIX}" if is_debug and not str(name).endswith(DEBUG_SUFFIX) else str(name)


def register_resolvers() -> None:
    resolvers = (("mgelab_root", project_root), ("mgelab_cache", user_cache), ("mgelab_experiment", tracked_experiment))
    for name, fn in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    if not OmegaConf.has_resolver("abspath"):
        OmegaConf.register_new_resolver("abspath", lambda p: str(Path(p).expanduser().resolve()))


def paths_value(key: str) -> str:
    """One key of ``conf/paths/default.yaml`` resolved outside a Hydra run, e.g. ``tracking_uri``
    for the Makefile's ``ui``, so the store's default is written once (keys that need Hydra's
    runtime, such as ``run_dir``, cannot be asked for)."""
    register_resolvers()
    paths = OmegaConf.load(Path(project_root(), "conf", "paths", "default.yaml"))
    return str(OmegaConf.create({"paths": paths}).paths[key])
