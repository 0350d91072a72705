"""What a run could not send to its tracking store, as a file in its run directory to replay later.

The run logger hands every write to its outbox as an *entry*, a plain dict that is both what is sent
and what is kept. When the server does not answer, the entries go to ``unsent_tracking.jsonl`` (one
JSON object per line; ``python -m mgelab.tracking.replay <file>`` sends them):

- line 1, ``{"kind": "header", "format": "mgelab.unsent_tracking/1", "run_id": ..., "tracking_uri":
  ..., "experiment_id": ..., "created": ...}``: where the rest belongs;
- ``{"kind": "metric", "key": ..., "value": ..., "timestamp": <ms>, "step": ...}``, one per value
  (NaN and infinities as JSON's ``NaN``/``Infinity``, which Python reads back);
- ``{"kind": "tags", "tags": {...}}``, ``{"kind": "params", "params": {...}}``;
- ``{"kind": "artifact", "path": <absolute local path>, "artifact_path": ...}``;
- ``{"kind": "inputs", "datasets": [{"name": ..., "digest": ..., "source_type": ..., "source": <JSON
  text>, "schema": <JSON text>, "profile": <JSON text>, "context": "train"}, ...]}``: the run's data
  splits as MLflow dataset inputs (a description and digest, never the arrays; ``datasets.py``);
- ``{"kind": "status", "status": "FINISHED", "end_time": <ms>}``: how the run ended.

A line the store refused (rather than failed to answer) carries ``"error"``: the refusal.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mgelab.tracking.records import str_dict

FORMAT = "mgelab.unsent_tracking/1"
FILE_NAME = "unsent_tracking.jsonl"
REPLAY_MODULE = "mgelab.tracking.replay"

Entry = Dict[str, Any]


def metrics_entry(rows: Iterable[Sequence[Any]]) -> Entry:
    """Rows of (key, value, timestamp ms, step), as ``metric_buffer.MetricRow``."""
    return {"kind": "metrics", "rows": [[str(k), float(v), int(t), int(s)] for k, v, t, s in rows]}


def tags_entry(tags: Mapping[str, Any]) -> Entry:
    return {"kind": "tags", "tags": str_dict(tags)}


def params_entry(params: Mapping[str, Any]) -> Entry:
    return {"kind": "params", "params": str_dict(params)}


def inputs_entry(datasets: Sequence[Mapping[str, Any]]) -> Entry:
    """``datasets``: ``datasets.describe_split`` values (plain strings)."""
    return {"kind": "inputs", "datasets": [dict(d) for d in datasets]}


def artifact_entry(path: Path | str, artifact_path: Optional[str] = None) -> Entry:
    return {"kind": "artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path}


def status_entry(status: str, end_time_ms: Optional[int] = None) -> Entry:
    return {"kind": "status", "status": status, "end_time": end_time_ms}


def replay_command(path: Path) -> str:
    return f"python -m {REPLAY_MODULE} {path}"


def to_lines(entry: Entry) -> List[Entry]:
    """A metrics entry is written one line per value (readable, and replayed value by value)."""
    if entry["kind"] != "metrics":
        return [entry]
    extra = {"error": entry["error"]} if "error" in entry else {}
    return [{"kind": "metric", "key": k, "value": v, "timestamp": t, "step": s, **extra}
            for k, v, t, s in entry["rows"]]


def from_lines(lines: Iterable[Entry]) -> List[Entry]:
    """Entries again: consecutive metric lines (with the same error, if any) become one metrics entry."""
    entries: List[Entry] = []
    for line in lines:
        if line["kind"] != "metric":
            entries.append(dict(line))
            continue
        row = [line["key"], float(line["value"]), int(line["timestamp"]), int(line["step"])]
        last = entries[-1] if entries else {}
        if last.get("kind") == "metrics" and last.get("error") == line.get("error"):
            last["rows"].append(row)
        else:
            extra = {"error": line["error"]} if "error" in line else {}
            entries.append({"kind": "metrics", "rows": [row], **extra})
    return entries


class Spool:
    """The unsent-tracking file of one run: created on the first write, under a free name
    (``unsent_tracking.jsonl``, else ``unsent_tracking.2.jsonl`` ...), so a file an earlier attempt
    left unreplayed in the same directory is never overwritten."""

    def __init__(self, directory: Optional[Path | str], run_id: str, tracking_uri: str,
                 experiment_id: Optional[str] = None) -> None:
        self.directory = Path(directory) if directory else Path.cwd()
        self.header: Entry = {
            "kind": "header", "format": FORMAT, "run_id": run_id, "tracking_uri": tracking_uri,
            "experiment_id": experiment_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self.path: Optional[Path] = None

    def append(self, entries: Sequence[Entry]) -> Path:
        path = self._claim()
        with path.open("a", encoding="utf-8") as out:
            _write_lines(out, entries)
            out.flush()
            os.fsync(out.fileno())
        return path

    def rewrite(self, entries: Sequence[Entry]) -> Optional[Path]:
        """The file holds exactly ``entries`` (replacing what was appended); none: the file goes."""
        if not entries:
            if self.path is not None:
                self.path.unlink(missing_ok=True)
            return None
        path = self._claim()
        partial = path.with_name(path.name + ".partial")
        with partial.open("w", encoding="utf-8") as out:
            out.write(json.dumps(self.header) + "\n")
            _write_lines(out, entries)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(path)
        return path

    def _claim(self) -> Path:
        if self.path is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.path = free_path(self.directory)
            with self.path.open("x", encoding="utf-8") as out:
                out.write(json.dumps(self.header) + "\n")
        return self.path


def free_path(directory: Path) -> Path:
    stem, suffix = FILE_NAME.split(".", 1)
    candidate, number = directory / FILE_NAME, 1
    while candidate.exists():
        number += 1
        candidate = directory / f"{stem}.{number}.{suffix}"
    return candidate


def read_spool(path: Path) -> Tuple[Entry, List[Entry]]:
    """The header and the entries of an unsent-tracking file."""
    lines = [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines() if text.strip()]
    if not lines or lines[0].get("kind") != "header" or lines[0].get("format") != FORMAT:
        raise ValueError(f"{path} is not an unsent-tracking file ({FORMAT}): its first line is not its header")
    return lines[0], from_lines(lines[1:])


def _write_lines(out: Any, entries: Sequence[Entry]) -> None:
    for entry in entries:
        for line in to_lines(entry):
            out.write(json.dumps(line) + "\n")
