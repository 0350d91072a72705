"""``trainer.devices=N``: one run trained data-parallel on N GPUs, started by MegEngine's own launcher.

The Hydra process checks and plans the run (``mgelab.run.training.train``), reads the data once,
then ``megengine.distributed.launcher`` forks one worker per GPU. Each worker joins the process
group (nccl), is bound to its GPU and runs its rank's part: rank 0 the whole tracked run, the
others the training steps only. The Hydra process waits for all of them and
hands rank 0's monitored value to the sweeper. ``devices=1`` runs in the Hydra process, as always.

MegEngine's launcher forks (it must: CUDA may not be initialised before), so the workers inherit
the composed config and the loaded data; nothing in this process may touch a GPU first.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import megengine as mge
import megengine.distributed as dist
from hydra.utils import instantiate
from omegaconf import DictConfig

from mgelab.train.distributed import World, current_world

RankRun = Callable[[World], float]
# MegEngine's collective backend for NVIDIA GPUs; its distributed training has no CPU backend.
BACKEND = "nccl"


def run_on_devices(devices: int, rank_run: RankRun) -> float:
    """``rank_run(world)`` in this process (one device) or in one worker per GPU; rank 0's value."""
    if devices == 1:
        return rank_run(World())
    launch = dist.launcher(_in_worker, n_gpus=devices, world_size=devices, device_type="gpu", backend=BACKEND)
    try:
        results = launch(rank_run)
    except AssertionError as exc:  # how the launcher reports a worker that exited with an error
        raise RuntimeError(f"trainer.devices={devices}: {exc}; the worker's own error is printed above") from exc
    return math.nan if results[0] is None else float(results[0])


def _in_worker(rank_run: RankRun) -> float:
    """Runs in each worker once the launcher has set up its process group."""
    return rank_run(current_world())


def rank_device(world: World) -> str:
    """The worker's GPU: the launcher gives rank r (of one machine) GPU r and makes it the default;
    said again here, so the device the run reports is the one its model is built on."""
    device = f"gpu{world.rank}"
    mge.set_default_device(device)
    return device


def shared_data(cfg: DictConfig) -> Any:
    """The data module with its splits read, before the workers fork: they share its arrays
    (copy-on-write), and no two of them download or unpack the same files at once."""
    data = instantiate(cfg.data)
    data.splits  # noqa: B018  (reading the property loads the splits)
    return data
