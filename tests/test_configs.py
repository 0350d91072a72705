"""Every option of every config group composes, resolves and instantiates."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import pickle
import typing
from pathlib import Path

import pytest
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf

from mgelab.config.resolvers import paths_value
from mgelab.models import model_spec
from mgelab.tracking.base import NullLogger
from mgelab.train import LRSchedule, OptimizerFactory, Trainer
from train_config import CONF, compose_train

SMALL_DATA = ["data=synthetic"]


def options(group: str) -> list:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_group_has_options():
    groups = ("data", "model", "optim", "optim/schedule", "trainer", "logger", "paths", "hydra", "experiment")
    for group in groups:
        assert options(group), f"conf/{group} has no options"


@pytest.mark.parametrize("name", options("data"))
def test_data_options_instantiate_lazily(compose_cfg, name):
    cfg = compose_cfg([f"data={name}"])
    data = instantiate(cfg.data)
    # Instantiation must not load anything: composing a config stays offline and fast.
    assert data._splits is None
    assert data.name == cfg.data.name


def small_data_for(model_config: str) -> list:
    """Offline data a model accepts: its registry spec says which task and sample shape."""
    model_name = OmegaConf.load(CONF / "model" / f"{model_config}.yaml").name
    spec = model_spec(model_name)
    if "classification" not in spec.tasks:
        return ["data=synthetic_line"]
    shape = spec.example_input_shape if len(spec.example_input_shape) == 3 else (1, 8, 8)
    return SMALL_DATA + [f"data.image_shape=[{','.join(map(str, shape))}]"]


@pytest.mark.parametrize("name", options("model"))
def test_model_options_build_for_data(compose_cfg, name):
    cfg = compose_cfg(small_data_for(name) + [f"model={name}"])
    data = instantiate(cfg.data)
    model = instantiate(cfg.model, input_shape=data.input_shape, num_outputs=data.num_outputs, task=data.task)
    assert model.registry_name == cfg.model.name


@pytest.mark.parametrize("name", options("optim"))
@pytest.mark.parametrize("schedule", options("optim/schedule"))
def test_optim_options_build_an_optimizer(compose_cfg, name, schedule):
    cfg = compose_cfg(SMALL_DATA + [f"optim={name}", f"optim/schedule={schedule}"])
    factory = instantiate(cfg.optim)
    assert isinstance(factory, OptimizerFactory) and isinstance(factory.schedule, LRSchedule)
    assert factory.schedule.kind == schedule
    data = instantiate(cfg.data)
    model = instantiate(cfg.model, input_shape=data.input_shape, num_outputs=data.num_outputs)
    optimizer = factory(model.parameters())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr)


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_options(compose_cfg, tmp_path, name):
    cfg = compose_cfg([f"trainer={name}"])
    trainer = instantiate(cfg.trainer)
    assert isinstance(trainer, Trainer)
    # hydra.run.dir is honoured: checkpoints go under the run's directory.
    assert str(trainer.checkpoint_dir).startswith(str(tmp_path / "run"))


def test_logger_none_is_null(compose_cfg):
    assert isinstance(instantiate(compose_cfg(["logger=none"]).logger), NullLogger)


def test_logger_mlflow_uses_sqlite_under_outputs(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose_cfg([])
    assert cfg.logger.tracking_uri == f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    with instantiate(cfg.logger) as logger:
        assert logger.run_id
    assert (tmp_path / "outputs" / "mlflow.db").is_file()


def test_env_tracking_uri_overrides_default(compose_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/elsewhere.db")
    assert compose_cfg([]).logger.tracking_uri == f"sqlite:///{tmp_path}/elsewhere.db"


@pytest.mark.parametrize("overrides", [[], ["data=cifar10", "model=resnet18"]])
def test_a_composed_config_pickles(compose_cfg, overrides):
    """A launcher sends the config to its worker processes pickled: its schemas and Enums are found by name."""
    cfg = compose_cfg(overrides)
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_default_run_is_fashion_mnist_mlp(compose_cfg):
    cfg = compose_cfg([])
    assert (cfg.data.name, cfg.model.name) == ("fashion_mnist", "mlp")
    assert Path(cfg.paths.root_dir).is_absolute()


@pytest.mark.parametrize("name", options("experiment"))
def test_experiments_resolve_and_instantiate(compose_cfg, name):
    cfg = compose_cfg([f"experiment={name}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    for group in ("data", "optim", "trainer"):
        assert instantiate(cfg[group]) is not None
    # Hydra reads "# @package" only as the very first line; the command comes right after.
    package, command, expected = (CONF / "experiment" / f"{name}.yaml").read_text().splitlines()[:3]
    assert package == "# @package _global_"
    assert command.startswith(f"# python scripts/train.py experiment={name}"), f"{name}.yaml: command first"
    assert expected.startswith("# Expected:"), f"{name}.yaml: expected result and time second"


@pytest.mark.parametrize("group", ["data", "model", "experiment"])
def test_unknown_group_option_lists_the_valid_ones(compose_cfg, group):
    with pytest.raises(Exception) as info:
        compose_cfg([f"{group}=no_such_option"])
    message = str(info.value)
    assert "no_such_option" in message
    assert all(option in message for option in options(group))


# --- one source per setting: each option composes the code's defaults unless it says why -------
# The settings an option exists to choose, where it differs from the constructor's default.
OPTION_CHOICES = {
    # Where the ImageNet weights come from (load_pretrained's options); the builder's default is none.
    "model/resnet18": {"weights"},
    # The CNN `model=cnn data=cifar10` trains (three blocks with BatchNorm; the class keeps the two-block
    # net of the PyTorch twin in scripts/bench.py), and CIFAR-10 augmented by default (docs/results.md).
    "model/cnn": {"channels", "hidden_size", "batch_norm"},
    "data/cifar10": {"augment"},
    # Adam's usual learning rate; AdamW also decouples a weight decay.
    "optim/adam": {"name", "lr"},
    "optim/adamw": {"name", "lr", "weight_decay"},
    "optim/schedule/none": {"kind"},
    "optim/schedule/step": {"kind"},
    # A few steps of everything, quietly, tracked apart as a debug run (<experiment>_debug).
    "trainer/smoke": {"max_epochs", "limit_train_batches", "limit_eval_batches", "log_every_n_steps", "progress_bar",
                      "debug"},
}
BUILDING_GROUPS = ("data", "model", "optim", "optim/schedule", "trainer", "logger")


def default_run_choices() -> dict:
    """The option of each group that conf/train.yaml (the default run) picks."""
    return OmegaConf.to_container(compose_train([]).hydra.runtime.choices)


def keyword_defaults(fn) -> tuple:
    """(defaults of ``fn``'s keyword parameters, whether it passes on **kwargs)."""
    if dataclasses.is_dataclass(fn):
        return {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(fn)}, False
    params = inspect.signature(fn).parameters.values()
    return ({p.name: p.default for p in params if p.default is not inspect.Parameter.empty},
            any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params))


def class_defaults(cls) -> dict:
    """Defaults along the constructor chain: a subclass's own default wins; a None default with a
    ``default_<key>`` class attribute (the remote datasets' convention) means that attribute."""
    found: dict = {}
    for klass in cls.__mro__ if not dataclasses.is_dataclass(cls) else (cls,):
        if "__init__" not in vars(klass) and not dataclasses.is_dataclass(klass):
            continue
        own, passes_on = keyword_defaults(klass if dataclasses.is_dataclass(klass) else klass.__init__)
        found = {**own, **found}
        if not passes_on:
            break
    return {k: getattr(cls, f"default_{k}", None) if v is None else v for k, v in found.items()}


def code_defaults(node) -> dict:
    """The defaults of what ``node`` builds; a model builder's **kwargs go to the class it returns."""
    target = get_object(node._target_)
    if node._target_ != "mgelab.models.create_model":
        return class_defaults(target)
    build = model_spec(node.name).build
    own, passes_on = keyword_defaults(build)
    returned = typing.get_type_hints(build)["return"]
    return {**(class_defaults(returned) if passes_on else {}), **own}


def plain(value):
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value.value if isinstance(value, enum.Enum) else value


def compared_keys(node, expected: dict) -> list:
    """Keys with a code default, minus interpolations and nested built objects (optim.schedule is
    the group optim/schedule, compared on its own)."""
    def built(value) -> bool:
        return OmegaConf.is_config(value) and "_target_" in value

    return [key for key in node if key in expected and not OmegaConf.is_interpolation(node, key)
            and not built(node[key])]


@pytest.mark.parametrize("group, option", [(g, o) for g in BUILDING_GROUPS for o in options(g)])
def test_option_defaults_are_the_codes(group, option):
    """Each option of a group that builds something composes its constructor's defaults.

    Rule: every key of the option's composed node that the constructor takes with a default
    equals that default, unless (a) it is an interpolation (``${epochs}``, ``${seed}``, the run,
    data and tracking locations: the run decides them) or (b) it is one of the settings the option
    exists to choose, listed in OPTION_CHOICES with the reason. The options conf/train.yaml picks
    (the default run) may list none, so the default run is exactly the code's defaults; a listed
    key must really differ (no stale entries). Keys the code takes without a default (data_dir) or
    not at all (the registry's model name) are not compared, nor nested built objects (compared as
    their own group). Defaults follow **kwargs to the base classes and a model builder's to the
    class it returns.
    """
    node = OmegaConf.select(compose_train([f"{group}={option}"]), group.replace("/", "."))
    expected = code_defaults(node)
    choices = OPTION_CHOICES.get(f"{group}/{option}", set())
    assert default_run_choices()[group] != option or not choices, f"{group}={option} is the default run's"
    values = OmegaConf.to_container(node)
    differing = {key for key in compared_keys(node, expected) if plain(values[key]) != plain(expected[key])}
    drifted = {key: (node[key], expected[key]) for key in differing - choices}
    assert not drifted, f"conf/{group}/{option}.yaml differs from the code's defaults: {drifted}"
    assert choices <= differing, f"OPTION_CHOICES lists {choices - differing} for {group}/{option}: stale"


def test_make_ui_reads_the_loggers_store(compose_cfg, monkeypatch):
    """The Makefile's `ui` asks paths_value for the store; it is the one runs log to."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MGELAB_ROOT", str(CONF.parent))
    cfg = compose_cfg([f"paths.output_dir={CONF.parent / 'outputs'}"])
    assert paths_value("tracking_uri") == cfg.logger.tracking_uri == cfg.paths.tracking_uri
