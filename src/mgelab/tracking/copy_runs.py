"""Runs moved from one tracking store to another: an SQLite store's runs onto the team server, say.

    python scripts/copy_runs.py --from sqlite:///outputs/mlflow.db --to http://127.0.0.1:5000
    python scripts/copy_runs.py --from ... --to ... --experiment fashion_mnist --dry-run

Every active run of the chosen experiments (all by default) is copied with its whole metric history
(every step and timestamp), params, tags, dataset inputs, artifact files, status, start and end time
and name; experiments are created by name on the destination; run ids inside tags (the parent link
of a sweep's children among them) point to the copies. Each copy is tagged ``mgelab.copied_from`` =
``<source URI>#<run id>``, so a second call finds it: unchanged runs are skipped, runs that logged
more since (or a copy cut short) are topped up with what the copy lacks (``run_copy``).

mlflow-export-import was tried first (1.2.0, its newest release): with MLflow 3 its import stops at
the second run into an SQLite store (it expects the REST client's exception), every import makes new
runs (no re-run without duplicates), and it marks every copy FINISHED at the time of the import.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence

from mlflow.entities import LifecycleStage, Run, ViewType

from mgelab.tracking.client import RetryingClient
from mgelab.tracking.reachability import TrackingUnavailable, check_tracking_uri
from mgelab.tracking.records import error_text, is_unreachable, sqlite_path
from mgelab.tracking.run_copy import COPIED_FROM_TAG, COPIED_STATE_TAG, TERMINAL, SourceRun, artifact_sizes, sync_run
from mgelab.tracking.run_names import create_uniquely_named
from mgelab.tracking.store import prepare_store

SEARCH_PAGE = 1000
# Where an SQLite destination keeps the copies' files: beside its database, as the training runs do.
SQLITE_ARTIFACTS = "mlartifacts"


class CopyInputError(ValueError):
    """A store or experiment the copy cannot use; the message names it and what to do."""


@dataclass
class Outcome:
    """What became of one source run: copied, topped up, skipped (or, in a dry run, would be)."""

    action: str
    experiment: str
    name: str
    source_id: str
    copy_id: Optional[str] = None
    detail: str = ""

    def line(self) -> str:
        target = f" -> {self.copy_id}" if self.copy_id else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.action:<13} {self.experiment}/{self.name}  {self.source_id}{target}{detail}"


def normalized_uri(uri: str) -> str:
    """One spelling per store, so the ``copied_from`` tags of two calls agree: an SQLite path made absolute."""
    db_file = sqlite_path(uri)
    if db_file is not None:
        return f"sqlite:///{db_file.expanduser().resolve()}"
    return uri.rstrip("/")


def copy_runs(source_uri: str, dest_uri: str, experiments: Optional[Sequence[str]] = None,
              dry_run: bool = False) -> Iterator[Outcome]:
    """Copy the runs of ``experiments`` (default: every active one) from one store to another, yielding
    each run's outcome as it is done. ``dry_run``: say what would be done, write nothing."""
    source_uri, dest_uri = normalized_uri(source_uri), normalized_uri(dest_uri)
    _check_stores(source_uri, dest_uri)
    src = RetryingClient(source_uri)
    sources = _source_runs(src, source_uri, experiments)
    dest_file = sqlite_path(dest_uri)
    if dry_run and dest_file is not None and not dest_file.exists():
        dst, copies = None, {}  # opening an SQLite store creates it: a dry run leaves it unmade
    else:
        dst = RetryingClient(dest_uri)
        copies = _existing_copies(dst)
    id_map = {run_id: copy.info.run_id for run_id, copy in copies.items()}
    pending: List[SourceRun] = []
    for source in sources:
        skip = _skip_reason(source, copies.get(source.run_id))
        if skip is not None:
            yield Outcome("skipped", source.experiment, source.run.info.run_name or "", source.run_id,
                          id_map[source.run_id], skip)
        elif dry_run:
            action = "would top up" if source.run_id in copies else "would copy"
            yield Outcome(action, source.experiment, source.run.info.run_name or "", source.run_id,
                          id_map.get(source.run_id))
        else:
            pending.append(source)
    if dry_run:
        return
    # Every copy exists before any is filled, so tags that name other runs (a child's parent, a
    # parent's best child) can point to their copies whichever of the two comes first.
    new = [s for s in pending if s.run_id not in copies]
    targets = {name: _destination_experiment(src, dst, dest_uri, name) for name in {s.experiment for s in new}}
    created = {s.run_id: _create_copy(dst, dest_uri, source_uri, s, targets[s.experiment]) for s in new}
    id_map.update({run_id: copy.info.run_id for run_id, copy in created.items()})
    for source in pending:
        fresh = source.run_id in created
        copy_id = id_map[source.run_id]
        sent = sync_run(src, dst, source, copy_id, id_map, fresh)
        name = (created[source.run_id] if fresh else copies[source.run_id]).info.run_name or ""
        yield Outcome("copied" if fresh else "topped up", source.experiment, name, source.run_id, copy_id,
                      sent.describe())


def _check_stores(source_uri: str, dest_uri: str) -> None:
    if source_uri == dest_uri:
        raise CopyInputError(f"--from and --to both name {source_uri}: give the store to copy into as --to")
    db_file = sqlite_path(source_uri)
    if db_file is not None and not db_file.is_file():
        raise CopyInputError(f"--from {source_uri}: there is no database file {db_file} (training runs write to "
                             "outputs/mlflow.db by default: --from sqlite:///outputs/mlflow.db)")
    for option, uri in (("--from", source_uri), ("--to", dest_uri)):
        try:
            check_tracking_uri(uri)
        except TrackingUnavailable as unavailable:
            raise CopyInputError(
                f"{option} {uri}: the tracking server does not answer ({unavailable.reason}). Start it (`make "
                f"server` starts the team server) or correct the URI, then run the copy again; nothing was copied."
            ) from unavailable


def _source_runs(src: RetryingClient, source_uri: str, names: Optional[Sequence[str]]) -> List[SourceRun]:
    """The active runs of the chosen experiments, oldest first."""
    active = {e.name: e.experiment_id for e in src.search_experiments(view_type=ViewType.ACTIVE_ONLY)}
    unknown = [name for name in names or () if name not in active]
    if unknown:
        raise CopyInputError(
            f"--experiment {unknown[0]!r}: {source_uri} has no active experiment of that name; it has "
            f"{', '.join(sorted(active)) or 'none'} (leave --experiment out to copy every experiment)"
        )
    chosen = list(dict.fromkeys(names)) if names else sorted(active)
    return [SourceRun(run, name, artifact_sizes(src, run.info.run_id))
            for name in chosen for run in _all_runs(src, [active[name]], "", ViewType.ACTIVE_ONLY)]


def _existing_copies(dst: RetryingClient) -> Dict[str, Run]:
    """Copies already on the destination (deleted ones too), by the id of the run they copy. Matched on
    the run id alone (ids are unique across stores), so a source file moved elsewhere is still known."""
    experiment_ids = [e.experiment_id for e in dst.search_experiments(view_type=ViewType.ALL)]
    found: Dict[str, Run] = {}
    for copy in _all_runs(dst, experiment_ids, f"tags.`{COPIED_FROM_TAG}` LIKE '%#%'", ViewType.ALL):
        found[copy.data.tags[COPIED_FROM_TAG].rsplit("#", 1)[1]] = copy
    return found


def _all_runs(client: RetryingClient, experiment_ids: List[str], filter_string: str, view: int) -> List[Run]:
    runs: List[Run] = []
    token = None
    while experiment_ids:
        page = client.search_runs(experiment_ids, filter_string, view, SEARCH_PAGE,
                                  ["attributes.start_time ASC"], token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs


def _skip_reason(source: SourceRun, copy: Optional[Run]) -> Optional[str]:
    """Why the run needs nothing (None: it needs copying or topping up). A running source always gets a top-up."""
    if copy is None:
        return None
    if copy.info.lifecycle_stage == LifecycleStage.DELETED:
        return (f"its copy is deleted on the destination: `mlflow runs restore --run-id {copy.info.run_id}` brings "
                "it back; to copy the run afresh, remove the copy for good with `mlflow gc` first")
    current = copy.data.tags.get(COPIED_STATE_TAG) == source.fingerprint
    return "copied before, unchanged since" if current and source.run.info.status in TERMINAL else None


def _create_copy(dst: RetryingClient, dest_uri: str, source_uri: str, source: SourceRun, experiment_id: str) -> Run:
    """An empty run in the destination's experiment, started when the source started, under the
    source's name (``name (2)`` if another run there has it already)."""
    tags = {COPIED_FROM_TAG: f"{source_uri}#{source.run_id}"}
    user = source.run.data.tags.get("mlflow.user")
    if user:
        tags["mlflow.user"] = user  # MLflow takes the run's user from this tag at creation only
    made: Dict[str, Run] = {}

    def create(name: Optional[str]) -> str:
        made["run"] = dst.create_run(experiment_id, start_time=source.run.info.start_time, tags=tags, run_name=name)
        return made["run"].info.run_id

    create_uniquely_named(dst, dest_uri, experiment_id, source.run.info.run_name, create)
    return made["run"]


def _destination_experiment(src: RetryingClient, dst: RetryingClient, dest_uri: str, name: str) -> str:
    """The destination's experiment of that name; created with the source's experiment tags if it has none."""
    existing = dst.get_experiment_by_name(name)
    if existing is not None and existing.lifecycle_stage == LifecycleStage.DELETED:
        raise CopyInputError(
            f"--to {dest_uri}: its experiment {name!r} is deleted, and no run can be added to it. Restore it "
            f"(`mlflow experiments restore --experiment-id {existing.experiment_id}`) or remove it for good "
            f"(`mlflow gc --experiment-ids {existing.experiment_id}`), then run the copy again"
        )
    if existing is not None:
        return existing.experiment_id
    db_file = sqlite_path(dest_uri)
    artifacts = str(db_file.parent / SQLITE_ARTIFACTS) if db_file is not None else None
    experiment_id = prepare_store(dest_uri, name, artifact_location=artifacts)
    for key, value in src.get_experiment_by_name(name).tags.items():
        dst.set_experiment_tag(experiment_id, key, value)
    return experiment_id


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="copy_runs", description="Copy runs (metric history, params, tags, artifacts, parent links) from one "
        "MLflow tracking store to another; re-running copies only what is new.")
    parser.add_argument("--from", dest="source", required=True, help="the store to copy from, e.g. "
                        "sqlite:///outputs/mlflow.db")
    parser.add_argument("--to", dest="dest", required=True, help="the store to copy into, e.g. http://127.0.0.1:5000")
    parser.add_argument("--experiment", action="append", help="an experiment to copy (repeatable; default: all)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be copied, write nothing")
    args = parser.parse_args(argv)
    # One line per run says what was sent; MLflow's per-file download bars would bury those lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    counts: Dict[str, int] = {}
    try:
        for outcome in copy_runs(args.source, args.dest, args.experiment, args.dry_run):
            print(outcome.line(), flush=True)
            counts[outcome.action] = counts.get(outcome.action, 0) + 1
    except CopyInputError as error:
        print(f"copy_runs: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if not is_unreachable(error):
            raise
        print(f"copy_runs: a store stopped answering mid-copy ({error_text(error)}). What arrived is kept: run "
              "the same command again once it answers, and it goes on from there.", file=sys.stderr)
        return 1
    summary = ", ".join(f"{count} {action}" for action, count in counts.items()) or "no runs to copy"
    print(f"{summary} ({normalized_uri(args.source)} -> {normalized_uri(args.dest)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
