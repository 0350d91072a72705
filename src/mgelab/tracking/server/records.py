"""The record of a running team server, ``<state_dir>/server.json``: what ``start`` launched (the
MLflow server's pid, its address, PostgreSQL's port), so ``stop`` and ``status`` find it and a second
``start`` recognises it. Written atomically; a record whose process is gone is stale, not an error."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

RECORD_NAME = "server.json"
# The MLflow server's command line holds this; a recycled pid does not.
MLFLOW_NEEDLE = "mlflow server"


@dataclass
class ServerRecord:
    mlflow_pid: int
    host: str
    port: int
    url: str
    postgres_port: int
    database: str
    auth: bool
    started_at: str


def record_path(state_dir: Path) -> Path:
    return Path(state_dir) / RECORD_NAME


def save(state_dir: Path, record: ServerRecord) -> Path:
    path = record_path(state_dir)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(temporary, path)
    return path


def load(state_dir: Path) -> Optional[ServerRecord]:
    """The record, or None when there is none or it cannot be read (then it is treated as absent)."""
    path = record_path(state_dir)
    try:
        return ServerRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def remove(state_dir: Path) -> None:
    record_path(state_dir).unlink(missing_ok=True)
