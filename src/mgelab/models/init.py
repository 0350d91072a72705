"""Weight initialisation schemes selectable from config (``model.init``)."""

from __future__ import annotations

import megengine.module as M
import megengine.module.init as init

INIT_SCHEMES = ("default", "zeros", "msra", "xavier")

# Normalisation layers whose affine part must start as the identity (weight 1, bias 0)
# whatever ``model.init`` says: zeroing a BatchNorm weight would silence its channel, and
# a random one would undo the normalisation the layer is there for.
NORM_LAYERS = (
    M.BatchNorm1d,
    M.BatchNorm2d,
    M.SyncBatchNorm,
    M.GroupNorm,
    M.InstanceNorm,
    M.LayerNorm,
    M.GeneralNorm,
)


def reset_norm_layers(model: M.Module) -> M.Module:
    """Set every affine normalisation layer to weight=1, bias=0 (running stats untouched)."""
    for module in model.modules():
        if not isinstance(module, NORM_LAYERS):
            continue
        # ``affine=False`` layers have no weight or bias to reset.
        if getattr(module, "weight", None) is not None:
            init.ones_(module.weight)
        if getattr(module, "bias", None) is not None:
            init.zeros_(module.bias)
    return model


def apply_init(model: M.Module, scheme: str) -> M.Module:
    """Re-initialise every Linear/Conv2d weight; biases go to zero for non-default schemes.

    ``default`` keeps MegEngine's own initialisation. ``zeros`` is what the tutorial's
    linear chapters use (fine for a convex model, useless for hidden layers).
    Normalisation layers get weight=1, bias=0 under every scheme, ``default`` included.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"model.init={scheme!r} is unknown; choose one of {INIT_SCHEMES}")
    reset_norm_layers(model)
    if scheme == "default":
        return model
    for module in model.modules():
        if not isinstance(module, (M.Linear, M.Conv2d)):
            continue
        if scheme == "zeros":
            init.zeros_(module.weight)
        elif scheme == "msra":
            init.msra_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        else:
            init.xavier_uniform_(module.weight)
        if module.bias is not None:
            init.zeros_(module.bias)
    return model
