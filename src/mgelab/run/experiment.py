"""One run from built pieces to tracked results: the part of ``mgelab.run.train`` that needs no
Hydra, so notebooks (and tests of the pieces) can call it with objects they built themselves."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import megengine as mge

from mgelab.models.summary import model_summary
from mgelab.report.plots import plot_confusion_matrix, plot_learning_curves
from mgelab.serving.pyfunc import model_package
from mgelab.tracking.base import TEST, TRAIN, VALIDATION, DatasetSplit
from mgelab.tracking.objective import MONITOR_MODE_TAG, MONITOR_TAG, MONITOR_VALUE_METRIC
from mgelab.train.task import get_task
from mgelab.train.trainer import FitResult, Trainer

log = logging.getLogger(__name__)

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


def dataset_splits(data) -> List[DatasetSplit]:
    """The data module's raw splits as the run's dataset inputs. Their source: the configured mirror
    or the upstream URL the files are fetched from; None (made by code) for generated data."""
    source = getattr(data, "mirror", None) or getattr(data, "base_url", None) or None
    contexts = {"train": TRAIN, "val": VALIDATION, "test": TEST}
    return [DatasetSplit(data.name, context, data.splits[key].inputs, data.splits[key].targets, source)
            for key, context in contexts.items() if key in data.splits]


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
    logger.log_datasets(dataset_splits(data))
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
    baseline = get_task(data.task).baseline
    if baseline is not None:
        summary.update(baseline(data))
    logger.log_metrics(summary, step=result.best_epoch)
    # What a sweeper receives, stored once: sweeps re-run with skip_finished read it back.
    logger.set_tags({MONITOR_TAG: result.monitor, MONITOR_MODE_TAG: result.monitor_mode})
    logger.log_metrics({MONITOR_VALUE_METRIC: result.best_value}, step=result.best_epoch)
    plots = run_dir / "plots"
    # Plots name their run: a PNG downloaded from the UI still says which run it is.
    title = getattr(logger, "run_name", None) or type(model).__name__
    logger.log_artifact(plot_learning_curves(result.history, plots / "learning_curves.png", title=title), "plots")
    if result.confusion is not None:
        figure = plot_confusion_matrix(result.confusion, data.class_names, plots / "confusion_matrix.png", title=title)
        logger.log_artifact(figure, "plots")
    for part in sorted(Path(result.best_checkpoint).iterdir()):
        logger.log_artifact(part, "checkpoints/best")
    # logger.log_model=true: the best checkpoint as an MLflow pyfunc model, a few raw test samples as its example.
    package = model_package(result.best_checkpoint, data.splits["test"].inputs[:2]) if logger.logs_models else None
    model_uri = logger.log_model(**package) if package else None
    if model_uri:
        log.info("logged model %s", model_uri)
    return result

