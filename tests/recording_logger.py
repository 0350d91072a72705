"""A logger that keeps everything in memory, for asserting what the trainer reported."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from mgelab.tracking.base import LoggerContext


class RecordingLogger(LoggerContext):
    def __init__(self) -> None:
        self.params: Dict[str, Any] = {}
        self.metrics: List[Tuple[int, Dict[str, float]]] = []
        self.artifacts: List[Tuple[str, Optional[str]]] = []
        self.tags: Dict[str, Any] = {}
        self.status: Optional[str] = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path, artifact_path: Optional[str] = None) -> None:
        self.artifacts.append((str(path), artifact_path))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tags.update(tags)

    def close(self, status: str = "FINISHED") -> None:
        self.status = status

    def series(self, key: str) -> List[Tuple[int, float]]:
        return [(step, values[key]) for step, values in self.metrics if key in values]
