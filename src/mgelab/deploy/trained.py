"""Export a trained model (a local checkpoint) to a checked ``.mge``.

The checkpoint is loaded with ``mgelab.serving.loading``; the graph takes the training data's raw
samples (uint8 pixels for images) and applies its normalisation itself unless ``raw_input=False``.
A tracked run's checkpoint reaches here as a local path: ``mgelab.run.artifacts`` fetches it and
logs the export back to the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from mgelab.deploy.export import ExportOptions, ExportResult, export_model
from mgelab.deploy.graph import Normalization
from mgelab.serving.loading import TrainedModel, load_trained


@dataclass(frozen=True)
class ExportSource:
    """A local checkpoint to export (a checkpoint directory, its manifest, or a run's ``checkpoints/``
    folder, whose best is taken), and how the export names it. A checkpoint fetched from elsewhere
    (a tracked run, into a temporary folder) names where it came from rather than its local path:
    ``origin`` goes into the description, ``label`` into the default file name."""

    checkpoint: str
    origin: Optional[Dict[str, Any]] = None
    label: Optional[str] = None

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise ValueError("give the checkpoint to export: checkpoint=<checkpoint directory>")

    def describe(self) -> Dict[str, Any]:
        if self.origin is not None:
            return dict(self.origin)
        return {"checkpoint": str(Path(self.checkpoint).resolve())}

    def load(self) -> TrainedModel:
        return load_trained(self.checkpoint)

    def default_name(self, trained: TrainedModel) -> str:
        """``<model>_<label>``; without a label, ``<model>_<checkpoint directory name>``."""
        model = str(trained.model_config.get("name", type(trained.model).__name__.lower()))
        return f"{model}_{self.label or Path(trained.checkpoint or self.checkpoint).name}"


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
