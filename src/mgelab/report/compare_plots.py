"""PNG figures comparing runs: a metric per epoch and the train loss per step overlaid, and a
bar chart of the test metric. matplotlib's file-only backend, so no display is needed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mgelab.report.compare import CompareSpec, History, RunData  # noqa: E402

# Legends with many runs stop being readable; the table names every run anyway.
MAX_LEGEND_ENTRIES = 12


def run_label(item: RunData) -> str:
    """The run's name and what sets it apart, without repeating ``model=<name>``."""
    extra = [o for o in item.label.split(" ") if o and o != f"model={item.run.name}"]
    return " ".join([item.run.name, *extra])


def file_stem(metric: str) -> str:
    """``val/acc`` -> ``val_acc``."""
    return metric.replace("/", "_")


def plot_curves(
    data: Sequence[RunData], history: Callable[[RunData], History], xlabel: str, ylabel: str, path: Path
) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = 0
    for item in data:
        points = history(item)
        if points:
            drawn += 1
            ax.plot([s for s, _ in points], [v for _, v in points], marker="o" if len(points) < 30 else None,
                    markersize=3, label=run_label(item))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and steps are whole numbers
    ax.grid(alpha=0.3)
    if 0 < drawn <= MAX_LEGEND_ENTRIES:
        ax.legend(fontsize=7)
    elif drawn == 0:  # e.g. every run failed, or logged the loss less often than it had steps
        ax.text(0.5, 0.5, f"no run logged {ylabel}", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_test_bars(data: Sequence[RunData], metric: str, path: Path) -> Path:
    """The test metric per run; a run without it (failed) gets an empty slot, labelled."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(data) + 2), 4.2))
    values = [item.run.metrics.get(metric) for item in data]
    positions = list(range(len(data)))
    ax.bar(positions, [v or 0.0 for v in values], color="tab:blue")
    for x, value in zip(positions, values):
        ax.annotate("n/a" if value is None else f"{value:.4f}", (x, value or 0.0), ha="center", va="bottom",
                    fontsize=8)
    ax.set_xticks(positions)
    ax.set_xticklabels([run_label(item).replace(" ", "\n", 1) for item in data], fontsize=7, rotation=20,
                       ha="right")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def draw_all(data: Sequence[RunData], spec: CompareSpec, out_dir: Path) -> List[Path]:
    return [
        plot_curves(data, lambda d: d.metric_history, "epoch", spec.metric,
                    out_dir / f"{file_stem(spec.metric)}_by_epoch.png"),
        plot_curves(data, lambda d: d.loss_history, "step", spec.loss_metric,
                    out_dir / f"{file_stem(spec.loss_metric)}_by_step.png"),
        plot_test_bars(data, spec.test_metric, out_dir / f"{file_stem(spec.test_metric)}.png"),
    ]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
