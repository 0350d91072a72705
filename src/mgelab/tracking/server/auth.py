"""Optional basic auth of the team server: MLflow's own ``basic-auth`` app.

On when ``MGELAB_SERVER_ADMIN_USER`` and ``MGELAB_SERVER_ADMIN_PASSWORD`` are both set for ``start``;
nothing of it is ever in a config file of the project. ``start`` writes the app's configuration
(``MLFLOW_AUTH_CONFIG_PATH``) under the state dir, mode 600: the default permission, the admin's name
and the user database (a second database of the same PostgreSQL cluster). The admin password reaches
the server process only through its environment (MLflow's ``MLFLOW_AUTH_ADMIN_PASSWORD``), so it is
not stored anywhere on disk by mgelab; MLflow keeps only its hash. Clients sign in with MLflow's own
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional

from mgelab.tracking.server.processes import ServerError, write_private

USER_ENV = "MGELAB_SERVER_ADMIN_USER"
PASSWORD_ENV = "MGELAB_SERVER_ADMIN_PASSWORD"
# MLflow's basic-auth app refuses to start without a static secret for its CSRF tokens.
SECRET_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"
APP_NAME = "basic-auth"
CONFIG_NAME = "basic_auth.ini"


@dataclass(frozen=True)
class AdminCredentials:
    user: str
    password: str


def admin_from_env(env: Mapping[str, str] = os.environ) -> Optional[AdminCredentials]:
    """The admin's credentials when auth is asked for, None when it is not; half of them is an error."""
    user, password = env.get(USER_ENV, ""), env.get(PASSWORD_ENV, "")
    if not user and not password:
        return None
    if not user or not password:
        missing = USER_ENV if not user else PASSWORD_ENV
        raise ServerError(f"basic auth needs both {USER_ENV} and {PASSWORD_ENV}; {missing} is not set")
    return AdminCredentials(user, password)


def check_app_installed() -> None:
    """MLflow's basic-auth app needs its ``auth`` extra (Flask-WTF, for CSRF); without it the server
    would die at start with an ImportError in its log."""
    if importlib.util.find_spec("flask_wtf") is None:
        raise ServerError("basic auth (MGELAB_SERVER_ADMIN_USER/PASSWORD set) needs MLflow's auth extra, which is "
                          "not installed: pip install 'mlflow[auth]' (it adds Flask-WTF), or unset those variables")


def write_config(auth_dir: Path, admin: AdminCredentials, database_uri: str, default_permission: str) -> Path:
    """The basic-auth app's configuration (no password in it), readable by its owner only."""
    auth_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = auth_dir / CONFIG_NAME
    write_private(path, "[mlflow]\n"
                         f"default_permission = {default_permission}\n"
                         f"database_uri = {database_uri}\n"
                         f"admin_username = {admin.user}\n"
                         "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return path


def server_env(auth_dir: Path, admin: AdminCredentials, config: Path) -> Dict[str, str]:
    """What the MLflow server's environment needs for the auth app. The CSRF secret is the user's
    ``MLFLOW_FLASK_SERVER_SECRET_KEY``, else one generated once and kept (mode 600), so sign-ins
    outlive a restart."""
    secret = os.environ.get(SECRET_ENV) or _kept_secret(auth_dir / "flask_secret")
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_USERNAME": admin.user,
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin.password, SECRET_ENV: secret}


def _kept_secret(path: Path) -> str:
    if path.is_file():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    write_private(path, secret + "\n")
    return secret
