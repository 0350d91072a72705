"""The model registry: every model is created by name, and declares what data it accepts.

Hydra reaches it through ``_target_: mgelab.models.create_model``; the tests walk
``list_models()`` so a newly registered model is covered without writing a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import megengine.module as M


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., M.Module]
    tasks: Tuple[str, ...]
    # Number of dimensions of one sample: 1 for feature vectors, 3 for CHW images.
    input_ranks: Tuple[int, ...]
    # A shape that tests can feed and on which a fit is cheap.
    example_input_shape: Tuple[int, ...]


_REGISTRY: Dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    tasks: Sequence[str] = ("classification",),
    input_ranks: Sequence[int] = (1, 3),
    example_input_shape: Sequence[int] = (1, 8, 8),
) -> Callable[[Callable[..., M.Module]], Callable[..., M.Module]]:
    def add(build: Callable[..., M.Module]) -> Callable[..., M.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(name, build, tuple(tasks), tuple(input_ranks), tuple(example_input_shape))
        return build

    return add


def list_models() -> List[str]:
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise KeyError(f"model.name={name!r} is not registered; choose one of {list_models()}")
    return _REGISTRY[name]


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
    if len(shape) not in spec.input_ranks:
        raise ValueError(
            f"model {name!r} takes samples of rank {spec.input_ranks} but the data gives shape {shape}; "
            f"pick a model for this data (models: {list_models()})"
        )
    if task not in spec.tasks:
        raise ValueError(f"model {name!r} supports tasks {spec.tasks}, not the data's task {task!r}")
    model = spec.build(input_shape=shape, num_outputs=int(num_outputs), **kwargs)
    model.registry_name = name
    return model
