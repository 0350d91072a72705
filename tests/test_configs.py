"""Every option of every config group composes, resolves and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mgelab.config.validate import validate_config
from mgelab.models import model_spec
from mgelab.tracking.base import NullLogger
from mgelab.train import LRSchedule, OptimizerFactory, Trainer

CONF = Path(__file__).resolve().parents[1] / "conf"
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


def full_message(error: BaseException) -> str:
    """An error and its causes: Hydra wraps OmegaConf's message about the value."""
    parts = []
    while error is not None:
        parts.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(parts)


@pytest.mark.parametrize(
    "override, key, allowed",
    [
        ("optim.lr=0", "optim.lr", "> 0"),
        ("optim.lr=fast", "optim.lr", "float"),
        ("optim.name=rmsprop", "optim.name", "sgd, adam, adamw"),
        ("optim/schedule=cosine optim.schedule.kind=linear", "optim.schedule.kind", "none, step, cosine"),
        ("trainer.max_epochs=0", "trainer.max_epochs", ">= 1"),
        ("trainer.max_epochs=ten", "trainer.max_epochs", "int"),
        ("trainer.device=tpu", "trainer.device", "cpu, gpu, auto"),
        ("data.batch_size=0", "data.batch_size", "positive"),
        ("data.val_size=1.5", "data.val_size", "fraction"),
        ("model.activation=swish", "model.activation", "relu"),
        ("model.name=transformer", "model.name", "mlp"),
    ],
)
def test_bad_values_fail_before_anything_is_built(compose_cfg, override, key, allowed):
    """Types and choices fail while composing (schemas), ranges right after (validate_config)."""
    with pytest.raises(Exception) as info:
        validate_config(compose_cfg(SMALL_DATA + override.split()))
    message = full_message(info.value)
    assert key.split(".")[-1] in message and allowed in message, message


@pytest.mark.parametrize("group", ["data", "model", "experiment"])
def test_unknown_group_option_lists_the_valid_ones(compose_cfg, group):
    with pytest.raises(Exception) as info:
        compose_cfg([f"{group}=no_such_option"])
    message = str(info.value)
    assert "no_such_option" in message
    assert all(option in message for option in options(group))
