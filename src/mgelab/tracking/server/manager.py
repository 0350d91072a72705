"""Start, stop and ask about the team server: PostgreSQL first, then ``mlflow server`` on it; stopped
the other way round. What ``start`` launched is recorded under the state dir, so a second ``start``
finds the running server instead of starting another, and ``stop`` finds what to stop."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from typing import List, Mapping, Optional

from mgelab.tracking.server import records
from mgelab.tracking.server.auth import admin_from_env, check_app_installed, server_env, write_config
from mgelab.tracking.server.mlflow_server import MlflowServer, health_answers
from mgelab.tracking.server.postgres import Cluster
from mgelab.tracking.server.processes import STOP_TIMEOUT_S, ServerError, is_alive, port_in_use, stop_group
from mgelab.tracking.server.records import MLFLOW_NEEDLE, ServerRecord
from mgelab.tracking.server.settings import ServerSettings

AUTH_DATABASE_SUFFIX = "_auth"


@dataclass
class StartResult:
    record: ServerRecord
    already_running: bool = False
    cluster_created: bool = False
    databases_created: List[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class StopResult:
    mlflow_stopped: bool = False
    mlflow_killed: bool = False
    postgres_stopped: bool = False


@dataclass
class Status:
    record: Optional[ServerRecord]
    healthy: bool
    postgres_port: Optional[int]

    @property
    def running(self) -> bool:
        return self.record is not None and self.healthy and self.postgres_port is not None


def running_record(settings: ServerSettings) -> Optional[ServerRecord]:
    """The record of the server started from this state dir, if its MLflow process still runs."""
    record = records.load(settings.state_dir)
    return record if record is not None and is_alive(record.mlflow_pid, MLFLOW_NEEDLE) else None


def start(settings: ServerSettings, env: Mapping[str, str] = os.environ) -> StartResult:
    """Start PostgreSQL (``initdb`` the first time) and the MLflow server on it; return once the
    server answers. A server already running from this state dir is left alone (``already_running``)."""
    running = running_record(settings)
    if running is not None:
        return _already_running(running, settings)
    records.remove(settings.state_dir)  # stale: its process is gone
    admin = admin_from_env(env)
    if admin is not None:
        check_app_installed()
    if port_in_use(settings.host, settings.port):
        raise ServerError(f"port {settings.port} on {settings.host} (port) is taken by another program; choose "
                          f"another: make server SERVER_ARGS=\"port=<free port>\" (and train with "
                          f"paths.server.port=<that port>)")
    cluster = Cluster(settings)
    cluster_created = cluster.initialise()
    postgres_port = cluster.running_port()
    started_postgres = postgres_port is None
    if postgres_port is not None and postgres_port != settings.postgres.port:
        raise ServerError(f"this state dir's PostgreSQL already runs on port {postgres_port}, not postgres.port="
                          f"{settings.postgres.port}; stop it first (make server-stop)")
    process: Optional[subprocess.Popen] = None  # the MLflow server, once launched
    try:
        if started_postgres:
            cluster.start()
        auth_db = settings.postgres.database + AUTH_DATABASE_SUFFIX
        databases_created = cluster.ensure_databases([settings.postgres.database] + ([auth_db] if admin else []))
        server_environment = cluster.client_env()
        if admin is not None:
            auth_dir = settings.state_dir / "auth"
            config = write_config(auth_dir, admin, cluster.uri(auth_db), settings.auth.default_permission)
            server_environment.update(server_env(auth_dir, admin, config))
        server = MlflowServer(settings, cluster.uri(), basic_auth=admin is not None)
        process = server.launch(server_environment)
        started_at = datetime.now().isoformat(timespec="seconds")
        record = ServerRecord(process.pid, settings.host, settings.port, settings.url, settings.postgres.port,
                              settings.postgres.database, admin is not None, started_at)
        records.save(settings.state_dir, record)  # before waiting: an interrupted start can be stopped
        seconds = server.wait_healthy(process)
    except BaseException:
        _undo_start(settings, cluster, process, started_postgres)
        raise
    return StartResult(record, False, cluster_created, databases_created, seconds)


def _already_running(running: ServerRecord, settings: ServerSettings) -> StartResult:
    asked = (settings.host, settings.port, settings.postgres.port)
    if (running.host, running.port, running.postgres_port) != asked:
        raise ServerError(f"a team server from {settings.state_dir} already runs at {running.url} (pid "
                          f"{running.mlflow_pid}, PostgreSQL port {running.postgres_port}); stop it first "
                          f"(make server-stop) to start one at {settings.url}")
    return StartResult(record=running, already_running=True)


def _undo_start(settings: ServerSettings, cluster: Cluster, process: Optional[subprocess.Popen],
                started_postgres: bool) -> None:
    """A start that failed or was interrupted leaves nothing running that it started."""
    if process is not None:
        stop_group(process.pid, None)
        process.wait(timeout=STOP_TIMEOUT_S)
        records.remove(settings.state_dir)
    if started_postgres:
        try:
            cluster.stop()
        except ServerError:
            pass  # the original error is the one to report


def stop(settings: ServerSettings) -> StopResult:
    """Stop the MLflow server (SIGTERM to its process group, SIGKILL after a bound), then PostgreSQL
    (``pg_ctl stop -m fast``). Nothing running is not an error."""
    result = StopResult()
    running = running_record(settings)
    if running is not None:
        result.mlflow_killed = stop_group(running.mlflow_pid, MLFLOW_NEEDLE)
        result.mlflow_stopped = True
    records.remove(settings.state_dir)
    result.postgres_stopped = Cluster(settings).stop()
    return result


def status(settings: ServerSettings) -> Status:
    running = running_record(settings)
    healthy = running is not None and health_answers(running.url)
    return Status(running, healthy, Cluster(settings).running_port())


def start_lines(result: StartResult, settings: ServerSettings) -> List[str]:
    """What ``start`` tells the user: where the server is, how to train against it, how to stop it."""
    record = result.record
    if result.already_running:
        lines = [f"A team server already runs at {record.url} (pid {record.mlflow_pid}, started "
                 f"{record.started_at}); nothing started."]
    else:
        first = " (new cluster: initdb done)" if result.cluster_created else ""
        lines = [f"Team tracking server up at {record.url} after {result.seconds:.1f} s{first}: MLflow over "
                 f"PostgreSQL on 127.0.0.1:{record.postgres_port}, database {record.database}.",
                 f"  state, logs and served artifacts: {settings.state_dir}"]
    lines += ["Train against it:",
              "  .venv/bin/python scripts/train.py logger=server",
              f"  .venv/bin/python scripts/train.py logger.tracking_uri={record.url}"]
    if record.auth:
        lines.append("Basic auth is on: clients set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.")
    lines.append("Stop it with: make server-stop")
    return lines + exposure_warnings(settings, record.auth)


def exposure_warnings(settings: ServerSettings, auth: bool) -> List[str]:
    if settings.is_loopback:
        return []
    warning = (f"WARNING: host={settings.host} binds beyond loopback: anyone who can reach this machine on port "
               f"{settings.port} reaches the server")
    return [warning + ("." if auth else ", and basic auth is off (set MGELAB_SERVER_ADMIN_USER and "
                                        "MGELAB_SERVER_ADMIN_PASSWORD to turn it on).")]


def status_lines(state: Status, settings: ServerSettings) -> List[str]:
    if state.record is None:
        mlflow = f"MLflow server: not running (no live record in {settings.state_dir})"
    else:
        answer = "answers /health" if state.healthy else "does NOT answer /health"
        mlflow = (f"MLflow server: pid {state.record.mlflow_pid} at {state.record.url}, {answer}, "
                  f"basic auth {'on' if state.record.auth else 'off'}, started {state.record.started_at}")
    postgres = ("PostgreSQL: not running" if state.postgres_port is None
                else f"PostgreSQL: running on 127.0.0.1:{state.postgres_port}")
    return [mlflow, postgres]


def stop_lines(result: StopResult) -> List[str]:
    if not (result.mlflow_stopped or result.postgres_stopped):
        return ["No team server was running; nothing to stop."]
    mlflow = "MLflow server stopped" + (" (killed: it did not end on SIGTERM)" if result.mlflow_killed else "")
    return [mlflow if result.mlflow_stopped else "MLflow server was not running",
            "PostgreSQL stopped" if result.postgres_stopped else "PostgreSQL was not running"]
