"""MLflow's standard tags of a new run (``mlflow.user``, ``mlflow.source.name``/``type``,
``mlflow.source.git.*``), resolved by MLflow's own context providers, so the UI's User and Source
columns fill and any context plugin a user installed is honoured.

One correction: MLflow takes the source from ``sys.argv[0]`` as typed, which a Hydra joblib job
does not reliably have: loky restores the parent's ``sys.argv`` (a path relative to the directory
the user started in, wrong once a job changes directory) while the worker's ``__main__`` is loky's
``popen_loky_posix.py``, and other pools leave their own file there. The first process to resolve tags from a
real script records its path in ``ENTRY_ENV``; worker processes, spawned later, inherit the
environment and name that script instead (explicit tags win in ``resolve_tags``). Git information
is read (with MLflow's own git helpers) for that script's checkout, at every run, rather than once
per process from ``sys.argv[0]``; whether the checkout had uncommitted changes is kept as
``GIT_DIRTY_TAG`` (MLflow's commit tag holds the bare hash).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from mlflow.entities import SourceType
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils import git_utils
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_BRANCH,
    MLFLOW_GIT_COMMIT,
    MLFLOW_GIT_REPO_URL,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
)

from mgelab.startup.mkl_dispatch import mkl_cpu_type
from mgelab.tracking.provenance import git_dirty
from mgelab.tracking.records import str_dict

# The script the user ran, as the first tracking process saw it; inherited by its workers.
ENTRY_ENV = "MGELAB_ENTRY_SCRIPT"
# "true"/"false": files tracked by git differed from the commit when the run started.
GIT_DIRTY_TAG = "mgelab.source.git.dirty"
# MKL's code-path switch the run's process had (mgelab.startup.mkl_dispatch): it decides the CPU kernels, so speed.
MKL_CPU_TYPE_TAG = "mgelab.cpu.mkl_debug_cpu_type"
# Folders whose files run a pool's worker processes, not a user's code.
WORKER_PACKAGES = ("joblib", "loky", "multiprocessing", "concurrent", "submitit")


def is_worker_file(path: str) -> bool:
    """A file of a process pool's machinery (a joblib/loky worker's main module)."""
    return any(part in WORKER_PACKAGES for part in Path(path).parts[:-1])


def entry_script(argv0: Optional[str] = None) -> Optional[str]:
    """The absolute path of the script the user ran, or None (an interactive session).

    A script file in ``argv0`` (default ``sys.argv[0]``; not ``-c``, not a pool's worker file) wins
    and is recorded for worker processes started after this; otherwise the recorded one is used."""
    argv0 = sys.argv[0] if argv0 is None and sys.argv else argv0
    if argv0 and not is_worker_file(argv0) and Path(argv0).is_file():
        path = str(Path(argv0).resolve())
        os.environ[ENTRY_ENV] = path  # pool workers start later and inherit it
        return path
    return os.environ.get(ENTRY_ENV) or None


def _git_tags(script: str) -> Dict[str, str]:
    """MLflow's git tags of the checkout holding ``script`` (what its Git provider reads)."""
    found = {
        MLFLOW_GIT_COMMIT: git_utils.get_git_commit(script),
        MLFLOW_GIT_BRANCH: git_utils.get_git_branch(script),
        MLFLOW_GIT_REPO_URL: git_utils.get_git_repo_url(script),
    }
    return {k: v for k, v in found.items() if v is not None}


def standard_tags(user_tags: Mapping[str, Any]) -> Dict[str, str]:
    """``user_tags`` plus MLflow's standard tags for a run started now; the user's win."""
    script = entry_script()
    explicit: Dict[str, str] = {}
    if script is not None:
        # MLflow's Git provider reads sys.argv[0]'s checkout once per process: read the script's, now.
        explicit[MLFLOW_SOURCE_NAME] = script
        explicit.update(_git_tags(script))
        dirty = git_dirty(Path(script).parent)
        if dirty is not None:
            explicit[GIT_DIRTY_TAG] = str(dirty).lower()
    mkl_switch = mkl_cpu_type()
    if mkl_switch:
        explicit[MKL_CPU_TYPE_TAG] = mkl_switch
    return str_dict(resolve_tags({**explicit, **str_dict(user_tags)}))


def code_source() -> Dict[str, str]:
    """Where data made by code comes from, as MLflow's code dataset source names it: the script."""
    local = SourceType.to_string(SourceType.LOCAL)
    return {MLFLOW_SOURCE_NAME: entry_script() or "<console>", MLFLOW_SOURCE_TYPE: local}
