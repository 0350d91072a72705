"""Send a run's unsent-tracking file into the run it names:
``python -m mgelab.tracking.replay <run dir>/unsent_tracking.jsonl`` (or ``scripts/replay_tracking.py``).

Re-runnable without doubles. MLflow identifies a metric value by (key, step, timestamp, value), and
the file keeps the timestamp of when the value was measured, so the replay reads each key's history
first and sends only the values the run does not hold (some may have reached the store after the
file was written, or an earlier replay may have stopped half way). Tags and params are set to the
same values again (MLflow keeps one value per key), artifacts are uploaded to the same path again,
and the run's final status is set last. Once everything is sent the file is renamed to
``<name>.replayed``, so the same command run twice finds nothing left to do.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from mgelab.tracking.reachability import TrackingUnavailable, check_tracking_uri
from mgelab.tracking.spool import Entry, read_spool
from mgelab.tracking.store import TrackingStore

Identity = Tuple[int, int, object]
RETIRED = ".replayed"


@dataclass
class ReplayReport:
    run_id: str
    tracking_uri: str
    metrics_sent: int = 0
    metrics_present: int = 0
    writes: Dict[str, int] = field(default_factory=dict)
    missing_artifacts: List[str] = field(default_factory=list)
    status: Optional[str] = None
    renamed_to: Optional[Path] = None

    def summary(self, path: Path) -> str:
        others = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.writes.items())) or "no other writes"
        lines = [f"{path} -> run {self.run_id} at {self.tracking_uri}: {self.metrics_sent} metric values sent, "
                 f"{self.metrics_present} already there; {others}; status {self.status or 'unchanged'}"]
        lines += [f"  artifact {p} no longer exists here: not sent" for p in self.missing_artifacts]
        if self.renamed_to is not None and self.renamed_to != path:
            lines.append(f"  file renamed to {self.renamed_to}")
        return "\n".join(lines)


def replay(path: Path, tracking_uri: Optional[str] = None) -> ReplayReport:
    """Send the file's entries to its run (in the store the file names, or ``tracking_uri``), then
    rename the file."""
    header, entries = read_spool(path)
    uri, run_id = tracking_uri or header["tracking_uri"], header["run_id"]
    check_tracking_uri(uri)
    store = TrackingStore(uri)
    if store.find_run(run_id) is None:
        raise ValueError(f"{path}: the store {uri} has no run {run_id}; "
                         f"pass --tracking-uri with the store this run lives in")
    report = ReplayReport(run_id, uri)
    rows = [row for entry in entries if entry["kind"] == "metrics" for row in entry["rows"]]
    missing = missing_rows(store, run_id, rows)
    store.log_metric_rows(run_id, missing)
    report.metrics_sent, report.metrics_present = len(missing), len(rows) - len(missing)
    final = _send_others(store, run_id, entries, report)
    if final is not None:
        store.apply(run_id, final)
        report.status = final["status"]
    report.renamed_to = _retire(path)
    return report


def missing_rows(store: TrackingStore, run_id: str, rows: Sequence[Sequence]) -> List[Tuple[str, float, int, int]]:
    """The rows (key, value, timestamp, step) the run does not hold yet, each once."""
    held: Dict[str, Set[Identity]] = {
        key: {identity(step, stamp, value) for step, stamp, value in store.metric_values(run_id, key)}
        for key in {row[0] for row in rows}
    }
    missing = []
    for key, value, stamp, step in rows:
        ident = identity(step, stamp, value)
        if ident not in held[key]:
            held[key].add(ident)
            missing.append((key, float(value), int(stamp), int(step)))
    return missing


def identity(step: int, stamp: int, value: float) -> Identity:
    # NaN equals nothing, itself included: compared by name.
    return int(step), int(stamp), "nan" if math.isnan(value) else float(value)


def _send_others(store: TrackingStore, run_id: str, entries: Sequence[Entry], report: ReplayReport) -> Optional[Entry]:
    """Tags, params and artifacts in file order; the final status entry, kept for last."""
    final = None
    for entry in entries:
        kind = entry["kind"]
        if kind == "metrics":
            continue
        if kind == "status":
            # Reopening (RUNNING) only matters live; a replay sets the final status.
            final = entry if entry["status"] != "RUNNING" else final
            continue
        if kind == "artifact" and not Path(entry["path"]).exists():
            report.missing_artifacts.append(entry["path"])
            continue
        store.apply(run_id, entry)
        report.writes[kind] = report.writes.get(kind, 0) + 1
    return final


def _retire(path: Path) -> Path:
    if path.name.endswith(RETIRED) or f"{RETIRED}." in path.name:
        return path  # a replayed file replayed again stays where it is
    done, number = path.with_name(path.name + RETIRED), 1
    while done.exists():
        number += 1
        done = path.with_name(f"{path.name}{RETIRED}.{number}")
    return path.replace(done)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="replay_tracking",
        description="Send a run's unsent_tracking.jsonl (left when its tracking server was away) into the run.",
    )
    parser.add_argument("file", type=Path, help="the unsent-tracking file, e.g. outputs/.../unsent_tracking.jsonl")
    parser.add_argument("--tracking-uri", help="the store the run lives in, if not the one the file names")
    args = parser.parse_args(argv)
    done = args.file.with_name(args.file.name + RETIRED)
    if not args.file.exists() and done.exists():
        print(f"{args.file} was replayed already (now {done}); nothing to do")
        return 0
    try:
        report = replay(args.file, args.tracking_uri)
    except (TrackingUnavailable, ValueError, OSError) as error:
        print(f"replay_tracking: {error}", file=sys.stderr)
        return 1
    print(report.summary(args.file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
