"""Range checks on a composed config, run before anything heavy is built: each failure names the
key, the value and what is allowed.

Types and choices were checked while composing (``schema.py``); the ranges, and the types the
schemas leave open (a split size that is a fraction or a count), are the constructors' own. The
groups whose objects only store settings (optim with its schedule, trainer, data: a data module
reads nothing until asked) are instantiated and their errors collected; the model, which would
allocate its parameters, is checked through the functions its constructors call, and against the
sample the data config states (its shape and task), so a model that cannot take the data fails
here, offline, instead of after a download.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mgelab.data.progressive import as_pairs
from mgelab.models.layers import make_activation
from mgelab.models.mlp import check_dropout
from mgelab.models.registry import fit_problem, model_spec, size_free_models

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


# Model options checked without building the model: (key, the check its constructor runs).
MODEL_CHECKS: List[Tuple[str, Callable[[Any], Any]]] = [
    ("name", model_spec),
    ("activation", make_activation),
    ("dropout", check_dropout),
]


def _check(fn: Callable[[Any], Any], value: Any, problems: List[str]) -> Any:
    """``fn(value)``, or None with its message added to ``problems``."""
    try:
        return fn(value)
    except (ValueError, KeyError, TypeError, InstantiationException) as error:
        problems.append(_message(_root_cause(error)))
        return None


def _model_fit(model: DictConfig, data: Any) -> Optional[str]:
    """The registry's fit check on the sample the data's settings state; None when it fits, when
    the data can say only once it is read, or when the model name is unknown (reported already)."""
    declared = getattr(data, "declared_sample", None)
    sample = declared() if declared is not None else None
    if sample is None or model.get("name") is None:
        return None
    try:
        return fit_problem(model.name, sample.shape, sample.task, data=data.name) or _size_problem(model.name, data)
    except KeyError:
        return None


def _size_problem(model_name: str, data: Any) -> Optional[str]:
    """Progressive resizing (``data.train_sizes``) trains on other image sizes than the model is built
    for: only models that pool globally take that."""
    stages = getattr(data, "train_sizes", None)
    if not stages or model_spec(model_name).any_input_size:
        return None
    return (f"data.train_sizes={as_pairs(stages)} trains on other image sizes, but model {model_name!r} takes "
            f"only the size it is built for; use a model that pools globally ({size_free_models()}) "
            "or data.train_sizes=null")


def config_problems(cfg: DictConfig) -> List[str]:
    """Every bad value of ``cfg`` (groups and keys absent from it are skipped)."""
    problems: List[str] = []
    built: Dict[str, Any] = {}
    for group in LIGHT_GROUPS:
        if OmegaConf.select(cfg, group) is not None:
            built[group] = _check(instantiate, cfg[group], problems)
    model = OmegaConf.select(cfg, "model")
    if model is None:
        return problems
    for key, fn in MODEL_CHECKS:
        if model.get(key) is not None:
            _check(fn, model[key], problems)
    misfit = _model_fit(model, built.get("data"))
    if misfit:
        problems.append(misfit)
    return problems


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigValueError listing every bad value."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigValueError("invalid config:\n  " + "\n  ".join(problems))
