"""What a learning task means to the trainer: its loss, what a batch adds to the epoch's statistics,
its metrics, its default monitored metric, and the reference it is compared with.

Data modules name their task (``data.task``: "classification" or "regression"); everything that
differs between the two is answered here, so the loop, the evaluation and the run never branch on
the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import megengine as mge
import megengine.functional as F
import numpy as np

from mgelab.train.baseline import least_squares_baseline
from mgelab.train.metrics import classification_metrics, confusion_matrix, per_class_accuracy, regression_metrics

# Metrics where smaller is better; any other monitored metric is maximised under monitor_mode=auto.
LOWER_IS_BETTER = ("loss", "mae", "rmse")


@dataclass(frozen=True)
class Task:
    name: str
    loss: Callable[[mge.Tensor, mge.Tensor], mge.Tensor]
    metrics: Callable[[np.ndarray, np.ndarray], Dict[str, float]]
    default_monitor: str
    # Classes: training accuracy per epoch, per-class test accuracy and a confusion matrix.
    has_classes: bool
    # A closed-form reference fit logged beside the trained model (``baseline/*``), if any.
    baseline: Optional[Callable[[object], Dict[str, float]]] = None

    def training_loss(self, label_smoothing: float = 0.0) -> Callable[[mge.Tensor, mge.Tensor], mge.Tensor]:
        """The loss the step minimises: ``loss``, or for classes cross-entropy against targets smoothed
        by ``label_smoothing`` (1 - s on the class, s spread over all). Evaluation keeps ``loss``."""
        if label_smoothing == 0:
            return self.loss
        if not self.has_classes:
            raise ValueError(f"trainer.label_smoothing={label_smoothing:g} applies to classification only; "
                             f"this data's task is {self.name}: set it to 0")
        return lambda out, y: F.nn.cross_entropy(out, y, label_smooth=label_smoothing)

    def batch_correct(self, outputs: np.ndarray, targets: np.ndarray) -> int:
        """Correctly classified samples of a training batch (0 where there are no classes)."""
        return int((outputs.argmax(axis=1) == targets).sum()) if self.has_classes else 0

    def epoch_train_metrics(self, loss_sum: float, correct: int, seen: int) -> Dict[str, float]:
        metrics = {"loss": loss_sum / max(seen, 1)}
        if self.has_classes:
            metrics["acc"] = correct / max(seen, 1)
        return metrics

    def test_report(
        self, outputs: np.ndarray, targets: np.ndarray, num_classes: Optional[int]
    ) -> Tuple[Dict[str, float], Optional[np.ndarray]]:
        """Test metrics, plus per-class accuracy and the confusion matrix where there are classes."""
        metrics = self.metrics(outputs, targets)
        if not self.has_classes:
            return metrics, None
        confusion = confusion_matrix(outputs.argmax(axis=1), targets, int(num_classes))
        for index, value in enumerate(per_class_accuracy(confusion)):
            metrics[f"acc_class_{index}"] = float(value)
        return metrics, confusion

    def monitor(self, metric: str = "auto", mode: str = "auto") -> Tuple[str, str]:
        """(metric, "max"|"min") that picks the best checkpoint and is returned to sweepers."""
        return resolve_monitor(self.default_monitor, metric, mode)


def resolve_monitor(default_metric: str, metric: str = "auto", mode: str = "auto") -> Tuple[str, str]:
    """``auto`` takes the task's metric; ``auto`` mode minimises losses and errors, maximises the rest."""
    chosen = default_metric if metric == "auto" else metric
    if mode not in ("auto", "max", "min"):
        raise ValueError(f"trainer.monitor_mode={mode!r} must be 'max', 'min' or 'auto'")
    if mode != "auto":
        return chosen, mode
    return chosen, "min" if chosen.endswith(LOWER_IS_BETTER) else "max"


CLASSIFICATION = Task(
    name="classification",
    loss=lambda out, y: F.nn.cross_entropy(out, y),
    metrics=classification_metrics,
    default_monitor="val/acc",
    has_classes=True,
)
REGRESSION = Task(
    name="regression",
    loss=lambda out, y: F.nn.square_loss(out, y),
    metrics=regression_metrics,
    default_monitor="val/loss",
    has_classes=False,
    baseline=least_squares_baseline,
)
TASKS = {task.name: task for task in (CLASSIFICATION, REGRESSION)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"data task {name!r} is unknown; expected one of {sorted(TASKS)}")
    return TASKS[name]
