"""Everything a run needs to continue exactly where it stopped, as arrays plus JSON.

Model and optimizer state, the position in the data (epoch, next batch), the running sums of
the unfinished epoch, the best-so-far bookkeeping and numpy's global RNG. MegEngine's RNG has no
state to read back, so the trainer reseeds it from (seed, step) before every step instead:
dropout masks then depend only on the step, wherever a run was resumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Tuple

import megengine as mge
import megengine.module as M
import numpy as np

from mgelab.checkpoint import Checkpoint, check_fits


@dataclass
class Progress:
    """Where a fit is, and what it has accumulated; all of it JSON."""

    epoch: int = 1
    next_batch: int = 0  # first batch of `epoch` not yet trained on
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_seen: int = 0
    epoch_correct: int = 0
    epoch_seconds: float = 0.0
    # Parts of epoch_seconds: waiting for batches, and inside the step (mgelab.train.clock). Checkpoints
    # written before these existed lack them and load with 0.
    epoch_data_seconds: float = 0.0
    epoch_step_seconds: float = 0.0
    train_seconds: float = 0.0
    train_samples: int = 0
    best_score: float = -float("inf")
    best_epoch: int = 0
    best_val: Dict[str, float] = field(default_factory=dict)
    history: List[Dict[str, float]] = field(default_factory=list)

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.next_batch = epoch, 0
        self.epoch_loss_sum, self.epoch_seen, self.epoch_correct, self.epoch_seconds = 0.0, 0, 0, 0.0
        self.epoch_data_seconds, self.epoch_step_seconds = 0.0, 0.0


def step_seed(seed: int, step: int) -> int:
    """A MegEngine RNG seed for one step, a function of the run seed and the step only."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def capture(model: M.Module, optimizer, progress: Progress) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    arrays = {f"model/{k}": np.asarray(v) for k, v in model.state_dict().items()}
    optim_state = optimizer.state_dict()
    for index, values in optim_state["state"].items():
        for key, value in values.items():
            arrays[f"optim/{index}/{key}"] = np.asarray(value)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    arrays["rng/numpy_keys"] = keys
    meta = {
        "progress": asdict(progress),
        "optimizer_param_groups": [_jsonable(group) for group in optim_state["param_groups"]],
        "numpy_rng": [kind, int(pos), int(has_gauss), float(cached)],
    }
    return arrays, meta


def restore(checkpoint: Checkpoint, model: M.Module, optimizer) -> Progress:
    """Load weights, optimizer and RNG state; return the saved progress. Shapes are checked first."""
    weights = checkpoint.section("model")
    check_fits(weights, model.state_dict(), f"checkpoint {checkpoint.path}")
    model.load_state_dict(weights)
    state: Dict[int, Dict[str, np.ndarray]] = {}
    for name, value in checkpoint.section("optim").items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"param_groups": checkpoint.meta["optimizer_param_groups"], "state": state})
    kind, pos, has_gauss, cached = checkpoint.meta["numpy_rng"]
    np.random.set_state((kind, checkpoint.arrays["rng/numpy_keys"], pos, has_gauss, cached))
    return Progress(**checkpoint.meta["progress"])


def reseed_for_step(seed: int, step: int) -> None:
    mge.random.seed(step_seed(seed, step))


def _jsonable(group: Dict[str, Any]) -> Dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
