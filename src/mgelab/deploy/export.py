"""Export a model to a verified ``.mge`` inference graph plus a JSON description of its input.

An export is only declared done after the written file has been loaded back with MegEngine's
graph loader and its outputs matched the eager model's on seeded batches (at the traced batch
size and at batch 1, since deployments feed other sizes). Until then the graph lives in a hidden
``.<name>.mge.partial`` beside the target; any failure deletes it, so a ``.mge`` on disk is always
a checked one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import megengine as mge
import megengine.module as M
import numpy as np

from mgelab.deploy.graph import (
    DumpSummary,
    GraphOptions,
    InferenceGraph,
    Normalization,
    dump_inference_graph,
    eager_outputs,
)


class ExportError(RuntimeError):
    """The graph could not be written, or its reloaded outputs differ from the model's."""


@dataclass(frozen=True)
class ExportOptions:
    # Traced and checked batch size (the graph itself accepts any batch size).
    batch_size: int = 8
    # Reloaded graph vs eager model: max |graph - eager| <= atol + rtol * max |eager|. Relative to the
    # outputs' scale, not elementwise: optimize_for_inference folds BatchNorm into the conv weights,
    # which moves every logit by float32 rounding of the *largest* ones (measured ~4e-7 of the
    # scale on ResNet-18), and a logit near zero would fail an elementwise test on that alone.
    rtol: float = 1e-5
    atol: float = 1e-5
    seed: int = 0
    graph: GraphOptions = field(default_factory=GraphOptions)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    meta_path: Path
    max_abs_error: float
    checked_batch_sizes: Tuple[int, ...]
    dump: DumpSummary


def check_batches(
    input_shape: Sequence[int], batch_sizes: Sequence[int], raw_dtype: str, seed: int,
    normalization: Optional[Normalization] = None,
) -> List[np.ndarray]:
    """Seeded inputs in the units the graph takes: pixels 0..255 for uint8, else values that
    normalise to a standard normal (the range the model saw in training)."""
    rng = np.random.default_rng(seed)
    batches = []
    for n in batch_sizes:
        shape = (int(n), *input_shape)
        if np.dtype(raw_dtype) == np.uint8:
            batches.append(rng.integers(0, 256, size=shape, dtype=np.uint8))
            continue
        z = rng.standard_normal(shape).astype(np.float32)
        if normalization is not None:  # invert raw * scale + shift
            z = ((z - normalization.shift) / normalization.scale).astype(np.float32)
        batches.append(z.astype(raw_dtype))
    return batches


def _compare(graph: InferenceGraph, model: M.Module, batch: np.ndarray, normalization, options) -> float:
    want = eager_outputs(model, batch, normalization)
    got = graph.run(batch)
    if got.shape != want.shape:
        raise ExportError(f"reloaded graph gives outputs of shape {got.shape}, the model {want.shape}")
    if not want.size:
        return 0.0
    error = float(np.max(np.abs(got.astype(np.float64) - want)))
    allowed = options.atol + options.rtol * float(np.max(np.abs(want)))
    if not error <= allowed:  # also catches NaN
        raise ExportError(
            f"reloaded graph differs from the eager model on a batch of {len(batch)}: max |diff| {error:.3g} "
            f"> atol {options.atol} + rtol {options.rtol} * max |output| = {allowed:.3g}. The model's forward pass "
            "may do something a trace cannot capture (Python-side randomness or state); or loosen rtol/atol "
            "if that is expected"
        )
    return error


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(content, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def graph_meta(
    input_shape: Sequence[int], raw_dtype: str, normalization: Optional[Normalization],
    options: ExportOptions, extra: Mapping[str, Any],
) -> Dict[str, Any]:
    """What a consumer of the ``.mge`` needs: input name/layout/dtype and what the graph does to it."""
    meta: Dict[str, Any] = {
        "format": "megengine inference graph (jit.trace dump)",
        "megengine_version": mge.__version__,
        "input": {"name": options.graph.input_name, "shape": [-1, *map(int, input_shape)], "dtype": raw_dtype},
        "output": {"name": options.graph.output_name},
        # true: feed raw samples (e.g. uint8 pixels); the graph applies the training normalisation.
        "normalization_in_graph": normalization is not None,
        "graph_options": asdict(options.graph),
    }
    meta.update(extra)
    return meta


def export_model(
    model: M.Module,
    input_shape: Sequence[int],
    path: Path | str,
    *,
    normalization: Optional[Normalization] = None,
    raw_dtype: str = "float32",
    options: ExportOptions = ExportOptions(),
    extra_meta: Optional[Mapping[str, Any]] = None,
) -> ExportResult:
    """Write ``path`` (``.mge``) and ``path`` with ``.json``, after checking the reloaded graph.

    Without ``normalization`` the graph takes the model's own (normalised float32) inputs.
    """
    path = Path(path)
    if path.suffix != ".mge":
        raise ExportError(f"export path {path} must end in .mge")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    sizes = tuple(dict.fromkeys((int(options.batch_size), 1)))
    batches = check_batches(input_shape, sizes, raw_dtype, options.seed, normalization)
    done = False
    try:
        dump = dump_inference_graph(model, batches[0], partial, normalization, options.graph)
        graph = InferenceGraph(partial)
        error = max(_compare(graph, model, batch, normalization, options) for batch in batches)
        meta = graph_meta(input_shape, raw_dtype, normalization, options, extra_meta or {})
        meta["check"] = {"batch_sizes": list(sizes), "max_abs_error": error, "rtol": options.rtol,
                         "atol": options.atol, "seed": options.seed}
        meta_path = path.with_suffix(".json")
        _write_json(meta_path, meta)
        os.replace(partial, path)
        done = True
    except ExportError as exc:
        raise ExportError(f"{path} not written: {exc}") from exc
    except Exception as exc:
        raise ExportError(f"{path} not written: tracing, dumping or reloading the graph failed: {exc!r}") from exc
    finally:  # also on Ctrl-C: never leave a half-written graph
        if not done:
            partial.unlink(missing_ok=True)
    return ExportResult(path, meta_path, error, sizes, dump)
