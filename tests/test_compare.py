"""scripts/compare.py: the table and plots of a sweep match what MLflow holds."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mgelab.report.compare import CompareSpec, RunData, gather, output_name, table_rows, to_markdown, write_csv
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.tracking.records import RunRecord
from mgelab.tracking.store import TrackingStore
from test_train_script import ROOT, run_script

TINY = ["data=synthetic", "epochs=2", "trainer.progress_bar=false", "trainer.log_every_n_steps=2"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_compare(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, str(ROOT / "scripts" / "compare.py"), *args, f"paths.output_dir={out}"]
    proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def record(name: str, status: str = "FINISHED", **metrics: float) -> RunRecord:
    return RunRecord(run_id=f"id_{name}", name=name, experiment_id="1", status=status, start_time=0,
                     end_time=0, params={"model_info.num_parameters": "10"}, metrics=dict(metrics),
                     tags={"data": "d", "model": name})


def test_rows_take_best_by_mode_and_leave_missing_values_empty():
    spec = CompareSpec(metric="val/loss", mode="min", test_metric="test/loss")
    data = [
        RunData(record("a", epoch=2.0, **{"test/loss": 0.3}), [(1, 0.9), (2, 0.4)], [], "lr=0.1"),
        RunData(record("b", status="FAILED"), [], [], "lr=-1"),
    ]
    rows = table_rows(data, spec)
    assert rows[0]["best val/loss"] == 0.4 and rows[0]["test/loss"] == 0.3 and rows[0]["epochs"] == 2
    assert rows[1]["best val/loss"] is None and rows[1]["status"] == "FAILED"
    table = to_markdown(rows, spec).splitlines()
    assert table[0].startswith("| run | status |") and "| b | FAILED |" in table[3]
    assert "| 0.4000 |" in table[2] and table[3].count("–") >= 5
    assert output_name(None, "sweep 2026-01-01_10-00-00") == "sweep_2026-01-01_10-00-00"


def test_time_to_accuracy_is_the_training_time_of_the_first_epoch_that_reached_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # val/acc reaches 0.5 at epoch 2 (20 s), 0.6 at epoch 3 (35 s), dips after it, never reaches 0.7.
    epochs = [(1, 0.42, 10.0), (2, 0.55, 20.0), (3, 0.64, 35.0), (4, 0.61, 50.0)]
    with MLflowLogger(uri, "exp", run_name="mlp", system_metrics=False) as logger:
        for epoch, acc, seconds in epochs:
            logger.log_metrics({"val/acc": acc, "train/elapsed_seconds": seconds}, step=epoch)
    store = TrackingStore(uri)
    spec = CompareSpec(time_to=[0.5, 0.6, 0.7])
    rows = table_rows(gather(store, [store.get_run(logger.run_id)], spec), spec)
    assert [rows[0][c] for c in ("t@0.5", "t@0.6", "t@0.7")] == [20.0, 35.0, None]
    assert rows[0]["overrides"] == "(none)"  # not the run's name: nothing was overridden

    header, _, line = to_markdown(rows, spec).splitlines()
    assert "| wall time s | t@0.5 | t@0.6 | t@0.7 | samples/s |" in header
    assert "| 20 | 35 | – |" in line
    written = list(csv.DictReader(write_csv(rows, spec, tmp_path / "runs.csv").open()))
    assert [written[0][c] for c in ("t@0.5", "t@0.6", "t@0.7")] == ["20.0", "35.0", ""]

    off = CompareSpec(time_to=[])
    assert not any(c.startswith("t@") for c in to_markdown(table_rows(gather(store, [], off), off), off).split("|"))


def test_time_to_a_min_mode_metric_is_when_it_first_falls_to_the_threshold():
    spec = CompareSpec(metric="val/loss", mode="min", time_to=[1.0, 0.5, 0.1])
    losses, elapsed = [(1, 1.4), (2, 1.0), (3, 0.7), (4, 0.45)], [(1, 12.5), (2, 24.9), (3, 37.0), (4, 49.6)]
    row = table_rows([RunData(record("a"), losses, [], "", elapsed)], spec)[0]
    assert (row["t@1.0"], row["t@0.5"], row["t@0.1"]) == (24.9, 49.6, None)
    assert "| 25 | 50 | – |" in to_markdown([row], spec)
    # An older run without train/elapsed_seconds: the threshold was reached, but when is unknown.
    assert table_rows([RunData(record("b"), losses, [], "")], spec)[0]["t@1.0"] is None


@pytest.mark.parametrize("bad", [0.7, ["a"], [0.5, None], [True], [0.5, 0.5], [float("inf")]])
def test_a_bad_time_to_is_named(bad):
    with pytest.raises(ValueError, match=r"^time_to=.*: set time_to to a list of val/acc values"):
        CompareSpec(time_to=bad)


def test_compare_a_sweep_matches_mlflow(tmp_path):
    run_script(tmp_path, "-m", *TINY, "model=linear,mlp")
    proc = run_compare(tmp_path, "sweep=latest", "name=two_models")
    out = tmp_path / "compare" / "two_models"
    names = {"runs.md", "runs.csv", "val_acc_by_epoch.png", "step_train_loss_by_step.png", "test_acc.png"}
    assert names <= {p.name for p in out.iterdir()}
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000, png
    assert "| linear | FINISHED | synthetic | linear | model=linear |" in proc.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert [r["model"] for r in rows] == ["linear", "mlp"], "jobs in job order"
    for row in rows:
        run = client.get_run(row["run id"])
        history = client.get_metric_history(run.info.run_id, "val/acc")
        assert float(row["best val/acc"]) == pytest.approx(max(m.value for m in history))
        assert float(row["test/acc"]) == pytest.approx(run.data.metrics["test/acc"])
        assert int(row["params"]) == int(run.data.params["model_info.num_parameters"])
        assert float(row["wall time s"]) == pytest.approx(run.data.metrics["wall_time_s"])
        assert float(row["samples/s"]) == pytest.approx(run.data.metrics["train_samples_per_s"])
        assert int(row["epochs"]) == 2 and row["overrides"] == f"model={row['model']}"
        elapsed = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/elapsed_seconds")}
        for threshold in (0.5, 0.6, 0.7, 0.8):  # conf/compare.yaml's time_to
            first = min((m.step for m in history if m.value >= threshold), default=None)
            assert row[f"t@{threshold}"] == ("" if first is None else str(elapsed[first]))

    parent_id = client.get_run(rows[0]["run id"]).data.tags["mlflow.parentRunId"]
    logged = {a.path for a in client.list_artifacts(parent_id, "compare")}
    assert {f"compare/{n}" for n in names} == logged

    # The same store, selected by experiment and tag filter instead.
    run_compare(tmp_path, "experiment_name=synthetic", "filter=\"tags.model = 'mlp'\"", "name=only_mlp")
    only = list(csv.DictReader((tmp_path / "compare" / "only_mlp" / "runs.csv").open()))
    assert [r["model"] for r in only] == ["mlp"]


@pytest.mark.parametrize("override, message", [("max_curves=0", "max_curves=0: set max_curves"),
                                                ("mode=highest", "mode='highest': set mode to max or min"),
                                                ("time_to=[0.5,high]", "time_to=[0.5, 'high']: set time_to")])
def test_a_bad_setting_is_named_before_any_store_is_read(tmp_path, override, message):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, str(ROOT / "scripts" / "compare.py"), override, f"paths.output_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and f"conf/compare.yaml: {message}" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "mlflow.db").exists()
