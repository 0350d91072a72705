"""Where a run's code came from, for its tags."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional


def _git(directory: Path | str, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def git_dirty(directory: Path | str) -> Optional[bool]:
    """Whether files git tracks differ from HEAD in the checkout holding ``directory``; None outside
    git (or without git). Untracked files do not count: they are not part of what ran from the repo."""
    try:
        return bool(_git(directory, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
