"""PNG figures of a run, drawn with matplotlib's file-only backend (no display needed).

Each figure has a ``*_figure`` builder that returns the matplotlib Figure (so tests can read the
axes back) and a ``plot_*`` wrapper that saves it and closes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Past this many points a marker per point only blurs the line (long runs, per-step losses).
MARKER_LIMIT = 30


def integer_axis(ax: Axes, first: float, last: float) -> None:
    """Whole-number ticks on x (epochs, steps), with half a unit of room at each end.

    Left to itself matplotlib ticks a 2-epoch run at 1.0, 1.25, 1.5, ...; the padding keeps a
    single-epoch run's one point off the frame instead of a zero-width axis.
    """
    pad = max(0.5, 0.02 * (last - first))
    ax.set_xlim(first - pad, last + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def learning_curves_figure(history: List[Dict[str, float]], title: Optional[str] = None) -> Figure:
    """Loss and accuracy (classification) or R^2 (regression) per epoch, train and val.

    ``title`` names the run (the figure is seen as an MLflow artifact, away from its run's name).
    """
    if not history:
        raise ValueError("plot_learning_curves: the history is empty (no epoch finished); nothing to draw")
    epochs = [int(row["epoch"]) for row in history]
    second = [(m, label) for m, label in (("acc", "accuracy"), ("r2", "R^2")) if f"val/{m}" in history[0]]
    panels = [("loss", "loss")] + second[:1]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    marker = "o" if len(epochs) < MARKER_LIMIT else None
    for ax, (metric, label) in zip(axes[0], panels):
        for split in ("train", "val"):
            key = f"{split}/{metric}"
            if key in history[0]:
                ax.plot(epochs, [row[key] for row in history], marker=marker, markersize=4, label=split)
        integer_axis(ax, epochs[0], epochs[-1])
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_learning_curves(history: List[Dict[str, float]], path: Path, *, title: Optional[str] = None) -> Path:
    """Save :func:`learning_curves_figure` as a PNG; returns the path."""
    return _save(learning_curves_figure(history, title), path)


def confusion_matrix_figure(
    confusion: np.ndarray, class_names: Sequence[str], title: Optional[str] = None
) -> Figure:
    """Row-normalised (recall per true class), with counts written in each cell."""
    totals = confusion.sum(axis=1, keepdims=True)
    rates = confusion / np.maximum(totals, 1)
    size = max(4.0, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046)
    accuracy = f"test accuracy {np.trace(confusion) / max(confusion.sum(), 1):.4f}"
    ax.set_title(f"{title}\n{accuracy}" if title else accuracy)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    confusion: np.ndarray, class_names: Sequence[str], path: Path, *, title: Optional[str] = None
) -> Path:
    """Save :func:`confusion_matrix_figure` as a PNG; returns the path."""
    return _save(confusion_matrix_figure(confusion, class_names, title), path)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
