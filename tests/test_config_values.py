"""A config that cannot run is rejected before anything is built or recorded: types and choices
while composing (the schemas), ranges and the model/data fit right after (validate_config), each
failure naming its key, the value and what is allowed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mgelab.config.preflight import ConfigError, check_command_line
from mgelab.config.validate import ConfigValueError, validate_config
from mgelab.models import models_for

CONF = Path(__file__).resolve().parents[1] / "conf"
SMALL_DATA = ["data=synthetic"]


def options(group: str) -> list:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


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
        ("data.val_size=abc", "data.val_size", "fraction"),
        ("data.normalization=zscore", "data.normalization", "per_channel, per_pixel, scalar, none"),
        ("model.activation=swish", "model.activation", "relu"),
        ("model.name=transformer", "model.name", "mlp"),
        ("model.hidden_sizes=[64,abc]", "model.hidden_sizes", "Integer"),
        ("model=resnet model.depth=deep", "model.depth", "int"),
        ("model=cnn model.conv_impl=gpu", "model.conv_impl", "native, fast, auto"),
        ("model=resnet18 model.weights.verify=maybe", "model.weights.verify", "bool"),
        ("trainer.limit_train_batches=0", "trainer.limit_train_batches", "int >= 1"),
        ("trainer.limit_train_batches=1.5", "trainer.limit_train_batches", "fraction in (0, 1]"),
        ("trainer.monitor_mode=best", "trainer.monitor_mode", "'max', 'min' or 'auto'"),
    ],
)
def test_bad_values_fail_before_anything_is_built(compose_cfg, override, key, allowed):
    """Types and choices fail while composing (schemas), ranges right after (validate_config)."""
    with pytest.raises(Exception) as info:
        validate_config(compose_cfg(SMALL_DATA + override.split()))
    message = full_message(info.value)
    assert key in message and allowed in message, message


# The bad values (#14), as scripts/train.py checks its command line: one message naming the key.
@pytest.mark.parametrize(
    "override, named, allowed",
    [
        ("data.batch_size=0", "data.batch_size=0", "positive"),
        ("optim.lr=-1", "optim.lr=-1", "> 0"),
        ("trainer.limit_train_batches=abc", "trainer.limit_train_batches='abc'", "a fraction in (0, 1]"),
        ("model.hidden_sizes=abc", "model.hidden_sizes:", "not a ListConfig, list or tuple"),
        ("model=lenet data=mnist", "model 'lenet' does not fit data 'mnist'", "models that fit this data: ['cnn'"),
    ],
)
def test_the_command_line_check_names_the_key_of_each_bad_value(tmp_path, override, named, allowed):
    argv = [*override.split(), f"paths.data_dir={tmp_path / 'data'}", "logger=none"]
    with pytest.raises((ConfigError, ConfigValueError)) as info:
        check_command_line(argv, CONF, "train", validate_config)
    message = str(info.value)
    assert named in message and allowed in message, message
    assert not (tmp_path / "data").exists()  # nothing fetched, nothing created


@pytest.mark.parametrize("group, name", [(g, o) for g in ("data", "model") for o in options(g)])
def test_every_data_and_model_option_is_typed_by_its_schema(compose_cfg, group, name):
    assert OmegaConf.get_type(compose_cfg([f"{group}={name}"])[group]).__name__.endswith("Schema")


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a connection was opened: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


MNIST_OFFLINE = ["data=mnist", "data.base_url=http://127.0.0.1:9", "data.system_dirs=[]"]


def test_a_model_that_cannot_take_the_data_fails_offline_before_any_download(compose_cfg, tmp_path, offline):
    cfg = compose_cfg([*MNIST_OFFLINE, "model=lenet"])
    with pytest.raises(ConfigValueError) as info:
        validate_config(cfg)
    message = str(info.value)
    assert "model 'lenet' does not fit data 'mnist' (sample shape (1, 28, 28)" in message
    assert f"models that fit this data: {models_for((1, 28, 28))}" in message
    assert not (tmp_path / "data").exists()


def test_a_model_that_fits_the_stated_sample_passes_offline(compose_cfg, tmp_path, offline):
    validate_config(compose_cfg([*MNIST_OFFLINE, "model=cnn"]))
    assert not (tmp_path / "data").exists()


