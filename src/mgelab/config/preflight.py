"""Checking a command line's config before Hydra runs it.

``@hydra.main`` creates the run directory before the task function sees the config, and a bad
override otherwise ends in Hydra's traceback. So ``scripts/train.py`` first composes every job of
its command line with Hydra's compose API and validates it: a bad value, a typo'd key or an unknown
option is reported in one message (with the nearest valid key) and nothing is created.
``check_devices`` does the same for a multi-GPU run on a machine without the GPUs it asks for.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from mgelab.tracking.params import flatten

# Where the run directory would be: interpolations need a value, nothing is created there.
NOT_CREATED = "/nonexistent/preflight-run-dir"


class ConfigError(ValueError):
    """A command line whose config cannot run; the message names the key and what to do."""


def check_devices(trainer: DictConfig, gpu_count: Optional[Callable[[], int]] = None) -> None:
    """``trainer.devices=N`` (N > 1) needs N GPUs MegEngine can use, and trainer.device not cpu:
    MegEngine's distributed backends (nccl) are GPU-only. Raise ConfigError naming the GPUs found
    and what to do. ``gpu_count`` defaults to asking MegEngine, only when N > 1 (a plain run
    never probes CUDA here)."""
    devices = int(trainer.get("devices", 1))
    if devices <= 1:  # below 1 is the trainer's own range check
        return
    if gpu_count is None:
        from mgelab.train.distributed import usable_gpus  # MegEngine loads only for a multi-GPU run

        gpu_count = usable_gpus
    found = gpu_count()
    gpus = f"{found} usable GPU{'' if found == 1 else 's'}"
    wants = f"trainer.devices={devices} trains data-parallel on {devices} GPUs (megengine.distributed is GPU-only)"
    if trainer.get("device") == "cpu":
        raise ConfigError(f"{wants}, but trainer.device=cpu (MegEngine finds {gpus} here); use trainer.devices=1, "
                          f"or trainer.device=gpu on a machine with {devices} GPUs")
    if found < devices:
        raise ConfigError(f"{wants}, but MegEngine finds {gpus} on this machine; use trainer.devices=1, "
                          f"or run on a machine with {devices} GPUs")


def split_command_line(argv: Sequence[str]) -> Optional[Tuple[List[str], bool]]:
    """(overrides, multirun) of a plain command line; None when it holds Hydra flags (--cfg,
    --help, --config-name, ...), which are Hydra's to interpret."""
    overrides, multirun = [], False
    for arg in argv:
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg.startswith("-"):
            return None
        else:
            overrides.append(arg)
    return overrides, multirun


def sweep_jobs(overrides: List[str]) -> List[List[str]]:
    """Every job's overrides of a basic sweep (``model=linear,mlp`` gives two)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # Hydra's own expansion

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def compose_job(config_dir: Path, config_name: str, overrides: List[str]) -> DictConfig:
    """The job's config as ``@hydra.main`` hands it over (Hydra's node kept for the sweeper check)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = NOT_CREATED
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def check_command_line(
    argv: Sequence[str], config_dir: Path, config_name: str, validate: Callable[[DictConfig], None]
) -> None:
    """Raise ConfigError for the first job of the command line that cannot run."""
    split = split_command_line(argv)
    if split is None:
        return
    overrides, multirun = split
    plain = [o for o in overrides if not _is_sweep(o)]
    base = _composed(config_dir, config_name, plain)
    if multirun and "BasicSweeper" not in str(OmegaConf.select(base, "hydra.sweeper._target_")):
        return  # another sweeper (Optuna) draws its own values: each job is validated when it starts
    for job in sweep_jobs(overrides) if multirun else [overrides]:
        cfg = _composed(config_dir, config_name, job) if job != plain else base
        without_hydra = cfg.copy()
        with open_dict(without_hydra):
            del without_hydra["hydra"]
        validate(without_hydra)


def _is_sweep(override: str) -> bool:
    return OverridesParser.create().parse_override(override).is_sweep_override()


def _composed(config_dir: Path, config_name: str, overrides: List[str]) -> DictConfig:
    try:
        return compose_job(config_dir, config_name, overrides)
    except MissingConfigException as exc:
        raise ConfigError(_unknown_option(exc)) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_explain(exc, config_dir, config_name, overrides)) from exc


def _unknown_option(exc: MissingConfigException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    head = lines[0].split(": ", 1)[-1]
    options = list(exc.options or [])
    missing = (exc.missing_cfg_file or "").rsplit("/", 1)[-1]
    near = difflib.get_close_matches(missing, options, n=1)
    hint = f"; did you mean {near[0]}?" if near else ""
    return f"{head}{hint} Options: {', '.join(sorted(options))}" if options else head + hint


def _explain(exc: Exception, config_dir: Path, config_name: str, overrides: List[str]) -> str:
    cause = exc.__cause__ or exc
    full_key = getattr(cause, "full_key", None)
    text = str(cause).splitlines()[0]
    if full_key and ("not in struct" in str(cause) or type(cause).__name__ == "ConfigAttributeError"):
        bad = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") == full_key]
        rest = [o for o in overrides if o not in bad]
        keys = [k for k in flatten(OmegaConf.to_container(compose_job(config_dir, config_name, rest), resolve=False))
                if not k.startswith("hydra.")]
        near = difflib.get_close_matches(full_key, keys, n=1, cutoff=0.6)
        hint = f" Did you mean {near[0]}?" if near else " `--cfg job` prints every key."
        return f"{full_key} is not a key of this config.{hint}"
    if full_key:
        return f"{full_key}: {text}"
    return text
