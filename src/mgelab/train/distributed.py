"""Data-parallel training with ``megengine.distributed``: one process per GPU, the trainer's side.

Each process is a *rank* of a *world* of ``trainer.devices`` processes. Every rank holds the whole
model and trains on its own shard of each epoch; MegEngine's all-reduce callback on the
GradManager averages the gradients, so every rank applies the same update and the weights stay
equal (rank 0's are broadcast at the start). Rank 0 alone logs and checkpoints.

The rank and world size are a value (``World``) the trainer is given, not global state it reads:
a test can run the code of rank 1 of 2 in one process. Only a ``World`` whose process group is
up (``connected``, made by ``current_world`` inside a worker the launcher started) talks to the
other ranks; one built by hand trains its shard alone. MegEngine's distributed backends (nccl)
are GPU-only, so a connected world runs only on GPUs; the launch is on the run side
(``mgelab.run.parallel``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, List, Mapping, Optional, Tuple

import megengine as mge
import megengine.distributed as dist
import megengine.module as M
import numpy as np

from mgelab.data.arrays import epoch_order
from mgelab.train.state import step_seed

Batch = Tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class World:
    """This process's place among the processes training one model."""

    rank: int = 0
    size: int = 1
    # True only inside a process of MegEngine's process group: then gradients are all-reduced and
    # parameters broadcast. False: a single process, or a rank simulated by hand (tests).
    connected: bool = False

    def __post_init__(self) -> None:
        if self.size < 1 or not 0 <= self.rank < self.size:
            raise ValueError(f"rank {self.rank} of a world of {self.size} processes is impossible")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, checkpoints and reports the monitored value."""
        return self.rank == 0

    @property
    def communicates(self) -> bool:
        return self.connected and self.size > 1


def current_world() -> World:
    """The world of this process: MegEngine's process group when one is up, else a single process."""
    if dist.is_distributed():
        return World(dist.get_rank(), dist.get_world_size(), connected=True)
    return World()


def usable_gpus() -> int:
    """GPUs MegEngine can use here (0 without a CUDA driver). Safe before the launcher forks:
    MegEngine 1.13 counts CUDA devices in a forked helper (``call_cuda_forksafe``), leaving this
    process's CUDA uninitialised; its own launcher asks the same in the parent."""
    return int(mge.get_device_count("gpu")) if mge.is_cuda_available() else 0


# --- the epoch's shard --------------------------------------------------------------------------
def shard_indices(num_samples: int, seed: int, epoch: int, world: World) -> np.ndarray:
    """The training samples ``world.rank`` trains on in ``epoch``: its shard of the permutation a single
    process shuffles the epoch with (``mgelab.data.arrays.epoch_order``)."""
    return epoch_order(num_samples, seed, epoch, world.rank, world.size)


def num_shard_batches(data: Any, world: World) -> int:
    """Training batches per epoch on one rank (the same on every rank)."""
    return data.num_train_batches(world.size)


def shard_batches(data: Any, epoch: int, start_batch: int, world: World) -> Iterator[Batch]:
    """``data.train_batches(epoch, start_batch)`` restricted to this rank's shard; augmentation is seeded
    by (seed, epoch, the batch's place across all ranks), so no two ranks augment alike and a resumed
    rank draws the same. A single process gets the data module's own batches, unchanged."""
    return data.train_batches(epoch, start_batch, world.rank, world.size)


# --- keeping the ranks in step -------------------------------------------------------------------
def lr_multiplier(world: World, scale_by_world_size: bool) -> float:
    """``trainer.scale_lr_by_world_size``: the linear scaling rule, lr x world size (the batch the
    ranks train on together is ``size`` times one rank's)."""
    return float(world.size) if scale_by_world_size else 1.0


def gradient_callbacks(world: World) -> Optional[List[Any]]:
    """The GradManager callbacks: MegEngine's all-reduce of every gradient, averaged over the ranks
    ("mean": the update is the one a single process would make on the ranks' batches together)."""
    return [dist.make_allreduce_cb("mean")] if world.communicates else None


def broadcast_from_main(model: M.Module, world: World) -> None:
    """Every rank starts from rank 0's parameters and buffers (BatchNorm's running statistics): each
    process initialised its own."""
    if world.communicates:
        dist.bcast_list_(list(model.parameters()) + list(model.buffers()))


def reseed_for_rank_step(seed: int, step: int, world: World) -> None:
    """MegEngine's RNG seeded for one step (dropout masks from (seed, step) only, so a resumed run
    draws the same): rank 0 takes the single-process seed, every other rank its own, since its
    batch holds other samples."""
    value = step_seed(seed, step)
    if world.rank > 0:
        value = int(np.random.SeedSequence([value, world.rank]).generate_state(1)[0])
    mge.random.seed(value)


class SilentLogger:
    """What the trainer logs to on ranks other than 0: rank 0 alone reports."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def flush(self) -> None:
        pass
