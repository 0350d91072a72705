"""Run records stay true, as a user meets them through scripts/train.py: a finished run is never
reopened by a resume, a damaged checkpoint leaves its run as it was, a config that cannot run
records nothing, and every ending has one message and its exit status."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mgelab.checkpoint import CheckpointStore
from test_train_script import TINY, run_script

MLP = [*TINY, "model=mlp", "model.hidden_sizes=[16]"]


def store_of(out: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{out / 'mlflow.db'}")


def snapshot(client: MlflowClient, run_id: str) -> dict:
    """What must not change: status, end time, every metric's whole history, params."""
    run = client.get_run(run_id)
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in run.data.metrics}
    return {"status": run.info.status, "end": run.info.end_time, "metrics": history, "params": run.data.params}


def only_run(out: Path):
    client = store_of(out)
    runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return client, runs[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished two-epoch run, in its own output folder."""
    out = tmp_path_factory.mktemp("finished")
    run_script(out, *MLP, f"hydra.run.dir={out / 'runs' / 'first'}")
    client, run = only_run(out)
    return out, run.info.run_id, snapshot(client, run.info.run_id)


def copy_of(finished, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(finished[0], out)
    return out


def test_resume_auto_of_a_finished_run_says_it_is_complete_and_changes_nothing(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    proc = run_script(out, *MLP, "trainer.resume=auto")
    assert f"run {finished[1]}" in proc.stdout and "is complete" in proc.stdout and "test/acc" in proc.stdout
    client, run = only_run(out)
    assert snapshot(client, run.info.run_id) == finished[2]


def test_an_explicit_resume_of_a_finished_run_is_complete_too(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    proc = run_script(out, *MLP, f"trainer.resume={out / 'runs' / 'first' / 'checkpoints'}")
    assert "is complete" in proc.stdout
    client, run = only_run(out)
    assert snapshot(client, run.info.run_id) == finished[2]


def test_resume_auto_with_another_config_starts_afresh_and_leaves_the_finished_run(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    run_script(out, *MLP, "optim.lr=0.2", "trainer.resume=auto")
    client = store_of(out)
    runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    assert snapshot(client, finished[1]) == finished[2]


def test_an_explicit_resume_with_another_config_names_the_keys(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    proc = run_script(out, *MLP, "optim.lr=0.2", f"trainer.resume={out / 'runs' / 'first' / 'checkpoints'}",
                      check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "optim.lr: 0.05 -> 0.2" in proc.stderr and "Traceback" not in proc.stderr
    client, run = only_run(out)
    assert snapshot(client, run.info.run_id) == finished[2]


def test_a_damaged_checkpoint_leaves_its_interrupted_run_as_it_was(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    client, run = only_run(out)
    client.set_terminated(run.info.run_id, "KILLED")  # as a Ctrl-C'd run ends
    before = snapshot(client, run.info.run_id)
    latest = CheckpointStore(out / "runs" / "first" / "checkpoints").latest()
    (latest / "arrays.npz").write_bytes(b"not the saved arrays")
    proc = run_script(out, *MLP, "trainer.resume=auto", check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "damaged" in proc.stderr and "Traceback" not in proc.stderr
    assert "trainer.resume=" in proc.stderr or "start it afresh" in proc.stderr  # what to do next
    assert snapshot(client, run.info.run_id) == before


def test_resume_auto_finds_the_checkpoints_of_its_own_run_directory(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    run_dir = tmp_path / "elsewhere"
    shutil.move(str(out / "runs" / "first"), run_dir)  # a run started with hydra.run.dir=<elsewhere>
    client, run = only_run(out)
    client.set_terminated(run.info.run_id, "KILLED")
    proc = run_script(out, *MLP, "trainer.resume=auto", f"hydra.run.dir={run_dir}")
    assert f"resumed from {run_dir / 'checkpoints'}/" in proc.stdout
    client, run = only_run(out)
    assert run.info.status == "FINISHED" and run.info.run_id == finished[1]


@pytest.mark.parametrize("override,named", [
    ("data.batch_size=0", "data.batch_size"),
    ("optim.lr=-1", "optim.lr"),
    ("trainer.limit_train_batches=abc", "trainer.limit_train_batches"),
    ("model.hidden_sizes=abc", "model.hidden_sizes"),
    ("trainer.max_epoch=3", "did you mean trainer.max_epochs"),
    ("model=mlpp", "did you mean mlp"),
])
def test_a_config_that_cannot_run_records_nothing(tmp_path, override, named):
    proc = run_script(tmp_path, *MLP, override, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert named.lower() in proc.stderr.lower() and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") < 6, proc.stderr  # one short message
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_missing_data_ends_with_its_message_and_status_1(tmp_path):
    offline = ["data=mnist", "data.base_url=http://127.0.0.1:9", "data.system_dirs=[]",
               f"paths.data_dir={tmp_path / 'data'}", "model=linear", "logger=none"]
    proc = run_script(tmp_path, *offline, "trainer.max_epochs=1", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "train-images-idx3-ubyte.gz" in proc.stderr  # the file, and what to do (mirror, copy)


def test_an_unreachable_tracking_server_ends_with_the_ways_out_and_creates_nothing(tmp_path):
    proc = run_script(tmp_path, *MLP, "logger.tracking_uri=http://127.0.0.1:9", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "http://127.0.0.1:9" in proc.stderr and "logger=none" in proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_sweep_with_a_job_that_cannot_run_starts_no_job(tmp_path):
    proc = run_script(tmp_path, "-m", *MLP, "optim.lr=0.1,-1", check=False)
    assert proc.returncode == 2 and "optim.lr=-1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "multiruns").exists() and not (tmp_path / "mlflow.db").exists()
