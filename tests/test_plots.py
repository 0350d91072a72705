"""The run's and the comparison's figures, read back from matplotlib: integer epoch ticks, titles,
legends outside the axes, and bar charts that name every run from 2 to 50 runs."""

from __future__ import annotations

from typing import Dict, List

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from mgelab.report.compare import CompareSpec, RunData, gather
from mgelab.report.compare_plots import (
    MAX_CURVES,
    bars_figure,
    best_runs,
    comparison_figures,
    curves_figure,
    draw_all,
    run_labels,
)
from mgelab.report.plots import confusion_matrix_figure, learning_curves_figure, plot_learning_curves
from mgelab.tracking.records import RunRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def history(epochs: int, task_metric: str = "acc") -> List[Dict[str, float]]:
    return [{"epoch": float(e), "train/loss": 1.0 / e, "val/loss": 1.2 / e, f"train/{task_metric}": 0.5 + e / 1000,
             f"val/{task_metric}": 0.4 + e / 1000} for e in range(1, epochs + 1)]


def visible_ticks(ax: Axes) -> List[float]:
    low, high = ax.get_xlim()
    return [t for t in ax.get_xticks() if low <= t <= high]


def tick_texts(fig: Figure, ax: Axes) -> List[str]:
    fig.canvas.draw()
    low, high = ax.get_xlim()
    return [t.get_text().replace("\u2212", "-") for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]


def record(name: str, value=None, status: str = "FINISHED", **tags: str) -> RunRecord:
    metrics = {} if value is None else {"test/acc": value}
    return RunRecord(run_id=f"id_{name}_{value}", name=name, experiment_id="1", status=status, start_time=0,
                     end_time=0, metrics=metrics, tags={"model": name.split(" ")[0], **tags})


def run_data(count: int, long_names: bool = False) -> List[RunData]:
    """``count`` runs; run i reaches val/acc 0.5 + i/1000, so the last runs are the best."""
    stem = "mlp optim.lr=0.01 optim.weight_decay=0.0001 model.hidden=512 run" if long_names else "mlp lr="
    return [RunData(record(f"{stem}{i}", 0.5 + i / 1000), [(1, 0.4), (2, 0.5 + i / 1000)],
                    [(s, 1.0 / s) for s in range(1, 9)], f"optim.lr={i}") for i in range(count)]


@pytest.mark.parametrize("epochs, expected", [(1, [1]), (2, [1, 2])])
def test_short_runs_get_whole_epoch_ticks_only(epochs, expected):
    fig = learning_curves_figure(history(epochs))
    for ax in fig.axes:
        assert visible_ticks(ax) == expected
        assert tick_texts(fig, ax) == [str(e) for e in expected]


def test_long_runs_keep_few_integer_ticks():
    fig = learning_curves_figure(history(200, "r2"))
    ticks = visible_ticks(fig.axes[0])
    assert 3 <= len(ticks) <= 12 and all(t == int(t) for t in ticks) and ticks[-1] >= 175
    assert fig.axes[1].get_ylabel() == "R^2"
    assert fig.axes[0].lines[0].get_marker() in (None, "None", "")  # 200 markers would blur the line


def test_learning_curves_title_and_a_legend_on_every_panel(tmp_path):
    fig = learning_curves_figure(history(3), title="mlp lr=0.01")
    assert fig.get_suptitle() == "mlp lr=0.01"
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val"]
    assert learning_curves_figure(history(3)).get_suptitle() == ""  # the old call still works
    path = plot_learning_curves(history(2), tmp_path / "p" / "curves.png", title="cnn")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_learning_curves_of_no_epoch_say_so():
    with pytest.raises(ValueError, match="history is empty"):
        learning_curves_figure([])


def test_confusion_matrix_title_names_the_run():
    confusion = np.array([[3, 1], [0, 4]])
    titled = confusion_matrix_figure(confusion, ["a", "b"], title="cnn")
    assert titled.axes[0].get_title() == "cnn\ntest accuracy 0.8750"
    assert confusion_matrix_figure(confusion, ["a", "b"]).axes[0].get_title() == "test accuracy 0.8750"


@pytest.mark.parametrize("count, long_names", [(2, False), (MAX_CURVES, True)])
def test_curve_legend_sits_right_of_the_axes_and_widens_the_figure(count, long_names):
    data = run_data(count, long_names)
    labels = run_labels(data)
    fig = curves_figure(data, labels, lambda d: d.metric_history, "epoch", "val/acc", "val/acc by epoch")
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == labels
    assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
    assert fig.get_size_inches()[0] > 7.5  # widened for the legend...
    assert ax.get_position().width * fig.get_size_inches()[0] > 5.0  # ...so the axes were not squeezed
    assert visible_ticks(ax) == [1, 2]


def test_curves_of_many_runs_keep_the_best_and_say_so(tmp_path):
    data = run_data(25)
    kept = best_runs(data, "max")
    assert kept == list(range(5, 25))  # the 20 highest val/acc, still in job order
    assert best_runs(data, "min") == list(range(20))
    assert best_runs(data[:3], "max") == [0, 1, 2]
    spec = CompareSpec()
    (by_epoch, _), (by_step, _), (bars, _) = comparison_figures(data, spec, title="sweep lr")
    for fig in (by_epoch, by_step):
        ax = fig.axes[0]
        assert len(ax.lines) == MAX_CURVES and "best 20 of 25 runs" in ax.get_title()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"mlp lr={i}" for i in kept]
    assert len(bars.axes[0].patches) == 25 and len(bars.axes[0].get_yticklabels()) == 25
    paths = draw_all(data, spec, tmp_path, title="sweep lr")
    assert [p.name for p in paths] == ["val_acc_by_epoch.png", "step_train_loss_by_step.png", "test_acc.png"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)


def test_curve_title_tells_what_was_left_out():
    from mgelab.report.compare_plots import curve_title

    spec = CompareSpec()
    assert curve_title("val/acc", "epoch", 3, 3, spec, "sweep lr") == "val/acc by epoch — sweep lr"
    long = curve_title("val/acc", "epoch", 20, 25, spec, None)
    assert long == "val/acc by epoch\nbest 20 of 25 runs by val/acc (max); runs.md lists all"


@pytest.mark.parametrize("long_names", [False, True])
def test_bars_name_every_run_and_grow_with_their_number(long_names):
    heights = []
    for count in (2, 50):
        data = run_data(count, long_names)
        labels = run_labels(data)
        fig = bars_figure(data, labels, "test/acc", "max", "test/acc, best first")
        ax = fig.axes[0]
        fig.canvas.draw()
        shown = [t.get_text() for t in ax.get_yticklabels()]
        assert sorted(shown) == sorted(labels) and len(set(shown)) == count
        assert shown[0] == labels[-1]  # best first: the last run has the highest test/acc
        assert len(ax.patches) == count and all(p.get_width() > 0 for p in ax.patches)
        values = {t.get_text() for t in ax.texts}
        assert f"{0.5 + (count - 1) / 1000:.4f}" in values and len(values) == count
        renderer = fig.canvas.get_renderer()
        # Long names fit: no tick label starts left of the figure.
        assert min(t.get_window_extent(renderer).x0 for t in ax.get_yticklabels()) >= 0
        heights.append(fig.get_size_inches()[1])
    assert heights[1] > heights[0] * 4


def test_bars_put_a_run_without_the_metric_last_marked_na():
    data = [RunData(record("a", 0.9), [], [], ""), RunData(record("b", status="FAILED"), [], [], ""),
            RunData(record("c", 0.95), [], [], "")]
    fig = bars_figure(data, run_labels(data), "test/acc", "max", "t")
    fig.canvas.draw()
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["c", "a", "b"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.9500", "0.9000", "n/a"]
    best, other, failed = (to_hex(p.get_facecolor()) for p in fig.axes[0].patches)
    assert best != other == failed
    tied = [RunData(record("a", 0.9), [], [], ""), RunData(record("b", 0.9), [], [], "")]
    first, second = bars_figure(tied, ["a", "b"], "test/acc", "max", "t").axes[0].patches
    assert first.get_facecolor() == second.get_facecolor()  # a tie is not a winner


def test_run_labels_are_mlflow_names_made_distinct_only_where_needed():
    def item(name: str, label: str) -> RunData:
        return RunData(record(name), [], [], label)

    fresh = [item("mlp lr=0.01", "model=mlp optim.lr=0.01"), item("cnn", "model=cnn"),
             item("mlp lr=0.01 (2)", "model=mlp optim.lr=0.01")]
    assert run_labels(fresh) == ["mlp lr=0.01", "cnn", "mlp lr=0.01 (2)"]
    older = [item("mlp", "model=mlp optim.lr=0.1"), item("mlp", "model=mlp optim.lr=0.01"), item("cnn", "")]
    assert run_labels(older) == ["mlp optim.lr=0.1", "mlp optim.lr=0.01", "cnn"]
    same = [item("mlp", ""), item("mlp", ""), item("mlp", "")]  # no overrides: label ""
    assert run_labels(same) == ["mlp", "mlp (2)", "mlp (3)"]


class FakeStore:
    def metric_history(self, run_id: str, key: str):
        return [(1, 0.5)]


def test_a_sweep_parent_is_never_a_row_bar_or_curve():
    runs = [record("sweep lr", **{"sweep/role": "parent"}), record("mlp lr=0.1", 0.9), record("cnn", 0.8)]
    data = gather(FakeStore(), runs, CompareSpec())
    assert [d.run.name for d in data] == ["mlp lr=0.1", "cnn"]


def test_max_curves_comes_from_the_spec_and_bad_values_are_named():
    spec = CompareSpec(max_curves=3)
    (by_epoch, _), _, (bars, _) = comparison_figures(run_data(5), spec)
    assert len(by_epoch.axes[0].lines) == 3 and "best 3 of 5 runs" in by_epoch.axes[0].get_title()
    assert len(bars.axes[0].patches) == 5
    with pytest.raises(ValueError, match="max_curves=0: set max_curves to a whole number"):
        CompareSpec(max_curves=0)
    with pytest.raises(ValueError, match="mode='best': set mode to max or min"):
        CompareSpec(mode="best")


def test_a_long_sweep_name_is_wrapped_to_the_plot():
    name = "2026-12-01 13:52 " + " ".join(f"optim.param{i}=0.1,0.01,0.001" for i in range(6))
    fig = bars_figure(run_data(2), run_labels(run_data(2)), "test/acc", "max", f"test/acc — {name}")
    title = fig.axes[0].get_title()
    assert title.replace("\n", " ") == f"test/acc — {name}" and title.count("\n") >= 2
    fig.canvas.draw()
    box = fig.axes[0].title.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
