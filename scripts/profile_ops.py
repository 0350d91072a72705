"""Where a CPU training step's time goes, layer by layer: each convolution's forward, input
gradient and weight gradient (the fast path's formulations), each BatchNorm's training-mode
forward + backward, timed alone on the shapes the model really sees, against the whole step.

    python scripts/profile_ops.py                         # cnn, lenet and resnet at batch 64
    python scripts/profile_ops.py models=[resnet] device=multithread2:0
    python scripts/profile_ops.py strategy=PROFILE_REPRODUCIBLE     # MegEngine's algorithm choice

Prints one row per layer (milliseconds and achieved GFLOP/s per piece), then the step's total,
the share the timed pieces explain and the rest (elementwise ops, pooling, the optimizer, Python
dispatch). Random data; nothing is trained or tracked. Run it on a quiet machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import hydra
import megengine as mge
import megengine.functional as F
import megengine.module as M
import megengine.optimizer as mopt
import numpy as np
from megengine.autodiff import GradManager
from omegaconf import DictConfig, OmegaConf

from mgelab.nn import BatchNorm2d
from mgelab.nn.conv_grad import input_grad, weight_grad
from mgelab.train.machine import describe_machine, measured_machine
from mgelab.train.measured_models import INPUT_SHAPES, NUM_CLASSES, build_measured, profiled_names


@dataclass
class LayerTiming:
    name: str
    shape: str
    pieces: Dict[str, float]  # piece -> milliseconds
    flops: float  # multiply-adds * 2 of one forward of this layer on the batch

    def total_ms(self) -> float:
        return sum(self.pieces.values())


@dataclass(frozen=True)
class Timing:
    repeats: int  # timings after one warm-up; the fastest counts
    calls: int  # calls queued back to back per timing, read back once

    def best_ms(self, fn: Callable[[], mge.Tensor]) -> float:
        """Milliseconds per call of ``fn``. MegEngine runs async, so only the last call of each
        timing is read back: reading back after every call adds the thread pool's wake-up to every
        piece, and pieces timed that way on two threads summed to more than the whole step."""
        fn().numpy()
        best = float("inf")
        for _ in range(self.repeats):
            started = time.perf_counter()
            for _ in range(self.calls - 1):
                fn()
            fn().numpy()
            best = min(best, (time.perf_counter() - started) / self.calls)
        return best * 1e3


def layer_inputs(model: M.Module, x: mge.Tensor) -> Dict[str, Tuple[M.Module, mge.Tensor, mge.Tensor]]:
    """Every Conv2d / BatchNorm2d by name, with the input and output it saw in one forward."""
    seen: Dict[str, Tuple[M.Module, mge.Tensor, mge.Tensor]] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (M.Conv2d, M.BatchNorm2d)):
            def hook(mod, inputs, output, name=name):
                seen[name] = (mod, inputs[0].detach(), output.detach())
            handles.append(module.register_forward_hook(hook))
    model(x)
    for handle in handles:
        handle.remove()
    return seen


def time_conv(name: str, conv: M.Conv2d, x: mge.Tensor, y: mge.Tensor, timing: Timing, needs_dx: bool) -> LayerTiming:
    w = conv.weight.detach()
    stride, padding = tuple(conv.stride), tuple(conv.padding)
    dy = mge.tensor(np.random.default_rng(0).normal(size=y.shape).astype("float32"))
    kernel = (w.shape[2], w.shape[3])
    pieces = {"fwd": timing.best_ms(lambda: F.conv2d(x, w, stride=stride, padding=padding)),
              "dw": timing.best_ms(lambda: weight_grad(x, dy, stride, padding, kernel))}
    # The first layer's input is data: no gradient is computed for it in training either.
    if needs_dx:
        pieces["dx"] = timing.best_ms(lambda: input_grad(dy, w, stride, padding, (x.shape[2], x.shape[3])))
    n, _, ho, wo = y.shape
    flops = 2.0 * n * ho * wo * w.shape[0] * w.shape[1] * kernel[0] * kernel[1]
    return LayerTiming(name, f"{x.shape[1]}->{w.shape[0]} {x.shape[2]}x{x.shape[3]} s{stride[0]}", pieces, flops)


def bn_copy(bn: M.BatchNorm2d) -> M.BatchNorm2d:
    """A fresh BatchNorm of the same kind and kernels (``impl``) as ``bn``."""
    if isinstance(bn, BatchNorm2d):
        return BatchNorm2d(bn.num_features, impl=bn.impl)
    return M.BatchNorm2d(bn.num_features)


def time_bn(name: str, bn: M.BatchNorm2d, x: mge.Tensor, timing: Timing) -> LayerTiming:
    """Training-mode forward + backward of one BatchNorm: a copy of the model's own kind (mgelab's
    fast BatchNorm where the model trains with it), so the model's running statistics stay."""
    copy = bn_copy(bn)
    gm = GradManager().attach(copy.parameters())
    probe = mge.Tensor(x.numpy())

    def step() -> mge.Tensor:
        gm.attach([probe])
        with gm:
            out = copy(probe)
            gm.backward(out.sum())
        return probe.grad  # the last kernel of the backward, so reading it back waits for all of it

    fwd = timing.best_ms(lambda: copy(x))
    both = timing.best_ms(step)
    return LayerTiming(name, f"bn {x.shape[1]} {x.shape[2]}x{x.shape[3]}", {"fwd": fwd, "bwd": max(both - fwd, 0.0)},
                       0.0)


def step_ms(model: M.Module, x: mge.Tensor, labels: mge.Tensor, repeats: int) -> float:
    """One whole SGD step (forward, backward, update), the loss read back."""
    optimizer = mopt.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gm = GradManager().attach(model.parameters())

    def step() -> mge.Tensor:
        with gm:
            loss = F.nn.cross_entropy(model(x), labels)
            gm.backward(loss)
        optimizer.step().clear_grad()
        return loss

    # Read back every step, as the trainer does.
    return Timing(repeats, calls=1).best_ms(step)


def profile(name: str, kwargs: Dict[str, Any], batch: int, timing: Timing) -> Tuple[List[LayerTiming], float]:
    model = build_measured(name, kwargs)
    model.train()
    rng = np.random.default_rng(0)
    x = mge.tensor(rng.normal(size=(batch, *INPUT_SHAPES[name])).astype("float32"))
    labels = mge.tensor(rng.integers(0, NUM_CLASSES, size=batch).astype("int32"))
    layers = layer_inputs(model, x)
    first_conv = next((n for n, (m, _, _) in layers.items() if isinstance(m, M.Conv2d)), None)
    rows = []
    for layer, (module, inp, out) in layers.items():
        if isinstance(module, M.Conv2d):
            rows.append(time_conv(layer, module, inp, out, timing, needs_dx=layer != first_conv))
        else:
            rows.append(time_bn(layer, module, inp, timing))
    return rows, step_ms(model, x, labels, timing.repeats)


def report(name: str, rows: List[LayerTiming], step: float) -> None:
    print(f"\n== {name}: one training step {step:.1f} ms")
    print(f"{'layer':28} {'shape':22} {'fwd ms':>8} {'dx ms':>8} {'dw ms':>8} {'bwd ms':>8} {'fwd GF/s':>9} "
          f"{'dx GF/s':>8} {'dw GF/s':>8}")
    for r in rows:
        ms = [r.pieces.get(k) for k in ("fwd", "dx", "dw", "bwd")]
        rates = [r.flops / r.pieces[k] / 1e6 if r.flops and k in r.pieces else None for k in ("fwd", "dx", "dw")]
        cells = " ".join(f"{v:8.2f}" if v is not None else f"{'':8}" for v in ms)
        gfs = " ".join(f"{v:8.1f}" if v is not None else f"{'':8}" for v in rates)
        print(f"{r.name[:28]:28} {r.shape:22} {cells} {gfs}")
    totals: Dict[str, float] = {}
    for r in rows:
        kind = "bn" if r.shape.startswith("bn") else "conv"
        for piece, value in r.pieces.items():
            totals[f"{kind} {piece}"] = totals.get(f"{kind} {piece}", 0.0) + value
    explained = sum(totals.values())
    parts = ", ".join(f"{k} {v:.1f} ms ({v / step:.0%})" for k, v in sorted(totals.items()))
    print(f"timed pieces: {parts}")
    print(f"explained {explained:.1f} of {step:.1f} ms ({explained / step:.0%}); the rest "
          f"{max(step - explained, 0):.1f} ms is elementwise ops, pooling, loss, optimizer and dispatch")


@hydra.main(version_base=None, config_path="../conf", config_name="profile_ops")
def main(cfg: DictConfig) -> None:
    # The machine line bench.py prints (CPU, flags, strategy, threads); the sgemm peak is bench's.
    print(f"{describe_machine(measured_machine(cfg.device, cfg.strategy, sgemm_size=None))}; batch {cfg.batch}")
    names = profiled_names(cfg.models)
    all_kwargs = OmegaConf.to_container(cfg.model_kwargs, resolve=True)
    timing = Timing(int(cfg.repeats), int(cfg.calls))
    for name in names:
        rows, step = profile(name, all_kwargs.get(name, {}), int(cfg.batch), timing)
        report(name, rows, step)


if __name__ == "__main__":
    main()
