"""What the team server is: its address, its PostgreSQL cluster and where it keeps its state, read
from a plain mapping (``conf/server.yaml``, resolved by ``scripts/server.py``) with one clear message
per bad key."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from mgelab.tracking.server.processes import ServerError

PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")


@dataclass(frozen=True)
class PostgresSettings:
    port: int = 15432
    database: str = "mgelab"
    user: str = "mgelab"


@dataclass(frozen=True)
class AuthSettings:
    default_permission: str = "READ"


@dataclass(frozen=True)
class ServerSettings:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 5100
    workers: int = 2
    health_timeout_s: float = 180.0
    postgres: PostgresSettings = PostgresSettings()
    auth: AuthSettings = AuthSettings()

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ServerSettings:
        """Typed settings from ``conf/server.yaml``'s keys; a wrong key or value names itself."""
        top = dict(values)
        postgres = _build(PostgresSettings, top.pop("postgres", None) or {}, "postgres.")
        auth = _build(AuthSettings, top.pop("auth", None) or {}, "auth.")
        if "state_dir" not in top or not top["state_dir"]:
            raise ServerError("server setting state_dir is missing (conf/server.yaml)")
        settings = _build(cls, {**top, "postgres": postgres, "auth": auth}, "")
        settings.check()
        return settings

    def check(self) -> None:
        for key, port in (("port", self.port), ("postgres.port", self.postgres.port)):
            if not 1 <= port <= 65535:
                raise ServerError(f"server setting {key}={port} is not a TCP port (1-65535)")
        if self.port == self.postgres.port:
            raise ServerError(f"server settings port and postgres.port are both {self.port}; give them two ports")
        if self.workers < 1:
            raise ServerError(f"server setting workers={self.workers} must be at least 1")
        if self.health_timeout_s <= 0:
            raise ServerError(f"server setting health_timeout_s={self.health_timeout_s} must be > 0")
        if self.auth.default_permission not in PERMISSIONS:
            raise ServerError(f"server setting auth.default_permission={self.auth.default_permission!r} "
                              f"is not one of {', '.join(PERMISSIONS)}")
        for key, name in (("postgres.database", self.postgres.database), ("postgres.user", self.postgres.user)):
            if not name.replace("_", "").isalnum() or not name[0].isalpha():
                raise ServerError(f"server setting {key}={name!r}: use letters, digits and _ (a letter first)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: whatever it resolves to, it was asked for explicitly
        return False


def _url_host(host: str) -> str:
    """The host as a client reaches it: a server bound to every interface is reached on loopback here."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _build(kind: type, values: Mapping[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(kind)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ServerError(f"server setting {prefix}{unknown[0]} is not a key of conf/server.yaml "
                          f"(keys: {', '.join(prefix + k for k in known)})")
    converted = {}
    for key, value in values.items():
        converted[key] = _convert(known[key].type, value, prefix + key)
    return kind(**converted)


def _convert(type_name: Any, value: Any, key: str) -> Any:
    converters = {"int": int, "float": float, "str": str, "Path": lambda v: Path(v).expanduser().resolve()}
    convert = converters.get(str(type_name))
    if convert is None:  # a nested settings object, built already
        return value
    if isinstance(value, bool) or (convert is int and isinstance(value, float)):
        raise ServerError(f"server setting {key}={value!r} must be {type_name}")
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise ServerError(f"server setting {key}={value!r} must be {type_name}") from None
