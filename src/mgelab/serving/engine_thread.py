"""MegEngine 1.13's runtime works only in the thread that imported it: any op from another thread
fails an assertion (``depth < context.transformations.size()``, imperative/src/impl/dispatch.cpp).
Model servers call ``predict`` from a thread pool (``mlflow models serve``: uvicorn), so when a
pyfunc model is loaded before MegEngine is imported, one thread of the process's own imports it
and runs every model call after that, whichever thread asks.

This module must not import megengine itself.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_decided = False
_home: Optional[ThreadPoolExecutor] = None  # None: MegEngine belongs to the threads that call us


def _home_thread() -> Optional[ThreadPoolExecutor]:
    """Decided once per process, at the first call: MegEngine imported already (a training process,
    a notebook) means its importer is the caller, as when nothing else started threads."""
    global _decided, _home
    with _lock:
        if not _decided:
            _home = None if "megengine" in sys.modules else ThreadPoolExecutor(1, thread_name_prefix="megengine")
            _decided = True
        return _home


def run(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)`` in the thread MegEngine belongs to."""
    home = _home_thread()
    if home is None:
        return call(*args, **kwargs)
    return home.submit(call, *args, **kwargs).result()
