"""A run's logged files back on local disk, for the layer that hands them to serving or deploy."""

from __future__ import annotations

from pathlib import Path

from mlflow.exceptions import MlflowException

from mgelab.tracking.client import RetryingClient


def download_run_artifacts(tracking_uri: str, run_id: str, artifact_path: str, dst_dir: Path | str) -> Path:
    """Copy a run's artifact folder (e.g. ``checkpoints/best``) under ``dst_dir``; return its local path."""
    client = RetryingClient(tracking_uri)
    try:
        found = client.list_artifacts(run_id, artifact_path)
    except MlflowException as exc:
        raise LookupError(f"run_id={run_id} is not a run in {tracking_uri}: {exc.message}") from exc
    if not found:
        raise FileNotFoundError(f"run {run_id} in {tracking_uri} has no artifacts under {artifact_path}/ (a "
                                "finished run logs its best checkpoint there; a failed or running one may not)")
    Path(dst_dir).mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, artifact_path, str(dst_dir)))
