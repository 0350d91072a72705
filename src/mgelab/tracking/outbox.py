"""Writes to a tracking store that may be away: sent in order, held while the server does not
answer, retried with back-off on later flushes, and whatever is left at the end kept in a file.

Training never waits on the server for more than one bounded attempt (the client's, see
``client.bounded_http``) per back-off pause. Before every checkpoint the run logger spills what is
held to the run's spool file, so what a checkpoint covers is durable even if the process dies
before the server comes back (replay skips what reached the store meanwhile). At the end the file
is rewritten with exactly what was never sent, or removed when everything went through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from mgelab.tracking.records import error_text
from mgelab.tracking.retry import Backoff
from mgelab.tracking.spool import Entry, Spool

log = logging.getLogger(__name__)
# The head of MLflow's error in the outage warning (its full text repeats the URL and the retries).
OUTAGE_REASON_LENGTH = 300


@dataclass
class Pending:
    entry: Entry
    spooled: bool = False
    # False for writes that only matter live (reopening a run): a replay sets the final status anyway.
    keep: bool = True


class Outbox:
    """``send`` writes one entry to the store; ``is_unavailable`` tells a server that did not answer
    (hold and retry) from a refusal (raised to the caller, and the entry kept in the file with its
    error). ``held``: queue without sending until ``release()`` (a resumed run not yet reopened)."""

    def __init__(self, send: Callable[[Entry], None], is_unavailable: Callable[[BaseException], bool],
                 spool: Spool, label: str, backoff: Optional[Backoff] = None, held: bool = False) -> None:
        self._send, self._is_unavailable = send, is_unavailable
        self.spool, self.label = spool, label
        self.backoff = backoff or Backoff()
        self.held = held
        self.queue: List[Pending] = []
        self.rejected: List[Entry] = []

    def put(self, entry: Entry, keep: bool = True) -> None:
        self.queue.append(Pending(entry, keep=keep))
        self.drain()

    def put_first(self, entry: Entry, keep: bool = True) -> None:
        self.queue.insert(0, Pending(entry, keep=keep))

    def release(self) -> None:
        self.held = False
        self.drain()

    def discard(self) -> int:
        """Forget everything queued (a failed resume's writes, which must not reach its run)."""
        count = len(self.queue)
        self.queue.clear()
        return count

    def drain(self, force: bool = False) -> bool:
        """Send what is queued, oldest first; True when nothing is left. Skipped during a back-off
        pause unless ``force`` (the last attempt, at close)."""
        if self.held or not self.queue:
            return not self.queue
        if not force and not self.backoff.ready():
            return False
        was_failing = self.backoff.failures > 0
        while self.queue:
            head = self.queue[0]
            try:
                self._send(head.entry)
            except Exception as exc:
                if self._is_unavailable(exc):
                    self._note_outage(exc)
                    return False
                self.queue.pop(0)
                if head.keep:
                    self.rejected.append({**head.entry, "error": error_text(exc)})
                raise
            self.queue.pop(0)
        if was_failing:
            log.warning("tracking store %s answers again: everything held was sent", self.label)
        self.backoff.succeeded()
        return True

    def spill(self) -> Optional[Path]:
        """Append what is held and not yet in the spool file to it; the file, if there is one."""
        fresh = [p for p in self.queue if p.keep and not p.spooled]
        if fresh:
            self.spool.append([p.entry for p in fresh])
            for pending in fresh:
                pending.spooled = True
        return self.spool.path

    def finish(self) -> Optional[Path]:
        """The spool file rewritten with exactly what was never sent (and what was refused), or
        removed when nothing is left; its path, or None."""
        left = self.rejected + [p.entry for p in self.queue if p.keep]
        return self.spool.rewrite(left)

    def _note_outage(self, exc: BaseException) -> None:
        first = self.backoff.failures == 0
        pause = self.backoff.failed()
        values = sum(len(p.entry.get("rows", ())) for p in self.queue)
        held = f"{values} metric values and {sum(p.entry['kind'] != 'metrics' for p in self.queue)} other writes held"
        if first:
            log.warning("tracking store %s does not answer (%s); training goes on, %s and retried with back-off",
                        self.label, error_text(exc)[:OUTAGE_REASON_LENGTH], held)
        else:
            log.info("tracking store %s still does not answer; %s, next try in %.0f s", self.label, held, pause)
