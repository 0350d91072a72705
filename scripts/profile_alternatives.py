"""Whether MegEngine offers a faster way to run the kernels a chapter model's step is left with, besides
its convolutions (``scripts/profile_ops.py``): the 2x2 max-pools and the linear layers' matrix products.

    python scripts/profile_alternatives.py                              # conf/profile_alternatives.yaml
    python scripts/profile_alternatives.py models=[cnn] device=multithread2:0

Max-pool, forward + backward on the input each pool of the model sees, in the three ways MegEngine can
express it: ``native`` (``F.max_pool2d``; its PoolingBackward kernel), ``reshape`` (a max over the 2x2
windows cut out by a reshape; Reduce's backward) and ``mask`` (the native forward, the gradient routed by
comparing the input with the upsampled maximum). Each row says whether the input gradient equals the
native one (random normal input, so no window has a tie).

Matrix products of each linear layer on the batch, as a training step runs them: forward ``x W^T``, weight
gradient ``dy^T x`` and input gradient ``dy W``, under each of ``strategies`` (MegEngine's algorithm
choice), each strategy in a fresh process since MegEngine keeps the algorithm it chose per shape.

Milliseconds are the best of ``repeats`` timings of ``calls`` calls queued back to back and read back
once. Random data; nothing is trained or tracked. Run it on a quiet machine.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Tuple

import hydra
import megengine as mge
import megengine.functional as F
import megengine.module as M
import numpy as np
from megengine.autodiff import Function, GradManager
from omegaconf import DictConfig, OmegaConf

from mgelab.train.machine import apply_execution_strategy, describe_machine, in_fresh_process, measured_machine
from mgelab.train.measured_models import INPUT_SHAPES, build_measured, profiled_names

Shape = Tuple[int, ...]


def best_ms(fn: Callable[[], mge.Tensor], repeats: int, calls: int) -> float:
    fn().numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls - 1):
            fn()
        fn().numpy()
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e3


def module_inputs(model: M.Module, kind: type, batch: int, input_shape: Shape) -> List[Tuple[str, M.Module, Shape]]:
    """(name, module, input shape) of every ``kind`` module in one forward of a random batch."""
    seen: List[Tuple[str, M.Module, Shape]] = []

    def hook(mod: M.Module, inputs: tuple, out: mge.Tensor, name: str) -> None:
        seen.append((name, mod, inputs[0].shape))

    handles = [module.register_forward_hook(lambda mod, inputs, out, name=name: hook(mod, inputs, out, name))
               for name, module in model.named_modules() if isinstance(module, kind)]
    model.eval()
    model(mge.tensor(np.random.default_rng(0).normal(size=(batch, *input_shape)).astype("float32")))
    for handle in handles:
        handle.remove()
    return seen


# --- max-pool -----------------------------------------------------------------------------------
def windowed(shape: Shape) -> Tuple[slice, ...]:
    """The part of an (N, C, H, W) map that 2x2 windows cover: an odd side's last row or column
    belongs to none (max_pool2d floors)."""
    _, _, h, w = shape
    return slice(None), slice(None), slice(0, h // 2 * 2), slice(0, w // 2 * 2)


def windows_up(t: mge.Tensor, shape: Shape) -> mge.Tensor:
    """A pooled (N, C, H//2, W//2) tensor repeated over each 2x2 window: (N, C, H//2*2, W//2*2)."""
    n, c, h, w = shape
    tiled = F.broadcast_to(t.reshape(n, c, h // 2, 1, w // 2, 1), (n, c, h // 2, 2, w // 2, 2))
    return tiled.reshape(n, c, h // 2 * 2, w // 2 * 2)


class MaskPool(Function):
    def forward(self, x: mge.Tensor) -> mge.Tensor:
        self.x = x
        self.y = F.max_pool2d(x, 2, 2)
        return self.y

    def backward(self, dy: mge.Tensor) -> mge.Tensor:
        covered = windowed(self.x.shape)
        at_max = F.equal(self.x[covered], windows_up(self.y, self.x.shape)).astype("float32")
        grad = at_max * windows_up(dy, self.x.shape)
        if grad.shape == self.x.shape:
            return grad
        full = F.zeros(self.x.shape, dtype="float32")  # the uncovered row or column gets no gradient
        full[covered] = grad
        return full


def reshape_pool(x: mge.Tensor) -> mge.Tensor:
    n, c, h, w = x.shape
    return x[windowed(x.shape)].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=5).max(axis=3)


POOLS: Dict[str, Callable[[mge.Tensor], mge.Tensor]] = {
    "native": lambda x: F.max_pool2d(x, 2, 2), "reshape": reshape_pool, "mask": lambda x: MaskPool()(x),
}


def time_pool(shape: Shape, repeats: int, calls: int) -> Dict[str, Tuple[float, bool]]:
    """Per formulation: (ms per forward + backward, whether its input gradient equals native's)."""
    rng = np.random.default_rng(0)
    x = mge.tensor(rng.normal(size=shape).astype("float32"))
    dy = mge.tensor(rng.normal(size=(shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype("float32"))
    gm = GradManager().attach([x])
    results, reference = {}, None
    for name, pool in POOLS.items():
        def step(pool=pool) -> mge.Tensor:
            x.grad = None
            with gm:
                gm.backward(pool(x), dy)
            return x.grad

        grad = step().numpy()
        reference = grad if reference is None else reference
        results[name] = (best_ms(step, repeats, calls), bool(np.array_equal(grad, reference)))
    return results


# --- matrix products ----------------------------------------------------------------------------
def linear_products(n: int, d_in: int, d_out: int) -> Dict[str, Tuple[Tuple[Shape, Shape], Dict[str, bool]]]:
    """A linear layer's three products: (shapes of a and b, matmul's transpose flags)."""
    return {"fwd": (((n, d_in), (d_out, d_in)), {"transpose_b": True}),  # x W^T, as F.linear
            "dw": (((n, d_out), (n, d_in)), {"transpose_a": True}),  # dy^T x
            "dx": (((n, d_out), (d_out, d_in)), {})}  # dy W


def time_products(device: str, strategy: str, layers: List[Tuple[int, int, int]], repeats: int,
                  calls: int) -> List[Dict[str, float]]:
    """In a fresh process: ms of each product of each (n, d_in, d_out) layer under ``strategy``."""
    mge.set_default_device(device)
    apply_execution_strategy(strategy)
    rng = np.random.default_rng(0)
    rows = []
    for layer in layers:
        row = {}
        for piece, ((shape_a, shape_b), flags) in linear_products(*layer).items():
            a, b = (mge.tensor(rng.normal(size=s).astype("float32")) for s in (shape_a, shape_b))
            row[piece] = best_ms(lambda a=a, b=b, flags=flags: F.matmul(a, b, **flags), repeats, calls)
        rows.append(row)
    return rows


# --- report -------------------------------------------------------------------------------------
def report_pools(name: str, model: M.Module, cfg: DictConfig) -> None:
    for layer, _, shape in module_inputs(model, M.MaxPool2d, int(cfg.batch), INPUT_SHAPES[name]):
        results = time_pool(tuple(shape), int(cfg.repeats), int(cfg.calls))
        cells = "  ".join(f"{k} {ms:6.2f} ms{'' if same else ' (other gradient)'}" for k, (ms, same) in results.items())
        fastest = min(results, key=lambda k: results[k][0])
        print(f"  max-pool {layer:10} {str(tuple(shape)):18} {cells}  fastest: {fastest}")


def report_products(name: str, model: M.Module, cfg: DictConfig) -> None:
    found = module_inputs(model, M.Linear, int(cfg.batch), INPUT_SHAPES[name])
    layers = [(int(shape[0]), int(mod.in_features), int(mod.out_features)) for _, mod, shape in found]
    timed = {s: in_fresh_process(time_products, cfg.device, s, layers, int(cfg.repeats), int(cfg.calls))
             for s in cfg.strategies}
    for i, (layer, _, _) in enumerate(found):
        for piece in ("fwd", "dw", "dx"):
            per = {s: rows[i][piece] for s, rows in timed.items()}
            cells = "  ".join(f"{s} {ms:6.3f} ms" for s, ms in per.items())
            print(f"  linear {layer:12} {str(layers[i]):16} {piece:3}  {cells}  fastest: {min(per, key=per.get)}")


@hydra.main(version_base=None, config_path="../conf", config_name="profile_alternatives")
def main(cfg: DictConfig) -> None:
    print(f"{describe_machine(measured_machine(cfg.device, None, sgemm_size=None))}; batch {cfg.batch}")
    names = profiled_names(cfg.models)
    all_kwargs = OmegaConf.to_container(cfg.model_kwargs, resolve=True)
    for name in names:
        print(f"\n== {name}")
        model = build_measured(name, all_kwargs.get(name, {}))
        report_pools(name, model, cfg)
        report_products(name, model, cfg)


if __name__ == "__main__":
    main()
