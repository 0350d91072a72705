"""The logger interface the trainer and the run talk to, and a logger that records nothing.

The trainer depends on this protocol only, never on MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

try:
    from typing import Protocol
except ImportError:  # Python 3.7
    Protocol = object  # type: ignore[assignment]


class RunLogger(Protocol):
    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_artifact(self, path: Path | str, artifact_path: Optional[str] = None) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_model(self, checkpoint_dir: Path | str, input_example: Any) -> Optional[str]:
        """Log a checkpoint as a servable model (``input_example``: a few raw samples); its URI,
        or None when this logger does not store models or is not asked to."""
        ...

    def flush(self) -> None:
        """Make everything logged so far durable (called before every checkpoint)."""
        ...

    def close(self, status: str = "FINISHED") -> None: ...


class LoggerContext:
    """``with logger:`` closes the run FINISHED, or FAILED/KILLED when the block raises."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("KILLED")
        else:
            self.close("FAILED")

    def log_model(self, checkpoint_dir: Path | str, input_example: Any) -> Optional[str]:
        """Loggers that cannot store models keep nothing."""
        return None

    def flush(self) -> None:
        """Loggers that write at once have nothing held back."""

    def close(self, status: str = "FINISHED") -> None:
        raise NotImplementedError


class NullLogger(LoggerContext):
    """``logger=none``: the run is trained and evaluated but nothing is tracked."""

    run_id: Optional[str] = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: Path | str, artifact_path: Optional[str] = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_model(self, checkpoint_dir: Path | str, input_example: Any) -> Optional[str]:
        return None

    def close(self, status: str = "FINISHED") -> None:
        pass
