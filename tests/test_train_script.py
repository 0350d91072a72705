"""scripts/train.py end to end, as a user runs it: a subprocess writing a real SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data=synthetic", "trainer.max_epochs=2", "trainer.progress_bar=false", "trainer.log_every_n_steps=2"]


def run_script(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MEGENGINE_LOGGING_LEVEL"] = "ERROR"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *args, f"paths.output_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def runs_of(tmp_path: Path, experiment: str = "synthetic"):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in the store"
    return client, client.search_runs([exp.experiment_id])


def test_single_run_is_fully_tracked(tmp_path):
    run_dir = tmp_path / "my_run"
    proc = run_script(tmp_path, *TINY, f"hydra.run.dir={run_dir}")
    client, runs = runs_of(tmp_path)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    params, tags = run.data.params, run.data.tags
    assert params["optim.lr"] == "0.05" and params["model.name"] == "mlp" and params["seed"] == "42"
    assert int(params["model_info.num_parameters"]) > 0
    for key in ("data", "model", "optim", "experiment", "mlflow.source.git.commit", "megengine_version"):
        assert key in tags, key
    history = client.get_metric_history(run.info.run_id, "val/acc")
    assert [m.step for m in history] == [1, 2]
    assert {"test/acc", "test/loss", "step/train_loss", "train/loss", "best_val/acc"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "plots", "checkpoints"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/learning_curves.png", "plots/confusion_matrix.png"}
    # hydra.run.dir holds every output of the run.
    for name in ("checkpoints/best.json", "checkpoints/last.json", "config.yaml", "plots/learning_curves.png"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "checkpoints").glob("step-*/arrays.npz"))
    best = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints/best")}
    assert best == {"checkpoints/best/arrays.npz", "checkpoints/best/manifest.json"}
    # One line per epoch, on the console and in train.log; a single run's lines name no job.
    log = (run_dir / "train.log").read_text()
    assert [line.split("| train")[0].split(" - ")[-1].strip() for line in log.splitlines()
            if "| train loss" in line] == ["epoch 1/2", "epoch 2/2"]
    assert "[job" not in log and "[job" not in proc.stdout
    assert "epoch 2/2 | train loss" in proc.stdout


def test_parallel_sweep_lines_say_their_job(tmp_path):
    proc = run_script(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "data=synthetic",
                      "model=linear,mlp", "trainer=smoke")
    logs = {p.parent.name: p.read_text() for p in tmp_path.glob("multiruns/*/*/train.log")}
    assert sorted(logs) == ["0_linear", "1_mlp"]
    for folder, label in (("0_linear", "[job 0 model=linear]"), ("1_mlp", "[job 1 model=mlp]")):
        lines = logs[folder].splitlines()
        assert any("epoch 1/1 | train loss" in line for line in lines), logs[folder]
        assert all(label in line for line in lines), (label, logs[folder])
    console = [line for line in proc.stdout.splitlines() if "epoch 1/1 | train loss" in line]
    assert sorted(line.split("] ")[0].split(" ", 1)[1] + "]" for line in console) == \
        ["[job 0 model=linear]", "[job 1 model=mlp]"]


def test_multirun_three_models_one_experiment(tmp_path):
    run_script(tmp_path, "-m", *TINY, "model=linear,mlp,cnn")
    _, all_runs = runs_of(tmp_path)
    runs = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    assert len(all_runs) == 4  # the sweep's parent run and its three jobs
    assert sorted(r.info.run_name for r in runs) == ["cnn", "linear", "mlp"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.tags["hydra/job_num"] for r in runs) == ["0", "1", "2"]
    assert len({r.data.tags["hydra/sweep_id"] for r in runs}) == 1
    assert all("test/acc" in r.data.metrics for r in runs)


def test_failing_run_is_marked_failed_with_its_config(tmp_path):
    # A valid config whose loss overflows at once (lr 1e30): it fails while training, tracked as FAILED.
    proc = run_script(tmp_path, *TINY, "optim.lr=1e30", check=False)
    assert proc.returncode == 1
    assert "loss became" in proc.stderr + proc.stdout
    _, runs = runs_of(tmp_path)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "loss became" in runs[0].data.tags["error"]
    assert float(runs[0].data.params["optim.lr"]) == 1e30 and runs[0].data.tags["model"] == "mlp"


def test_logger_none_tracks_nothing(tmp_path):
    run_script(tmp_path, *TINY, "logger=none", f"hydra.run.dir={tmp_path / 'r'}")
    assert not (tmp_path / "mlflow.db").exists()
    assert (tmp_path / "r" / "checkpoints" / "best.json").is_file()
