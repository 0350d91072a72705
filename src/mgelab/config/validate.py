"""Range checks on a composed config, run before anything heavy is built: each failure names the
key, the value and what is allowed.

The checks are the constructors' own. The groups whose objects only store settings (optim with
its schedule, trainer, data: a data module reads nothing until asked) are instantiated and their
errors collected; the model, which would allocate its parameters, is checked through the
functions its constructors call.
"""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mgelab.models.layers import make_activation
from mgelab.models.mlp import check_dropout
from mgelab.models.registry import model_spec

# Groups whose constructors are cheap and load nothing.
LIGHT_GROUPS = ("optim", "trainer", "data")


class ConfigValueError(ValueError):
    pass


def _root_cause(error: BaseException) -> BaseException:
    """Hydra wraps a constructor's error; the constructor's message is what names the key."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def _message(error: BaseException) -> str:
    # KeyError's str() is the repr of its argument; the argument is the message.
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def _fraction_or_count(value: Any) -> None:
    # The data module applies val_size only when it splits (after reading the data): check it now.
    if not (value >= 0 and (value < 1 or float(value).is_integer())):
        raise ValueError(f"data.val_size={value:g} must be a fraction in [0, 1) or a whole count")


# Model options checked without building the model: (key, the check its constructor runs).
MODEL_CHECKS: List[Tuple[str, Callable[[Any], Any]]] = [
    ("name", model_spec),
    ("activation", make_activation),
    ("dropout", check_dropout),
]


def _check(fn: Callable[[Any], Any], value: Any, problems: List[str]) -> None:
    try:
        fn(value)
    except (ValueError, KeyError, TypeError, InstantiationException) as error:
        problems.append(_message(_root_cause(error)))


def config_problems(cfg: DictConfig) -> List[str]:
    """Every bad value of ``cfg`` (groups and keys absent from it are skipped)."""
    problems: List[str] = []
    for group in LIGHT_GROUPS:
        if OmegaConf.select(cfg, group) is not None:
            _check(instantiate, cfg[group], problems)
    val_size = OmegaConf.select(cfg, "data.val_size")
    if val_size is not None:
        _check(_fraction_or_count, val_size, problems)
    model = OmegaConf.select(cfg, "model")
    for key, fn in MODEL_CHECKS if model is not None else ():
        if model.get(key) is not None:
            _check(fn, model[key], problems)
    return problems


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigValueError listing every bad value."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigValueError("invalid config:\n  " + "\n  ".join(problems))
