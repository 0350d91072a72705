"""Train one run (or, with -m, a sweep of runs) from the Hydra config under conf/.

    python scripts/train.py                                   # Fashion-MNIST MLP, tracked
    python scripts/train.py model=cnn trainer.max_epochs=2
    python scripts/train.py -m model=linear,mlp,cnn data=fashion_mnist

Returns the best validation value of the monitored metric (``trainer.monitor``), for sweepers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import mgelab.config  # noqa: F401  (registers the resolvers and schemas conf/ uses)
from mgelab.config.validate import validate_config
from mgelab.experiment import run_experiment
from mgelab.tracking.params import flatten
from mgelab.tracking.provenance import git_commit
from mgelab.tracking.sweep_job import current_job, skip_finished
from mgelab.train import seed_everything
from mgelab.train.device import select_device
from mgelab.train.resume import resume_target, stored_meta


def run_tags(cfg: DictConfig) -> Dict[str, Any]:
    """Tags that say what the run is and where it came from (Hydra's view of it)."""
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    tags: Dict[str, Any] = {
        "data": choices.get("data"),
        "model": choices.get("model"),
        "optim": choices.get("optim"),
        "experiment": choices.get("experiment") or "none",
        "git_commit": git_commit(cfg.paths.root_dir),
        "hydra/overrides": " ".join(hydra_cfg.overrides.task) or "(none)",
        "hydra/run_dir": hydra_cfg.runtime.output_dir,
    }
    job = current_job(cfg)
    if job is not None:  # a multirun job: sweep id, job number and key, child of the sweep's run
        tags.update(job.tags())
    return tags


def train(cfg: DictConfig) -> float:
    seed_everything(cfg.seed)
    # Before any model is built: parameters live on the device that was default then.
    select_device(cfg.trainer.device, cfg.trainer.cpu_threads)
    resume = resume_target(cfg.trainer.resume, Path(cfg.paths.output_dir), cfg.run_name)
    # A resumed run continues the tracking run its checkpoint names.
    run_id = stored_meta(resume).get("tracking_run_id") if resume else None
    logger = instantiate(cfg.logger, **({"run_id": run_id} if run_id and "tracking_uri" in cfg.logger else {}))
    config = OmegaConf.to_container(cfg, resolve=True)
    with logger:
        if run_id is None:
            # First, so that a run failing while loading data still says what it was.
            logger.set_tags(run_tags(cfg))
            logger.log_params(flatten(config))
        else:
            logger.set_tags({"resumed_from": str(resume)})
        validate_config(cfg)  # before anything is built; a bad value ends the tracked run as FAILED
        data = instantiate(cfg.data)
        model = instantiate(
            cfg.model, input_shape=data.input_shape, num_outputs=data.num_outputs, task=data.task
        )
        trainer = instantiate(cfg.trainer, resume=str(resume) if resume else None)
        result = run_experiment(
            model=model,
            data=data,
            optimizer_factory=instantiate(cfg.optim),
            trainer=trainer,
            logger=logger,
            run_dir=cfg.paths.run_dir,
            config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
            run_meta={"tracking_run_id": getattr(logger, "run_id", None), "config": config},
        )
    monitored = trainer.monitored(data.task)[0]
    best_value = result.history[result.best_epoch - 1][monitored]
    headline = {k: round(v, 4) for k, v in result.test.items() if not k.startswith("acc_class_")}
    print(
        f"best epoch {result.best_epoch}: {monitored} {best_value:.4f} | test {headline} | "
        f"{result.wall_time_s:.1f} s, {result.train_samples_per_s:.0f} train samples/s"
    )
    if getattr(logger, "run_id", None):
        print(f"MLflow: `make ui`, then http://127.0.0.1:5000/#/experiments/{logger.experiment_id}/runs/{logger.run_id}")
    return float(best_value)


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    # sweep.skip_finished=true: a job that finished in an earlier sweep returns its stored value.
    stored = skip_finished(cfg)
    return stored if stored is not None else train(cfg)


if __name__ == "__main__":
    main()
