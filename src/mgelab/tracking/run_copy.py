"""One run's contents sent from a source store to its copy in another: what the copy lacks, nothing twice.

A fresh copy gets everything; a copy made before (of a run that went on logging, or a copy cut short)
gets only the metric values, params, tags, dataset inputs and artifact files it does not hold yet,
so a top-up costs what changed plus one read of the copy. Run ids inside tag values (the parent
link ``mlflow.parentRunId``, a sweep's ``sweep/best_run_id``, ``skipped/<job>``) are rewritten to
the ids of their copies. The copy's ``mgelab.copied_state`` tag, written last, is the fingerprint of
the source run it now matches: the planner (``copy_runs``) skips a run whose fingerprint is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_RUN_NAME

from mgelab.tracking.client import RetryingClient
from mgelab.tracking.datasets import identity
from mgelab.tracking.records import chunks
from mgelab.tracking.store import MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH

COPIED_FROM_TAG = "mgelab.copied_from"  # "<source store URI>#<source run id>"
COPIED_STATE_TAG = "mgelab.copied_state"  # fingerprint of the source run when the copy last matched it
# Not sent as tags: the name is the copy's own (it may be "name (2)" there), and a source that is itself
# a copy must not overwrite the record of where this copy came from.
UNSYNCED_TAGS = frozenset({MLFLOW_RUN_NAME, COPIED_FROM_TAG, COPIED_STATE_TAG})
RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")  # MLflow's run ids: 32 hex digits
TERMINAL = frozenset(RunStatus.to_string(s) for s in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED))


@dataclass
class Sent:
    """How much one copy or top-up sent."""

    metrics: int = 0
    params: int = 0
    tags: int = 0
    inputs: int = 0
    artifacts: int = 0

    def describe(self) -> str:
        labels = {"metrics": "metric values", "inputs": "dataset inputs", "artifacts": "artifact files"}
        counts = [(getattr(self, f.name), labels.get(f.name, f.name)) for f in fields(self)]
        return ", ".join(f"{count} {label}" for count, label in counts if count) or "nothing new"


@dataclass
class SourceRun:
    """A run of the source store, with what decides whether its copy is current."""

    run: Run
    experiment: str
    artifacts: Dict[str, int]  # artifact path -> size in bytes

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def fingerprint(self) -> str:
        """Changes whenever the run logs anything the copy would need (latest values stand for histories)."""
        info, data = self.run.info, self.run.data
        latest = sorted((m.key, m.step, m.timestamp, _same_nan(m.value)) for m in data.to_proto().metrics)
        state = [info.status, info.end_time, sorted(data.tags.items()), sorted(data.params.items()), latest,
                 sorted(_input_identities(self.run)), sorted(self.artifacts.items())]
        return hashlib.sha1(json.dumps(state, default=str).encode()).hexdigest()


def artifact_sizes(client: RetryingClient, run_id: str, folder: Optional[str] = None) -> Dict[str, int]:
    """Every artifact file of a run (subfolders walked) with its size."""
    found: Dict[str, int] = {}
    for entry in client.list_artifacts(run_id, folder):
        if entry.is_dir:
            found.update(artifact_sizes(client, run_id, entry.path))
        else:
            found[entry.path] = entry.file_size or 0
    return found


def rewrite_ids(value: str, id_map: Mapping[str, str]) -> str:
    """``value`` with every source run id that has a copy replaced by the copy's id."""
    return RUN_ID.sub(lambda found: id_map.get(found.group(0), found.group(0)), value)


def sync_run(src: RetryingClient, dst: RetryingClient, source: SourceRun, copy_id: str,
             id_map: Mapping[str, str], fresh: bool) -> Sent:
    """Send what the copy ``copy_id`` lacks of ``source``; ``fresh``: the copy was just created, holds
    nothing and need not be read. Ends by stamping the copy with the source's fingerprint."""
    held = None if fresh else dst.get_run(copy_id)
    sent = Sent(
        params=_send_params(dst, source.run, copy_id, held),
        tags=_send_tags(dst, source.run, copy_id, held, id_map),
        metrics=_send_metrics(src, dst, source.run, copy_id, fresh),
        inputs=_send_inputs(dst, source.run, copy_id, held),
        artifacts=_send_artifacts(src, dst, source, copy_id, {} if fresh else artifact_sizes(dst, copy_id)),
    )
    _match_status(dst, source.run, copy_id, held)
    dst.set_tag(copy_id, COPIED_STATE_TAG, source.fingerprint)
    return sent


def _send_params(dst: RetryingClient, run: Run, copy_id: str, held: Optional[Run]) -> int:
    # A param cannot change once logged, so only absent keys are sent.
    present = held.data.params if held else {}
    missing = [Param(k, v) for k, v in run.data.params.items() if k not in present]
    for chunk in chunks(missing, MAX_PARAMS_PER_BATCH):
        dst.log_batch(copy_id, params=chunk)
    return len(missing)


def _send_tags(dst: RetryingClient, run: Run, copy_id: str, held: Optional[Run], id_map: Mapping[str, str]) -> int:
    present = held.data.tags if held else {}
    wanted = {k: rewrite_ids(v, id_map) for k, v in run.data.tags.items() if k not in UNSYNCED_TAGS}
    changed = [RunTag(k, v) for k, v in wanted.items() if present.get(k) != v]
    for chunk in chunks(changed, MAX_PARAMS_PER_BATCH):
        dst.log_batch(copy_id, tags=chunk)
    return len(changed)


def _send_metrics(src: RetryingClient, dst: RetryingClient, run: Run, copy_id: str, fresh: bool) -> int:
    """Every logged value of every metric (step and timestamp kept), in batches across metrics."""
    missing: List[Metric] = []
    for key in run.data.metrics:
        present: Set[Tuple[int, int, Any]] = set()
        if not fresh:
            present = {_metric_identity(m) for m in dst.get_metric_history(copy_id, key)}
        missing.extend(Metric(key, m.value, m.timestamp, m.step) for m in src.get_metric_history(run.info.run_id, key)
                       if _metric_identity(m) not in present)
    for chunk in chunks(missing, MAX_METRICS_PER_BATCH):
        dst.log_batch(copy_id, metrics=chunk)
    return len(missing)


def _send_inputs(dst: RetryingClient, run: Run, copy_id: str, held: Optional[Run]) -> int:
    present = set(_input_identities(held)) if held else set()
    missing = [i for i, ident in zip(_dataset_inputs(run), _input_identities(run)) if ident not in present]
    if missing:
        dst.log_inputs(copy_id, datasets=missing)
    return len(missing)


def _send_artifacts(src: RetryingClient, dst: RetryingClient, source: SourceRun, copy_id: str,
                    present: Mapping[str, int]) -> int:
    """Files the copy lacks (or holds at another size), each fetched and uploaded at its own path."""
    missing = [path for path, size in source.artifacts.items() if present.get(path) != size]
    with tempfile.TemporaryDirectory(prefix="mgelab-copy-") as scratch:
        for number, path in enumerate(missing):
            local = src.download_artifacts(source.run_id, path, str(Path(scratch, str(number))))
            folder = str(PurePosixPath(path).parent)
            dst.log_artifact(copy_id, local, None if folder == "." else folder)
    return len(missing)


def _match_status(dst: RetryingClient, run: Run, copy_id: str, held: Optional[Run]) -> None:
    """The copy ends as the source did (status and end time); a fresh copy starts RUNNING."""
    status, end_time = run.info.status, run.info.end_time
    current = (held.info.status, held.info.end_time) if held else (RunStatus.to_string(RunStatus.RUNNING), None)
    if current == (status, end_time):
        return
    if status in TERMINAL:
        dst.set_terminated(copy_id, status, end_time)
    elif current[0] != status:
        dst.update_run(copy_id, status=status)


def _dataset_inputs(run: Run) -> List[Any]:
    return list(run.inputs.dataset_inputs) if run.inputs else []


def _input_identities(run: Run) -> List[tuple]:
    return [identity({"name": held.dataset.name, "digest": held.dataset.digest,
                      "context": {t.key: t.value for t in held.tags}.get(MLFLOW_DATASET_CONTEXT)})
            for held in _dataset_inputs(run)]


def _metric_identity(metric: Metric) -> Tuple[int, int, Any]:
    return metric.step, metric.timestamp, _same_nan(metric.value)


def _same_nan(value: float) -> Any:
    return "nan" if value != value else value  # NaN never equals itself, so a NaN would be sent again
