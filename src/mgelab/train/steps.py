"""One optimisation step in the MegEngine idiom, and batched inference."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Tuple

import megengine as mge
import megengine.module as M
import numpy as np
from megengine.autodiff import GradManager
from megengine.jit import trace
from megengine.optimizer import Optimizer

from mgelab.train.task import Task, get_task

StepFn = Callable[[np.ndarray, np.ndarray], Tuple[float, np.ndarray]]


COMPILE_MODES = ("auto", "true", "false")
# MegEngine's SGD/Adam/AdamW read this at every step: "1" updates the momentum buffers and
# weights with one fused in-place op each instead of 3-4 separate ones. The same arithmetic;
# per-op dispatch dominates small models' steps here (measured in docs/results.md).
INPLACE_UPDATE_ENV = "MEGENGINE_INPLACE_UPDATE"


@contextmanager
def fused_updates() -> Iterator[None]:
    """MegEngine's fused in-place optimizer update for the ``with`` block; a value the user set
    in the environment wins (``MEGENGINE_INPLACE_UPDATE=0`` keeps the separate ops)."""
    before = os.environ.get(INPLACE_UPDATE_ENV)
    if before is None:
        os.environ[INPLACE_UPDATE_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(INPLACE_UPDATE_ENV, None)


def draws_random_numbers(model: M.Module) -> bool:
    """Whether a training step uses MegEngine's RNG (active dropout)."""
    return any(isinstance(m, M.Dropout) and m.drop_prob > 0 for m in model.modules())


def compile_mode(value: object) -> str:
    """``trainer.compile`` as one of COMPILE_MODES (YAML's booleans arrive as True/False)."""
    mode = str(value).lower()
    if mode not in COMPILE_MODES:
        raise ValueError(f"trainer.compile={value!r} is unknown; choose one of {COMPILE_MODES}")
    return mode


def should_compile(mode: str, model: M.Module) -> bool:
    """``auto`` compiles unless the model draws random numbers.

    A compiled graph keeps its own RNG seed: reseeding MegEngine per step (what makes a
    resumed run draw the dropout masks the original drew) fails inside it, so models with
    dropout train eagerly unless ``true`` is forced, which is refused with the reason.
    """
    mode = compile_mode(mode)
    random = draws_random_numbers(model)
    if mode == "true" and random:
        raise ValueError(
            "trainer.compile=true: the model has dropout, and a compiled step cannot be reseeded per step "
            "(exact resume); use trainer.compile=auto (eager for such models) or set the dropout to 0"
        )
    return mode == "true" or (mode == "auto" and not random)


def make_train_step(model: M.Module, optimizer: Optimizer, task: Task | str, compiled: bool = False,
                    grad_callbacks: Optional[Sequence[Any]] = None, label_smoothing: float = 0.0) -> StepFn:
    """Return ``step(x, y) -> (loss, outputs)`` updating ``model`` in place.

    ``grad_callbacks``: called with each parameter's gradient during backward, before the update
    (data-parallel training all-reduces the gradients there: ``mgelab.train.distributed``).

    ``label_smoothing``: the classification loss's target smoothing (``Task.training_loss``).

    ``compiled``: forward, backward and the optimizer update run as one graph recorded by
    ``jit.trace(symbolic=True)`` on the first call; batches of another size (an epoch's last)
    are handled. It computes what eager does, but MegEngine 1.13 still runs the graph op by op,
    so it was not faster here (docs/results.md).
    """
    loss_fn = (get_task(task) if isinstance(task, str) else task).training_loss(label_smoothing)
    gm = GradManager().attach(model.parameters(), callbacks=list(grad_callbacks) if grad_callbacks else None)

    def record(x: mge.Tensor, y: mge.Tensor) -> Tuple[mge.Tensor, mge.Tensor]:
        with gm:
            outputs = model(x)
            loss = loss_fn(outputs, y)
            gm.backward(loss)
        if compiled:  # MegEngine 1.13's compiled graph rejects the fused update (an fma4 layout assertion)
            optimizer.step().clear_grad()
        else:
            with fused_updates():
                optimizer.step().clear_grad()
        return loss, outputs

    run = trace(record, symbolic=True) if compiled else record

    def step(inputs: np.ndarray, targets: np.ndarray) -> Tuple[float, np.ndarray]:
        loss, outputs = run(mge.tensor(inputs), mge.tensor(targets))
        return float(loss.item()), outputs.numpy()

    return step


def predict(model: M.Module, batches: Iterable[Tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Model outputs for every batch, concatenated; the model is put in eval mode."""
    model.eval()
    outputs = [model(mge.tensor(x)).numpy() for x, _ in batches]
    return np.concatenate(outputs, axis=0)
