"""The MLflow client every tracking module talks through: each call retried while SQLite is locked,
and, for a run logger's calls to a tracking server, one bounded HTTP attempt per call."""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

from mlflow.tracking import MlflowClient

from mgelab.tracking.retry import with_retries

T = TypeVar("T")

# MLflow retries an unanswered HTTP request for minutes inside one call (7 retries, doubling pauses),
# which would freeze training while the server is away. A logger's calls make one attempt with a
# short timeout instead, and the logger retries across flushes (``outbox.Outbox``), so training goes
# on between attempts. Read by MLflow at every request; a user's own setting of either wins.
BOUNDED_HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@contextmanager
def bounded_http() -> Iterator[None]:
    """MLflow's HTTP calls inside the block give up after one short attempt (unless the user set the
    retry settings). The environment is the only handle MLflow's client offers for this."""
    added = {k: v for k, v in BOUNDED_HTTP_SETTINGS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _bounded_call(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with bounded_http():
        return with_retries(call, *args, **kwargs)


class RetryingClient:
    """``MlflowClient`` whose every call is retried while the database is locked (safe: a call that
    hit the lock was rolled back as a whole). ``bounded``: HTTP calls also give up after one short
    attempt, for callers that keep what could not be sent and try again later."""

    def __init__(self, tracking_uri: str, registry_uri: Optional[str] = None, bounded: bool = False) -> None:
        self._client = with_retries(MlflowClient, tracking_uri, registry_uri)
        self._call = _bounded_call if bounded else with_retries

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        return functools.partial(self._call, attr) if callable(attr) else attr
