"""A logger that keeps everything in memory, for asserting what the trainer reported."""

from __future__ import annotations

import os
import signal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mgelab.tracking.base import DatasetSplit, LoggerContext


class RecordingLogger(LoggerContext):
    def __init__(self) -> None:
        self.params: Dict[str, Any] = {}
        self.metrics: List[Tuple[int, Dict[str, float]]] = []
        self.artifacts: List[Tuple[str, Optional[str]]] = []
        self.tags: Dict[str, Any] = {}
        self.datasets: List[DatasetSplit] = []
        self.status: Optional[str] = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path, artifact_path: Optional[str] = None) -> None:
        self.artifacts.append((str(path), artifact_path))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tags.update(tags)

    def log_datasets(self, datasets: Sequence[DatasetSplit]) -> None:
        self.datasets.extend(datasets)

    def close(self, status: str = "FINISHED") -> None:
        self.status = status

    def series(self, key: str) -> List[Tuple[int, float]]:
        return [(step, values[key]) for step, values in self.metrics if key in values]


class InterruptAt(RecordingLogger):
    """Sends this process SIGINT when step ``step`` is logged, as a user's Ctrl-C would."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        super().log_metrics(metrics, step)
        if "step/train_loss" in metrics and step == self.step:
            os.kill(os.getpid(), signal.SIGINT)
