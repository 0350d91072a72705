"""Range checks on a composed config, run before anything is built: each failure names the
key, the value and what is allowed."""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

from omegaconf import DictConfig, OmegaConf

from mgelab.models.layers import ACTIVATIONS
from mgelab.models.registry import list_models


class ConfigValueError(ValueError):
    pass


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _positive(value: Any) -> bool:
    return value > 0


def _fraction_or_count(value: Any) -> bool:
    # val_size below 1 is a fraction of the training set, 1 or more a count; 1.0 would leave nothing.
    return value >= 0 and (value < 1 or float(value).is_integer())


CHECKS: List[Tuple[str, Callable[[Any], bool], str]] = [
    ("optim.lr", _positive, "> 0"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data.batch_size", _positive, "> 0"),
    ("data.eval_batch_size", _positive, "> 0"),
    ("data.val_size", _fraction_or_count, "a fraction in [0, 1) or a whole count"),
    ("trainer.max_epochs", lambda v: v >= 1, ">= 1"),
    ("trainer.log_every_n_steps", lambda v: v >= 1, ">= 1"),
    ("model.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("model.activation", lambda v: v in ACTIVATIONS, f"one of {sorted(ACTIVATIONS)}"),
    ("model.name", lambda v: v in list_models(), f"one of {list_models()}"),
]


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigValueError listing every bad value (keys absent from this config are skipped)."""
    problems = []
    for key, ok, allowed in CHECKS:
        value = _get(cfg, key)
        if value is not None and not ok(value):
            shown = format(value, "g") if isinstance(value, float) else value  # -1.0 was typed as -1
            problems.append(f"{key}={shown} must be {allowed}")
    if problems:
        raise ConfigValueError("invalid config:\n  " + "\n  ".join(problems))
