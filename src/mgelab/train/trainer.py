"""The one trainer every chapter shares. It knows models, batches, an optimizer factory
and a logger interface; it knows nothing of Hydra or MLflow."""

from __future__ import annotations

import logging
import math
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import megengine.module as M
import numpy as np

from mgelab.checkpoint import CheckpointStore, load_checkpoint
from mgelab.data.prefetch import check_prefetch_batches, prefetch_depth, prefetched
from mgelab.train.clock import EpochClock
from mgelab.train.console import SHOW_EVERY_N_STEPS, epoch_bar, epoch_line, limited, show_on_bar
from mgelab.train.distributed import (
    SilentLogger,
    World,
    broadcast_from_main,
    current_world,
    gradient_callbacks,
    lr_multiplier,
    num_shard_batches,
    reseed_for_rank_step,
    shard_batches,
)
from mgelab.train.evaluation import evaluate_split, report_test_split
from mgelab.train.fit_state import FitContext, FitResult
from mgelab.train.machine import apply_execution_strategy, run_execution_strategy
from mgelab.train.memory import DEFAULT_MMAP_THRESHOLD_KB, check_mmap_threshold, peak_rss_mb, set_mmap_threshold
from mgelab.train.optim import OptimizerFactory, set_lr
from mgelab.train.signals import StopOnSignal, TrainingInterrupted
from mgelab.train.state import Progress, capture, restore
from mgelab.train.steps import compile_mode, draws_random_numbers, make_train_step, should_compile
from mgelab.train.task import get_task

# One line per epoch and the resume note; under Hydra they reach the console and the run's train.log.
log = logging.getLogger(__name__)


class Trainer:
    def __init__(
        self,
        max_epochs: int = 10,
        limit_train_batches: Union[int, float, None] = None,
        limit_eval_batches: Optional[int] = None,
        log_every_n_steps: int = 50,
        checkpoint_dir: str = "checkpoints",
        checkpoint_every_n_steps: Optional[int] = 500,
        keep_last: int = 1,
        keep_best: int = 1,
        resume: Optional[str] = None,
        monitor: str = "auto",
        monitor_mode: str = "auto",
        progress_bar: bool = True,
        device: str = "cpu",
        seed: int = 0,
        compile: str = "false",
        cpu_threads: int = 0,
        prefetch_batches: Union[int, str] = "auto",
        devices: int = 1,
        scale_lr_by_world_size: bool = False,
        label_smoothing: float = 0.0,
        mmap_threshold_kb: Optional[int] = DEFAULT_MMAP_THRESHOLD_KB,
        execution_strategy: Optional[str] = None,
        debug: bool = False,
    ) -> None:
        if max_epochs < 1:
            raise ValueError(f"trainer.max_epochs={max_epochs} must be >= 1")
        if log_every_n_steps < 1:
            raise ValueError(f"trainer.log_every_n_steps={log_every_n_steps} must be >= 1")
        limit = limit_train_batches
        count = isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1
        if not (limit is None or count or (isinstance(limit, float) and 0 < limit <= 1)):
            # An int or a float: the schema cannot type the union, so the value is checked here.
            raise ValueError(f"trainer.limit_train_batches={limit!r} must be an int >= 1 (batches per epoch), "
                             "a fraction in (0, 1] of the epoch, or null (all)")
        if limit_eval_batches is not None and limit_eval_batches < 1:
            raise ValueError(f"trainer.limit_eval_batches={limit_eval_batches} must be >= 1 or null")
        if checkpoint_every_n_steps is not None and checkpoint_every_n_steps < 1:
            raise ValueError(f"trainer.checkpoint_every_n_steps={checkpoint_every_n_steps} must be >= 1 or null")
        check_prefetch_batches(prefetch_batches)
        if devices < 1:
            raise ValueError(f"trainer.devices={devices} must be >= 1 (the GPUs to train on data-parallel)")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"trainer.label_smoothing={label_smoothing:g} must be in [0, 1) (0: plain cross-entropy)")
        self.max_epochs = int(max_epochs)
        self.label_smoothing = float(label_smoothing)
        self.limit_train_batches = limit_train_batches
        self.limit_eval_batches = limit_eval_batches
        self.log_every_n_steps = int(log_every_n_steps)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.checkpoint_every_n_steps = checkpoint_every_n_steps
        self.keep_last, self.keep_best = int(keep_last), int(keep_best)
        self.resume = resume
        self.monitor, self.monitor_mode = monitor, monitor_mode
        self.monitored("classification")  # an unknown monitor_mode fails now, not after the first epoch
        self.progress_bar = progress_bar  # a bar within each epoch, drawn only on an interactive terminal
        # Informational: the run selects the device before the model is built (0: as many CPU
        # threads as the run may use, shared among parallel sweep jobs; mgelab.train.device).
        self.device, self.cpu_threads = device, int(cpu_threads)
        self.seed = int(seed)
        # Training batches prepared ahead in a background thread, so a step need not wait for its data.
        self.prefetch_batches = prefetch_batches
        # Set for the whole process when a fit starts (mgelab.train.memory: memory for speed).
        self.mmap_threshold_kb = check_mmap_threshold(mmap_threshold_kb)
        self.execution_strategy = run_execution_strategy(execution_strategy)
        self.compile = compile_mode(compile)
        # Informational, like device: the run side starts one process per device (mgelab.run.parallel)
        # and each fit is told its rank; the lr is multiplied by the world size when asked.
        self.devices, self.scale_lr_by_world_size = int(devices), bool(scale_lr_by_world_size)
        # A debug run: a few steps to check a config end to end (logged to `<experiment>_debug` by the run side).
        self.debug = bool(debug)

    # --- public -----------------------------------------------------------------------------
    def fit(self, model: M.Module, data, optimizer_factory: OptimizerFactory, logger,
            run_meta: Optional[Mapping[str, Any]] = None, world: Optional[World] = None) -> FitResult:
        """Train, keeping ``last``/``best`` checkpoints; test on the best. ``run_meta`` (JSON) is
        stored in every checkpoint, e.g. the tracking run id and the resolved config, beside the
        data's ``inference_meta()`` (how raw inputs are normalised) under ``data``. ``world``: this
        process's rank (default: MegEngine's process group, if any); a rank other than 0 trains its
        shard in step with the others and logs, validates, checkpoints and tests nothing."""
        world = world or current_world()
        set_mmap_threshold(self.mmap_threshold_kb)
        apply_execution_strategy(self.execution_strategy)  # MegEngine's algorithm choice for convs, matmuls
        logger = logger if world.is_main else SilentLogger()
        optimizer = optimizer_factory(model.parameters())
        store = CheckpointStore(self.checkpoint_dir, self.keep_last, self.keep_best)
        progress = self._resume(model, optimizer) if self.resume else Progress()
        broadcast_from_main(model, world)
        started = time.perf_counter()
        with StopOnSignal() as stop:
            task = get_task(data.task)
            step_fn = make_train_step(model, optimizer, task, should_compile(self.compile, model),
                                      gradient_callbacks(world), self.label_smoothing)
            fit = FitContext(model, data, task, optimizer_factory, optimizer, step_fn, logger, store, progress,
                             {"data": data.inference_meta(), **(run_meta or {})}, stop, draws_random_numbers(model),
                             world, lr_multiplier(world, self.scale_lr_by_world_size))
            while progress.epoch <= self.max_epochs:
                self._train_epoch(fit)
                self._end_epoch(fit)
        monitor, mode = self.monitored(data.task)
        if not world.is_main:
            return FitResult(0, {}, {}, [], None, None, monitor=monitor, monitor_mode=mode)

        # Test once, on the weights that did best on validation.
        best = store.best() or store.latest()
        model.load_state_dict(load_checkpoint(best).section("model"))
        test_metrics, confusion = report_test_split(model, data, self.limit_eval_batches)
        logger.log_metrics({f"test/{k}": v for k, v in test_metrics.items()}, step=max(progress.best_epoch, 1))
        return FitResult(
            best_epoch=progress.best_epoch,
            best_val=progress.best_val,
            test=test_metrics,
            history=progress.history,
            best_checkpoint=best,
            last_checkpoint=store.latest(),
            confusion=confusion,
            wall_time_s=time.perf_counter() - started,
            train_samples_per_s=progress.train_samples / max(progress.train_seconds, 1e-9),
            monitor=monitor,
            monitor_mode=mode,
            best_value=float(progress.history[progress.best_epoch - 1][monitor]),
        )

    def evaluate(self, model: M.Module, data, split: str) -> Dict[str, float]:
        return evaluate_split(model, data, split, self.limit_eval_batches)

    def monitored(self, task: str) -> Tuple[str, str]:
        """(metric, mode) chosen for the best checkpoint; ``auto`` picks by task."""
        return get_task(task).monitor(self.monitor, self.monitor_mode)

    # --- the loop -------------------------------------------------------------------------------
    def _train_epoch(self, fit: FitContext) -> None:
        """Train on the rest of the current epoch (all of it, unless resumed mid-epoch)."""
        p = fit.progress
        fit.model.train()
        per_epoch = self._batches_per_epoch(num_shard_batches(fit.data, fit.world))
        clock, left = EpochClock(p), per_epoch - p.next_batch
        # Cut before prefetching, so the thread prepares no batch past the limit.
        batches = shard_batches(fit.data, p.epoch, p.next_batch, fit.world)
        source = prefetched(limited(batches, left), prefetch_depth(self.prefetch_batches, fit.data))
        bar = epoch_bar(source, left, f"epoch {p.epoch}/{self.max_epochs}", self.progress_bar and fit.world.is_main)
        # Closed on the way out, so the thread ends now, also when an exception (whose traceback
        # would keep the generator alive) stops the loop.
        with closing(source):
            for x, y in clock.timed(bar):
                self._train_step(fit, clock, x, y, per_epoch, bar)

    def _train_step(self, fit: FitContext, clock: EpochClock, x: np.ndarray, y: np.ndarray, per_epoch: int,
                    bar) -> None:
        p = fit.progress
        lr = self._lr_at(fit, p.epoch - 1 + p.next_batch / per_epoch)
        set_lr(fit.optimizer, lr)
        if fit.reseed:
            # Dropout masks depend on (seed, step) only, so a resumed run draws the same ones.
            reseed_for_rank_step(self.seed, p.global_step, fit.world)
        loss, out = clock.step(fit.step_fn, x, y)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss} at step {p.global_step + 1} (epoch {p.epoch}, lr {lr:.3g}); "
                "try a smaller optim.lr, a warm-up (optim.schedule.warmup_epochs) or check the data"
            )
        p.global_step += 1
        p.next_batch += 1
        p.epoch_loss_sum += loss * len(y)
        p.epoch_seen += len(y)
        p.epoch_correct += fit.task.batch_correct(out, y)
        clock.tick()
        if p.global_step % self.log_every_n_steps == 0:
            fit.logger.log_metrics({"step/train_loss": loss, "step/lr": lr}, step=p.global_step)
        if p.next_batch % SHOW_EVERY_N_STEPS == 0:
            show_on_bar(bar, loss, p.epoch_seen / max(p.epoch_seconds, 1e-9))
        self._maybe_checkpoint_mid_epoch(fit, per_epoch)

    def _maybe_checkpoint_mid_epoch(self, fit: FitContext, per_epoch: int) -> None:
        p = fit.progress
        if fit.stop.requested:
            path = self._save(fit)
            if path is None:
                raise TrainingInterrupted(f"{fit.stop.requested} received: rank {fit.world.rank} stopped at step "
                                          f"{p.global_step}; rank 0 writes the checkpoint")
            raise TrainingInterrupted(
                f"{fit.stop.requested} received: stopped at step {p.global_step} (epoch {p.epoch}) and saved "
                f"{path}. Resume with the same command plus trainer.resume=auto (or trainer.resume={path.parent})."
            )
        every = self.checkpoint_every_n_steps
        if every and p.global_step % every == 0 and p.next_batch < per_epoch:
            self._save(fit)

    def _end_epoch(self, fit: FitContext) -> None:
        """Validate, log the epoch, checkpoint (``best`` when the monitored metric improved)."""
        p, task = fit.progress, fit.data.task
        if not fit.world.is_main:  # rank 0 alone validates and reports
            p.start_epoch(p.epoch + 1)
            return
        train = fit.task.epoch_train_metrics(p.epoch_loss_sum, p.epoch_correct, p.epoch_seen)
        val = self.evaluate(fit.model, fit.data, "val")
        per_epoch = self._batches_per_epoch(num_shard_batches(fit.data, fit.world))
        row = {
            "epoch": float(p.epoch),
            **{f"train/{k}": v for k, v in train.items()},
            **{f"val/{k}": v for k, v in val.items()},
            "lr": self._lr_at(fit, p.epoch - 1 + (per_epoch - 1) / per_epoch),
            "train/samples_per_s": p.epoch_seen / max(p.epoch_seconds, 1e-9),
            "train/epoch_seconds": p.epoch_seconds,
            "train/data_seconds": p.epoch_data_seconds,  # waiting for batches
            "train/step_seconds": p.epoch_step_seconds,  # inside the step, reading the loss back included
            # Training seconds so far (validation excluded): "time to X % val acc" is read off this.
            "train/elapsed_seconds": p.train_seconds + p.epoch_seconds,
            "sys/peak_rss_mb": peak_rss_mb(),
        }
        p.history.append(row)
        fit.logger.log_metrics(row, step=p.epoch)
        log.info(epoch_line(row, p.epoch, self.max_epochs))
        score = self._score(row, task)
        if score > p.best_score:
            p.best_score, p.best_epoch, p.best_val = score, p.epoch, val
        p.train_seconds += p.epoch_seconds
        p.train_samples += p.epoch_seen
        p.start_epoch(p.epoch + 1)
        self._save(fit, score=score)

    def _save(self, fit: FitContext, score: Optional[float] = None) -> Optional[Path]:
        if not fit.world.is_main:  # rank 0 alone checkpoints (every rank holds the same weights)
            return None
        # Metrics first: a run resumed from this checkpoint re-logs only the steps after it.
        fit.logger.flush()
        arrays, meta = capture(fit.model, fit.optimizer, fit.progress)
        meta.update(fit.run_meta)
        return fit.store.save(fit.progress.global_step, arrays, meta, score)

    def _resume(self, model: M.Module, optimizer) -> Progress:
        checkpoint = load_checkpoint(self.resume)
        progress = restore(checkpoint, model, optimizer)
        log.info("resumed from %s: epoch %d, step %d", checkpoint.path, progress.epoch, progress.global_step)
        return progress

    # --- small pieces ---------------------------------------------------------------------------
    def _lr_at(self, fit: FitContext, progress: float) -> float:
        return fit.lr_scale * fit.factory.lr * fit.factory.schedule.factor(progress, self.max_epochs)

    def _score(self, row: Dict[str, float], task: str) -> float:
        """The monitored metric, signed so that higher is better."""
        metric, mode = self.monitored(task)
        if metric not in row:
            raise KeyError(f"trainer.monitor={metric!r} is not a logged metric; have {sorted(row)}")
        return row[metric] if mode == "max" else -row[metric]

    def _batches_per_epoch(self, available: int) -> int:
        limit = self.limit_train_batches  # checked in __init__
        if limit is None:
            return available
        if isinstance(limit, float):
            return max(1, int(available * limit))
        return min(available, limit)
