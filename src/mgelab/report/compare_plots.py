"""PNG figures comparing runs: a metric per epoch and the train loss per step overlaid, and a
bar chart of the test metric. matplotlib's file-only backend, so no display is needed.

Readable from 2 to 50 runs: legends sit right of the axes and the figure widens to hold them;
bars are horizontal, one row per run, so the figure grows in height and names are never rotated;
past ``max_curves`` runs (20) the curve plots keep the best ones and say so (runs.md lists every run).
"""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402

from mgelab.report.compare import CompareSpec, History, RunData  # noqa: E402
from mgelab.report.plots import MARKER_LIMIT, integer_axis  # noqa: E402

# Twenty lines is about what one legend and one colour map (tab20) keep apart (CompareSpec's default).
MAX_CURVES = CompareSpec.max_curves
BAR_ROW_INCHES = 0.32  # per run in the bar chart: room for one line of 8-pt text
LABEL_CHAR_INCHES = 0.065  # average width of an 8-pt character, to widen for long run names
TITLE_CHAR_INCHES = 0.085  # the same for the 10-pt title, to wrap a long sweep name


def run_labels(data: Sequence[RunData]) -> List[str]:
    """One distinct label per run: its MLflow name, which names what sets it apart.

    Runs from before names did that (two runs both named ``mlp``) get the overrides that differ
    appended, and a ``(2)``, ``(3)`` where even those repeat.
    """
    names = [item.run.name or item.run.run_id for item in data]
    counts = Counter(names)
    labels = [name if counts[name] == 1 else _with_overrides(name, item) for name, item in zip(names, data)]
    seen: Counter = Counter()
    repeated = Counter(labels)
    unique = []
    for label in labels:
        seen[label] += 1
        unique.append(label if repeated[label] == 1 or seen[label] == 1 else f"{label} ({seen[label]})")
    return unique


def _with_overrides(name: str, item: RunData) -> str:
    model = item.run.tags.get("model")
    extra = [o for o in item.label.split(" ") if o and o not in (f"model={name}", f"model={model}")]
    return " ".join([name, *extra])


def file_stem(metric: str) -> str:
    """``val/acc`` -> ``val_acc``."""
    return metric.replace("/", "_")


def best_value(points: History, mode: str) -> Optional[float]:
    """The best of a history (``mode`` max or min), ignoring NaNs; None when there is none."""
    values = [v for _, v in points if not math.isnan(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def best_runs(data: Sequence[RunData], mode: str, limit: int = MAX_CURVES) -> List[int]:
    """Indices (in job order) of the ``limit`` runs with the best per-epoch metric; runs without
    one (failed) rank last. All of them when there are no more than ``limit``."""
    if len(data) <= limit:
        return list(range(len(data)))
    sign = -1.0 if mode == "max" else 1.0

    def rank(index: int) -> Tuple[bool, float]:
        value = best_value(data[index].metric_history, mode)
        return (value is None, sign * value if value is not None else 0.0)

    return sorted(sorted(range(len(data)), key=rank)[:limit])


def curves_figure(
    data: Sequence[RunData], labels: Sequence[str], history: Callable[[RunData], History],
    xlabel: str, ylabel: str, title: str,
) -> Figure:
    """One line per run, the legend right of the axes (the figure widened for it)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.get_cmap("tab10" if len(data) <= 10 else "tab20").colors
    spans: List[float] = []
    for index, (item, label) in enumerate(zip(data, labels)):
        points = history(item)
        if points:
            steps = [s for s, _ in points]
            spans += [steps[0], steps[-1]]
            ax.plot(steps, [v for _, v in points], marker="o" if len(points) < MARKER_LIMIT else None,
                    markersize=3, color=colours[index % len(colours)], label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if spans:
        integer_axis(ax, min(spans), max(spans))  # epochs and steps are whole numbers
        legend = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        _widen_for(fig, legend)
    else:  # e.g. every run failed, or logged the loss less often than it had steps
        ax.text(0.5, 0.5, f"no run logged {ylabel}", ha="center", va="center", transform=ax.transAxes)
    _set_title(fig, ax, title)
    fig.tight_layout()
    return fig


def _widen_for(fig: Figure, legend: Legend) -> None:
    """Add the legend's width (and any height it needs) to the figure, so the axes keep theirs."""
    box = legend.get_window_extent(fig.canvas.get_renderer())
    width, height = fig.get_size_inches()
    fig.set_size_inches(width + box.width / fig.dpi + 0.3, max(height, box.height / fig.dpi + 1.2))


def _set_title(fig: Figure, ax: Axes, title: str) -> None:
    """The title, wrapped to the axes' width: a sweep's name plus its swept keys can be long."""
    chars = max(30, int(fig.get_size_inches()[0] * ax.get_position().width / TITLE_CHAR_INCHES))
    lines = [wrapped for line in title.split("\n") for wrapped in textwrap.wrap(line, chars) or [""]]
    ax.set_title("\n".join(lines), fontsize=10)


def bars_figure(data: Sequence[RunData], labels: Sequence[str], metric: str, mode: str, title: str) -> Figure:
    """The metric per run as horizontal bars, best first, its value at the bar's end; a run
    without it (failed) comes last with an empty bar marked n/a."""
    values = [_number(item.run.metrics.get(metric)) for item in data]
    sign = -1.0 if mode == "max" else 1.0
    order = sorted(range(len(data)), key=lambda i: (values[i] is None, sign * (values[i] or 0.0)))
    longest = max((len(label) for label in labels), default=10)
    height = 1.4 + BAR_ROW_INCHES * len(data)
    fig, ax = plt.subplots(figsize=(4.5 + LABEL_CHAR_INCHES * longest, height))
    rows = list(range(len(order)))
    shown = [values[i] for i in order]
    top = shown[0] if shown else None  # the best; every run that ties it is marked too
    colours = ["tab:orange" if v is not None and v == top else "tab:blue" for v in shown]
    ax.barh(rows, [v or 0.0 for v in shown], color=colours, height=0.7)
    for row, value in zip(rows, shown):
        left = value is not None and value < 0
        ax.annotate("n/a" if value is None else f"{value:.4f}", (value or 0.0, row), xytext=(-3 if left else 3, 0),
                    textcoords="offset points", ha="right" if left else "left", va="center", fontsize=7)
    ax.set_yticks(rows, labels=[labels[i] for i in order], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # best at the top
    ax.margins(x=0.15)
    ax.set_xlabel(metric)
    _set_title(fig, ax, title)
    ax.grid(alpha=0.3, axis="x")
    if all(v is None for v in values):
        ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def _number(value: Optional[float]) -> Optional[float]:
    return None if value is None or math.isnan(value) else float(value)


def curve_title(ylabel: str, xlabel: str, shown: int, total: int, spec: CompareSpec, name: Optional[str]) -> str:
    """What the plot is, of which runs, and, when runs were left out, which and where the rest are."""
    head = f"{ylabel} by {xlabel}" + (f" — {name}" if name else "")
    if shown == total:
        return head
    return f"{head}\nbest {shown} of {total} runs by {spec.metric} ({spec.mode}); runs.md lists all"


def comparison_figures(
    data: Sequence[RunData], spec: CompareSpec, title: Optional[str] = None
) -> List[Tuple[Figure, str]]:
    """The three comparison figures and their file names; ``title`` names the selection (the
    sweep, the experiment). Curves: the best ``spec.max_curves`` runs; bars: every run."""
    labels = run_labels(data)
    kept = best_runs(data, spec.mode, spec.max_curves)
    curve_data, curve_labels = [data[i] for i in kept], [labels[i] for i in kept]
    return [
        (curves_figure(curve_data, curve_labels, lambda d: d.metric_history, "epoch", spec.metric,
                       curve_title(spec.metric, "epoch", len(kept), len(data), spec, title)),
         f"{file_stem(spec.metric)}_by_epoch.png"),
        (curves_figure(curve_data, curve_labels, lambda d: d.loss_history, "step", spec.loss_metric,
                       curve_title(spec.loss_metric, "step", len(kept), len(data), spec, title)),
         f"{file_stem(spec.loss_metric)}_by_step.png"),
        (bars_figure(data, labels, spec.test_metric, spec.mode,
                     f"{spec.test_metric}, best first" + (f" — {title}" if title else "")),
         f"{file_stem(spec.test_metric)}.png"),
    ]


def draw_all(data: Sequence[RunData], spec: CompareSpec, out_dir: Path, title: Optional[str] = None) -> List[Path]:
    """Save :func:`comparison_figures` under ``out_dir``; returns the PNGs' paths."""
    return [_save(fig, out_dir / name) for fig, name in comparison_figures(data, spec, title)]


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
