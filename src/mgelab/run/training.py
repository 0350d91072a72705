"""``train(cfg)``: one run (or one job of a sweep) from a composed Hydra config to its tracked
results; returns the monitored metric's best value, which Hydra's sweepers optimise."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from mgelab.config.hydra_job import current_job, naming_inputs, parallel_jobs, run_tags
from mgelab.config.preflight import check_devices
from mgelab.config.validate import validate_config
from mgelab.run.console import complete_run_line, header_lines, log, say, summary_lines
from mgelab.run.experiment import count_parameters, run_experiment
from mgelab.run.naming import run_name
from mgelab.run.parallel import rank_device, run_on_devices, shared_data
from mgelab.run.params import run_params
from mgelab.run.resume import ResumePlan, plan_resume, verified
from mgelab.tracking.base import NullLogger
from mgelab.tracking.objective import objective_value
from mgelab.tracking.reachability import check_tracking_uri
from mgelab.tracking.store import TrackingStore
from mgelab.tracking.sweep_job import skip_finished
from mgelab.train import FitResult, seed_everything
from mgelab.train.device import cpu_threads_for, select_device
from mgelab.train.distributed import World
from mgelab.train.machine import run_execution_strategy


def train(cfg: DictConfig) -> float:
    """Train, test and track the run ``cfg`` describes; the monitored value at the best epoch.

    With ``sweep.skip_finished=true`` a sweep job that an earlier sweep finished is not trained
    again: its stored value is returned. With ``trainer.devices=N`` (N > 1) the run is trained by
    N processes, one per GPU (``mgelab.run.parallel``); rank 0 tracks it and its value is returned.
    """
    stored = finished_job_value(cfg)
    if stored is not None:
        return stored
    check_runnable(cfg)  # before anything is opened: a run that cannot start records nothing
    # 0 (auto) becomes the count used, so config.yaml, params and a resume check record that count.
    cfg.trainer.cpu_threads = cpu_threads_for(cfg.trainer.cpu_threads, parallel_jobs())
    # null becomes the strategy used (MEGENGINE_EXECUTION_STRATEGY or HEURISTIC), recorded likewise.
    cfg.trainer.execution_strategy = run_execution_strategy(cfg.trainer.execution_strategy)
    config = plain_config(cfg)
    plan = resume_plan(cfg, config)
    completed = completed_run_value(cfg, plan)
    if completed is not None:
        return completed
    resume = verified(plan).checkpoint if plan else None
    devices = int(cfg.trainer.devices)
    data = shared_data(cfg) if devices > 1 else None  # read once, before the workers fork
    return run_on_devices(devices, partial(train_rank, cfg, config, plan, resume, data))


def train_rank(cfg: DictConfig, config: Dict[str, Any], plan: Optional[ResumePlan], resume: Optional[Path],
               data: Any, world: World) -> float:
    """This process's part of the run: all of it on rank 0 (or alone), the training steps elsewhere."""
    seed_everything(cfg.seed)
    # Before any model is built: parameters live on the device that was default then.
    device = select_device(cfg.trainer.device, cfg.trainer.cpu_threads) if world.size == 1 else rank_device(world)
    if not world.is_main:
        return train_follower(cfg, data, resume, world)
    if world.size > 1:
        device = f"{device} and {world.size - 1} more GPUs (data parallel)"
    logger, continued = open_logger(cfg, plan)
    with logger:
        result = fit_and_track(cfg, config, logger, resume, continued, device, data)
    say(summary_lines(result, cfg.trainer.max_epochs, Path(cfg.paths.run_dir), logger))
    return result.best_value


def train_follower(cfg: DictConfig, data: Any, resume: Optional[Path], world: World) -> float:
    """A rank other than 0: the model, optimizer and trainer rank 0 has, trained in step with it on
    its own shard; it tracks, validates and checkpoints nothing."""
    model, trainer = build_model_and_trainer(cfg, data, resume)
    trainer.fit(model, data, instantiate(cfg.optim), NullLogger(), world=world)
    return math.nan


def plain_config(cfg: DictConfig) -> Dict[str, Any]:
    """The resolved config as plain values: choices as their names (``sgd``), not ``OptimName.sgd``."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def logger_class(cfg: DictConfig) -> type:
    """The configured logger's class: what it can do (``has_store``, ``resumes_runs``) without building it."""
    return get_class(cfg.logger._target_)


def check_runnable(cfg: DictConfig) -> None:
    """Every value valid, the GPUs ``trainer.devices`` asks for present, and the tracking store
    reachable (a server that is down fails in seconds)."""
    validate_config(cfg)
    check_devices(cfg.trainer)
    if logger_class(cfg).has_store:
        check_tracking_uri(cfg.logger.tracking_uri)


def finished_job_value(cfg: DictConfig) -> Optional[float]:
    sweep = cfg.get("sweep") or {}
    if not sweep.get("skip_finished") or not logger_class(cfg).has_store:
        return None
    return skip_finished(current_job(cfg), cfg.logger.tracking_uri, cfg.logger.experiment_name)


def resume_plan(cfg: DictConfig, config: Dict[str, Any]) -> Optional[ResumePlan]:
    """None (start afresh), or the checkpoint to continue (``mgelab.run.resume`` says which)."""
    return plan_resume(cfg.trainer.resume, config, Path(cfg.trainer.checkpoint_dir), Path(cfg.paths.output_dir))


def completed_run_value(cfg: DictConfig, plan: Optional[ResumePlan]) -> Optional[float]:
    """A checkpoint whose tracked run FINISHED is complete: say so and hand back its value."""
    if plan is None or not plan.tracking_run_id or not logger_class(cfg).has_store:
        return None
    run = TrackingStore(cfg.logger.tracking_uri).find_run(plan.tracking_run_id)
    if run is None or run.status != "FINISHED":
        return None
    log.info("%s", complete_run_line(run.run_id, run.name, run.metrics))
    value = objective_value(run)
    return math.nan if value is None else value


def descriptive_name(cfg: DictConfig) -> str:
    """The run's name in MLflow: ``run_name``/``logger.run_name`` when the command line sets one,
    else the model and the overrides that tell the run apart (``mlp lr=0.01``)."""
    overrides, swept = naming_inputs()
    if any(o.split("=", 1)[0].lstrip("+") in ("run_name", "logger.run_name") for o in overrides):
        return str(cfg.logger.get("run_name") or cfg.run_name)
    return run_name(cfg.model.name, overrides, swept)


def open_logger(cfg: DictConfig, plan: Optional[ResumePlan]) -> Tuple[Any, bool]:
    """The configured logger, and whether it continues the tracked run the checkpoint names."""
    run_id = plan.tracking_run_id if plan else None
    if run_id and logger_class(cfg).resumes_runs:
        return instantiate(cfg.logger, run_id=run_id), True
    named = {"run_name": descriptive_name(cfg)} if "run_name" in cfg.logger else {}
    return instantiate(cfg.logger, **named), False


def fit_and_track(
    cfg: DictConfig, config: Dict[str, Any], logger, resume: Optional[Path], continued: bool, device: str = "cpu0",
    data: Any = None,
) -> FitResult:
    """Build the data (unless given: read before the workers of a multi-GPU run forked), model and
    trainer, fit and log; ``config`` is ``cfg`` as plain values, ``device`` the one the run selected
    (for the header). In a multi-GPU run this is rank 0's part (the trainer finds its rank itself)."""
    if continued:  # the run's tags and params are there already
        logger.set_tags({"resumed_from": str(resume)})
    else:
        # First, so that a run failing while loading data still says what it was.
        logger.set_tags(run_tags(cfg))
        logger.log_params(run_params(config))
    data = instantiate(cfg.data) if data is None else data
    model, trainer = build_model_and_trainer(cfg, data, resume)
    announce(cfg, logger, data, model, device)
    return run_experiment(
        model=model,
        data=data,
        optimizer_factory=instantiate(cfg.optim),
        trainer=trainer,
        logger=logger,
        run_dir=cfg.paths.run_dir,
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        run_meta={"tracking_run_id": getattr(logger, "run_id", None), "config": config},
    )


def build_model_and_trainer(cfg: DictConfig, data: Any, resume: Optional[Path]) -> Tuple[Any, Any]:
    """The model for ``data`` (on the default device) and the trainer, as every rank builds them."""
    model = instantiate(cfg.model, input_shape=data.input_shape, num_outputs=data.num_outputs, task=data.task)
    return model, instantiate(cfg.trainer, resume=str(resume) if resume else None)


def announce(cfg: DictConfig, logger, data, model, device: str) -> None:
    """The run's header (name, run dir, MLflow page, data, model, device), once the pieces exist."""
    say(header_lines(
        # The tracking side may have made the name unique in its experiment: its name wins.
        name=getattr(logger, "run_name", None) or descriptive_name(cfg),
        experiment=str(cfg.logger.get("experiment_name") or cfg.experiment_name),
        run_dir=Path(cfg.paths.run_dir),
        logger=logger,
        data_info=data.describe(),
        model_name=str(cfg.model.name),
        model_class=type(model).__name__,
        parameters=count_parameters(model),
        device=device,
        cpu_threads=int(cfg.trainer.cpu_threads),
        debug=bool(cfg.trainer.get("debug")),
    ))
