"""Train and eval throughput: the mgelab trainer end to end vs a bare MegEngine loop.

    python scripts/bench.py                                        # conf/bench.yaml as is
    python scripts/bench.py conv_impl=[native,fast] models=[cnn,lenet] steps=10
    python scripts/bench.py device=multithread2:0

First the machine, as a ``{"machine": ...}`` JSON line and a readable line: CPU, AVX2/AVX-512/AMX
flags, MegEngine version, execution strategy (``strategy``; null: MEGENGINE_EXECUTION_STRATEGY or
HEURISTIC), device threads and the sgemm peak (best of 3 ``sgemm_size``^3 float32 ``F.matmul``).
Then one JSON line per (model, variant, conv_impl), then a table. Random data of the right shape,
so the figures compare with ../shared/peers/torch_reference.py run alike. ``train_gflops``: train
samples/s x training FLOPs per sample (3x the forward multiply-adds of MegEngine's module
statistics, 2 FLOPs each; activations, loss, optimizer uncounted); ``of_peak``: that / sgemm peak.
``peak_rss_mb``: the peak resident memory of the measurement, MegEngine itself (~300 MB)
included. With ``isolate=true`` (the default) each measurement runs in a fresh process;
with ``isolate=false`` the high-water mark is reset through /proc/self/clear_refs, but
memory MegEngine's allocator kept from earlier models still counts.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import hydra
import megengine as mge
import megengine.functional as F
import megengine.module as M
import megengine.optimizer as mopt
import numpy as np
from megengine.autodiff import GradManager
from megengine.jit import trace
from omegaconf import DictConfig, OmegaConf

from mgelab.data.arrays import ArrayDataModule, Split
from mgelab.models.summary import model_summary
from mgelab.nn import Conv2d, check_conv_impl
from mgelab.tracking.base import NullLogger
from mgelab.train import Trainer, machine
from mgelab.train.measured_models import CIFAR, FASHION, INPUT_SHAPES, NUM_CLASSES, build_measured, check_measured
from mgelab.train.memory import DEFAULT_MMAP_THRESHOLD_KB, peak_rss_mb, reset_peak_rss, set_mmap_threshold
from mgelab.train.optim import OptimizerFactory

# Training images of the dataset each shape stands for (full_size_data=true), test 10 000.
FULL_TRAIN_SIZES = {FASHION: 60_000, CIFAR: 50_000}
# The table's columns, three under shorter headers (the JSON keys stay as they are).
TABLE_COLUMNS = (
    "model", "variant", "compiled", "conv_impl", "train_samples_per_s", "eval_samples_per_s", "peak_rss_mb",
    "train_gflops", "of_peak",
)
TABLE_HEADERS = {"train_samples_per_s": "train/s", "eval_samples_per_s": "eval/s", "peak_rss_mb": "rss_mb"}


@dataclass(frozen=True)
class Settings:
    batch: int
    steps: int
    warmup: int
    eval_batch: int
    eval_batches: int
    lr: float
    momentum: float
    seed: int
    sync_every_step: bool
    full_size_data: bool
    mmap_threshold_kb: Optional[int]


class RandomImages(ArrayDataModule):
    """uint8 noise and random labels: enough train batches for warm-up plus timed steps."""

    def __init__(self, shape: Sequence[int], settings: Settings) -> None:
        super().__init__(name="bench", batch_size=settings.batch, eval_batch_size=settings.eval_batch,
                         seed=settings.seed, class_names=[str(i) for i in range(NUM_CLASSES)])
        self.shape = tuple(shape)
        self.sizes = {
            "train": settings.batch * (settings.steps + settings.warmup),
            "val": settings.eval_batch,  # the trainer validates once per fit; keep it small
            "test": settings.eval_batch * settings.eval_batches,
        }
        if settings.full_size_data:  # the real dataset's footprint, for peak_rss_mb
            self.sizes.update(train=FULL_TRAIN_SIZES[self.shape], test=10_000)

    def load_splits(self) -> Dict[str, Split]:
        rng = np.random.default_rng(self.seed)
        return {
            name: Split(rng.integers(0, 256, size=(n, *self.shape), dtype=np.uint8),
                        rng.integers(0, NUM_CLASSES, size=n).astype(np.int32))
            for name, n in self.sizes.items()
        }


# --- models -----------------------------------------------------------------------------------
def probe(name: str, kwargs: Dict[str, Any]) -> Tuple[bool, int]:
    """Whether the model has convolutions, and its training FLOPs per sample."""
    model = build_measured(name, kwargs)
    flops = machine.train_flops_per_sample(model_summary(model, INPUT_SHAPES[name]).flops)
    return any(isinstance(m, Conv2d) for m in model.modules()), flops


def build(name: str, impl: Optional[str], kwargs: Dict[str, Any]) -> M.Module:
    return build_measured(name, kwargs if impl is None else {**kwargs, "conv_impl": impl})


def conv_path(model: M.Module) -> Optional[str]:
    """Which backward the model's convs take on the default device ('fast'/'native'), if any."""
    probe = mge.tensor(np.zeros(1, "float32"))
    paths = {"fast" if m.uses_fast(probe) else "native" for m in model.modules() if isinstance(m, Conv2d)}
    return "+".join(sorted(paths)) or None


class StepClock(NullLogger):
    """Notes the time of every logged step: the trainer's rate is then measured between
    the end of the warm-up steps and the last step of one fit (graph compilation, data
    normalisation and validation fall outside it)."""

    def __init__(self) -> None:
        self.times: List[float] = []

    def log_metrics(self, metrics: Dict[str, float], step: int) -> None:
        if "step/train_loss" in metrics:
            self.times.append(time.perf_counter())


def bench_trainer(model: M.Module, name: str, s: Settings, compiled: bool) -> Tuple[float, float]:
    """Trainer.fit on in-memory data, then Trainer.evaluate; returns (train, eval) samples/s."""
    data = RandomImages(INPUT_SHAPES[name], s)
    factory = OptimizerFactory(name="sgd", lr=s.lr, momentum=s.momentum)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as checkpoints:
        trainer = Trainer(max_epochs=1, progress_bar=False, checkpoint_dir=checkpoints, log_every_n_steps=1,
                          compile=str(compiled), limit_train_batches=s.warmup + s.steps,
                          mmap_threshold_kb=s.mmap_threshold_kb, execution_strategy=machine.execution_strategy())
        trainer.fit(model, data, factory, clock)
    # From the end of the last warm-up step (or of the first step) to the end of the last one.
    timed_steps = clock.times[max(s.warmup, 1) - 1:]
    train_rate = s.batch * (len(timed_steps) - 1) / (timed_steps[-1] - timed_steps[0])
    started = time.perf_counter()
    trainer.evaluate(model, data, "test")
    return train_rate, data.split_size("test") / (time.perf_counter() - started)


def bench_bare(model: M.Module, name: str, s: Settings, compiled: bool) -> Tuple[float, float]:
    """The MegEngine idiom on one fixed batch, handed over from numpy each step as a data loader's
    would be: attach, record, backward, step (``compiled``:
    the same function under ``jit.trace(symbolic=True)``).

    ``sync_every_step`` reads the loss back after every step, as a real loop does. Without it
    MegEngine's asynchronous queue runs ahead: measured here (2 cores, one busy) the CNN then
    trained ~1.5-2x slower with ~2x the peak memory, the dispatching Python thread competing
    with the worker that computes.
    """
    rng = np.random.default_rng(s.seed)
    x = rng.normal(size=(s.batch, *INPUT_SHAPES[name])).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=s.batch).astype("int32")
    optimizer = mopt.SGD(model.parameters(), lr=s.lr, momentum=s.momentum)
    gm = GradManager().attach(model.parameters())

    def record(inputs: mge.Tensor, labels: mge.Tensor) -> mge.Tensor:
        with gm:
            loss = F.nn.cross_entropy(model(inputs), labels)
            gm.backward(loss)
        optimizer.step().clear_grad()
        return loss

    run_step = trace(record, symbolic=True) if compiled else record
    model.train()
    seconds = machine.timed(lambda: run_step(mge.tensor(x), mge.tensor(y)), s.warmup, s.steps, s.sync_every_step)
    train_rate = s.batch * s.steps / seconds
    model.eval()
    x_eval = mge.tensor(rng.normal(size=(s.eval_batch, *INPUT_SHAPES[name])).astype("float32"))
    eval_seconds = machine.timed(lambda: model(x_eval), 1, s.eval_batches, s.sync_every_step)
    eval_rate = s.eval_batch * s.eval_batches / eval_seconds
    return train_rate, eval_rate


VARIANTS = {"trainer": bench_trainer, "bare": bench_bare}


# --- driver -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One measurement; plain data so it can cross into a fresh process."""

    model: str
    variant: str
    conv_impl: Optional[str]
    compiled: bool
    device: str
    strategy: Optional[str]
    train_flops: int  # per sample
    settings: Settings
    model_kwargs: Dict[str, Any]


def measure(job: Job) -> Dict[str, Any]:
    s = job.settings
    mge.set_default_device(job.device)
    machine.apply_execution_strategy(job.strategy)
    set_mmap_threshold(s.mmap_threshold_kb)  # the trainer sets it too; the bare loop gets the same
    reset_peak_rss()
    mge.random.seed(s.seed)
    model = build(job.model, job.conv_impl, job.model_kwargs)
    train_rate, eval_rate = VARIANTS[job.variant](model, job.model, s, job.compiled)
    return {
        "model": job.model,
        "variant": job.variant,
        "compiled": job.compiled,
        "conv_impl": job.conv_impl,
        "conv_path": conv_path(model),
        "device": job.device,
        "strategy": machine.execution_strategy(),
        "train_samples_per_s": round(train_rate, 1),
        "eval_samples_per_s": round(eval_rate, 1),
        "batch": s.batch,
        "steps": s.steps,
        "peak_rss_mb": peak_rss_mb(),
        "train_flops_per_sample": job.train_flops,
        "train_gflops": round(machine.gflops(train_rate, job.train_flops), 2),
    }


def as_list(value: Any) -> List[Any]:
    return [value] if isinstance(value, (str, int, float)) else list(value)


def validate(cfg: DictConfig) -> Tuple[List[str], List[str], List[str]]:
    models, variants, impls = as_list(cfg.models), as_list(cfg.variants), as_list(cfg.conv_impl)
    for name in models:
        check_measured(name, "benchmarked")
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f"variants: {variant!r} is unknown; choose from {sorted(VARIANTS)}")
    for impl in impls:
        check_conv_impl(impl)
    return models, variants, impls


def table(rows: List[Dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    headers = [TABLE_HEADERS.get(col, col) for col in TABLE_COLUMNS]
    widths = [max(len(h), *(len(cell(r.get(c))) for r in rows)) for h, c in zip(headers, TABLE_COLUMNS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(cell(r.get(c)).ljust(w) for c, w in zip(TABLE_COLUMNS, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def jobs(cfg: DictConfig) -> List[Job]:
    models, variants, impls = validate(cfg)
    mge.set_default_device(cfg.device)  # before building anything, so CUDA is never probed on cpu
    fields = {f: cfg[f] for f in Settings.__dataclass_fields__}
    if fields["mmap_threshold_kb"] == "default":
        fields["mmap_threshold_kb"] = DEFAULT_MMAP_THRESHOLD_KB
    settings = Settings(**fields)
    all_kwargs = OmegaConf.to_container(cfg.model_kwargs, resolve=True)
    out = []
    for name in models:
        kwargs = all_kwargs.get(name, {})
        convs, flops = probe(name, kwargs)
        # conv_impl only means something to models with convolutions: run the others once.
        for impl in impls if convs else [None]:
            out += [Job(name, variant, impl, bool(compiled), cfg.device, cfg.strategy, flops, settings, kwargs)
                    for compiled in as_list(cfg.compiled) for variant in variants]
    return out


def run(cfg: DictConfig) -> List[Dict[str, Any]]:
    # isolate: each measurement in a new process (its own peak RSS, a cold start, strategy set afresh).
    def run_in(fn, *args):
        return machine.in_fresh_process(fn, *args) if cfg.isolate else fn(*args)

    todo = jobs(cfg)  # validates the config before anything is measured
    host = run_in(machine.measured_machine, cfg.device, cfg.strategy, cfg.sgemm_size)
    print(json.dumps({"machine": host}), flush=True)
    print(machine.describe_machine(host), flush=True)
    rows = []
    for job in todo:
        # On a shared machine the fastest of a few runs is the least disturbed one.
        row = max((run_in(measure, job) for _ in range(max(1, cfg.repeats))), key=lambda r: r["train_samples_per_s"])
        row["of_peak"] = machine.of_peak(row["train_gflops"], host["sgemm_gflops"])
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(table(rows))
    return rows


@hydra.main(config_path="../conf", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
