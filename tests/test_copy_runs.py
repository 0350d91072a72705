"""Runs moved between tracking stores (``mgelab.tracking.copy_runs``): SQLite to SQLite, and onto a real
``mlflow server`` over HTTP with its served artifact store; re-runs copy only what is new."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

import mgelab.tracking.copy_runs as copy_runs_module
from mgelab.tracking.copy_runs import CopyInputError, copy_runs, main, normalized_uri
from mgelab.tracking.reachability import TrackingUnavailable, check_tracking_uri
from mgelab.tracking.run_copy import COPIED_FROM_TAG, COPIED_STATE_TAG
from mgelab.tracking.store import prepare_store

PARENT = "mlflow.parentRunId"
START_MS = 1_700_000_000_000  # an old start time, so a copy that took "now" instead would show
STEPS = 6
SERVER_START_S = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def add_child(client: MlflowClient, experiment_id: str, parent_id: str, name: str, lr: float, workdir: Path,
              status: str = "FINISHED") -> str:
    """A sweep child: a metric history of several steps (a NaN among them), params, tags, a dataset
    input, an artifact file in a subdirectory."""
    run_id = client.create_run(experiment_id, start_time=START_MS + 1000, run_name=name,
                               tags={PARENT: parent_id, "mlflow.user": "alice", "model": "mlp"}).info.run_id
    metrics = [Metric("val/acc", 0.1 * step + lr, START_MS + 2000 + step, step) for step in range(STEPS)]
    metrics += [Metric("step/train_loss", 1.0 / (step + 1), START_MS + 2000 + step, step) for step in range(STEPS)]
    metrics.append(Metric("step/train_loss", math.nan, START_MS + 9000, STEPS))
    client.log_batch(run_id, metrics=metrics, params=[Param("optim.lr", str(lr)), Param("optim.name", "sgd")],
                     tags=[RunTag("sweep/job_key", f"key-{lr}")])
    dataset = Dataset("train", f"digest{lr}", "local", '{"uri": "/data"}', '{"shape": [4]}', '{"rows": 4}')
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, "train")])])
    weights = workdir / f"weights-{lr}.txt"
    weights.write_text(f"weights of {name}")
    client.log_artifact(run_id, str(weights), "checkpoints/best")
    if status != "RUNNING":
        client.set_terminated(run_id, status, START_MS + 60_000)
    return run_id


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made and no runs: creating one costs seconds (schema
    migrations), copying the file does not."""
    path = tmp_path_factory.mktemp("empty") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def new_store(empty_db: Path, folder: Path) -> str:
    """The URI of a fresh, empty SQLite store in ``folder``."""
    folder.mkdir(parents=True)
    shutil.copyfile(empty_db, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture
def dst_uri(empty_db, tmp_path) -> str:
    return new_store(empty_db, tmp_path / "dst")


@pytest.fixture
def source(empty_db, tmp_path) -> Dict[str, str]:
    """An SQLite store holding a sweep: a parent and two children (one FAILED), ids by role."""
    uri = new_store(empty_db, tmp_path / "src")
    experiment_id = prepare_store(uri, "fashion_mnist", artifact_location=str(tmp_path / "src" / "mlartifacts"))
    client = MlflowClient(uri)
    parent = client.create_run(experiment_id, start_time=START_MS, run_name="sweep 1",
                               tags={"sweep/role": "parent"}).info.run_id
    first = add_child(client, experiment_id, parent, "mlp lr=0.1", 0.1, tmp_path)
    second = add_child(client, experiment_id, parent, "mlp lr=0.2", 0.2, tmp_path, status="FAILED")
    client.set_tag(parent, "sweep/best_run_id", first)
    client.set_terminated(parent, "FINISHED", START_MS + 70_000)
    return {"uri": uri, "experiment_id": experiment_id, "parent": parent, "first": first, "second": second}


def all_runs(uri: str, filter_string: str = "") -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()], filter_string)


def copies_by_source(uri: str) -> Dict[str, object]:
    copies = all_runs(uri, f"tags.`{COPIED_FROM_TAG}` LIKE '%'")
    return {run.data.tags[COPIED_FROM_TAG].rsplit("#", 1)[1]: run for run in copies}


def history(client: MlflowClient, run_id: str, key: str) -> List[tuple]:
    return sorted((m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value)
                  for m in client.get_metric_history(run_id, key))


def inputs_of(run) -> List[tuple]:
    return sorted((i.dataset.name, i.dataset.digest, i.dataset.source, i.dataset.profile,
                   tuple((t.key, t.value) for t in i.tags)) for i in run.inputs.dataset_inputs)


def artifact_texts(client: MlflowClient, run_id: str, workdir: Path) -> Dict[str, str]:
    """Every artifact file of a run (subfolders walked) with its text."""
    local = Path(client.download_artifacts(run_id, "", str(workdir)))
    return {str(f.relative_to(local)): f.read_text() for f in local.rglob("*") if f.is_file()}


def assert_copied(src_uri: str, dst_uri: str, ids: Dict[str, str], workdir: Path) -> Dict[str, object]:
    """Every run of ``ids`` arrived whole in ``dst_uri``, its links pointing to the copies; the copies."""
    src, dst = MlflowClient(src_uri), MlflowClient(dst_uri)
    copies = copies_by_source(dst_uri)
    new_id = {run_id: copies[run_id].info.run_id for run_id in ids.values()}
    for role, run_id in ids.items():
        original, copy = src.get_run(run_id), dst.get_run(new_id[run_id])
        assert dst.get_experiment(copy.info.experiment_id).name == "fashion_mnist"
        assert copy.data.tags[COPIED_FROM_TAG] == f"{normalized_uri(src_uri)}#{run_id}"
        for field in ("run_name", "status", "start_time", "end_time", "user_id"):
            assert getattr(copy.info, field) == getattr(original.info, field), (role, field)
        assert copy.data.params == original.data.params
        expected_tags = {k: new_id.get(v, v) for k, v in original.data.tags.items()}  # run ids: their copies'
        own = (COPIED_FROM_TAG, COPIED_STATE_TAG)
        assert {k: v for k, v in copy.data.tags.items() if k not in own} == expected_tags, role
        assert set(copy.data.metrics) == set(original.data.metrics)
        for key in original.data.metrics:
            assert history(dst, copy.info.run_id, key) == history(src, run_id, key), (role, key)
        assert inputs_of(copy) == inputs_of(original)
        files = artifact_texts(dst, copy.info.run_id, workdir / role / "copy")
        assert files == artifact_texts(src, run_id, workdir / role / "source")
        assert role == "parent" or files[f"checkpoints/best/weights-{original.data.params['optim.lr']}.txt"]
    assert dst.get_run(new_id[ids["first"]]).data.tags[PARENT] == new_id[ids["parent"]]
    assert dst.get_run(new_id[ids["parent"]]).data.tags["sweep/best_run_id"] == new_id[ids["first"]]
    return copies


def roles(source: Dict[str, str]) -> Dict[str, str]:
    return {k: source[k] for k in ("parent", "first", "second")}


def test_a_copy_brings_history_params_tags_inputs_artifacts_and_links(source, dst_uri, tmp_path):
    assert sorted(o.action for o in copy_runs(source["uri"], dst_uri)) == ["copied"] * 3
    assert_copied(source["uri"], dst_uri, roles(source), tmp_path / "downloads")
    # The copies' files sit beside the destination's database, as a training run's do.
    assert list((tmp_path / "dst" / "mlartifacts" / "fashion_mnist").rglob("weights-0.1.txt"))


def test_copying_again_adds_nothing_and_a_later_run_is_copied_by_a_third_call(source, dst_uri, tmp_path):
    list(copy_runs(source["uri"], dst_uri))
    first_copies = {k: v.info.run_id for k, v in copies_by_source(dst_uri).items()}
    again = list(copy_runs(source["uri"], dst_uri))
    assert [o.action for o in again] == ["skipped"] * 3
    assert {k: v.info.run_id for k, v in copies_by_source(dst_uri).items()} == first_copies
    assert len(all_runs(dst_uri)) == 3

    later = add_child(MlflowClient(source["uri"]), source["experiment_id"], source["parent"], "mlp lr=0.3", 0.3,
                      tmp_path)
    third = {o.source_id: o.action for o in copy_runs(source["uri"], dst_uri)}
    assert third == {source["parent"]: "skipped", source["first"]: "skipped", source["second"]: "skipped",
                     later: "copied"}
    assert_copied(source["uri"], dst_uri, {**roles(source), "later": later}, tmp_path / "downloads")


def test_a_run_that_logged_more_after_its_copy_is_topped_up_with_only_the_new_values(source, dst_uri, tmp_path):
    src = MlflowClient(source["uri"])
    running = add_child(src, source["experiment_id"], source["parent"], "mlp lr=0.4", 0.4, tmp_path, "RUNNING")
    list(copy_runs(source["uri"], dst_uri))
    src.log_batch(running, metrics=[Metric("val/acc", 0.9, START_MS + 50_000, STEPS)], params=[Param("late", "1")])
    extra = tmp_path / "late.txt"
    extra.write_text("late file")
    src.log_artifact(running, str(extra), "plots")
    src.set_terminated(running, "FINISHED", START_MS + 80_000)
    outcome = {o.source_id: o for o in copy_runs(source["uri"], dst_uri)}[running]
    assert outcome.action == "topped up"
    assert outcome.detail == "1 metric values, 1 params, 1 artifact files"
    copies = assert_copied(source["uri"], dst_uri, {**roles(source), "running": running}, tmp_path / "downloads")
    assert copies[running].info.status == "FINISHED"
    assert [o.action for o in copy_runs(source["uri"], dst_uri) if o.source_id == running] == ["skipped"]


def test_a_copy_keeps_the_name_unless_another_run_of_the_destination_has_it(source, dst_uri, tmp_path):
    dst = MlflowClient(dst_uri)
    experiment_id = prepare_store(dst_uri, "fashion_mnist", artifact_location=str(tmp_path / "dst" / "mlartifacts"))
    dst.create_run(experiment_id, run_name="mlp lr=0.1")  # a colleague's run, there before the copy
    names = {o.source_id: o.name for o in copy_runs(source["uri"], dst_uri)}
    assert names == {source["parent"]: "sweep 1", source["first"]: "mlp lr=0.1 (2)", source["second"]: "mlp lr=0.2"}
    assert dst.get_run(copies_by_source(dst_uri)[source["first"]].info.run_id).info.run_name == "mlp lr=0.1 (2)"


def test_a_copy_cut_short_says_so_and_the_next_call_finishes_it(source, dst_uri, tmp_path, monkeypatch, capsys):
    real_sync, synced = copy_runs_module.sync_run, []

    def server_gone_at_the_second_run(*args, **kwargs):
        synced.append(args[2].run_id)
        if len(synced) == 2:
            raise ConnectionError("server gone")
        return real_sync(*args, **kwargs)

    monkeypatch.setattr(copy_runs_module, "sync_run", server_gone_at_the_second_run)
    assert main(["--from", source["uri"], "--to", dst_uri]) == 1
    assert "stopped answering mid-copy (ConnectionError: server gone)" in capsys.readouterr().err
    monkeypatch.undo()
    actions = {o.source_id: o.action for o in copy_runs(source["uri"], dst_uri)}
    assert actions == {synced[0]: "skipped", **{i: "topped up" for i in roles(source).values() if i != synced[0]}}
    assert_copied(source["uri"], dst_uri, roles(source), tmp_path / "downloads")


def test_a_dry_run_says_what_it_would_copy_and_writes_nothing(source, tmp_path, capsys):
    dst_file = tmp_path / "dst" / "mlflow.db"
    assert main(["--from", source["uri"], "--to", f"sqlite:///{dst_file}", "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in printed[:3]] == [["would", "copy"]] * 3
    assert any("fashion_mnist/mlp lr=0.2" in line for line in printed)
    assert printed[-1].startswith("3 would copy")
    assert not dst_file.parent.exists()


def test_only_the_named_experiments_are_copied(source, dst_uri, tmp_path):
    other = prepare_store(source["uri"], "other", artifact_location=str(tmp_path / "src" / "mlartifacts"))
    lone = MlflowClient(source["uri"]).create_run(other, run_name="lone").info.run_id
    assert {o.source_id for o in copy_runs(source["uri"], dst_uri, ["other"])} == {lone}
    assert set(copies_by_source(dst_uri)) == {lone}


def test_bad_input_names_the_store_or_experiment_and_what_to_do(source, dst_uri, tmp_path, capsys):
    with pytest.raises(CopyInputError, match=r"--experiment 'nope': .* has no active experiment of that name; it has "
                                             r"Default, fashion_mnist \(leave --experiment out"):
        list(copy_runs(source["uri"], dst_uri, ["nope"]))
    missing = tmp_path / "absent.db"
    with pytest.raises(CopyInputError, match=f"--from sqlite:///{missing}: there is no database file"):
        list(copy_runs(f"sqlite:///{missing}", dst_uri))
    with pytest.raises(CopyInputError, match="--from and --to both name"):
        list(copy_runs(source["uri"], source["uri"]))
    deleted = prepare_store(dst_uri, "fashion_mnist", artifact_location=str(tmp_path / "dst" / "mlartifacts"))
    MlflowClient(dst_uri).delete_experiment(deleted)
    with pytest.raises(CopyInputError, match=f"'fashion_mnist' is deleted.*restore --experiment-id {deleted}"):
        list(copy_runs(source["uri"], dst_uri))
    port = free_port()
    started = time.monotonic()
    assert main(["--from", source["uri"], "--to", f"http://127.0.0.1:{port}"]) == 2
    assert time.monotonic() - started < 15.0
    error = capsys.readouterr().err
    assert f"--to http://127.0.0.1:{port}: the tracking server does not answer (" in error
    assert "Connection refused" in error and "`make server`" in error and "nothing was copied" in error


# ---- onto a real `mlflow server`, files uploaded through its artifact service --------------------


@pytest.fixture
def server(empty_db, tmp_path) -> Iterator[str]:
    """``mlflow server`` on loopback over SQLite, serving artifacts from a folder of its own; its URI."""
    workdir = tmp_path / "server"
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
           new_store(empty_db, workdir), "--serve-artifacts", "--artifacts-destination",
           str(workdir / "served"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with (workdir / "server.log").open("a") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not answers(uri):
            assert proc.poll() is None and time.monotonic() < deadline, (workdir / "server.log").read_text()[-3000:]
        yield uri
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def answers(uri: str) -> bool:
    try:
        check_tracking_uri(uri, timeout_s=2.0)
        return True
    except TrackingUnavailable:
        return False


def test_runs_copied_onto_a_tracking_server_over_http_with_their_files(source, server, tmp_path):
    assert sorted(o.action for o in copy_runs(source["uri"], server)) == ["copied"] * 3
    copies = assert_copied(source["uri"], server, roles(source), tmp_path / "downloads")
    # The files went up through the server into its artifact store, not onto a path of this client's.
    assert copies[source["first"]].info.artifact_uri.startswith("mlflow-artifacts:")
    assert list((tmp_path / "server" / "served").rglob("weights-0.1.txt"))
    assert [o.action for o in copy_runs(source["uri"], server)] == ["skipped"] * 3
