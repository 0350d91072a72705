"""The team server's manager without a real server: settings and their messages, a second start
refused, stop with nothing running, a taken port, missing PostgreSQL programs, the auth files."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mgelab.tracking.server import auth, manager, records
from mgelab.tracking.server.auth import PASSWORD_ENV, USER_ENV, AdminCredentials, admin_from_env, write_config
from mgelab.tracking.server.postgres import find_bin_dir
from mgelab.tracking.server.processes import (
    ServerError,
    check_reachable_by_cluster_owner,
    free_port,
    is_alive,
    running_as_root,
)
from mgelab.tracking.server.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "server.py"


def settings_for(state_dir: Path, **values) -> ServerSettings:
    return ServerSettings.from_mapping({"state_dir": str(state_dir), **values})


def server_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (USER_ENV, PASSWORD_ENV)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def fake_server(tmp_path):
    """A live process whose command line says `mlflow server`, recorded as this state dir's server."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "mlflow server"])
    # Wait until /proc shows its command line (a loaded machine was seen to lag behind Popen's return).
    deadline = time.monotonic() + 10
    while not is_alive(sleeper.pid, records.MLFLOW_NEEDLE) and time.monotonic() < deadline:
        time.sleep(0.05)
    record = records.ServerRecord(sleeper.pid, "127.0.0.1", 5100, "http://127.0.0.1:5100", 15432, "mgelab", False,
                                  "2026-12-01T10:00:00")
    records.save(tmp_path, record)
    try:
        yield record
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)


def test_conf_server_yaml_is_read_with_its_paths_and_overrides(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from server import load_settings
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    settings = load_settings([], ROOT / "conf")
    assert settings.state_dir == ROOT / "outputs" / "server" or settings.state_dir.name == "server"
    assert (settings.host, settings.port, settings.postgres.port) == ("127.0.0.1", 5100, 15432)
    changed = load_settings(["port=5200", f"state_dir={tmp_path}", "postgres.database=team"], ROOT / "conf")
    assert (changed.port, changed.state_dir, changed.postgres.database) == (5200, tmp_path, "team")
    assert changed.url == "http://127.0.0.1:5200" and changed.is_loopback


@pytest.mark.parametrize("values, named", [
    ({"prot": 1}, "server setting prot is not a key"),
    ({"postgres": {"prot": 1}}, "server setting postgres.prot is not a key"),
    ({"port": 70000}, "port=70000 is not a TCP port"),
    ({"port": "abc"}, "port='abc' must be int"),
    ({"port": 15432}, "port and postgres.port are both 15432"),
    ({"workers": 0}, "workers=0 must be at least 1"),
    ({"auth": {"default_permission": "ALL"}}, "auth.default_permission='ALL' is not one of READ"),
    ({"postgres": {"database": "drop table"}}, "postgres.database='drop table'"),
])
def test_a_bad_setting_is_named(tmp_path, values, named):
    with pytest.raises(ServerError, match=named.replace("(", r"\(").replace(".", r"\.")):
        settings_for(tmp_path, **values)


def test_the_cli_names_a_bad_argument_with_status_2():
    done = server_cli("start", "prot=5200")
    assert done.returncode == 2 and "server setting prot is not a key of conf/server.yaml" in done.stderr
    done = server_cli("start", "5200")
    assert done.returncode == 2 and "'5200' is not a key=value setting" in done.stderr


def test_a_second_start_finds_the_running_server_and_starts_nothing(tmp_path, fake_server):
    result = manager.start(settings_for(tmp_path))
    assert result.already_running and result.record == fake_server
    lines = "\n".join(manager.start_lines(result, settings_for(tmp_path)))
    assert f"already runs at http://127.0.0.1:5100 (pid {fake_server.mlflow_pid}" in lines
    assert "nothing started" in lines
    assert not (tmp_path / "postgres").exists(), "no cluster was touched"
    with pytest.raises(ServerError, match="already runs at http://127.0.0.1:5100 .*stop it first .*127.0.0.1:5200"):
        manager.start(settings_for(tmp_path, port=5200))


def test_a_second_start_through_the_cli_exits_0_saying_so(tmp_path, fake_server):
    done = server_cli("start", f"state_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    assert "A team server already runs at http://127.0.0.1:5100" in done.stdout
    assert "scripts/train.py logger=server" in done.stdout


def test_a_record_whose_process_is_gone_is_stale(tmp_path, fake_server):
    records.save(tmp_path, records.ServerRecord(**{**fake_server.__dict__, "mlflow_pid": 2 ** 22 + 7}))
    assert manager.running_record(settings_for(tmp_path)) is None


def test_stop_and_status_with_nothing_running(tmp_path):
    state = tmp_path / "never_started"
    assert manager.stop_lines(manager.stop(settings_for(state))) == ["No team server was running; nothing to stop."]
    done = server_cli("stop", f"state_dir={state}")
    assert done.returncode == 0 and "nothing to stop" in done.stdout, done.stderr
    done = server_cli("status", f"state_dir={state}")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "MLflow server: not running" in done.stdout and "PostgreSQL: not running" in done.stdout


def test_a_taken_port_is_named_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = server_cli("start", f"state_dir={tmp_path}", f"port={port}")
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 (port) is taken by another program" in done.stderr
    assert 'SERVER_ARGS="port=<free port>"' in done.stderr
    assert not (tmp_path / "postgres").exists() and not (tmp_path / "server.json").exists()


def test_missing_postgres_programs_name_the_debian_package(tmp_path):
    with pytest.raises(ServerError, match=r"install the Debian package postgresql \(apt-get install postgresql\)"):
        find_bin_dir(search_path=str(tmp_path), debian_glob=str(tmp_path / "*" / "bin"))


def test_postgres_programs_are_found_off_path_in_debians_version_directory(tmp_path):
    for version in ("9", "15"):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for name in ("initdb", "pg_ctl", "postgres", "createdb", "psql"):
            (bin_dir / name).write_text("")
    assert find_bin_dir(search_path=str(tmp_path / "empty"), debian_glob=str(tmp_path / "*" / "bin")) == \
        tmp_path / "15" / "bin"


@pytest.mark.skipif(not running_as_root(), reason="only root runs PostgreSQL as another user")
def test_a_state_dir_the_postgres_user_cannot_reach_is_refused_with_the_way_out():
    reachable = Path(tempfile.mkdtemp(prefix="mgelab-reach-"))  # pytest's own tmp root is 0700
    try:
        reachable.chmod(0o755)
        check_reachable_by_cluster_owner(reachable / "server")
        private = reachable / "private"
        private.mkdir(mode=0o700)
        with pytest.raises(ServerError, match=r"cannot enter .*private \(mode 0o700\).*state_dir="):
            check_reachable_by_cluster_owner(private / "server")
    finally:
        shutil.rmtree(reachable)


def test_auth_needs_both_variables_and_keeps_the_password_out_of_its_file(tmp_path):
    assert admin_from_env({}) is None
    with pytest.raises(ServerError, match=f"{PASSWORD_ENV} is not set"):
        admin_from_env({USER_ENV: "alice"})
    admin = admin_from_env({USER_ENV: "alice", PASSWORD_ENV: "s3cret-pass-word"})
    assert admin == AdminCredentials("alice", "s3cret-pass-word")
    config = write_config(tmp_path / "auth", admin, "postgresql://mgelab@127.0.0.1:1/mgelab_auth", "READ")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert "admin_username = alice" in text and "default_permission = READ" in text
    assert "s3cret" not in text


def test_binding_beyond_loopback_warns(tmp_path):
    assert manager.exposure_warnings(settings_for(tmp_path), auth=False) == []
    exposed = settings_for(tmp_path, host="0.0.0.0")
    (warning,) = manager.exposure_warnings(exposed, auth=False)
    assert "host=0.0.0.0 binds beyond loopback" in warning and "basic auth is off" in warning
    assert exposed.url == "http://127.0.0.1:5100" and not exposed.is_loopback


def test_auth_without_mlflows_auth_extra_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(auth.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv(USER_ENV, "alice")
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-pass-word")
    with pytest.raises(ServerError, match=r"needs MLflow's auth extra.*pip install 'mlflow\[auth\]'"):
        manager.start(settings_for(tmp_path, port=free_port(), postgres={"port": free_port()}))
    assert not (tmp_path / "postgres").exists(), "refused before anything was made"
