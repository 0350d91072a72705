"""The team tracking server: MLflow's tracking server over this project's PostgreSQL cluster.

    python scripts/server.py start                 # make server
    python scripts/server.py status                # make server-status
    python scripts/server.py stop                  # make server-stop
    python scripts/server.py start port=5200 postgres.port=15433 state_dir=/srv/mgelab-server

Settings come from conf/server.yaml (the same file `scripts/train.py logger=server` reads its address
from); ``key=value`` arguments change them for this command. Exit status: 0 when the command's goal
holds (``start``: a server runs, also when it already ran; ``stop``: nothing runs), 1 when it cannot
be reached (the message says why), 2 for a bad argument; ``status`` exits 3 when no server runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mgelab.config.resolvers import project_root, register_resolvers
from mgelab.tracking.server import manager
from mgelab.tracking.server.processes import ServerError
from mgelab.tracking.server.settings import ServerSettings

NOT_RUNNING_STATUS = 3


def load_settings(overrides: List[str], conf_dir: Path) -> ServerSettings:
    """conf/server.yaml with ``key=value`` overrides, resolved against conf/paths/default.yaml."""
    register_resolvers()
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ServerError(f"{bad[0]!r} is not a key=value setting of conf/server.yaml (e.g. port=5200)")
    try:
        server = OmegaConf.merge(OmegaConf.load(conf_dir / "server.yaml"), OmegaConf.from_dotlist(overrides))
        root = OmegaConf.create({"paths": OmegaConf.load(conf_dir / "paths" / "default.yaml"), "server": server})
        values = OmegaConf.to_container(root.server, resolve=True)
    except OmegaConfBaseException as error:
        raise ServerError(f"conf/server.yaml: {error}") from None
    return ServerSettings.from_mapping(values)


def run(command: str, settings: ServerSettings) -> int:
    if command == "start":
        print("\n".join(manager.start_lines(manager.start(settings), settings)), flush=True)
        return 0
    if command == "stop":
        print("\n".join(manager.stop_lines(manager.stop(settings))))
        return 0
    state = manager.status(settings)
    print("\n".join(manager.status_lines(state, settings)))
    return 0 if state.running else NOT_RUNNING_STATUS


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description="Start, stop or ask about the team tracking server.")
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings of conf/server.yaml")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.overrides, Path(project_root()) / "conf")
    except ServerError as error:
        print(f"scripts/server.py: {error}", file=sys.stderr)
        return 2
    try:
        return run(args.command, settings)
    except ServerError as error:
        print(f"scripts/server.py {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"scripts/server.py {args.command}: interrupted; what it had started is stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
