"""Is the tracking server there? Asked once before a run records anything, answered within seconds.

MLflow's own client retries an unanswered request for about four minutes (its default HTTP retry
settings) and then raises a bare ``MlflowException``; a run pointed at a server that is not running
should instead stop at once and say what to do. Only ``http(s)://`` stores can be away: a SQLite or
file store is a local path, and the check does nothing for them.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import List, Optional, Tuple
from urllib.parse import urlparse

# The whole check, every attempt included; well inside the 15 s a user waits at most.
CHECK_TIMEOUT_S = 10.0
CHECK_ATTEMPTS = 3
CHECK_PAUSE_S = 1.0
# Asked when /health is not found, for a proxy that passes on the API only.
API_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"
NOT_MLFLOW = "no MLflow tracking server there (check the host, port and path of the URI)"
# MLflow's settings for its own HTTP calls, named in the message for servers that are slow, not away.
MLFLOW_HTTP_SETTINGS = ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")


class TrackingUnavailable(RuntimeError):
    """The tracking server at a URI does not answer; the message lists the ways out."""

    def __init__(self, tracking_uri: str, reason: str) -> None:
        self.tracking_uri, self.reason = tracking_uri, reason
        super().__init__(unavailable_message(tracking_uri, reason))

    def __reduce__(self):
        # A joblib job's exception travels back from its worker pickled: rebuilt from its own arguments
        # (the default would call __init__ with the message alone, and the broken unpickling takes the pool down).
        return type(self), (self.tracking_uri, self.reason)


def is_remote(tracking_uri: str) -> bool:
    return urlparse(tracking_uri).scheme in ("http", "https")


def unavailable_message(tracking_uri: str, reason: str) -> str:
    parsed = urlparse(tracking_uri)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or (443 if parsed.scheme == "https" else 80)
    return (
        f"The MLflow tracking server at {tracking_uri} cannot be reached ({reason}). Ways out:\n"
        f"  - start it, e.g. `mlflow server --host {host} --port {port}`, and run the command again;\n"
        f"  - train without tracking: add logger=none;\n"
        f"  - use the default SQLite store under outputs/: drop logger.tracking_uri=... from the command "
        f"and unset MLFLOW_TRACKING_URI;\n"
        f"  - a server that is up but slow: MLflow's HTTP retry settings ({', '.join(MLFLOW_HTTP_SETTINGS)}) "
        f"set how long its calls wait and how often they retry."
    )


def check_tracking_uri(tracking_uri: str, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Return when the store at ``tracking_uri`` can be used; raise ``TrackingUnavailable`` within
    ``timeout_s`` when its server does not answer. Local stores (sqlite, file) pass at once."""
    if not is_remote(tracking_uri):
        return
    base = tracking_uri.rstrip("/")
    started = time.monotonic()
    deadline = started + timeout_s
    failures: List[str] = []
    for attempt in range(CHECK_ATTEMPTS):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        failure = _probe(base, min(remaining, timeout_s / CHECK_ATTEMPTS))
        if failure is None:
            return
        failures.append(failure)
        if failure.endswith(NOT_MLFLOW):
            break  # something answers, and asking again will not make it an MLflow server
        if attempt + 1 < CHECK_ATTEMPTS:
            time.sleep(max(0.0, min(CHECK_PAUSE_S, deadline - time.monotonic())))
    elapsed = time.monotonic() - started
    tries = f"{len(failures)} attempt{'s' if len(failures) > 1 else ''}"
    raise TrackingUnavailable(tracking_uri, f"{failures[-1]}; {tries} in {elapsed:.1f} s")


def _probe(base: str, timeout_s: float) -> Optional[str]:
    """None when an MLflow server answered, else what went wrong. Run in a thread joined with a
    timeout, since a name lookup is not bounded by the socket's timeout."""
    outcome: List[Optional[str]] = [f"GET {base}/health: no answer within {timeout_s:.1f} s"]

    def ask() -> None:
        outcome[0] = _ask(base, timeout_s)

    worker = threading.Thread(target=ask, name="tracking-uri-check", daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
    return outcome[0]


def _ask(base: str, timeout_s: float) -> Optional[str]:
    status, failure = _get(f"{base}/health", timeout_s)
    if status == 404:  # a proxy may pass on the API only
        status, failure = _get(f"{base}{API_PROBE}", timeout_s)
        if status == 404:
            return f"GET {base}/health and {base}{API_PROBE}: HTTP 404, {NOT_MLFLOW}"
    return failure


def _get(url: str, timeout_s: float) -> Tuple[Optional[int], Optional[str]]:
    """The HTTP status (None: no answer) and, when the server is not usable, why."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return answer.status, None
    except urllib.error.HTTPError as exc:
        # Below 500 a server is there (401/403: one that wants the credentials MLflow's calls
        # carry); 5xx is a proxy whose server behind it is down.
        return exc.code, None if exc.code < 500 else f"GET {url}: HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return None, f"GET {url}: {exc.reason}"
    except OSError as exc:  # timeouts and resets while reading the answer
        return None, f"GET {url}: {exc or type(exc).__name__}"
