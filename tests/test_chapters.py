"""Every chapter experiment composes and runs a few steps (trainer=smoke) on tiny copies of its
dataset, written in the original formats and served from loopback, through the real download path."""

from __future__ import annotations

import math
from typing import Dict, List

import pytest

from data_fixtures import NAMES, payload_sha_of, sha256_of, write_tiny_dataset
from mgelab.data.california_housing import ARCHIVE as CALIFORNIA_ARCHIVE
from mgelab.data.cifar10 import ARCHIVE as CIFAR_ARCHIVE
from test_data_california import table
from test_data_california import write_archive as write_california
from test_data_cifar10 import batches
from test_data_cifar10 import write_archive as write_cifar
from train_config import CONF, compose_train

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# These need more than their dataset served (pretrained weights): smoke-run in their own test file.
OWN_TEST = {"ch6_finetune_resnet18_cifar10"}  # tests/test_resnet18.py


def hash_overrides(hashes: Dict[str, str]) -> str:
    return "data.sha256={" + ",".join(f"{name}:{value}" for name, value in hashes.items()) + "}"


def serve_dataset(data_name: str, server) -> List[str]:
    """Write a tiny copy of ``data_name`` under the server root; overrides that point the config at it."""
    folder = server.root / data_name
    folder.mkdir(exist_ok=True)
    url = f"{server.url}/{data_name}"
    if data_name in ("mnist", "fashion_mnist"):
        tiny = write_tiny_dataset(folder)
        hashes = {name: payload_sha_of(tiny.path(name)) for name in NAMES}
        return [f"data.base_url={url}", "data.system_dirs=[]", "data.val_size=4", hash_overrides(hashes)]
    if data_name == "cifar10":
        archive = write_cifar(folder / CIFAR_ARCHIVE.name, batches())
        return [f"data.base_url={url}", "data.val_size=6", hash_overrides({CIFAR_ARCHIVE.name: sha256_of(archive)})]
    if data_name == "california_housing":
        archive = write_california(folder / CALIFORNIA_ARCHIVE.remote_name, table())
        return [f"data.base_url={url}", hash_overrides({CALIFORNIA_ARCHIVE.name: sha256_of(archive)})]
    return []  # made in memory


def test_every_chapter_has_an_experiment():
    for chapter in ("ch1_", "ch2_", "ch3_", "ch4_", "ch5_", "ch6_"):
        assert any(name.startswith(chapter) for name in EXPERIMENTS), chapter


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n not in OWN_TEST])
def test_chapter_runs_a_few_steps(train_run, http_server, name):
    data_name = compose_train([f"experiment={name}"]).data.name  # an experiment may inherit its data choice
    done = train_run([f"experiment={name}", "trainer=smoke", *serve_dataset(data_name, http_server)])
    assert done.cfg.experiment_name.startswith(name[:4])  # one MLflow experiment per chapter
    assert done.run.info.status == "FINISHED" and done.run.data.tags["experiment"] == name
    metrics = done.metrics
    assert metrics["best_epoch"] == 1.0 and math.isfinite(metrics["test/loss"])
    assert done.value == metrics["monitor/best_value"]  # what train() returned is what the run recorded
    params = done.run.data.params
    assert params["optim.name"] in {"sgd", "adam", "adamw"}, params["optim.name"]  # a choice's name, not its repr
    assert params["optim.schedule.kind"] in {"none", "step", "cosine"}
    assert (done.run_dir / "plots" / "learning_curves.png").is_file()
    if done.run.data.params["data_info.task"] == "regression":
        assert {"baseline/test_r2", "baseline/test_mae"} <= set(metrics)
    else:
        assert 0.0 <= metrics["test/acc"] <= 1.0


def test_ch1_recovers_the_least_squares_line(train_run):
    """Chapter 1's target: SGD's w and b within 0.05 of the closed-form fit on the same split."""
    final = train_run(["experiment=ch1_line_fit"]).metrics
    assert abs(final["model/fc.weight_0"] - final["baseline/w_0"]) < 0.05
    assert abs(final["model/fc.bias_0"] - final["baseline/b_0"]) < 0.05
    assert abs(final["baseline/w_0"] - 5.0) < 0.5  # and the data really is y = 5x + 2 + noise
