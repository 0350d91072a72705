"""Where dataset files live: a directory written as a path or as a ``file://`` URL (a mirror), read
the same way by the fetcher and by the tracking side that records a dataset's source."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname


def local_path(location: str) -> Path:
    """A directory given as a path or as a ``file://`` URL, with ``~`` expanded."""
    return Path(url2pathname(urlparse(location).path) if location.startswith("file://") else location).expanduser()
