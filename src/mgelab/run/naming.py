"""A run's name: its model plus the command-line overrides that tell it apart, e.g. ``mlp lr=0.01``.

A single run shows every override that changes its result; a sweep's job only the keys the sweep
varies (``-m model=linear,mlp,cnn`` names its jobs ``linear``, ``mlp``, ``cnn``), since what all
jobs share says nothing about one of them. Left out always: what cannot change the result (the
resume-neutral keys, the logger, Hydra's own settings), the data choice (an experiment holds one
dataset), and the choices the model name already says (``model=``, ``experiment=``). Keys are
shown by their last component (``lr``) unless two of a name share it. Uniqueness within the
experiment is the tracking side's (it appends a number to a name already taken).
"""

from __future__ import annotations

from typing import Collection, List, Optional, Sequence, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override

from mgelab.run.resume import is_neutral

# Key prefixes (and whole keys) no name shows; a group choice's key has no dot (``data``).
UNNAMED = ("hydra.", "hydra/", "logger", "sweep.", "paths", "run_name", "experiment_name")
UNNAMED_GROUPS = ("data", "model", "experiment", "hparams_search", "logger", "paths")
# A sampled float (Optuna's 0.012345678) is shown with this many significant digits.
FLOAT_DIGITS = 4


def _shown(override: Override) -> bool:
    key = override.key_or_group
    return not (key in UNNAMED_GROUPS or key.startswith(UNNAMED) or is_neutral(key))


def _value_text(override: Override) -> str:
    if override.is_delete():
        return "deleted"
    value, text = override.value(), override.get_value_element_as_str()
    if isinstance(value, float) and len(text) > FLOAT_DIGITS + 4:
        return f"{value:.{FLOAT_DIGITS}g}"
    return text


def _labels(keys: Sequence[str]) -> List[str]:
    """Each key's last component, or the whole key where two would share that component."""
    shorts = [k.rsplit(".", 1)[-1].rsplit("/", 1)[-1] for k in keys]
    return [short if shorts.count(short) == 1 else key for key, short in zip(keys, shorts)]


def naming_overrides(overrides: Sequence[str], swept: Optional[Collection[str]] = None) -> List[Tuple[str, str]]:
    """(key, value text) of the overrides a name shows; ``swept``: a sweep job's varied keys."""
    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    chosen = [o for o in parsed if _shown(o) and (swept is None or o.key_or_group in swept)]
    return [(o.key_or_group, _value_text(o)) for o in chosen]


def run_name(model: str, overrides: Sequence[str], swept: Optional[Collection[str]] = None) -> str:
    """``mlp lr=0.01``: ``model`` and the overrides that tell this run (or sweep job) apart."""
    shown = naming_overrides(overrides, swept)
    labels = _labels([key for key, _ in shown])
    return " ".join([str(model)] + [f"{label}={text}" for label, (_, text) in zip(labels, shown)])
