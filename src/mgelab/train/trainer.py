"""The one trainer every chapter shares. It knows models, batches, an optimizer factory
and a logger interface; it knows nothing of Hydra or MLflow."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import megengine.module as M
import numpy as np
from tqdm import tqdm

from mgelab.train.checkpoint import load_checkpoint, save_checkpoint
from mgelab.train.metrics import confusion_matrix, per_class_accuracy, task_metrics
from mgelab.train.optim import OptimizerFactory, set_lr
from mgelab.train.steps import make_train_step, predict


@dataclass
class FitResult:
    best_epoch: int
    best_val: Dict[str, float]
    test: Dict[str, float]
    history: List[Dict[str, float]]
    best_checkpoint: Optional[Path]
    last_checkpoint: Optional[Path]
    confusion: Optional[np.ndarray] = None
    wall_time_s: float = 0.0
    train_samples_per_s: float = 0.0
    extras: Dict[str, Any] = field(default_factory=dict)


@dataclass
class _FitState:
    """What one ``fit`` works with and accumulates across epochs."""

    optimizer_factory: OptimizerFactory
    optimizer: Any
    step_fn: Callable
    global_step: int = 0
    train_seconds: float = 0.0
    train_samples: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    best_val: Dict[str, float] = field(default_factory=dict)
    history: List[Dict[str, float]] = field(default_factory=list)


class Trainer:
    def __init__(
        self,
        max_epochs: int = 10,
        limit_train_batches: Union[int, float, None] = None,
        limit_eval_batches: Optional[int] = None,
        log_every_n_steps: int = 50,
        checkpoint_dir: str = "checkpoints",
        monitor: str = "auto",
        monitor_mode: str = "auto",
        progress_bar: bool = True,
        device: str = "cpu",
    ) -> None:
        if max_epochs < 1:
            raise ValueError(f"trainer.max_epochs={max_epochs} must be >= 1")
        if log_every_n_steps < 1:
            raise ValueError(f"trainer.log_every_n_steps={log_every_n_steps} must be >= 1")
        if monitor_mode not in ("max", "min", "auto"):
            raise ValueError(f"trainer.monitor_mode={monitor_mode!r} must be 'max', 'min' or 'auto'")
        self.max_epochs = int(max_epochs)
        self.limit_train_batches = limit_train_batches
        if limit_eval_batches is not None and limit_eval_batches < 1:
            raise ValueError(f"trainer.limit_eval_batches={limit_eval_batches} must be >= 1 or null")
        self.limit_eval_batches = limit_eval_batches
        self.log_every_n_steps = int(log_every_n_steps)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.monitor = monitor
        self.monitor_mode = monitor_mode
        self.progress_bar = progress_bar
        # Informational: the run selects the device before the model is built.
        self.device = device

    # --- public -----------------------------------------------------------------------------
    def fit(self, model: M.Module, data, optimizer_factory: OptimizerFactory, logger) -> FitResult:
        optimizer = optimizer_factory(model.parameters())
        state = _FitState(optimizer_factory, optimizer, make_train_step(model, optimizer, data.task))
        started = time.perf_counter()
        for epoch in range(1, self.max_epochs + 1):
            row = self._train_epoch(epoch, model, data, logger, state)
            val_metrics = self.evaluate(model, data, "val")
            row.update({f"val/{k}": v for k, v in val_metrics.items()})
            state.history.append(row)
            logger.log_metrics(row, step=epoch)
            self._save_checkpoints(model, epoch, row, val_metrics, data.task, state)

        # Test once, on the weights that did best on validation.
        weights, _ = load_checkpoint(self.best_path)
        model.load_state_dict(weights)
        test_metrics, confusion = self._test(model, data)
        logger.log_metrics({f"test/{k}": v for k, v in test_metrics.items()}, step=state.best_epoch)
        return FitResult(
            best_epoch=state.best_epoch,
            best_val=state.best_val,
            test=test_metrics,
            history=state.history,
            best_checkpoint=self.best_path,
            last_checkpoint=self.last_path,
            confusion=confusion,
            wall_time_s=time.perf_counter() - started,
            train_samples_per_s=state.train_samples / max(state.train_seconds, 1e-9),
        )

    @property
    def best_path(self) -> Path:
        return self.checkpoint_dir / "best.npz"

    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / "last.npz"

    def evaluate(self, model: M.Module, data, split: str) -> Dict[str, float]:
        outputs, targets = self._predict(model, data, split)
        return self._metrics(data.task, outputs, targets)

    def _predict(self, model: M.Module, data, split: str) -> Tuple[np.ndarray, np.ndarray]:
        """Outputs and the matching targets; ``limit_eval_batches`` keeps only the first batches."""
        batches = data.eval_batches(split)
        if self.limit_eval_batches is not None:
            batches = (b for _, b in zip(range(self.limit_eval_batches), batches))
        outputs = predict(model, batches)
        return outputs, data.targets(split)[: len(outputs)]

    def monitored(self, task: str) -> Tuple[str, str]:
        """(metric, mode) chosen for the best checkpoint; ``auto`` picks by task."""
        default = ("val/acc", "max") if task == "classification" else ("val/loss", "min")
        metric = default[0] if self.monitor == "auto" else self.monitor
        if self.monitor_mode != "auto":
            return metric, self.monitor_mode
        return metric, "min" if metric.endswith(("loss", "mae", "rmse")) else "max"

    # --- pieces -------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int, model: M.Module, data, logger, state: _FitState) -> Dict[str, float]:
        """One pass over the training batches; returns the epoch's train metrics row."""
        model.train()
        batches_per_epoch = self._batches_per_epoch(data.num_train_batches())
        epoch_start = time.perf_counter()
        losses, outputs, targets = [], [], []
        factory = state.optimizer_factory
        lr = factory.lr
        bar = self._progress(data.train_batches(epoch), batches_per_epoch, epoch)
        for batch_index, (x, y) in enumerate(bar):
            progress = epoch - 1 + batch_index / batches_per_epoch
            lr = factory.lr * factory.schedule.factor(progress, self.max_epochs)
            set_lr(state.optimizer, lr)
            loss, out = state.step_fn(x, y)
            state.global_step += 1
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss} at step {state.global_step} (epoch {epoch}, lr {lr:.3g}); "
                    "try a smaller optim.lr, a warm-up (optim.schedule.warmup_epochs) or check the data"
                )
            losses.append(loss * len(y))
            outputs.append(out)
            targets.append(y)
            if state.global_step % self.log_every_n_steps == 0:
                logger.log_metrics({"step/train_loss": loss, "step/lr": lr}, step=state.global_step)
            self._show(bar, loss, sum(len(t) for t in targets), epoch_start)
        seconds = time.perf_counter() - epoch_start
        seen = sum(len(t) for t in targets)
        state.train_seconds += seconds
        state.train_samples += seen
        train_metrics = self._train_metrics(data.task, losses, outputs, targets)
        return {
            "epoch": float(epoch),
            **{f"train/{k}": v for k, v in train_metrics.items()},
            "lr": lr,
            "train/samples_per_s": seen / max(seconds, 1e-9),
            "train/epoch_seconds": seconds,
        }

    def _save_checkpoints(self, model, epoch: int, row, val_metrics, task: str, state: _FitState) -> None:
        """Always ``last``; ``best`` when the monitored metric improved."""
        meta = {"epoch": epoch, "global_step": state.global_step, "val": val_metrics}
        save_checkpoint(self.last_path, model.state_dict(), meta)
        score = self._score(row, task)
        if score > state.best_score:
            state.best_score, state.best_epoch, state.best_val = score, epoch, val_metrics
            save_checkpoint(self.best_path, model.state_dict(), meta)

    def _test(self, model: M.Module, data):
        outputs, targets = self._predict(model, data, "test")
        metrics = self._metrics(data.task, outputs, targets)
        confusion = None
        if data.task == "classification":
            confusion = confusion_matrix(outputs.argmax(axis=1), targets, data.num_classes)
            for index, value in enumerate(per_class_accuracy(confusion)):
                metrics[f"acc_class_{index}"] = float(value)
        return metrics, confusion

    @staticmethod
    def _metrics(task: str, outputs: np.ndarray, targets: np.ndarray) -> Dict[str, float]:
        return task_metrics(task, outputs, targets)

    def _train_metrics(self, task, losses, outputs, targets) -> Dict[str, float]:
        """Running loss as the optimiser saw it (weights changing during the epoch)."""
        target_all = np.concatenate(targets)
        metrics = {"loss": float(sum(losses) / len(target_all))}
        if task == "classification":
            metrics["acc"] = float((np.concatenate(outputs).argmax(axis=1) == target_all).mean())
        return metrics

    def _score(self, row: Dict[str, float], task: str) -> float:
        metric, mode = self.monitored(task)
        if metric not in row:
            raise KeyError(f"trainer.monitor={metric!r} is not a logged metric; have {sorted(row)}")
        return row[metric] if mode == "max" else -row[metric]

    def _batches_per_epoch(self, available: int) -> int:
        limit = self.limit_train_batches
        if limit is None:
            return available
        if isinstance(limit, float) and 0 < limit <= 1:
            return max(1, int(available * limit))
        if isinstance(limit, int) and limit >= 1:
            return min(available, limit)
        raise ValueError(f"trainer.limit_train_batches={limit} must be an int >= 1 or a fraction in (0, 1]")

    def _progress(self, batches, total: int, epoch: int) -> Iterator:
        limited = (b for _, b in zip(range(total), batches))
        if not self.progress_bar:
            return limited
        return tqdm(limited, total=total, desc=f"epoch {epoch}/{self.max_epochs}", leave=False)

    @staticmethod
    def _show(bar, loss: float, seen: int, epoch_start: float) -> None:
        if isinstance(bar, tqdm):
            rate = seen / max(time.perf_counter() - epoch_start, 1e-9)
            bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{rate:.0f}", refresh=False)
