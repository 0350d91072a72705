"""Shared fixtures: composing the real conf/ tree into a temporary output directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import megengine as mge
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, open_dict

import mgelab.config  # noqa: F401  (registers the resolvers conf/ uses)
from mgelab.run import train

# The loopback HTTP server fixture and tiny-dataset writers live beside the data tests.
pytest_plugins = ["data_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# MegEngine prints its CUDA probe at INFO; tests only need errors.
os.environ.setdefault("MEGENGINE_LOGGING_LEVEL", "ERROR")


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[[List[str]], DictConfig]:
    """Compose ``train.yaml`` with overrides, outputs redirected under ``tmp_path``.

    The Hydra config is registered as it is inside ``@hydra.main``, so ``${hydra:...}``
    interpolations (the run dir) resolve.
    """

    def _compose(overrides: List[str]) -> DictConfig:
        GlobalHydra.instance().clear()
        base = [
            f"paths.output_dir={tmp_path / 'outputs'}",
            f"paths.data_dir={tmp_path / 'data'}",
            "trainer.progress_bar=false",
        ]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=base + list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path / "run")
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
        # What @hydra.main hands to the task function: the config without its hydra node.
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@dataclass
class TrainedRun:
    """What ``mgelab.run.train`` returned for a composed config, and its MLflow record (if tracked)."""

    value: float
    cfg: DictConfig
    run: Optional[Run]

    @property
    def metrics(self) -> Dict[str, float]:
        return dict(self.run.data.metrics) if self.run else {}

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.paths.run_dir)


@pytest.fixture
def train_run(compose_cfg, monkeypatch) -> Callable[[List[str]], TrainedRun]:
    """Compose ``train.yaml`` with overrides and call ``mgelab.run.train`` as scripts/train.py does;
    a tracked run is read back from its (temporary) MLflow store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def _run(overrides: List[str]) -> TrainedRun:
        cfg = compose_cfg(overrides)
        before = mge.get_default_device()
        try:
            value = train(cfg)
        finally:  # train() selects the run's device for the whole process; later tests build on the default
            mge.set_default_device(before)
        if not get_class(cfg.logger._target_).has_store:
            return TrainedRun(value, cfg, None)
        client = MlflowClient(cfg.logger.tracking_uri)
        experiment = client.get_experiment_by_name(cfg.logger.experiment_name)
        newest = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
        return TrainedRun(value, cfg, newest[0])

    return _run
