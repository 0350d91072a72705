"""Weight initialisation schemes selectable from config (``model.init``)."""

from __future__ import annotations

import megengine.module as M
import megengine.module.init as init

INIT_SCHEMES = ("default", "zeros", "msra", "xavier")


def apply_init(model: M.Module, scheme: str) -> M.Module:
    """Re-initialise every Linear/Conv2d weight; biases go to zero for non-default schemes.

    ``default`` keeps MegEngine's own initialisation. ``zeros`` is what the tutorial's
    linear chapters use (fine for a convex model, useless for hidden layers).
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"model.init={scheme!r} is unknown; choose one of {INIT_SCHEMES}")
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
