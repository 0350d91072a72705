"""Typed schemas for the config groups, derived from what each option builds and registered in
Hydra's ConfigStore: trainer, optim and optim/schedule from their constructors, each data module
from its constructor chain, each registered model from its builder.

Each field's type and default is the parameter's annotation and default, so a setting is written
once, in the code, and ``--cfg job`` shows every parameter. The trainer and optim files list
``schema`` first in their defaults and then write only what an option changes; a data option lists
``schema/<its name>@_here_`` (group ``data/schema``) and a model option ``schema/<its model
name>@_here_`` (group ``model/schema``), first, so the YAML below merges into a typed node. A wrong
type or an unknown choice (a ``Literal`` or a value tuple, turned into an Enum) fails while
composing, naming the key and the allowed values. Types OmegaConf cannot express (unions such as
``float | int``, mappings that may be null) stay untyped and are checked by the constructors, which
``validate.py`` runs right after, with the ranges.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import types
import typing
from enum import Enum
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

import mgelab.models  # noqa: F401  (registers every model family)
from mgelab.data.arrays import NORMALIZATIONS
from mgelab.data.california_housing import CaliforniaHousing
from mgelab.data.cifar10 import CIFAR10
from mgelab.data.fashion_mnist import FashionMNIST
from mgelab.data.mnist import MNIST
from mgelab.data.synthetic import SyntheticImages
from mgelab.data.synthetic_line import SyntheticLine
from mgelab.models.init import INIT_SCHEMES
from mgelab.models.layers import ACTIVATIONS
from mgelab.models.pretrained import fetch_weights
from mgelab.models.registry import ModelSpec, list_models, model_spec
from mgelab.models.resnet import SHORTCUTS
from mgelab.nn.conv import CONV_IMPLS
from mgelab.train.device import DEVICES
from mgelab.train.optim import OptimizerFactory
from mgelab.train.schedule import LRSchedule
from mgelab.train.trainer import Trainer

# Plain types OmegaConf can check; anything else (unions of them, callables) becomes Any.
PLAIN = (bool, int, float, str)
SEQUENCES = (list, tuple, collections.abc.Sequence)
MAPPINGS = (dict, collections.abc.Mapping)
# Parameters annotated ``str`` whose values come from a tuple in the code, by parameter name
# (every model family and data module uses these names for the same choice).
CHOICES: Mapping[str, Sequence[str]] = {
    "device": DEVICES,
    "normalization": NORMALIZATIONS,
    "activation": tuple(ACTIVATIONS),
    "init": INIT_SCHEMES,
    "conv_impl": CONV_IMPLS,
    "shortcut": SHORTCUTS,
}
DATA_MODULES = (MNIST, FashionMNIST, CIFAR10, CaliforniaHousing, SyntheticImages, SyntheticLine)
# Not config keys: the dataset knows its class names; the run passes the data's shape and outputs.
DATA_SKIP = ("self", "class_names")
MODEL_SKIP = ("input_shape", "num_outputs")
Param = Tuple[str, Any, Any]  # (name, annotation, default or MISSING)


class Choice(str, Enum):
    """One value of a choice tuple. Printed as the value, so MLflow params and tags read ``cpu``,
    not ``Device.cpu``; equal to the plain string, so the constructors compare it as one."""

    def __str__(self) -> str:
        return str(self.value)


def class_name(key: str) -> str:
    return key.title().replace("_", "")


def exported(cls: type) -> type:
    """Bind a generated class to its name in this module: pickle finds classes by name, and a
    launcher that sends a config to another process pickles its schemas and Enums."""
    if globals().setdefault(cls.__name__, cls) is not cls:
        raise ValueError(f"two generated classes are named {__name__}.{cls.__name__}")
    return cls


@functools.lru_cache(maxsize=None)
def choice_enum(name: str, values: Tuple[str, ...]) -> type:
    """A Choice Enum of ``values`` (in their order, which is how Hydra lists them); one per
    (name, values), so the model families sharing ``conv_impl`` share its Enum."""
    return exported(Choice(class_name(name), [(v, v) for v in values], module=__name__))


def field_type(hint: Any, name: str) -> Any:
    """The OmegaConf-checkable type of one annotation; a ``Literal`` becomes an Enum of its values."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if name in CHOICES and hint is str:
        return choice_enum(name, tuple(CHOICES[name]))
    if hint in PLAIN:
        return hint
    if origin is typing.Literal:
        return choice_enum(name, args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = field_type(rest[0], name) if len(rest) == 1 < len(args) else Any
        # Untyped when it may be null: OmegaConf 2.3 cannot merge a command-line mapping
        # (``data.sha256={file:hash}``) into a typed mapping node that holds null.
        return Optional[inner] if inner is not Any and typing.get_origin(inner) is not dict else Any
    if origin in SEQUENCES and args:
        return List[args[0]] if args[0] in PLAIN else List[Any]
    if origin in MAPPINGS and len(args) == 2 and args[0] is str:
        return Dict[str, args[1] if args[1] in PLAIN else Any]
    return Any


def field_default(default: Any, ftype: Any) -> dataclasses.Field:
    if isinstance(ftype, type) and issubclass(ftype, Enum) and default not in (None, MISSING):
        return dataclasses.field(default=ftype(default))
    if isinstance(default, (list, tuple)):
        # A fresh list per instance: dataclasses refuse a shared mutable default.
        return dataclasses.field(default_factory=lambda: list(default))
    return dataclasses.field(default=default)


def signature_parameters(fn: Callable, skip: Sequence[str]) -> Tuple[List[Param], bool]:
    """(name, annotation, default) of ``fn``'s keyword-capable parameters (MISSING where there is
    no default), and whether it passes ``**kwargs`` on."""
    hints = typing.get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    found = [(p.name, hints.get(p.name, Any), MISSING if p.default is inspect.Parameter.empty else p.default)
             for p in params if p.kind in keyword and p.name not in skip]
    return found, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def merged(*groups: List[Param]) -> List[Param]:
    """The parameters in order; a name's first declaration wins (a subclass's default over its base's)."""
    seen: Dict[str, Param] = {}
    for group in groups:
        for param in group:
            seen.setdefault(param[0], param)
    return list(seen.values())


def class_parameters(cls: type, skip: Sequence[str] = ("self",)) -> List[Param]:
    """The parameters of ``cls``'s constructor and, while a constructor passes ``**kwargs`` on, of
    the next one along the MRO. A None default with a ``default_<name>`` class attribute (the
    downloaded datasets' convention: None means the class's own value) takes that attribute."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return [(f.name, hints[f.name], f.default if f.default_factory is dataclasses.MISSING
                 else f.default_factory()) for f in dataclasses.fields(cls) if f.init]
    chain: List[List[Param]] = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass is not object:
            params, passes_on = signature_parameters(klass.__init__, skip)
            chain.append(params)
            if not passes_on:
                break
    return [(name, hint, getattr(cls, f"default_{name}", None) if default is None else default)
            for name, hint, default in merged(*chain)]


def build_parameters(spec: ModelSpec) -> List[Param]:
    """A registered model's builder parameters and, when it passes ``**kwargs`` on, those of the
    class its return annotation names."""
    own, passes_on = signature_parameters(spec.build, MODEL_SKIP)
    if not passes_on:
        return own
    returned = typing.get_type_hints(spec.build)["return"]
    return merged(own, class_parameters(returned, ("self",) + MODEL_SKIP))


def schema_of(name: str, params: List[Param], *, fixed: Sequence[Tuple[str, str]] = (),
              nested: Mapping[str, type] = ()) -> type:
    """A dataclass with the ``fixed`` str fields (``_target_``, a model's name) and one field per
    parameter; ``nested`` gives the schema of a parameter that is itself a mapping of options."""
    nested = dict(nested)
    fields: List[Tuple[str, Any, dataclasses.Field]] = [
        (key, str, dataclasses.field(default=value)) for key, value in fixed
    ]
    for key, hint, default in params:
        if key in nested and default is None:  # e.g. model.weights: None, or a mapping of options
            fields.append((key, Optional[nested[key]], dataclasses.field(default=None)))
        elif key in nested:
            fields.append((key, nested[key], dataclasses.field(default_factory=nested[key])))
        else:
            ftype = field_type(hint, key)
            fields.append((key, ftype, field_default(default, ftype)))
    schema = dataclasses.make_dataclass(f"{name}Schema", fields)
    schema.__module__ = __name__
    return exported(schema)


def target_schema(cls: type, target_path: str, **options: Any) -> type:
    return schema_of(cls.__name__, class_parameters(cls), fixed=[("_target_", target_path)], **options)


ScheduleSchema = target_schema(LRSchedule, "mgelab.train.schedule.LRSchedule")
OptimSchema = target_schema(OptimizerFactory, "mgelab.train.optim.OptimizerFactory",
                            nested={"schedule": ScheduleSchema})
TrainerSchema = target_schema(Trainer, "mgelab.train.Trainer")
# model.weights: the options of load_pretrained, which hands them to fetch_weights.
WeightsSchema = schema_of("Weights", signature_parameters(fetch_weights, ())[0])


def data_schema(cls: type) -> Tuple[str, type]:
    """(option name, schema) of a data module: conf/data/<option>.yaml is the module's default name."""
    params = class_parameters(cls, DATA_SKIP)
    option = next(default for key, _, default in params if key == "name")
    return option, schema_of(cls.__name__, params, fixed=[("_target_", f"{cls.__module__}.{cls.__qualname__}")])


def model_schema(name: str) -> type:
    """The schema of registered model ``name``: its builder's options under create_model."""
    spec = model_spec(name)
    return schema_of(class_name(name), build_parameters(spec), nested={"weights": WeightsSchema},
                     fixed=[("_target_", "mgelab.models.create_model"), ("name", spec.name)])


DATA_SCHEMAS: Dict[str, type] = dict(data_schema(cls) for cls in DATA_MODULES)
MODEL_SCHEMAS: Dict[str, type] = {name: model_schema(name) for name in list_models()}


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(group="trainer", name="schema", node=TrainerSchema)
    store.store(group="optim", name="schema", node=OptimSchema)
    for option, schema in DATA_SCHEMAS.items():
        store.store(group="data/schema", name=option, node=schema)
    for name, schema in MODEL_SCHEMAS.items():
        store.store(group="model/schema", name=name, node=schema)
