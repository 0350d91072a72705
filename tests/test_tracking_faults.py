"""A tracking server that is not there, or goes away during a run: the run fails fast with the ways
out, or trains on and loses no metric (sent when the server is back, or replayed from its file)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, List

import pytest
from mlflow.tracking import MlflowClient

from mgelab.tracking.client import BOUNDED_HTTP_SETTINGS, bounded_http
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.tracking.reachability import NOT_MLFLOW, TrackingUnavailable, check_tracking_uri
from mgelab.tracking.records import is_unreachable
from mgelab.tracking.spool import FILE_NAME

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# What the issue asks of a tracking URI nothing answers at.
FAIL_FAST_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def timed_failure(call, *args) -> TrackingUnavailable:
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable) as raised:
        call(*args)
    elapsed = time.monotonic() - started
    print(f"{getattr(call, '__name__', call)}{args[:1]}: failed after {elapsed:.2f} s")
    assert elapsed < FAIL_FAST_S
    return raised.value


def test_a_tracking_uri_nothing_listens_at_fails_fast_naming_the_ways_out():
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    message = str(timed_failure(check_tracking_uri, uri))
    assert message.startswith(f"The MLflow tracking server at {uri} cannot be reached")
    assert "Connection refused" in message and f"mlflow server --host 127.0.0.1 --port {port}" in message
    for way_out in ("logger=none", "logger.tracking_uri", "MLFLOW_TRACKING_URI", *BOUNDED_HTTP_SETTINGS,
                    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        assert way_out in message, way_out


def test_the_unavailable_error_survives_pickling_as_a_failed_joblib_jobs_error_does():
    error = TrackingUnavailable("http://127.0.0.1:1", "Connection refused")
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.tracking_uri, again.reason) == (
        TrackingUnavailable, str(error), error.tracking_uri, error.reason)


def test_an_mlflow_logger_for_an_absent_server_fails_fast_before_any_run(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    failure = timed_failure(lambda: MLflowLogger(uri, "exp", spool_dir=str(tmp_path)))
    assert failure.tracking_uri == uri and list(tmp_path.iterdir()) == []


class Answers(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_answers_passes_and_one_that_is_no_mlflow_server_is_named(web_server, monkeypatch):
    uri = f"http://127.0.0.1:{web_server.server_address[1]}"
    check_tracking_uri(uri)  # /health answers 200
    monkeypatch.setattr(Answers, "status", 404)
    assert NOT_MLFLOW in str(timed_failure(check_tracking_uri, uri))
    monkeypatch.setattr(Answers, "status", 503)  # a proxy whose server is down
    assert "HTTP 503" in str(timed_failure(check_tracking_uri, uri))


def test_local_stores_need_no_check(tmp_path):
    check_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    check_tracking_uri(str(tmp_path / "mlruns"))
    assert list(tmp_path.iterdir()) == []


def test_unanswered_requests_are_told_from_refusals():
    refused = "API request to http://h:5000/api/2.0/mlflow/runs/log-batch failed with exception {}"
    assert is_unreachable(Exception(refused.format("Max retries exceeded (Connection refused)")))
    assert is_unreachable(Exception("API request to http://h/x failed with timeout exception Read timed out."))
    assert is_unreachable(Exception("API request to endpoint /x failed with error code 502 != 200. Body: ''"))
    assert is_unreachable(ConnectionResetError())
    assert not is_unreachable(Exception("INVALID_PARAMETER_VALUE: Changing param values is not allowed"))
    assert not is_unreachable(Exception("API request to endpoint /x failed with error code 400 != 200"))


def test_bounded_http_turns_mlflow_retries_down_inside_only_and_leaves_the_users_setting(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    with bounded_http():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"


# ---- a real `mlflow server`, killed during a training run and started again ----------------------

RUN = ["data=synthetic", "data.image_shape=[1,28,28]", "model=mlp", "epochs=3", "trainer.progress_bar=false",
       "trainer.log_every_n_steps=1", "trainer.checkpoint_every_n_steps=5"]
SERVER_START_S, RUN_S = 120.0, 300.0


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 over a SQLite file; killed (the whole process group) on stop."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        cmd = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{self.workdir}/server.db",
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        log = (self.workdir / "server.log").open("a")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=log, stderr=log, start_new_session=True)
        started = time.monotonic()
        while time.monotonic() - started < SERVER_START_S:
            try:
                check_tracking_uri(self.uri, timeout_s=2.0)
                print(f"mlflow server up after {time.monotonic() - started:.1f} s")
                return
            except TrackingUnavailable:
                assert self.proc.poll() is None, (self.workdir / "server.log").read_text()[-3000:]
        raise AssertionError(f"mlflow server not up within {SERVER_START_S} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def server(tmp_path) -> Iterator[MlflowServer]:
    running = MlflowServer(tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def start_training(tmp_path: Path, uri: str, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MEGENGINE_LOGGING_LEVEL"] = "ERROR"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *RUN, *extra, f"logger.tracking_uri={uri}",
           f"paths.output_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'run'}"]
    out = (tmp_path / "train.out").open("w")
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def last_step(run_dir: Path) -> int:
    pointer = run_dir / "checkpoints" / "last.json"
    return int(json.loads(pointer.read_text())[0].split("-")[1]) if pointer.is_file() else 0


def kill_server_after_step(server: MlflowServer, proc: subprocess.Popen, run_dir: Path, step: int) -> None:
    """SIGKILL the server once a checkpoint past ``step`` exists (what it covers was sent)."""
    deadline = time.monotonic() + RUN_S
    while time.monotonic() < deadline and proc.poll() is None:
        if last_step(run_dir) > step:
            server.stop()
            print(f"mlflow server killed at step {last_step(run_dir)}")
            return
        time.sleep(0.01)
    raise AssertionError(f"training ended before step {step}: {(run_dir.parent / 'train.out').read_text()[-3000:]}")


def finish(proc: subprocess.Popen, tmp_path: Path) -> str:
    try:
        proc.wait(timeout=RUN_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = (tmp_path / "train.out").read_text()
    assert proc.returncode == 0, output[-3000:]
    return output


def assert_every_step_logged(uri: str, run_dir: Path, epochs: int = 3) -> None:
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert run.info.status == "FINISHED"
    steps: List[int] = sorted(m.step for m in client.get_metric_history(run.info.run_id, "step/train_loss"))
    assert steps == list(range(1, last_step(run_dir) + 1))  # each step once
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/acc")) == list(range(1, epochs + 1))
    assert "test/acc" in run.data.metrics


@pytest.mark.slow
def test_a_server_killed_mid_run_and_restarted_loses_no_metric(tmp_path, server):
    # Long enough (12000 samples x 3 epochs) for the server to be back, most times, before the run ends.
    proc = start_training(tmp_path, server.uri, "data.train_size=12000")
    try:
        kill_server_after_step(server, proc, tmp_path / "run", step=20)
        server.start()
    finally:
        output = finish(proc, tmp_path)
    print(output[-600:])
    spools = list((tmp_path / "run").glob("unsent_tracking*.jsonl"))
    if spools:  # the run ended before the server was back: the replay sends the rest
        print(f"replaying {spools[0]}")
        subprocess.run([sys.executable, str(ROOT / "scripts" / "replay_tracking.py"), str(spools[0])],
                       check=True, timeout=120)
    else:
        print("everything was sent live once the server was back")
    assert_every_step_logged(server.uri, tmp_path / "run")


@pytest.mark.slow
def test_a_server_away_until_the_run_ends_gets_everything_from_the_replay_command(tmp_path, server):
    proc = start_training(tmp_path, server.uri, "data.train_size=2000")
    try:
        kill_server_after_step(server, proc, tmp_path / "run", step=10)
    finally:
        output = finish(proc, tmp_path)
    spool = tmp_path / "run" / FILE_NAME
    command = f"python -m mgelab.tracking.replay {spool}"
    assert spool.is_file() and command in output, output[-3000:]
    server.start()
    replayed = subprocess.run([sys.executable, "-m", "mgelab.tracking.replay", str(spool)],
                              capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 0, replayed.stderr
    print(replayed.stdout)
    assert_every_step_logged(server.uri, tmp_path / "run")
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "replay_tracking.py"), f"{spool}.replayed"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and " 0 metric values sent" in again.stdout, again.stdout + again.stderr
    assert_every_step_logged(server.uri, tmp_path / "run")
