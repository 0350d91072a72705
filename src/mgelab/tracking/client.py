"""The MLflow client every tracking module talks through: each call retried while SQLite is locked."""

from __future__ import annotations

import functools
from typing import Any, Optional

from mlflow.tracking import MlflowClient

from mgelab.tracking.retry import with_retries


class RetryingClient:
    """``MlflowClient`` whose every call is retried while the database is locked (safe: a call that
    hit the lock was rolled back as a whole)."""

    def __init__(self, tracking_uri: str, registry_uri: Optional[str] = None) -> None:
        self._client = with_retries(MlflowClient, tracking_uri, registry_uri)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        return functools.partial(with_retries, attr) if callable(attr) else attr
