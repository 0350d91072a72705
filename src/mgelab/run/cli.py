"""How a command-line run ends: a user error prints one short message and a status, a bug keeps
its traceback. Exit status 2 for a config that cannot run, 130 after Ctrl-C (the checkpoint is
written first), 1 for other failures. ``HYDRA_FULL_ERROR=1`` shows the full traceback instead."""

from __future__ import annotations

import os
import sys
from typing import Callable, Tuple, Type

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mgelab.checkpoint import CheckpointError
from mgelab.config.preflight import ConfigError
from mgelab.config.validate import ConfigValueError
from mgelab.data.errors import DataError
from mgelab.run.resume import ResumeConfigMismatch
from mgelab.tracking.reachability import TrackingUnavailable

EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
EXIT_FAILED = 1

CONFIG_ERRORS: Tuple[Type[BaseException], ...] = (ConfigError, ConfigValueError, ResumeConfigMismatch)
# Failures the user can act on from the message alone (a file, a checkpoint, a server).
USER_ERRORS: Tuple[Type[BaseException], ...] = (DataError, CheckpointError, FileNotFoundError, TrackingUnavailable)


def exit_status(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_CONFIG if isinstance(exc, CONFIG_ERRORS) else EXIT_FAILED


def end_clearly(exc: BaseException) -> None:
    """Print the message the exception carries and exit with its status."""
    kind = "config error" if isinstance(exc, CONFIG_ERRORS) else "stopped" if isinstance(exc, KeyboardInterrupt) \
        else "error"
    message = str(exc).strip() or type(exc).__name__
    print(f"{kind}: {message}", file=sys.stderr, flush=True)
    sys.exit(exit_status(exc))


def run_command(task: Callable[[DictConfig], float], cfg: DictConfig) -> float:
    """``task(cfg)`` for ``@hydra.main``. In a multirun a job's error is left to Hydra and the sweep
    callback (they record it and go on, or stop the sweep); a single run ends clearly."""
    if _in_multirun() or os.environ.get("HYDRA_FULL_ERROR") == "1":
        return task(cfg)
    try:
        return task(cfg)
    except (*CONFIG_ERRORS, *USER_ERRORS, KeyboardInterrupt) as exc:
        end_clearly(exc)
    raise AssertionError("unreachable")


def _in_multirun() -> bool:
    mode = HydraConfig.get().mode if HydraConfig.initialized() else None
    return mode is not None and mode.name == "MULTIRUN"
