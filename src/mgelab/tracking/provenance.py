"""Where a run's code came from, for its tags."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(directory: Path | str) -> str:
    """The checkout's HEAD commit, with ``-dirty`` when files differ; ``unknown`` outside git."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")
