"""A new run's name made unique within its experiment: ``mlp lr=0.01``, then ``mlp lr=0.01 (2)``...

Two runs of one name cannot be told apart in the UI's run list or in a chart's legend. Parallel
jobs of a sweep create their runs at the same moment, so "look up the names, then create the run"
is done under a lock file shared by every process on this machine that writes to the same
experiment (``fcntl.flock``; a store on another machine's server is shared by jobs on other
machines too, which this lock cannot see: there, two simultaneous runs may still share a name).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock; names are still made unique, without the race guard
    fcntl = None  # type: ignore[assignment]

from mlflow.entities import ViewType

from mgelab.tracking.records import sqlite_path

# Characters that would end or escape the quoted value of an MLflow filter: the name's search stops before them.
FILTER_UNSAFE = re.compile(r"['\"\\]")
SEARCH_PAGE = 1000


def first_free(name: str, taken: Iterable[str]) -> str:
    """``name`` if no run has it, else ``name (k)`` with the smallest free k >= 2."""
    used = set(taken)
    if name not in used:
        return name
    number = 2
    while f"{name} ({number})" in used:
        number += 1
    return f"{name} ({number})"


def names_like(client, experiment_id: str, name: str) -> Iterator[str]:
    """Names of the experiment's runs (deleted ones too: they can be restored) that start as ``name`` does."""
    prefix = FILTER_UNSAFE.split(name, 1)[0]
    query = f"attributes.run_name LIKE '{prefix}%'"
    token = None
    while True:
        page = client.search_runs([experiment_id], query, ViewType.ALL, SEARCH_PAGE, None, token)
        yield from (run.info.run_name or "" for run in page)
        token = page.token
        if not token:
            return


def lock_path(tracking_uri: str, experiment_id: str) -> Path:
    """Next to an SQLite store's file; else in the temporary folder, named after store and experiment."""
    db_file = sqlite_path(tracking_uri)
    if db_file is not None:
        return db_file.with_name(f"{db_file.name}.run_names.lock")
    digest = hashlib.sha1(f"{tracking_uri}\n{experiment_id}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mgelab-run-names-{digest}.lock"


@contextlib.contextmanager
def naming_lock(tracking_uri: str, experiment_id: str) -> Iterator[None]:
    """Held by one process at a time per store and experiment (on this machine)."""
    if fcntl is None:
        yield
        return
    path = lock_path(tracking_uri, experiment_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def create_uniquely_named(
    client, tracking_uri: str, experiment_id: str, name: Optional[str], create: Callable[[Optional[str]], str]
) -> str:
    """``create(unique name)`` under the naming lock; its run id. No name: MLflow picks one."""
    if not name:
        return create(None)
    with naming_lock(tracking_uri, experiment_id):
        return create(first_free(name, names_like(client, experiment_id, name)))
