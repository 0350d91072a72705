"""The logger interface the trainer and the run talk to, and a logger that records nothing.

The trainer depends on this protocol only, never on MLflow.

What a logger can do is declared on its class, so the Hydra side can ask before building one
(``hydra.utils.get_class(cfg.logger._target_).resumes_runs``) rather than guess from config keys:

- ``resumes_runs``: its constructor takes ``run_id=`` and continues that run (a resumed training
  logs into the run its checkpoint names);
- ``has_store``: it writes to a store that can be queried afterwards, addressed by its
  ``tracking_uri`` constructor argument (sweeps, summaries and reports read runs back from it).

``logs_models`` is per instance (a setting): whether ``log_model`` keeps a model. A caller checks it
before computing the model package, which means loading the checkpoint and running it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np

try:
    from typing import Protocol
except ImportError:  # Python 3.7
    Protocol = object  # type: ignore[assignment]

# The split a dataset input is, as its ``context`` (MLflow's ``mlflow.data.context`` input tag).
TRAIN, VALIDATION, TEST = "train", "validation", "test"


@dataclass(frozen=True)
class DatasetSplit:
    """One split of a run's data, for ``log_datasets``: ``name`` the dataset's (``fashion_mnist``),
    ``context`` which split (``TRAIN``/``VALIDATION``/``TEST``), the raw arrays, and ``source``: where
    the files came from (a URL or a local path), None for data made by code."""

    name: str
    context: str
    features: np.ndarray
    targets: Optional[np.ndarray]
    source: Optional[str] = None


class RunLogger(Protocol):
    resumes_runs: ClassVar[bool]
    has_store: ClassVar[bool]
    logs_models: bool

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_artifact(self, path: Path | str, artifact_path: Optional[str] = None) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_datasets(self, datasets: Sequence[DatasetSplit]) -> None:
        """Record which data the run read (the store keeps a description and digest, not the arrays)."""
        ...

    def log_model(self, **package: Any) -> Optional[str]:
        """Log a servable model; its URI, or None when this logger does not keep models. ``package``:
        the model's files, config, code and examples as plain values (for MLflow, the keyword
        arguments of ``mgelab.tracking.model_logging.log_pyfunc_model`` after the run;
        ``mgelab.serving.pyfunc.model_package`` computes them for a checkpoint)."""
        ...

    def flush(self) -> None:
        """Make everything logged so far durable (called before every checkpoint)."""
        ...

    def close(self, status: str = "FINISHED") -> None: ...


class LoggerContext:
    """``with logger:`` closes the run FINISHED, or FAILED/KILLED when the block raises."""

    resumes_runs: ClassVar[bool] = False
    has_store: ClassVar[bool] = False
    logs_models: bool = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("KILLED")
        else:
            self.close("FAILED")

    def log_datasets(self, datasets: Sequence[DatasetSplit]) -> None:
        """Loggers without dataset records keep nothing."""

    def log_model(self, **package: Any) -> Optional[str]:
        """Loggers that cannot store models keep nothing."""
        return None

    def flush(self) -> None:
        """Loggers that write at once have nothing held back."""

    def close(self, status: str = "FINISHED") -> None:
        raise NotImplementedError


class NullLogger(LoggerContext):
    """``logger=none``: the run is trained and evaluated but nothing is tracked."""

    resumes_runs: ClassVar[bool] = False
    has_store: ClassVar[bool] = False
    run_id: Optional[str] = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: Path | str, artifact_path: Optional[str] = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass
