"""The single exception type for problems with data files.

Callers (the CLI, the trainers) catch one type and show its message as is, so
every message raised with it has to stand on its own: it names the file(s),
says what was wrong and what the user can do about it.
"""

from __future__ import annotations


class DataError(RuntimeError):
    """A dataset file is missing, damaged, or does not match its known hash."""
