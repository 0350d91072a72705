"""The team server for real: PostgreSQL and `mlflow server` started through scripts/server.py (the
manager) in a state dir of this module, on free loopback ports; an 8-job joblib sweep tracked on it
with every metric step; the server killed mid-sweep and started again, after which every job is
accounted for (its run complete, after replaying what it kept, or its failure named with the
reason); basic auth. The sweep is in the default tier; the crash and auth tests, a few minutes
more, in the slow tier. The module's fixture stops everything it started, also when a test fails."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from mlflow.tracking import MlflowClient

from mgelab.tracking.server import records
from mgelab.tracking.server.auth import PASSWORD_ENV, USER_ENV
from mgelab.tracking.server.postgres import Cluster, find_bin_dir
from mgelab.tracking.server.processes import ServerError, free_port, kill_group
from mgelab.tracking.server.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[1]
# Bounds of everything here, so that a hung server or sweep fails the test instead of the CI run.
START_S, SWEEP_S, STEP_WAIT_S = 240, 900, 300
TINY = ["data=synthetic", "epochs=2", "trainer.progress_bar=false", "trainer.log_every_n_steps=1"]


@dataclass
class TeamServer:
    state_dir: Path
    port: int
    postgres_port: int

    @property
    def args(self) -> List[str]:
        return [f"state_dir={self.state_dir}", f"port={self.port}", f"postgres.port={self.postgres_port}"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self) -> ServerSettings:
        return ServerSettings.from_mapping({"state_dir": str(self.state_dir), "port": self.port,
                                            "postgres": {"port": self.postgres_port}})

    def cli(self, command: str, env: Dict[str, str] | None = None) -> subprocess.CompletedProcess:
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "server.py"), command, *self.args],
                              capture_output=True, text=True, timeout=START_S, env=env or clean_env())
        print(f"scripts/server.py {command}: exit {done.returncode} after {time.monotonic() - started:.1f} s")
        return done

    def start(self, env: Dict[str, str] | None = None) -> str:
        done = self.cli("start", env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def crash(self) -> None:
        """SIGKILL the MLflow server and its workers, as a crash would end them (PostgreSQL stays)."""
        record = records.load(self.state_dir)
        assert record is not None, "no server record"
        kill_group(record.mlflow_pid)


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", USER_ENV, PASSWORD_ENV, "MLFLOW_TRACKING_USERNAME",
                        "MLFLOW_TRACKING_PASSWORD")}
    return {**env, "MEGENGINE_LOGGING_LEVEL": "ERROR", **extra}


@pytest.fixture(scope="module")
def team_server() -> Iterator[TeamServer]:
    try:
        find_bin_dir()
    except ServerError as missing:
        pytest.skip(str(missing))
    # Not under pytest's tmp root: that is 0700, and PostgreSQL runs as its own user when we are root.
    state_dir = Path(tempfile.mkdtemp(prefix="mgelab-team-server-"))
    state_dir.chmod(0o755)
    server = TeamServer(state_dir, free_port(), free_port())
    try:
        print(server.start())
        yield server
    finally:
        stopped = server.cli("stop")
        print(stopped.stdout, stopped.stderr)
        _make_sure_it_is_all_stopped(server)
        shutil.rmtree(state_dir, ignore_errors=True)


def _make_sure_it_is_all_stopped(server: TeamServer) -> None:
    """Whatever the stop command left (it failed, or timed out): killed, so nothing outlives the tests."""
    record = records.load(server.state_dir)
    if record is not None:
        kill_group(record.mlflow_pid)
    try:
        Cluster(server.settings).stop()
    except ServerError as error:
        print(f"PostgreSQL stop: {error}")


def run_sweep(tmp_path: Path, server: TeamServer, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "hydra/launcher=joblib",
           "hydra.launcher.n_jobs=2", *TINY, *args, "logger=server", f"paths.server.port={server.port}",
           f"paths.output_dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    out = (tmp_path / "sweep.out").open("w")
    return subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stdout=out, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, tmp_path: Path) -> str:
    try:
        proc.wait(timeout=SWEEP_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return (tmp_path / "sweep.out").read_text()


def last_step(run_dir: Path) -> int:
    """The last training step the job checkpointed (every epoch end is one): what it logged."""
    pointer = Path(run_dir) / "checkpoints" / "last.json"
    return int(json.loads(pointer.read_text())[0].split("-")[1]) if pointer.is_file() else 0


def sweep_runs(url: str, experiment: str):
    client = MlflowClient(url)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment} on {url}"
    runs = client.search_runs([found.experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep/role") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, found, parents, children


def assert_every_step(client: MlflowClient, run, epochs: int = 2) -> int:
    """The run holds each step it logged, once; the number of steps."""
    steps = last_step(Path(run.data.tags["hydra/run_dir"]))
    assert steps > 0, run.data.tags["hydra/run_dir"]
    history = sorted(m.step for m in client.get_metric_history(run.info.run_id, "step/train_loss"))
    assert history == list(range(1, steps + 1)), (run.info.run_name, history)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")] == list(range(1, epochs + 1))
    assert "test/acc" in run.data.metrics and run.info.status == "FINISHED"
    return steps


def metric_rows_in_postgres(server: TeamServer, run_ids: List[str], key: str) -> int:
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=server.postgres_port, user="mgelab", dbname="mgelab",
                          passfile=str(server.state_dir / "pgpass"), connect_timeout=10) as db:
        with db.cursor() as cursor:
            cursor.execute("select count(*) from metrics where key = %s and run_uuid = any(%s)", (key, run_ids))
            return int(cursor.fetchone()[0])


def test_a_second_start_says_it_runs_and_status_answers(team_server):
    again = team_server.cli("start")
    assert again.returncode == 0 and f"A team server already runs at {team_server.url}" in again.stdout
    status = team_server.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "answers /health" in status.stdout and f"PostgreSQL: running on 127.0.0.1:{team_server.postgres_port}" \
        in status.stdout


def test_an_eight_job_sweep_on_the_server_keeps_every_step_in_postgres(team_server, tmp_path):
    started = time.monotonic()
    proc = run_sweep(tmp_path, team_server, "model=linear,mlp", "optim.lr=0.02,0.05,0.1,0.2",
                     "experiment_name=team_sweep")
    output = finish(proc, tmp_path)
    print(f"8-job sweep: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0 and "8 jobs, 8 finished" in output, output[-3000:]
    client, experiment, parents, children = sweep_runs(team_server.url, "team_sweep")
    assert len(parents) == 1 and len(children) == 8
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert parents[0].info.status == "FINISHED" and parents[0].data.metrics["sweep/finished"] == 8
    steps = sum(assert_every_step(client, child) for child in children)
    # Stored once each, in PostgreSQL (the backend store), not in a file beside the run.
    assert metric_rows_in_postgres(team_server, [c.info.run_id for c in children], "step/train_loss") == steps
    # Artifacts went through the server into its artifact root, not into a local folder of the client.
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    child = children[0]
    assert "config.yaml" in {a.path for a in client.list_artifacts(child.info.run_id)}
    assert list((team_server.state_dir / "artifacts").rglob(f"{child.info.run_id}/artifacts/config.yaml"))
    assert not (tmp_path / "mlartifacts").exists()


def kill_when(server: TeamServer, proc: subprocess.Popen, sweep_dir: Path, step: int) -> str:
    """Crash the MLflow server once some job has checkpointed past ``step`` (0: once a job has
    started, before it can reach the server); which job that was."""
    deadline = time.monotonic() + STEP_WAIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        for job_dir in sorted(path for path in sweep_dir.glob("*") if path.is_dir()):
            if (step == 0 and (job_dir / ".hydra").is_dir()) or (step and last_step(job_dir) > step):
                server.crash()
                print(f"mlflow server killed at step {last_step(job_dir)} of {job_dir.name}")
                return job_dir.name
        time.sleep(0.01)
    raise AssertionError(f"no job got past step {step} before the sweep ended (exit {proc.poll()})")


def crash_sweep(server: TeamServer, tmp_path: Path, experiment: str, kill_step: int, down_s: float) -> List[int]:
    """A 4-job sweep whose server is SIGKILLed (``kill_when``) and started again ``down_s`` later.
    Every job must be accounted for: its run complete (after replaying what it kept, with the
    command the sweep printed), or its failure named, with the reason, on the parent and the
    console. The jobs that failed."""
    started = time.monotonic()
    proc = run_sweep(tmp_path, server, "model=mlp", "optim.lr=0.02,0.05,0.1,0.2", "data.train_size=1920",
                     "trainer.checkpoint_every_n_steps=5", f"experiment_name={experiment}")
    try:
        kill_when(server, proc, tmp_path / "sweep", kill_step)
        time.sleep(down_s)
        print(server.start())
    finally:
        output = finish(proc, tmp_path)
    print(f"sweep with a server crash: {time.monotonic() - started:.1f} s, exit {proc.returncode}")
    print(output[-2500:])
    spools = sorted((tmp_path / "sweep").glob("*/unsent_tracking.jsonl"))
    for spool in spools:
        assert f"python -m mgelab.tracking.replay {spool}" in output
        replayed = subprocess.run([sys.executable, "-m", "mgelab.tracking.replay", str(spool)], capture_output=True,
                                  text=True, timeout=120, env=clean_env())
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    client, _, parents, children = sweep_runs(server.url, experiment)
    assert len(parents) == 1
    tags = parents[0].data.tags
    reported = sorted(int(key.split("/")[1]) for key in tags if key.startswith("job/"))
    assert reported == [0, 1, 2, 3], f"jobs reported to the parent: {reported}\n{output[-3000:]}"
    outcomes = {num: json.loads(tags[f"job/{num}"]) for num in reported}
    by_num = {int(c.data.tags["hydra/job_num"]): c for c in children}
    for num, outcome in outcomes.items():
        if outcome["status"] == "COMPLETED":
            assert_every_step(client, client.get_run(by_num[num].info.run_id))
        else:  # failed visibly: the parent and the console both name it with its reason
            assert f"FAILED job {num}" in output and "cannot be reached" in outcome["error"], (num, outcome)
    failed = [n for n, o in outcomes.items() if o["status"] != "COMPLETED"]
    assert (proc.returncode == 0) == (not failed), (proc.returncode, failed)
    print(f"jobs replayed from their files: {len(spools)}, failed visibly: {failed}, "
          f"sent live: {4 - len(spools) - len(failed)}")
    return failed


@pytest.mark.slow
def test_the_server_killed_mid_training_and_restarted_loses_nothing(team_server, tmp_path):
    crash_sweep(team_server, tmp_path, "team_kill", kill_step=10, down_s=2.0)


@pytest.mark.slow
def test_jobs_starting_while_the_server_is_down_fail_visibly_and_the_rest_run(team_server, tmp_path):
    failed = crash_sweep(team_server, tmp_path, "team_down", kill_step=0, down_s=12.0)
    assert failed, "the first jobs started while the server was down"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("flask_wtf") is None,
                    reason="MLflow's basic-auth app needs its auth extra (Flask-WTF), not installed here")
def test_basic_auth_from_the_environment(team_server, tmp_path):
    assert team_server.cli("stop").returncode == 0
    admin = {USER_ENV: "team-admin", PASSWORD_ENV: "a-long-pass-phrase-42"}
    output = team_server.start(clean_env(**admin))
    assert "Basic auth is on" in output
    search = f"{team_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(search, timeout=10)
    assert refused.value.code == 401
    token = b64encode(f"{admin[USER_ENV]}:{admin[PASSWORD_ENV]}".encode()).decode()
    request = urllib.request.Request(search, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    config = team_server.state_dir / "auth" / "basic_auth.ini"
    assert config.stat().st_mode & 0o777 == 0o600
    for path in team_server.state_dir.rglob("*"):  # the password is in no file the manager wrote
        if path.is_file() and path.stat().st_size < 1_000_000 and "postgres" not in path.parts:
            assert admin[PASSWORD_ENV] not in path.read_text(errors="ignore"), path
