"""One run from built pieces to tracked results: the part of ``scripts/train.py`` that
needs no Hydra, so tests and notebooks can call it directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import megengine as mge

from mgelab.models.summary import model_summary
from mgelab.report.plots import plot_confusion_matrix, plot_learning_curves
from mgelab.train.baseline import least_squares_baseline
from mgelab.train.trainer import FitResult, Trainer

# A model this small (chapter 1's line: w and b) has its values logged as metrics.
MAX_LOGGED_PARAMETER_VALUES = 16


def count_parameters(model) -> int:
    return int(sum(p.size for p in model.parameters()))


def small_parameter_values(model) -> Dict[str, float]:
    """``model/<name>_<i>`` for every parameter value, if the model has only a handful."""
    if count_parameters(model) > MAX_LOGGED_PARAMETER_VALUES:
        return {}
    return {
        f"model/{name}_{i}": float(v)
        for name, param in model.named_parameters()
        for i, v in enumerate(param.numpy().ravel())
    }


def run_experiment(
    *,
    model,
    data,
    optimizer_factory,
    trainer: Trainer,
    logger,
    run_dir: Path,
    config_yaml: Optional[str] = None,
    run_meta: Optional[Mapping[str, Any]] = None,
) -> FitResult:
    """Fit, test, draw and log. The caller owns ``logger`` (opens, tags and closes it)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    logger.log_params({f"data_info.{k}": v for k, v in data.describe().items()})
    # Parameters, trainable parameters, bytes and FLOPs of one sample (MegEngine's module statistics).
    logger.log_params(model_summary(model, data.input_shape).as_params())
    logger.set_tags({"megengine_version": mge.__version__, "model_class": type(model).__name__})
    if config_yaml is not None:
        config_file = run_dir / "config.yaml"
        config_file.write_text(config_yaml)
        logger.log_artifact(config_file)

    result = trainer.fit(model, data, optimizer_factory, logger, run_meta=run_meta)

    summary = {f"best_val/{k}": v for k, v in result.best_val.items()}
    summary.update({
        "best_epoch": float(result.best_epoch),
        "wall_time_s": result.wall_time_s,
        "train_samples_per_s": result.train_samples_per_s,
    })
    summary.update(small_parameter_values(model))
    if data.task == "regression":
        summary.update(least_squares_baseline(data))
    logger.log_metrics(summary, step=result.best_epoch)
    plots = run_dir / "plots"
    logger.log_artifact(plot_learning_curves(result.history, plots / "learning_curves.png"), "plots")
    if result.confusion is not None:
        figure = plot_confusion_matrix(result.confusion, data.class_names, plots / "confusion_matrix.png")
        logger.log_artifact(figure, "plots")
    for part in sorted(Path(result.best_checkpoint).iterdir()):
        logger.log_artifact(part, "checkpoints/best")
    # logger.log_model=true: the best checkpoint as an MLflow pyfunc model, a few raw test samples as its example.
    model_uri = logger.log_model(result.best_checkpoint, data.splits["test"].inputs[:2])
    if model_uri:
        print(f"logged model {model_uri}")
    return result

