"""What a data module's settings say before any data is read: whether a split size is one, and
what one sample is (so a model can be checked against the data offline, before a download)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class SampleInfo:
    """What one sample is, as a data module's settings state it (nothing is read): the shape of
    its inputs, the task and the number of model outputs (classes, or target values)."""

    shape: Tuple[int, ...]
    task: str
    num_outputs: int


def check_split_size(key: str, value: object, *, allow_zero: bool = True) -> None:
    """A split size: a fraction below 1 (of the samples it is taken from) or a whole count.

    Checked when the module is built: the split itself is made only once the data is read.
    """
    lowest = 0 if allow_zero else 1
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and (0 < value < 1 or (float(value).is_integer() and value >= lowest))):
        low = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{key}={value!r} must be a fraction in {low} or a whole count >= {lowest}")

