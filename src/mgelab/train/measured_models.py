"""The models the speed tools measure (``scripts/bench.py``, ``profile_step.py``, ``profile_ops.py``).

Each is named as its PyTorch twin in ``../shared/peers/torch_reference.py`` is, so the figures read as
ratios, and gets the input shape of the dataset it stands for: Fashion-MNIST for the linear model,
the MLP and the CNNs, CIFAR-10 for LeNet and ResNet-20. ``cnn3`` is the registry's ``cnn`` with the
settings of ``experiment=ch4_fashion_cnn`` (the tools' ``model_kwargs.cnn3``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import megengine.module as M

from mgelab.models import create_model

FASHION, CIFAR = (1, 28, 28), (3, 32, 32)
INPUT_SHAPES: Dict[str, Tuple[int, int, int]] = {
    "linear": FASHION, "mlp": FASHION, "cnn": FASHION, "cnn3": FASHION, "lenet": CIFAR, "resnet": CIFAR,
}
# Measured names that are a registry model with other settings.
REGISTRY_NAMES = {"cnn3": "cnn"}
NUM_CLASSES = 10


def check_measured(name: str, tool: str) -> str:
    if name not in INPUT_SHAPES:
        raise ValueError(f"models: {name!r} is not {tool} here; choose from {sorted(INPUT_SHAPES)}")
    return name


def profiled_names(names: Sequence[str]) -> List[str]:
    """The profiling scripts' ``models``, every name checked before anything is measured: an unknown
    one ends the script with the one-line message (no traceback)."""
    try:
        return [check_measured(name, "profiled") for name in names]
    except ValueError as err:
        raise SystemExit(str(err)) from None


def build_measured(name: str, kwargs: Optional[Dict[str, Any]] = None) -> M.Module:
    """The model ``name`` stands for, built for its input shape with ``kwargs`` (model_kwargs.<name>)."""
    return create_model(REGISTRY_NAMES.get(name, name), INPUT_SHAPES[name], NUM_CLASSES, **(kwargs or {}))
