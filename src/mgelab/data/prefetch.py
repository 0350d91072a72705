"""Training batches prepared one step ahead, in a background thread.

Cropping, flipping and normalising a uint8 batch is numpy work; numpy releases the GIL in its
large copies and MegEngine computes in its own worker thread, so a thread that prepares the next
batches while the current one trains makes the step, not the data, what a run waits on.

The batches and their order are exactly those of the source (a resumed run sees what the
original saw); only where they are made changes.
"""

from __future__ import annotations

import queue
import threading
from typing import Generator, Iterator, Tuple, Union

from mgelab.data.arrays import Batch

# What the producer hands over: a batch, the end of the batches, or the exception that ended them.
_BATCH, _END, _ERROR = "batch", "end", "error"
Item = Tuple[str, object]
# How long the consumer waits, while closing, for the producer to notice the stop between drains.
_DRAIN_POLL_SECONDS = 0.05
# trainer.prefetch_batches=auto: this many batches ahead when preparing one is real work (augmenting,
# resizing), and no thread when it is only normalising: then the thread hides ~0.1 ms a batch but
# competes with the step's own Python dispatch for the GIL (docs/results.md: paired runs, a linear
# model's step 2-5 % slower beside it, LeNet's unchanged).
AUTO = "auto"
AUTO_DEPTH = 2


def is_depth(value: object) -> bool:
    """A whole number of batches >= 0 (a bool is not one)."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


def check_prefetch_batches(value: Union[int, str]) -> None:
    """``trainer.prefetch_batches`` is ``auto`` or a whole number >= 0, else one clear error."""
    if value != AUTO and not is_depth(value):
        raise ValueError(f"trainer.prefetch_batches={value!r} must be auto (a thread only for augmented or "
                         "resized batches), 0 (no prefetching thread) or a number of batches >= 1")


def prefetch_depth(value: Union[int, str], data: object) -> int:
    """Batches to prepare ahead for ``data``: ``value``, or for ``auto`` ``AUTO_DEPTH`` when the data
    module says its training batches are costly (``costly_batches``) and 0 otherwise."""
    if value == AUTO:
        return AUTO_DEPTH if getattr(data, "costly_batches", False) else 0
    return int(value)


def prefetched(batches: Iterator[Batch], depth: int = 2) -> Generator[Batch, None, None]:
    """``batches``, with the next ``depth`` of them prepared by a daemon thread meanwhile.

    An exception raised by ``batches`` is re-raised here, after the batches that came before it.
    Closing the returned generator (or dropping it) ends the thread: it prepares no further batch.
    ``depth=0``: no thread, the batches are made on the caller's thread as it asks for them.
    """
    if not is_depth(depth):
        raise ValueError(f"prefetch depth={depth!r} must be an int >= 0 (0: no background thread)")
    if depth == 0:
        return _plain(batches)
    return _from_thread(batches, depth)


def _plain(batches: Iterator[Batch]) -> Generator[Batch, None, None]:
    # ``yield from`` passes a close() on to the source, as the threaded path does.
    yield from batches


def _from_thread(batches: Iterator[Batch], depth: int) -> Generator[Batch, None, None]:
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(batches, slots, stop), name="mgelab-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value  # type: ignore[misc]  # the producer's own exception, with its traceback
            yield value  # type: ignore[misc]
    finally:
        _stop_producer(producer, slots, stop)


def _produce(batches: Iterator[Batch], slots: queue.Queue, stop: threading.Event) -> None:
    """Runs in the thread: fills ``slots`` until the batches end, fail, or the consumer stops."""
    try:
        for batch in batches:
            if not _offer(slots, stop, (_BATCH, batch)):
                return
        _offer(slots, stop, (_END, None))
    except BaseException as exc:  # noqa: BLE001  (anything the source raises belongs to the consumer)
        _offer(slots, stop, (_ERROR, exc))
    finally:
        # The source generator runs only in this thread, so it is closed here, not by the consumer.
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _offer(slots: queue.Queue, stop: threading.Event, item: Item) -> bool:
    """Put ``item`` unless the consumer has stopped; False when it has (nothing more to prepare)."""
    if stop.is_set():
        return False
    slots.put(item)
    return not stop.is_set()


def _stop_producer(producer: threading.Thread, slots: queue.Queue, stop: threading.Event) -> None:
    """Signal the producer and empty the queue until it has ended: a producer blocked on a full
    queue gets room, sees the stop and returns without preparing another batch."""
    stop.set()
    while producer.is_alive():
        _drain(slots)
        producer.join(_DRAIN_POLL_SECONDS)
    _drain(slots)


def _drain(slots: queue.Queue) -> None:
    while True:
        try:
            slots.get_nowait()
        except queue.Empty:
            return
