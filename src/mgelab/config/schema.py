"""Typed schemas for the config groups whose keys are fixed (trainer, optim, optim/schedule),
derived from the constructors they configure and registered in Hydra's ConfigStore.

Each field's type and default is the constructor parameter's annotation and default, so a
setting is written once, in the code; the group files list ``schema`` first in their defaults
and then write only what an option changes. A wrong type or an unknown choice (a ``Literal``
or a value tuple, turned into an Enum) fails while composing, naming the key and the allowed
values. Ranges are the constructors' own checks, which ``validate.py`` runs right after.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from enum import Enum
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from hydra.core.config_store import ConfigStore

from mgelab.train.device import DEVICES
from mgelab.train.optim import OptimizerFactory
from mgelab.train.schedule import LRSchedule
from mgelab.train.trainer import Trainer

# Plain types OmegaConf can check; anything else (unions of them, callables) becomes Any.
PLAIN = (bool, int, float, str)


def choice_enum(name: str, values: Sequence[str]) -> type:
    """A str Enum of ``values`` (in their order, which is how Hydra lists them)."""
    return Enum(name.title().replace("_", ""), [(v, v) for v in values], type=str, module=__name__)


def field_type(hint: Any, name: str) -> Any:
    """The OmegaConf-checkable type of one annotation; a ``Literal`` becomes an Enum of its values."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in PLAIN:
        return hint
    if origin is typing.Literal:
        return choice_enum(name, args)
    if origin is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return Optional[field_type(rest[0], name)] if len(rest) == 1 else Any
    if origin in (list, tuple, collections.abc.Sequence) and args:
        return List[args[0]] if args[0] in PLAIN else List[Any]
    return Any


def field_default(default: Any, ftype: Any) -> dataclasses.Field:
    if isinstance(ftype, type) and issubclass(ftype, Enum) and default is not None:
        return dataclasses.field(default=ftype(default))
    if isinstance(default, (list, tuple)):
        # A fresh list per instance: dataclasses refuse a shared mutable default.
        return dataclasses.field(default_factory=lambda: list(default))
    return dataclasses.field(default=default)


def parameters(target: Callable) -> List[Tuple[str, Any, Any]]:
    """(name, annotation, default) of every keyword parameter with a default."""
    if dataclasses.is_dataclass(target):
        hints = typing.get_type_hints(target)
        return [(f.name, hints[f.name], f.default if f.default_factory is dataclasses.MISSING
                 else f.default_factory()) for f in dataclasses.fields(target) if f.init]
    init = target.__init__ if isinstance(target, type) else target
    hints = typing.get_type_hints(init)
    return [(p.name, hints.get(p.name, Any), p.default) for p in inspect.signature(init).parameters.values()
            if p.default is not inspect.Parameter.empty]


def schema_of(target: Callable, target_path: str, *, choices: Mapping[str, Sequence[str]] = (),
              nested: Mapping[str, type] = ()) -> type:
    """A dataclass with ``_target_`` and one field per defaulted parameter of ``target``.

    ``choices`` names parameters annotated ``str`` whose values come from a tuple (they become
    Enums); ``nested`` gives the schema of a parameter that is itself a configured object.
    """
    choices, nested = dict(choices), dict(nested)
    fields: List[Tuple[str, Any, dataclasses.Field]] = [
        ("_target_", str, dataclasses.field(default=target_path))
    ]
    for name, hint, default in parameters(target):
        if name in nested:
            schema = nested[name]
            fields.append((name, schema, dataclasses.field(default_factory=schema)))
            continue
        ftype = field_type(typing.Literal[tuple(choices[name])] if name in choices else hint, name)
        fields.append((name, ftype, field_default(default, ftype)))
    schema = dataclasses.make_dataclass(f"{target.__name__}Schema", fields)
    schema.__module__ = __name__
    return schema


ScheduleSchema = schema_of(LRSchedule, "mgelab.train.schedule.LRSchedule")
OptimSchema = schema_of(OptimizerFactory, "mgelab.train.optim.OptimizerFactory",
                        nested={"schedule": ScheduleSchema})
TrainerSchema = schema_of(Trainer, "mgelab.train.Trainer", choices={"device": DEVICES})


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(group="trainer", name="schema", node=TrainerSchema)
    store.store(group="optim", name="schema", node=OptimSchema)
