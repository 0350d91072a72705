"""Using a trained model: load it from a local checkpoint, feed it raw samples, predict.

The names below are imported on first use, so that ``mgelab.serving.pyfunc`` can be imported
without importing MegEngine (see ``engine_thread``).
"""

from typing import Any

__all__ = ["TrainedModel", "load_trained"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mgelab.serving import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'mgelab.serving' has no attribute {name!r}")
