"""A tracked run's files as local paths for serving and deploy, and an export logged back to its run.

``mgelab.serving`` and ``mgelab.deploy`` take local checkpoint paths and never import tracking; this
layer fetches a run's best checkpoint from the store for them and logs what they produce to the run.
Tracking (MLflow) is imported inside the functions, so a script given a local checkpoint never loads it.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional

from mgelab.deploy.export import ExportResult
from mgelab.serving.loading import TrainedModel, load_trained

# The run artifact folder a run logs its best checkpoint under.
BEST_CHECKPOINT_ARTIFACT = "checkpoints/best"
# The run artifact folder an exported graph and its description are logged under.
EXPORT_ARTIFACT_DIR = "export"


def _require_store(run_id: str, tracking_uri: Optional[str]) -> str:
    if not tracking_uri:
        raise ValueError(f"run_id={run_id} needs tracking_uri= (the store the run is in)")
    return tracking_uri


def fetch_best_checkpoint(run_id: str, tracking_uri: str, dst_dir: Path | str) -> Path:
    """Download the run's best checkpoint under ``dst_dir``; its local directory."""
    from mgelab.tracking.artifacts import download_run_artifacts

    store = _require_store(run_id, tracking_uri)
    return download_run_artifacts(store, run_id, BEST_CHECKPOINT_ARTIFACT, Path(dst_dir))


@contextlib.contextmanager
def temporary_best_checkpoint(run_id: str, tracking_uri: str) -> Iterator[Path]:
    """The run's best checkpoint in a temporary directory that is deleted when the block ends."""
    with tempfile.TemporaryDirectory(prefix=f"mgelab-{run_id[:8]}-") as tmp:
        yield fetch_best_checkpoint(run_id, tracking_uri, tmp)


def load_run_model(run_id: str, tracking_uri: str, dst_dir: Optional[Path | str] = None) -> TrainedModel:
    """The run's best checkpoint, loaded. ``dst_dir``: where its files go and stay; without it they go
    to a temporary directory deleted once the weights are in memory (the model then names no path)."""
    if dst_dir is not None:
        return load_trained(fetch_best_checkpoint(run_id, tracking_uri, dst_dir))
    with temporary_best_checkpoint(run_id, tracking_uri) as checkpoint:
        trained = load_trained(checkpoint)
    return replace(trained, checkpoint=None)


def log_export_to_run(result: ExportResult, run_id: str, tracking_uri: str) -> None:
    """The exported graph and its description as artifacts ``export/`` of the run it came from."""
    from mgelab.tracking.store import TrackingStore

    store = TrackingStore(_require_store(run_id, tracking_uri))
    for file in (result.path, result.meta_path):
        store.log_artifact(run_id, file, EXPORT_ARTIFACT_DIR)
