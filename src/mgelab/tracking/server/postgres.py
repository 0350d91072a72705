"""The team server's own PostgreSQL cluster: a data directory under the state dir, made once by
``initdb``, listening on 127.0.0.1 at its own port only (no Unix socket), its one role protected by a
generated password kept in a mode-600 passfile that libpq reads (``PGPASSFILE``), so the password is
never on a command line. Run through PostgreSQL's own programs (``pg_ctl`` and friends), as the
``postgres`` system user when we are root (the server refuses root)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from mgelab.tracking.server.processes import (
    ServerError,
    as_cluster_owner,
    check_reachable_by_cluster_owner,
    give_to_cluster_owner,
    log_tail,
    port_in_use,
    run_checked,
    write_private,
)
from mgelab.tracking.server.settings import ServerSettings

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
CLIENT_PROGRAMS = ("createdb", "psql")
# Debian keeps the server programs off PATH, under one directory per major version.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SETTINGS_FILE = "mgelab_server.conf"
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60


def find_bin_dir(search_path: Optional[str] = None, debian_glob: str = DEBIAN_BIN_GLOB) -> Path:
    """The directory of PostgreSQL's programs: where ``pg_ctl`` on PATH really lives, else the newest
    Debian version directory that has them all."""
    candidates: List[Path] = []
    on_path = shutil.which("pg_ctl", path=search_path)
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(glob.glob(debian_glob), key=_major_version, reverse=True)
    candidates += [Path(found) for found in versions]
    for directory in candidates:
        if all((directory / name).is_file() for name in SERVER_PROGRAMS + CLIENT_PROGRAMS):
            return directory
    raise ServerError("PostgreSQL's programs (initdb, pg_ctl, postgres, createdb, psql) are neither on PATH nor in "
                      f"{DEBIAN_BIN_GLOB}: install the Debian package postgresql (apt-get install postgresql)")


def _major_version(path: str) -> int:
    name = Path(path).parent.name
    return int(name) if name.isdigit() else -1


class Cluster:
    """The cluster of one state dir. ``root`` (``<state_dir>/postgres``) belongs to the cluster's
    owner; the passfile beside it belongs to whoever runs the manager."""

    def __init__(self, settings: ServerSettings, bin_dir: Optional[Path] = None) -> None:
        self.settings = settings.postgres
        self.state_dir = settings.state_dir
        self.root = settings.state_dir / "postgres"
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.passfile = settings.state_dir / "pgpass"
        self._bin_dir = bin_dir

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return self._bin_dir

    def uri(self, database: Optional[str] = None) -> str:
        """The SQLAlchemy URI of a database; no password in it (libpq reads the passfile)."""
        return f"postgresql://{self.settings.user}@{LOOPBACK}:{self.settings.port}/{database or self.settings.database}"

    def client_env(self) -> Dict[str, str]:
        """What a client of this cluster (createdb, the MLflow server) needs in its environment."""
        return {**os.environ, "PGPASSFILE": str(self.passfile), "PGCONNECT_TIMEOUT": "10"}

    # ---- made once -------------------------------------------------------------------------
    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def initialise(self) -> bool:
        """``initdb`` the data directory unless it exists; True when it was made now."""
        if self.is_initialised():
            if not self.passfile.is_file():
                raise ServerError(f"the cluster in {self.data_dir} exists but its password file {self.passfile} is "
                                  f"gone; restore it, or delete {self.root} to start over (that deletes its runs)")
            return False
        self.state_dir.mkdir(parents=True, exist_ok=True)
        check_reachable_by_cluster_owner(self.state_dir)
        self.root.mkdir(mode=0o700, exist_ok=True)
        give_to_cluster_owner(self.root)
        password = secrets.token_urlsafe(24)
        pwfile = self.root / "initdb.pw"
        write_private(pwfile, password + "\n")
        give_to_cluster_owner(pwfile)
        try:
            run_checked(as_cluster_owner([str(self.bin_dir / "initdb"), "-D", str(self.data_dir),
                                          "-U", self.settings.user, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                                          "-E", "UTF8", "--locale=C"]), "initdb (creating the cluster)")
        finally:
            pwfile.unlink(missing_ok=True)
        # Any port: the cluster's port is a setting of each start.
        write_private(self.passfile, f"{LOOPBACK}:*:*:{self.settings.user}:{password}\n")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# The team server's settings of each start (scripts/server.py)\n"
                       f"include_if_exists = '{SETTINGS_FILE}'\n")
        return True

    # ---- each start ------------------------------------------------------------------------
    def running_port(self) -> Optional[int]:
        """The port of the running postmaster (from its pid file), or None when it does not run."""
        if not self.is_initialised() or not self._status_running():
            return None
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def start(self) -> None:
        port = self.settings.port
        if port_in_use(LOOPBACK, port):
            raise ServerError(f"port {port} on {LOOPBACK} (postgres.port) is taken by another program; choose "
                              f"another: scripts/server.py start postgres.port=<free port>")
        self._write_settings()
        try:
            run_checked(as_cluster_owner([str(self.bin_dir / "pg_ctl"), "start", "-D", str(self.data_dir),
                                          "-l", str(self.log_file), "-w", "-t", str(START_TIMEOUT_S), "-s"]),
                        "starting PostgreSQL", timeout_s=START_TIMEOUT_S + 10)
        except ServerError as error:
            raise ServerError(f"{error}\n{self.log_tail()}") from None

    def ensure_databases(self, names: Sequence[str]) -> List[str]:
        """Create those of ``names`` the cluster lacks; the ones created."""
        connect = ["-h", LOOPBACK, "-p", str(self.settings.port), "-U", self.settings.user]
        listed = run_checked([str(self.bin_dir / "psql"), *connect, "-d", "postgres", "-Atc",
                              "select datname from pg_database"], "listing the databases", env=self.client_env())
        existing = set(listed.split())
        created = [name for name in names if name not in existing]
        for name in created:
            run_checked([str(self.bin_dir / "createdb"), *connect, name], f"creating database {name}",
                        env=self.client_env())
        return created

    def stop(self) -> bool:
        """``pg_ctl stop -m fast`` (open sessions are ended, nothing is lost); False when it did not run."""
        if not self.is_initialised() or not self._status_running():
            return False
        run_checked(as_cluster_owner([str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast",
                                      "-w", "-t", str(START_TIMEOUT_S), "-s"]), "stopping PostgreSQL",
                    timeout_s=START_TIMEOUT_S + 10)
        return True

    def log_tail(self) -> str:
        return log_tail(self.log_file, 15, "PostgreSQL log")

    def _status_running(self) -> bool:
        try:
            run_checked(as_cluster_owner([str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)]),
                        "asking PostgreSQL's status", timeout_s=20)
            return True
        except ServerError:
            return False

    def _write_settings(self) -> None:
        path = self.data_dir / SETTINGS_FILE
        path.write_text("# Written by scripts/server.py at every start: loopback only, TCP only.\n"
                        f"listen_addresses = '{LOOPBACK}'\nport = {self.settings.port}\n"
                        "unix_socket_directories = ''\n")
        give_to_cluster_owner(path)
