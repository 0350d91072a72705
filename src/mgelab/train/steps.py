"""One optimisation step in the MegEngine idiom, and batched inference."""

from __future__ import annotations

from typing import Callable, Iterable, Tuple

import megengine as mge
import megengine.functional as F
import megengine.module as M
import numpy as np
from megengine.autodiff import GradManager
from megengine.optimizer import Optimizer

LOSSES = {
    "classification": lambda out, y: F.nn.cross_entropy(out, y),
    "regression": lambda out, y: F.nn.square_loss(out, y),
}

StepFn = Callable[[np.ndarray, np.ndarray], Tuple[float, np.ndarray]]


def make_train_step(model: M.Module, optimizer: Optimizer, task: str) -> StepFn:
    """Return ``step(x, y) -> (loss, outputs)`` updating ``model`` in place."""
    if task not in LOSSES:
        raise ValueError(f"data task {task!r} is unknown; expected one of {sorted(LOSSES)}")
    loss_fn = LOSSES[task]
    gm = GradManager().attach(model.parameters())

    def step(inputs: np.ndarray, targets: np.ndarray) -> Tuple[float, np.ndarray]:
        x, y = mge.tensor(inputs), mge.tensor(targets)
        with gm:
            outputs = model(x)
            loss = loss_fn(outputs, y)
            gm.backward(loss)
        optimizer.step().clear_grad()
        return float(loss.item()), outputs.numpy()

    return step


def predict(model: M.Module, batches: Iterable[Tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Model outputs for every batch, concatenated; the model is put in eval mode."""
    model.eval()
    outputs = [model(mge.tensor(x)).numpy() for x, _ in batches]
    return np.concatenate(outputs, axis=0)
