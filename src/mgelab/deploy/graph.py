"""Trace an eval-mode model into a MegEngine inference graph (``.mge``), and run such a file.

The graph is recorded with ``jit.trace(symbolic=True, capture_as_const=True)``: parameters (and
the optional input normalisation) become constants of the graph, so the file needs no Python model
code to run. ``mgelab.nn.Conv2d`` traces as the plain convolution whatever its ``impl``: the fast
path only changes the backward pass, which an inference graph does not contain (tests check the
files of both impls give the eager outputs).

Loading goes through ``megengine.utils.comp_graph_tools.GraphInference`` (MegEngine's own
``load_graph`` plus input/output binding), the same loader its ``load_network_and_run`` tool uses.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple

import megengine as mge
import megengine.module as M
import numpy as np
from megengine.jit import trace
from megengine.utils.comp_graph_tools import GraphInference

INPUT_NAME = "data"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class Normalization:
    """``raw * scale + shift`` (float32, broadcast over (N, *sample)): the training data's map."""

    scale: np.ndarray
    shift: np.ndarray

    def apply(self, raw: np.ndarray) -> np.ndarray:
        # The same order of operations as the data module's, so eager and graph agree bit for bit
        # unless the graph optimiser fuses them.
        out = np.asarray(raw).astype(np.float32)
        out *= self.scale
        out += self.shift
        return out


@dataclass(frozen=True)
class GraphOptions:
    """What goes into the dump. ``fuse_conv_bias_nonlinearity`` merges conv + bias + ReLU into one
    operator (MegEngine's ConvBias); the CPU has kernels for it and results stay float32."""

    optimize_for_inference: bool = True
    fuse_conv_bias_nonlinearity: bool = True
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME

    def optimize_kwargs(self) -> dict:
        if not self.optimize_for_inference:
            return {}
        return {"enable_fuse_conv_bias_nonlinearity": self.fuse_conv_bias_nonlinearity}


@dataclass(frozen=True)
class DumpSummary:
    operators: int
    bytes: int
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]


@contextmanager
def eval_mode(model: M.Module) -> Iterator[M.Module]:
    """The model in eval mode (dropout off, BatchNorm on running statistics), its modes restored after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def eager_outputs(model: M.Module, inputs: np.ndarray, normalization: Optional[Normalization] = None) -> np.ndarray:
    """What the Python model computes for ``inputs`` (raw ones when ``normalization`` is given)."""
    prepared = normalization.apply(inputs) if normalization is not None else inputs.astype(np.float32)
    with eval_mode(model):
        return model(mge.tensor(prepared)).numpy()


def dump_inference_graph(
    model: M.Module,
    example: np.ndarray,
    path: Path,
    normalization: Optional[Normalization] = None,
    options: GraphOptions = GraphOptions(),
) -> DumpSummary:
    """Trace ``model`` on the batch ``example`` and write its inference graph to ``path``.

    With ``normalization`` the graph takes raw samples in ``example``'s dtype (uint8 images) and
    normalises them itself, so a deployment feeds pixels as they are.
    """
    # Captured as constants of the graph, like the parameters.
    affine = None if normalization is None else (mge.tensor(normalization.scale), mge.tensor(normalization.shift))

    @trace(symbolic=True, capture_as_const=True)
    def infer(data):
        if affine is not None:
            data = data.astype("float32") * affine[0] + affine[1]
        return model(data)

    with eval_mode(model):
        infer(mge.tensor(example, dtype=example.dtype))
        with open(path, "wb") as file:
            info = infer.dump(
                file,
                arg_names=[options.input_name],
                output_names=[options.output_name],
                optimize_for_inference=options.optimize_for_inference,
                **options.optimize_kwargs(),
            )
    return DumpSummary(int(info.nr_opr), int(info.tot_bytes), tuple(info.inputs), tuple(info.outputs))


class InferenceGraph:
    """A dumped ``.mge`` graph, loaded with MegEngine's graph loader, run on numpy batches."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as file:
            self._graph = GraphInference(file)
        names = list(self._graph._inp_dict)  # GraphInference exposes its input names only here
        if len(names) != 1:
            raise ValueError(f"{self.path} has inputs {names}; mgelab graphs have exactly one")
        self.input_name = names[0]

    def run(self, inputs: np.ndarray) -> np.ndarray:
        results = self._graph.run(inp_dict={self.input_name: np.ascontiguousarray(inputs)})
        if len(results) != 1:
            raise ValueError(f"{self.path} has outputs {list(results)}; mgelab graphs have exactly one")
        return next(iter(results.values()))
