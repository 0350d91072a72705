"""One run from built pieces to tracked results: the part of ``scripts/train.py`` that
needs no Hydra, so tests and notebooks can call it directly."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import megengine as mge

from mgelab.report.plots import plot_confusion_matrix, plot_learning_curves
from mgelab.train.trainer import FitResult, Trainer


def count_parameters(model) -> int:
    return int(sum(p.size for p in model.parameters()))


def run_experiment(
    *,
    model,
    data,
    optimizer_factory,
    trainer: Trainer,
    logger,
    run_dir: Path,
    config_yaml: Optional[str] = None,
) -> FitResult:
    """Fit, test, draw and log. The caller owns ``logger`` (opens, tags and closes it)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    logger.log_params({f"data_info.{k}": v for k, v in data.describe().items()})
    logger.log_params({"model_info.num_parameters": count_parameters(model)})
    logger.set_tags({"megengine_version": mge.__version__, "model_class": type(model).__name__})
    if config_yaml is not None:
        config_file = run_dir / "config.yaml"
        config_file.write_text(config_yaml)
        logger.log_artifact(config_file)

    result = trainer.fit(model, data, optimizer_factory, logger)

    summary = {f"best_val/{k}": v for k, v in result.best_val.items()}
    summary.update({
        "best_epoch": float(result.best_epoch),
        "wall_time_s": result.wall_time_s,
        "train_samples_per_s": result.train_samples_per_s,
    })
    logger.log_metrics(summary, step=result.best_epoch)
    plots = run_dir / "plots"
    logger.log_artifact(plot_learning_curves(result.history, plots / "learning_curves.png"), "plots")
    if result.confusion is not None:
        figure = plot_confusion_matrix(result.confusion, data.class_names, plots / "confusion_matrix.png")
        logger.log_artifact(figure, "plots")
    logger.log_artifact(result.best_checkpoint, "checkpoints")
    return result

