"""Parameter count and FLOPs of a model, from MegEngine's own module statistics.

``megengine.utils.module_stats.module_stats`` runs one forward pass on zeros with hooks on the
module types it knows (convolutions, linear, normalisation, pooling) and counts, per hooked
layer, what MegEngine calls OPs: one multiply-accumulate (plus the bias add) is one op, so a
``Linear(i, o)`` is ``i * o + o`` and a conv is ``N * C_out * H_out * W_out * (C_in / groups *
k_h * k_w + bias)``. Activations, residual adds, reshapes and other functional ops are not
counted. ``mgelab.nn.Conv2d`` subclasses ``megengine.module.Conv2d``, so it is hooked and counted
by the same rule as the native conv (tests check both against hand counts).

The parameter totals come from ``model.parameters()`` itself, so a parameter outside any hooked
module is still counted; such modules are listed in ``ModelSummary.uncounted`` (their FLOPs are
missing from the total), rather than silently left out.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import megengine.module as M
from megengine.utils import module_stats as stats_module

# FLOPs are counted for one sample; MegEngine's linear rule adds the bias once per call, not per
# sample, so only batch 1 makes every rule agree with "per sample".
SAMPLE_BATCH = 1


@dataclass(frozen=True)
class LayerStats:
    """One hooked layer: its FLOPs for one sample and the parameters it owns."""

    name: str
    kind: str
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    flops: int
    parameters: int


@dataclass(frozen=True)
class ModelSummary:
    input_shape: Tuple[int, ...]
    num_parameters: int
    trainable_parameters: int
    parameter_bytes: int
    flops: int
    layers: Tuple[LayerStats, ...] = ()
    # Modules that own parameters but that MegEngine's statistics do not hook: FLOPs not counted.
    uncounted: Tuple[str, ...] = field(default=())

    def as_params(self, prefix: str = "model_info.") -> Dict[str, object]:
        """Flat values for a tracker's params, e.g. ``model_info.flops``."""
        return {
            f"{prefix}num_parameters": self.num_parameters,
            f"{prefix}trainable_parameters": self.trainable_parameters,
            f"{prefix}parameter_bytes": self.parameter_bytes,
            f"{prefix}flops": self.flops,
            f"{prefix}summary_input_shape": list(self.input_shape),
        }

    def headline(self) -> str:
        return (
            f"input {list(self.input_shape)}: {self.num_parameters:,} parameters "
            f"({self.trainable_parameters:,} trainable, {human(self.parameter_bytes, 1024, 'B')}), "
            f"{self.flops:,} FLOPs per sample ({human(self.flops, 1000, 'FLOPs')}; multiply-adds)"
        )

    def table(self) -> str:
        """The per-layer rows as an aligned text table, then the totals."""
        header = ("layer", "type", "input", "output", "params", "FLOPs", "share")
        rows = [header]
        for layer in self.layers:
            share = f"{100.0 * layer.flops / self.flops:.1f}%" if self.flops else "-"
            rows.append((layer.name, layer.kind, _shape(layer.input_shape), _shape(layer.output_shape),
                         f"{layer.parameters:,}", f"{layer.flops:,}", share))
        rows.append(("total", "", "", "", f"{self.num_parameters:,}", f"{self.flops:,}", ""))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        if self.uncounted:
            lines.append(f"not counted in FLOPs (module types MegEngine does not hook): {', '.join(self.uncounted)}")
        return "\n".join(lines)


def human(value: float, scale: float, unit: str) -> str:
    for prefix in ("", "K", "M", "G", "T"):
        if abs(value) < scale or prefix == "T":
            return f"{value:.3g} {prefix}{'i' if scale == 1024 and prefix else ''}{unit}"
        value /= scale
    raise AssertionError("unreachable")


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


@contextmanager
def _quiet_module_stats() -> Iterator[None]:
    """module_stats logs its summary table at INFO whatever ``logging_to_stdout`` says."""
    logger = logging.getLogger(stats_module.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _per_layer_parameters(param_rows: List[dict]) -> Dict[str, int]:
    """module_stats names parameter rows ``<layer>-w`` / ``<layer>-b``; sum them per layer."""
    owned: Dict[str, int] = {}
    for row in param_rows:
        name = row.get("name", "")
        if name == "total" or "-" not in name:
            continue
        layer = name.rsplit("-", 1)[0]
        owned[layer] = owned.get(layer, 0) + int(row["param_dim"])
    return owned


def _layers(flop_rows: List[dict], param_rows: List[dict]) -> Tuple[LayerStats, ...]:
    owned = _per_layer_parameters(param_rows)
    layers = []
    for row in flop_rows:
        if row.get("name") == "total" or "flops_num" not in row:
            continue
        layers.append(LayerStats(
            name=row["name"],
            kind=row["class_name"],
            input_shape=tuple(int(s) for s in row["input_shapes"][0]) if row["input_shapes"] else (),
            output_shape=tuple(int(s) for s in row["output_shapes"][0]),
            flops=int(row["flops_num"]),
            parameters=owned.get(row["name"], 0),
        ))
    return tuple(layers)


def _uncounted(model: M.Module, counted: Sequence[str]) -> Tuple[str, ...]:
    """Modules owning parameters directly that got no FLOPs row."""
    hooked = set(counted)
    missing = []
    for name, module in model.named_modules():
        if name not in hooked and any(True for _ in module.parameters(recursive=False)):
            missing.append(f"{name or '(root)'} ({type(module).__name__})")
    return tuple(missing)


def _frozen_ids(model: M.Module, frozen_prefixes: Sequence[str]) -> set:
    """Parameters no optimizer step will change. MegEngine tensors have no requires_grad flag:
    freezing means a model keeping them out of the gradient (``frozen_modules()``, as ResNet-18's
    ``freeze_stages`` does) or a caller naming them by prefix (``frozen_prefixes`` argument or
    attribute)."""
    prefixes = tuple(frozen_prefixes) or tuple(getattr(model, "frozen_prefixes", ()) or ())
    frozen = {id(p) for name, p in model.named_parameters() if prefixes and name.startswith(prefixes)}
    frozen_modules = getattr(model, "frozen_modules", None)
    if callable(frozen_modules):
        frozen |= {id(p) for module in frozen_modules() for p in module.parameters()}
    return frozen


def model_summary(
    model: M.Module, input_shape: Sequence[int], frozen_prefixes: Optional[Sequence[str]] = None
) -> ModelSummary:
    """Parameters and FLOPs of ``model`` on one sample of ``input_shape`` (no batch axis).

    Runs one eval-mode forward pass on zeros (the model's train/eval mode is restored after).
    """
    shape = tuple(int(s) for s in input_shape)
    with _quiet_module_stats():
        _, details = stats_module.module_stats(
            model,
            input_shapes=[(SAMPLE_BATCH,) + shape],
            cal_params=True,
            cal_flops=True,
            cal_activations=False,
            logging_to_stdout=False,
        )
    layers = _layers(details.flops, details.params)
    params = list(model.parameters())
    frozen = _frozen_ids(model, frozen_prefixes or ())
    return ModelSummary(
        input_shape=shape,
        num_parameters=int(sum(p.size for p in params)),
        trainable_parameters=int(sum(p.size for p in params if id(p) not in frozen)),
        parameter_bytes=int(sum(p.size * p.dtype.itemsize for p in params)),
        flops=int(sum(layer.flops for layer in layers)),
        layers=layers,
        uncounted=_uncounted(model, [layer.name for layer in layers]),
    )
