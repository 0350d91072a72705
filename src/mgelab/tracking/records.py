"""Plain values and pure helpers of the tracking modules, kept apart so those hold only what needs
mlflow: runs read back as ``RunRecord``, error tags, SQLite store paths, batching of log calls."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

# A run's failure reason, as a tag (MLflow allows 8000 characters; the head says why).
ERROR_TAG = "error"
MAX_ERROR_LENGTH = 2000
# A resume that failed before its first new step leaves its run as it was, with only this tag set.
FAILED_ATTEMPT_TAG = "resume/failed_attempt"
# How MLflow's REST client words a request that never got an answer (refused, timed out, retries
# exhausted) and the statuses a proxy answers for a server behind it that is down.
UNANSWERED_REQUEST = re.compile(r"API request to \S+ failed with (timeout )?exception|"
                                r"failed with error code (502|503|504)\b")


@dataclass
class RunRecord:
    """A run as read back from the store: plain values, latest value of every metric."""

    run_id: str
    name: str
    experiment_id: str
    status: str
    start_time: Optional[int]
    end_time: Optional[int]
    params: Dict[str, str] = field(default_factory=dict)
    metrics: Dict[str, float] = field(default_factory=dict)
    tags: Dict[str, str] = field(default_factory=dict)


def to_record(run: Any) -> RunRecord:
    """A ``RunRecord`` from an MLflow ``Run`` (read by attribute; no mlflow import needed)."""
    info, data = run.info, run.data
    return RunRecord(
        run_id=info.run_id,
        name=info.run_name or "",
        experiment_id=info.experiment_id,
        status=info.status,
        start_time=info.start_time,
        end_time=info.end_time,
        params=dict(data.params),
        metrics=dict(data.metrics),
        tags=dict(data.tags),
    )


def sqlite_path(tracking_uri: str) -> Optional[Path]:
    """The database file behind a ``sqlite:///`` URI, or None for other stores."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :])


def error_text(exc: BaseException) -> str:
    """``ValueError: optim.lr=-1 must be > 0`` on one line, cut to a tag-sized head."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {' | '.join(lines)}" if lines else type(exc).__name__
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 3] + "..."


def is_transient(exc: Exception) -> bool:
    """A locked/busy database (MLflow reports it as TEMPORARILY_UNAVAILABLE), not a real error; or two
    parallel jobs inserting the same dataset at once (MLflow looks it up, then inserts): the retry
    finds the other job's row and links to it."""
    text = str(exc).lower()
    return (getattr(exc, "error_code", "") == "TEMPORARILY_UNAVAILABLE" or "database is locked" in text
            or "unique constraint failed: datasets." in text)


def is_unreachable(exc: BaseException) -> bool:
    """The tracking server did not answer (down, restarting, network gone): worth trying again later,
    unlike a refusal of what was sent."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return bool(UNANSWERED_REQUEST.search(str(exc)))


def str_dict(values: Mapping[str, Any]) -> Dict[str, str]:
    return {str(k): str(v) for k, v in values.items()}


def chunks(items: List, size: int) -> Iterable[List]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
