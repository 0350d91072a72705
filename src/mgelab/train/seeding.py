"""One seed for numpy's global RNG and MegEngine's (dropout masks, random init)."""

from __future__ import annotations

import random

import megengine as mge
import numpy as np


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    mge.random.seed(seed)
