"""The model registry: every model is created by name, and declares what data it accepts.

Hydra reaches it through ``_target_: mgelab.models.create_model``; the tests walk
``list_models()`` so a newly registered model is covered without writing a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import megengine.module as M

InputCheck = Callable[[Tuple[int, ...]], Optional[str]]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., M.Module]
    tasks: Tuple[str, ...]
    # Number of dimensions of one sample: 1 for feature vectors, 3 for CHW images.
    input_ranks: Tuple[int, ...]
    # A shape that tests can feed and on which a fit is cheap.
    example_input_shape: Tuple[int, ...]
    # Model-specific shape rule beyond the rank (e.g. LeNet's fixed 32x32): given one
    # sample's shape, returns None when it fits, otherwise why not.
    input_check: Optional[InputCheck] = None
    # True for models that pool globally: they take images of any size, not only the one they were
    # built for (what progressive resizing, ``data.train_sizes``, needs).
    any_input_size: bool = False


_REGISTRY: Dict[str, ModelSpec] = {}
# Names that earlier versions registered for a model now registered under another name: checkpoints
# and tracked runs store model.name, and the module (its parameter names) is the same, so they load.
ALIASES: Dict[str, str] = {"linear_regression": "linear"}


def register_model(
    name: str,
    *,
    tasks: Sequence[str] = ("classification",),
    input_ranks: Sequence[int] = (1, 3),
    example_input_shape: Sequence[int] = (1, 8, 8),
    input_check: Optional[InputCheck] = None,
    any_input_size: bool = False,
) -> Callable[[Callable[..., M.Module]], Callable[..., M.Module]]:
    def add(build: Callable[..., M.Module]) -> Callable[..., M.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(
            name, build, tuple(tasks), tuple(input_ranks), tuple(example_input_shape), input_check, any_input_size
        )
        return build

    return add


def list_models() -> List[str]:
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    """The spec registered as ``name`` (or as the model an alias names)."""
    spec = _REGISTRY.get(ALIASES.get(name, name))
    if spec is None:
        raise KeyError(f"model.name={name!r} is not registered; choose one of {list_models()}")
    return spec


def _problem(spec: ModelSpec, shape: Tuple[int, ...], task: str) -> Optional[str]:
    """Why ``spec`` cannot take samples of ``shape`` for ``task``, or None when it can."""
    # The task first: a regression model on class labels is wrong whatever the shape.
    if task not in spec.tasks:
        return f"it supports tasks {spec.tasks}, not the data's task {task!r}"
    if len(shape) not in spec.input_ranks:
        return f"it takes samples of rank {spec.input_ranks}, not rank {len(shape)}"
    return spec.input_check(shape) if spec.input_check is not None else None


def models_for(input_shape: Sequence[int], task: str = "classification") -> List[str]:
    """The registered models that accept samples of ``input_shape`` for ``task``."""
    shape = tuple(int(s) for s in input_shape)
    return [name for name in list_models() if _problem(_REGISTRY[name], shape, task) is None]


def size_free_models() -> List[str]:
    """The registered models that take images of any size (``ModelSpec.any_input_size``)."""
    return [name for name in list_models() if _REGISTRY[name].any_input_size]


def fit_problem(name: str, input_shape: Sequence[int], task: str, data: Optional[str] = None) -> Optional[str]:
    """Why model ``name`` cannot take samples of ``input_shape`` for ``task`` (naming the data, when
    given, and the models that fit it), or None when it can. Needs only the shape, not the data:
    ``mgelab.config.validate`` asks it with the shape a data config states, before any download."""
    shape = tuple(int(s) for s in input_shape)
    problem = _problem(model_spec(name), shape, task)
    if problem is None:
        return None
    where = f"data {data!r}" if data else "the data"
    return (f"model {name!r} does not fit {where} (sample shape {shape}, task {task!r}): {problem}; "
            f"models that fit this data: {models_for(shape, task)}")


def create_model(
    name: str,
    input_shape: Sequence[int],
    num_outputs: int,
    task: str = "classification",
    **kwargs,
) -> M.Module:
    """Build model ``name`` for samples of ``input_shape`` and ``num_outputs`` outputs.

    A model/data mismatch (a CNN on feature vectors, a classifier on a regression task)
    fails here, before any training time is spent.
    """
    spec = model_spec(name)
    shape = tuple(int(s) for s in input_shape)
    problem = fit_problem(name, shape, task)
    if problem:
        raise ValueError(problem)
    model = spec.build(input_shape=shape, num_outputs=int(num_outputs), **kwargs)
    model.registry_name = spec.name
    return model
