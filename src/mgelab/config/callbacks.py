"""Hydra callbacks (``conf/hydra/default.yaml`` lists them)."""

from __future__ import annotations

import logging

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class PrepareTrackingStore(Callback):
    """Create the MLflow store and experiment once, before any multirun job starts.

    Jobs that start together would otherwise race to run the schema migrations of a new
    SQLite file and to insert the same experiment.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        logger_cfg = config.get("logger")
        if logger_cfg is None or "tracking_uri" not in logger_cfg:
            return
        from mgelab.tracking.mlflow_logger import prepare_store

        experiment_id = prepare_store(
            logger_cfg.tracking_uri, logger_cfg.experiment_name, logger_cfg.get("artifact_location")
        )
        log.info("MLflow store %s ready, experiment id %s", logger_cfg.tracking_uri, experiment_id)
