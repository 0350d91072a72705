"""What a data config states about its samples before anything is read (validation checks the
model against it offline, before any download; see test_config_values.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from mgelab.data.arrays import ArrayDataModule
from mgelab.data.settings import SampleInfo

CONF = Path(__file__).resolve().parents[1] / "conf"


# What each data option states about its samples without reading anything.
DECLARED = {
    "california_housing": SampleInfo((8,), "regression", 1),
    "cifar10": SampleInfo((3, 32, 32), "classification", 10),
    "fashion_mnist": SampleInfo((1, 28, 28), "classification", 10),
    "mnist": SampleInfo((1, 28, 28), "classification", 10),
    "synthetic": SampleInfo((1, 8, 8), "classification", 4),
    "synthetic_line": SampleInfo((1,), "regression", 1),
}


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "data").glob("*.yaml")))
def test_every_data_option_states_its_sample_without_loading(compose_cfg, name):
    data = instantiate(compose_cfg([f"data={name}"]).data)
    assert data.declared_sample() == DECLARED[name]
    assert data._splits is None


def test_the_stated_sample_follows_the_settings(compose_cfg):
    cifar = instantiate(compose_cfg(["data=cifar10", "data.resize=[64,48]"]).data)
    assert cifar.declared_sample().shape == (3, 64, 48)
    synthetic = instantiate(compose_cfg(["data=synthetic", "data.image_shape=[3,5,7]", "data.num_classes=6"]).data)
    assert synthetic.declared_sample() == SampleInfo((3, 5, 7), "classification", 6)
    assert ArrayDataModule(name="unknown").declared_sample() is None  # only its data could say: skipped


