"""Export a trained model (a checkpoint, or a tracked run's best checkpoint) to a checked ``.mge``.

The source is loaded with ``mgelab.serving.loading``; the graph takes the training data's raw
samples (uint8 pixels for images) and applies its normalisation itself unless
``raw_input=False``. When the source is a tracked run, the ``.mge`` and its ``.json`` are logged as
artifacts of that run under ``export/``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from mgelab.deploy.export import ExportOptions, ExportResult, export_model
from mgelab.deploy.graph import Normalization
from mgelab.serving.loading import TrainedModel, load_from_run, load_trained

ARTIFACT_DIR = "export"


@dataclass(frozen=True)
class ExportSource:
    """Exactly one of a checkpoint path or a tracked run id (with its store)."""

    checkpoint: Optional[str] = None
    run_id: Optional[str] = None
    tracking_uri: Optional[str] = None

    def __post_init__(self) -> None:
        if (self.checkpoint is None) == (self.run_id is None):
            raise ValueError(
                "give exactly one source: checkpoint=<checkpoint directory> or run_id=<MLflow run id>, "
                f"got checkpoint={self.checkpoint!r}, run_id={self.run_id!r}"
            )
        if self.run_id is not None and not self.tracking_uri:
            raise ValueError(f"run_id={self.run_id} needs tracking_uri= (the store the run is in)")

    def describe(self) -> Dict[str, Any]:
        if self.run_id is not None:
            return {"run_id": self.run_id, "tracking_uri": self.tracking_uri}
        return {"checkpoint": str(Path(self.checkpoint).resolve())}

    def load(self) -> TrainedModel:
        if self.run_id is not None:
            # The downloaded checkpoint is only needed until the model is built.
            with tempfile.TemporaryDirectory(prefix="mgelab-export-") as tmp:
                return load_from_run(self.run_id, self.tracking_uri, tmp)
        return load_trained(self.checkpoint)

    def default_name(self, trained: TrainedModel) -> str:
        model = str(trained.model_config.get("name", type(trained.model).__name__.lower()))
        if self.run_id is not None:
            return f"{model}_{self.run_id[:8]}"
        checkpoint = Path(trained.checkpoint or self.checkpoint)
        return f"{model}_{checkpoint.name}"


def export_trained(
    trained: TrainedModel,
    path: Path | str,
    options: Optional[ExportOptions] = None,
    raw_input: bool = True,
    source: Optional[Dict[str, Any]] = None,
) -> ExportResult:
    """``export_model`` for a loaded checkpoint, with its task, classes and normalisation described."""
    normalization = Normalization(trained.scale, trained.shift)
    extra: Dict[str, Any] = {
        "task": trained.task,
        "num_outputs": trained.num_outputs,
        "class_names": trained.class_names,
        "model_config": trained.model_config,
        "source": source or {"checkpoint": str(trained.checkpoint)},
    }
    if not raw_input:  # the consumer normalises: tell it how
        extra["normalization"] = {"scale": trained.scale.ravel().tolist(), "shift": trained.shift.ravel().tolist(),
                                  "scale_shape": list(trained.scale.shape), "raw_dtype": trained.raw_dtype}
    return export_model(
        trained.model,
        trained.input_shape,
        path,
        normalization=normalization if raw_input else None,
        raw_dtype=trained.raw_dtype if raw_input else "float32",
        options=options or ExportOptions(),
        extra_meta=extra,
    )


def log_to_run(result: ExportResult, run_id: str, tracking_uri: str) -> None:
    """The graph and its description as artifacts ``export/`` of the source run."""
    from mgelab.tracking.mlflow_logger import TrackingStore  # mlflow only when a run is involved

    store = TrackingStore(tracking_uri)
    for file in (result.path, result.meta_path):
        store.log_artifact(run_id, file, ARTIFACT_DIR)
