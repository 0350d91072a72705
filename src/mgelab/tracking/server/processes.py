"""Processes and ports of the team server: who runs PostgreSQL's binaries, whether a port is taken,
whether a recorded pid is still the program it was, stopping a process group within a bound, and the
last lines of a server's log for an error message."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Sequence

# The Debian package's system user: PostgreSQL's server programs refuse to run as root.
POSTGRES_USER = "postgres"
# Bounded waits, so that no command of the manager can hang.
COMMAND_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


class ServerError(RuntimeError):
    """A situation the user must change; the message says what and how."""


def running_as_root() -> bool:
    return os.geteuid() == 0


def postgres_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        raise ServerError(f"running as root, PostgreSQL must run as the '{POSTGRES_USER}' system user, and there "
                          "is none: install the Debian package postgresql (apt-get install postgresql), or run "
                          "`make server` as an ordinary user") from None


def as_cluster_owner(command: Sequence[str]) -> List[str]:
    """``command`` run as the owner of the cluster: the ``postgres`` user when we are root, else us."""
    if not running_as_root():
        return list(command)
    postgres_account()
    return ["runuser", "-u", POSTGRES_USER, "--", *command]


def give_to_cluster_owner(path: Path) -> None:
    """Make ``path`` (made by us) the cluster owner's, when that is not us."""
    if running_as_root():
        account = postgres_account()
        os.chown(path, account.pw_uid, account.pw_gid)


def check_reachable_by_cluster_owner(path: Path) -> None:
    """As root, the ``postgres`` user must be able to walk down to ``path``'s directory; a 0700
    parent (pytest's tmp dirs, a private home) would make initdb fail with a bare 'permission denied'."""
    if not running_as_root():
        return
    account = postgres_account()
    for parent in reversed(path.resolve().parents):
        info = parent.stat()
        if info.st_uid == account.pw_uid:
            continue
        others_x = info.st_mode & 0o001
        group_x = info.st_mode & 0o010 and info.st_gid == account.pw_gid
        if not (others_x or group_x):
            raise ServerError(f"PostgreSQL runs as the '{POSTGRES_USER}' user, which cannot enter {parent} "
                              f"(mode {oct(info.st_mode & 0o777)}); choose a state_dir it can reach "
                              f"(scripts/server.py start state_dir=...) or run chmod o+x {parent}")


def run_checked(command: Sequence[str], what: str, env: Optional[dict] = None,
                timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """Run ``command``; its output, or a ``ServerError`` saying ``what`` failed and why."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ServerError(f"{what}: no answer within {timeout_s:.0f} s ({' '.join(command)})") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-1500:]
        raise ServerError(f"{what} failed (exit {done.returncode}): {detail}")
    return done.stdout


def write_private(path: Path, text: str) -> None:
    """A file only its owner can read, from the first byte on (passwords, secrets)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


def port_in_use(host: str, port: int) -> bool:
    """Something accepts connections at host:port (or the port cannot be bound there)."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET) as probe:
        probe.settimeout(1.0)
        if probe.connect_ex((target, port)) == 0:
            return True
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as binder:
        binder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            binder.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def is_alive(pid: Optional[int], needle: str) -> bool:
    """``pid`` runs and its command line holds ``needle`` (a recycled pid is another program)."""
    if not pid:
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return needle in command and not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")


def stop_group(pid: int, needle: Optional[str], timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the process group led by ``pid`` (the server and its workers), SIGKILL what is left
    after ``timeout_s``; True when it had to kill. ``needle``: a recorded pid must still be that
    program; None for our own unreaped child (its pid cannot have been recycled)."""
    if needle is not None and not is_alive(pid, needle):
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not _group_alive(pid):
            return False
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    return True


def kill_group(pid: int) -> None:
    """SIGKILL the whole group at once: a crash, as the kill test makes one."""
    _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status when it is our own child (a server started in this process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def log_tail(log_file: Path, lines: int, what: str = "log") -> str:
    """The last ``lines`` of a server's log, for an error message (or that there is no log yet)."""
    try:
        text = log_file.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no {what} at {log_file})"
    return f"last lines of {log_file}:\n" + "\n".join(text)
