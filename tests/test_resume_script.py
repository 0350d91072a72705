"""A real training subprocess killed with SIGKILL mid-epoch, resumed with trainer.resume=auto, ends
exactly where the same-seed uninterrupted run ends: same test metrics, same weights, one MLflow run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from mgelab.checkpoint import load_checkpoint
from test_train_script import ROOT, run_script

RUN = [
    "data=synthetic", "data.train_size=2000", "data.image_shape=[1,28,28]", "data.batch_size=32",
    "model=mlp", "model.hidden_sizes=[512]", "model.dropout=0.3", "epochs=3",
    "trainer.checkpoint_every_n_steps=1", "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
]


def start(out: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MEGENGINE_LOGGING_LEVEL"] = "ERROR"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *RUN, *extra,
           f"paths.output_dir={out}", f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_mid_epoch(proc: subprocess.Popen, checkpoints: Path, steps_per_epoch: int) -> int:
    """SIGKILL once a checkpoint inside epoch 2 exists; return its step."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        pointer = checkpoints / "last.json"
        if pointer.is_file():
            step = int(json.loads(pointer.read_text())[0].split("-")[1])
            if step > steps_per_epoch + 3:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return step
        time.sleep(0.01)
    raise AssertionError(f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}")


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    reference_out, killed_out = tmp_path / "reference", tmp_path / "killed"
    reference_out.mkdir()
    killed_out.mkdir()
    run_script(reference_out, *RUN, f"hydra.run.dir={reference_out / 'runs' / 'ref_mlp'}")

    proc = start(killed_out, killed_out / "runs" / "first_mlp")
    steps_per_epoch = -(-(2000 - 64) // 32)
    killed_at = kill_mid_epoch(proc, killed_out / "runs" / "first_mlp" / "checkpoints", steps_per_epoch)
    assert proc.returncode == -signal.SIGKILL and killed_at < 3 * steps_per_epoch
    run_script(killed_out, *RUN, "trainer.resume=auto", f"hydra.run.dir={killed_out / 'runs' / 'second_mlp'}")

    def final(out: Path, run: str):
        client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
        assert len(runs) == 1, "a resumed run continues its MLflow run"
        weights = load_checkpoint(out / "runs" / run / "checkpoints").arrays
        return client, runs[0], weights

    _, reference, reference_weights = final(reference_out, "ref_mlp")
    client, resumed, resumed_weights = final(killed_out, "second_mlp")
    assert resumed.info.status == "FINISHED"
    for key in ("test/acc", "test/loss", "best_val/acc"):
        assert resumed.data.metrics[key] == reference.data.metrics[key], key
    assert resumed_weights.keys() == reference_weights.keys()
    for name, value in reference_weights.items():
        np.testing.assert_array_equal(resumed_weights[name], value, err_msg=name)
    for key in ("step/train_loss", "val/acc"):
        steps = [m.step for m in client.get_metric_history(resumed.info.run_id, key)]
        assert len(steps) == len(set(steps)), f"{key} has repeated steps"


def test_sigterm_saves_marks_killed_and_says_how_to_resume(tmp_path):
    proc = start(tmp_path, tmp_path / "runs" / "first_mlp")
    checkpoints = tmp_path / "runs" / "first_mlp" / "checkpoints"
    deadline = time.time() + 300
    while not (checkpoints / "last.json").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130  # after the checkpoint, as an interrupted command ends
    assert "SIGTERM received" in stderr and "trainer.resume=auto" in stderr and "Traceback" not in stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert [r.info.status for r in runs] == ["KILLED"]
    saved = load_checkpoint(checkpoints)
    assert saved.meta["tracking_run_id"] == runs[0].info.run_id
