"""``mlflow server`` as the team server runs it: the PostgreSQL database as backend store, artifacts
served by the server itself (``--serve-artifacts``, stored under the state dir), so clients upload
through it and need no shared filesystem; started in its own session (it outlives ``make server``),
its output in ``<state_dir>/mlflow.log``, ready once ``/health`` answers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Mapping, Optional

from mgelab.tracking.server.processes import ServerError, log_tail, stop_group
from mgelab.tracking.server.settings import ServerSettings

HEALTH_PATH = "/health"
POLL_S = 0.5
# Off unless the user turns it on: MLflow's background job runner (GenAI jobs) is not needed for
# tracking runs, and it is one more process to start and stop.
SERVER_DEFAULTS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_program() -> List[str]:
    """The ``mlflow`` of this Python (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "mlflow"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("mlflow")
    return [found] if found else [sys.executable, "-m", "mlflow"]


class MlflowServer:
    def __init__(self, settings: ServerSettings, backend_uri: str, basic_auth: bool = False) -> None:
        self.settings, self.backend_uri, self.basic_auth = settings, backend_uri, basic_auth
        self.artifacts_dir = settings.state_dir / "artifacts"
        self.log_file = settings.state_dir / "mlflow.log"

    def command(self) -> List[str]:
        s = self.settings
        command = [*mlflow_program(), "server", "--backend-store-uri", self.backend_uri,
                   "--serve-artifacts", "--artifacts-destination", str(self.artifacts_dir),
                   "--host", s.host, "--port", str(s.port), "--workers", str(s.workers)]
        return command + (["--app-name", "basic-auth"] if self.basic_auth else [])

    def launch(self, env: Mapping[str, str]) -> subprocess.Popen:
        """Start the server in a session of its own (its pid leads the group of its workers)."""
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**SERVER_DEFAULTS, **env}
        with self.log_file.open("a") as log:
            log.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.command())}\n")
            log.flush()
            process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=full_env, cwd=self.settings.state_dir, start_new_session=True)
        return process

    def wait_healthy(self, process: subprocess.Popen, timeout_s: Optional[float] = None) -> float:
        """Seconds until ``/health`` answered; a ``ServerError`` (the server stopped) if it died or
        did not answer within the timeout."""
        timeout_s = timeout_s or self.settings.health_timeout_s
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if health_answers(self.settings.url):
                return time.monotonic() - started
            # Our child: poll() knows, even in the instant before it has become `mlflow server`.
            if process.poll() is not None:
                raise ServerError(f"mlflow server exited while starting (status {process.returncode}).\n"
                                  f"{self.log_tail()}")
            time.sleep(POLL_S)
        stop_group(process.pid, None)
        process.wait(timeout=30)
        raise ServerError(f"mlflow server did not answer {self.settings.url}{HEALTH_PATH} within {timeout_s:.0f} s "
                          f"(health_timeout_s); stopped it.\n{self.log_tail()}")

    def log_tail(self) -> str:
        return log_tail(self.log_file, 20)


def health_answers(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}{HEALTH_PATH}", timeout=timeout_s) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False
