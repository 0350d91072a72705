"""The importable runs behind ``scripts/``: a composed Hydra config in, a result out.

``train(cfg) -> float`` is ``scripts/train.py``'s whole job (the script is a thin
``@hydra.main`` wrapper), so tests and notebooks compose a config with Hydra's compose API and
call it as a user's command would. ``experiment.run_experiment`` is the Hydra-free core it
calls, for callers that build the pieces themselves.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train"]


def __getattr__(name: str) -> Any:
    # Lazy: the tool scripts import mgelab.run.artifacts without loading the trainer and Hydra.
    if name == "train":
        from mgelab.run.training import train

        return train
    raise AttributeError(f"module 'mgelab.run' has no attribute {name!r}")
