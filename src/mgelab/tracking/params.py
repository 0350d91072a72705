"""Turning a nested run config into MLflow-sized flat params (no MLflow import here)."""

from __future__ import annotations

from typing import Any, Dict, Mapping

# MLflow's limits for a param (see mlflow.utils.validation): longer values are refused.
MAX_KEY_LENGTH = 250
MAX_VALUE_LENGTH = 6000


def flatten(config: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``; lists stay whole values."""
    flat: Dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def fit_param(key: str, value: Any) -> tuple:
    """Clip a key/value pair to MLflow's limits, marking what was cut instead of failing the run."""
    text = "None" if value is None else str(value)
    if len(text) > MAX_VALUE_LENGTH:
        marker = "...[truncated]"
        text = text[: MAX_VALUE_LENGTH - len(marker)] + marker
    return key[:MAX_KEY_LENGTH], text
