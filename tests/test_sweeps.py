"""Sweeps tracked in MLflow: one parent run per sweep, a child run per job, failures and their
reasons, skipping finished jobs on a re-run, the Optuna search, parallel jobs on one SQLite file.

The end-to-end tests run scripts/train.py as a user does (a subprocess writing a tmp store)."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
from mlflow.tracking import MlflowClient

from mgelab.tracking import retry
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.tracking.objective import MONITOR_MODE_TAG, MONITOR_TAG
from mgelab.tracking.retry import with_retries
from mgelab.tracking.store import TrackingStore, prepare_store
from mgelab.tracking.sweep import JobOutcome, SweepSummary, job_key, summarize, varying_overrides
from test_train_script import run_script

# 192 training samples in batches of 32: 6 steps per epoch; a loss point every 2 steps.
TINY = ["data=synthetic", "epochs=2", "trainer.progress_bar=false", "trainer.log_every_n_steps=2"]
STEPS = [2, 4, 6, 8, 10, 12]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def sweep_runs(tmp_path):
    """(client, parents, children) of the store under tmp_path."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    parents = [r for r in runs if r.data.tags.get("sweep/role") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def assert_complete_history(client, run, epochs=2, steps=STEPS):
    run_id = run.info.run_id
    assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == list(range(1, epochs + 1))
    assert [m.step for m in client.get_metric_history(run_id, "step/train_loss")] == steps
    assert {"test/acc", "best_val/acc", "wall_time_s"} <= set(run.data.metrics)


# --- pure pieces -----------------------------------------------------------------------------------
def test_job_key_ignores_order_and_overrides_that_do_not_change_training():
    a = job_key(["model=mlp", "optim.lr=0.1", "paths.output_dir=/x"], None)
    b = job_key(["optim.lr=0.1", "model=mlp", "sweep.skip_finished=true", "trainer.progress_bar=false"], None)
    assert a == b
    # A re-submitted sweep that resumes its jobs, or reads the data from a mirror, is the same sweep.
    assert a == job_key(["model=mlp", "optim.lr=0.1", "trainer.resume=auto", "data.mirror=/srv/m"], None)
    assert a != job_key(["model=mlp", "optim.lr=0.2"], None)
    assert a != job_key(["model=mlp", "optim.lr=0.1"], "my_sweep")


def test_varying_overrides_keep_what_tells_jobs_apart():
    jobs = [["data=synthetic", "model=mlp"], ["data=synthetic", "model=cnn"]]
    assert varying_overrides(jobs) == [["model=mlp"], ["model=cnn"]]
    assert varying_overrides([["data=synthetic"]]) == [["data=synthetic"]]


def test_summary_names_best_job_and_every_failure():
    outcomes = [
        JobOutcome(0, "COMPLETED", ["model=linear"], value=0.8),
        JobOutcome(1, "COMPLETED", ["model=mlp"], value=0.9),
        JobOutcome(2, "FAILED", ["model=cnn"], error="ValueError: boom"),
    ]
    summary = SweepSummary(outcomes, ("val/acc", "max"), best=outcomes[1], failures=[outcomes[2]])
    text = "\n".join(summary.lines())
    assert "3 jobs, 2 finished" in text and "1 failed" in text
    assert "best val/acc = 0.9000: job 1 (model=mlp)" in text
    assert "FAILED job 2 (model=cnn): ValueError: boom" in text
    assert summary.metrics()["sweep/best_value"] == 0.9 and summary.metrics()["sweep/failed"] == 1
    assert JobOutcome.from_tag(2, outcomes[2].to_tag()) == outcomes[2]


def test_retries_a_locked_database_then_gives_up_on_real_errors(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_FIRST_DELAY_S", 0.001)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise MlflowException("(sqlite3.OperationalError) database is locked", TEMPORARILY_UNAVAILABLE)
        return "ok"

    assert with_retries(flaky) == "ok" and len(calls) == 3
    with pytest.raises(ValueError):
        with_retries(lambda: calls.append(1) or (_ for _ in ()).throw(ValueError("bad")))
    assert len(calls) == 4, "a real error is not retried"


@pytest.mark.parametrize("mode,best", [("max", 1), ("min", 0)])
def test_summary_from_a_store_best_by_mode_and_failures(tmp_path, mode, best):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = TrackingStore(uri)
    experiment = prepare_store(uri, "exp")
    parent = store.create_run(experiment, "sweep", {"sweep/role": "parent"})
    for num, (status, value) in enumerate([("COMPLETED", 0.7), ("COMPLETED", 0.95), ("FAILED", None)]):
        child = store.create_run(experiment, f"job{num}", {"mlflow.parentRunId": parent, "hydra/job_num": num})
        if value is not None:  # what a finished run records (mgelab.run.experiment); a failed job has none
            store.set_tags(child, {MONITOR_TAG: "val/loss" if mode == "min" else "val/acc", MONITOR_MODE_TAG: mode})
        error = None if value else "ValueError: optim.lr=-1 must be > 0"
        outcome = JobOutcome(num, status, [f"optim.lr={num}"], value=value, error=error)
        store.set_tags(parent, {f"job/{num}": outcome.to_tag()})
    summary = summarize(store, parent)
    assert summary.objective == ("val/loss" if mode == "min" else "val/acc", mode)
    assert summary.best.num == best and summary.best.run_id is not None
    assert [f.num for f in summary.failures] == [2]


def test_jobs_creating_one_experiment_at_once_all_get_its_id(tmp_path):
    """Jobs of a sweep over experiment_name= create their experiment themselves, at the same time."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(uri, "first")  # the store itself is made once, before the jobs (the callback)
    start = threading.Barrier(4)

    def create(_):
        start.wait()
        return prepare_store(uri, "raced")

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(create, range(4)))
    assert len(set(ids)) == 1 and ids[0] == MlflowClient(uri).get_experiment_by_name("raced").experiment_id


@pytest.mark.slow
def test_a_store_locked_longer_than_mlflows_busy_timeout_is_waited_out(tmp_path):
    """MLflow waits 20 s for a locked SQLite file, then fails the call; the logger tries again."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = MLflowLogger(uri, "exp", run_name="r")
    # Another process's long write, as SQLite sees it (the timer thread ends it).
    blocker = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(23.0, lambda: blocker.execute("COMMIT"))
    release.start()
    started = time.time()
    try:
        with logger:
            logger.log_metrics({"val/acc": 0.5}, step=1)
        waited = time.time() - started
    finally:
        release.join()
        blocker.close()
    assert waited > 20, "the lock outlived MLflow's own busy timeout, so a retry was needed"
    history = MlflowClient(uri).get_metric_history(logger.run_id, "val/acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.5)]


# --- end to end -------------------------------------------------------------------------------------
def test_joblib_sweep_parent_children_failure_then_skip_finished(tmp_path):
    # lr 1e30 is a valid config whose loss overflows at once: the job fails while training.
    sweep = ["-m", *JOBLIB, *TINY, "model=mlp", "optim.lr=0.05,0.1,1e30"]
    proc = run_script(tmp_path, *sweep, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, "Hydra exits non-zero after a failed job"
    client, parents, children = sweep_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["hydra/sweep_id"] for c in children} == {parent.data.tags["hydra/sweep_id"]}
    by_lr = {float(c.data.params["optim.lr"]): c for c in children}
    assert sorted(c.data.tags["hydra/job_num"] for c in children) == ["0", "1", "2"]
    assert "optim.lr=0.1" in by_lr[0.1].data.tags["hydra/overrides"]
    assert by_lr[1e30].info.status == "FAILED"
    assert "loss became" in by_lr[1e30].data.tags["error"]
    for lr in (0.05, 0.1):
        assert by_lr[lr].info.status == "FINISHED"
        assert_complete_history(client, by_lr[lr])
    # The parent: the sweep's overrides, and its summary.
    assert parent.info.status == "FAILED" and parent.data.params["override.optim.lr"] == "0.05,0.1,1e30"
    # Named by what tells them apart: the jobs by the swept key, the parent by its start and the sweep.
    assert {c.info.run_name for c in children} == {"mlp lr=0.05", "mlp lr=0.1", "mlp lr=1e+30"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d optim\.lr=0\.05,0\.1,1e30", parent.info.run_name)
    assert not any("_target_" in k or k.startswith("override.paths.") for k in parent.data.params)
    assert parent.data.tags["sweep/launcher"] == "joblib"
    metrics = parent.data.metrics
    assert (metrics["sweep/jobs"], metrics["sweep/finished"], metrics["sweep/failed"]) == (3, 2, 1)
    best = max(by_lr[lr].data.metrics["best_val/acc"] for lr in (0.05, 0.1))
    assert metrics["sweep/best_value"] == pytest.approx(best)
    assert "FAILED job 2 (optim.lr=1e+30)" in out and "loss became" in out  # Hydra prints the float

    # The same sweep again, skipping what finished: only the failed job runs (and fails) again.
    proc = run_script(tmp_path, *sweep, "sweep.skip_finished=true", check=False)
    assert proc.returncode != 0
    client, parents, children = sweep_runs(tmp_path)
    assert len(parents) == 2 and len(children) == 4
    rerun = next(p for p in parents if p.info.run_id != parent.info.run_id)
    new = [c for c in children if c.data.tags["mlflow.parentRunId"] == rerun.info.run_id]
    assert [float(c.data.params["optim.lr"]) for c in new] == [1e30]
    assert rerun.data.metrics["sweep/skipped"] == 2 and rerun.data.metrics["sweep/failed"] == 1
    for num, lr in (("0", 0.05), ("1", 0.1)):
        assert rerun.data.tags[f"skipped/{num}"] == by_lr[lr].info.run_id
        outcome = json.loads(rerun.data.tags[f"job/{num}"])
        assert outcome["value"] == pytest.approx(by_lr[lr].data.metrics["best_val/acc"])
    assert (proc.stdout + proc.stderr).count("skipped: it finished as run") == 2


def test_optuna_search_maximises_the_returned_value(tmp_path):
    proc = run_script(tmp_path, "-m", "hparams_search=fashion_mnist_mlp", *TINY, "epochs=1",
                      "hydra.sweeper.n_trials=3")
    assert "Sweep summary: 3 jobs, 3 finished" in proc.stdout
    client, parents, children = sweep_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep/sweeper"] == "optuna"
    assert parent.data.params["hydra.sweeper.direction"] == "maximize"
    assert parent.data.params["hydra.sweeper.params.optim.lr"] == "tag(log, interval(0.005, 0.3))"
    assert parent.info.run_name == "fashion_mnist_mlp_search"  # sweep.name
    # Each trial by its drawn values (a float to 4 digits), not by what every trial shares (data, epochs).
    for child in children:
        name = child.info.run_name
        assert name.startswith("mlp lr=") and "hidden_sizes=" in name and "epochs" not in name, name
        lr = name.split(" lr=")[1].split()[0]
        assert float(lr) == pytest.approx(float(child.data.params["optim.lr"]), rel=1e-3) and len(lr) <= 8, name
    values = [c.data.metrics["best_val/acc"] for c in children]
    results = yaml.safe_load(next(tmp_path.glob("multiruns/*/optimization_results.yaml")).read_text())
    assert results["best_value"] == pytest.approx(max(values)) == pytest.approx(parent.data.metrics["sweep/best_value"])
    assert {c.data.params["trainer.monitor"] for c in children} == {"val/acc"}


@pytest.mark.slow
def test_eight_parallel_jobs_on_one_fresh_sqlite_store_lose_nothing(tmp_path):
    """Four workers on two cores, a metric write every step, and two experiments that four jobs
    each create at once (the sweep prepared only its own): the most contention a sweep makes here."""
    every_step = list(range(1, 13))
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", *TINY, "trainer.log_every_n_steps=1",
            "model=linear,mlp", "optim.lr=0.05,0.1", "experiment_name=race_a,race_b"]
    proc = run_script(tmp_path, *args)
    assert "8 jobs, 8 finished" in proc.stdout
    client, parents, children = sweep_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 8
    assert {c.info.status for c in children} == {"FINISHED"}
    keys = ("model.name", "optim.lr")
    assert len({(c.info.experiment_id, *(c.data.params[k] for k in keys)) for c in children}) == 8
    for name in ("race_a", "race_b"):
        experiment = client.get_experiment_by_name(name).experiment_id
        assert sum(c.info.experiment_id == experiment for c in children) == 4, name
    for model in ("linear", "mlp"):
        n_params = {len(c.data.params) for c in children if c.data.params["model.name"] == model}
        assert len(n_params) == 1, f"every {model} job logged the same params, got {n_params} of them"
    for child in children:
        assert_complete_history(client, child, steps=every_step)
    # Nothing was written twice either: one row per (run, metric, step).
    db = sqlite3.connect(tmp_path / "mlflow.db")
    rows = db.execute("select count(*) from metrics where key = 'step/train_loss'").fetchone()[0]
    assert rows == 8 * len(every_step)
