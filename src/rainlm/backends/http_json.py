"""A small JSON-over-HTTP client with timeouts, bounded retries and keep-alive.

Standard library only (``http.client``): one persistent connection per thread, so the
backend's thread pool sends requests concurrently without a connection-pool package.

Failure policy (every request is bounded in time):

* connection refused/reset, a dropped keep-alive connection, HTTP 429 and 5xx are
  retried ``max_retries`` times with exponential back-off ``backoff_s * 2**attempt``
  (a ``Retry-After`` header, in seconds, replaces the back-off, capped at
  ``max_retry_after_s``); then ``BackendError(retryable=True)``;
* a request that gets no answer within ``timeout_s`` is NOT retried (an engine that
  hangs should surface promptly): ``BackendError(retryable=True)`` at once;
* any other 4xx is ``HttpStatusError`` (the caller turns it into a non-retryable
  ``BackendError`` carrying the engine's own message).

Worst case for a dead engine with the defaults (0.5 s back-off, 3 retries): about
0.5 + 1 + 2 = 3.5 s of back-off plus three refused connects.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from rainlm.errors import BackendError, ConfigError

__all__ = ["HttpStatusError", "JsonHttp", "RetryPolicy"]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_DROPPED = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine,
            http.client.IncompleteRead, BrokenPipeError, OSError)


class HttpStatusError(Exception):
    """The engine answered with an HTTP error status that is not worth retrying."""

    def __init__(self, status: int, message: str, url: str):
        super().__init__(f"HTTP {status} from {url}: {message}")
        self.status = status
        self.message = message
        self.url = url


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for, and how often to retry, one request."""

    timeout_s: float = 30.0
    """Socket timeout of one attempt (connect and each read), in seconds."""
    max_retries: int = 3
    """Extra attempts after the first for connection errors, 429 and 5xx."""
    backoff_s: float = 0.5
    """First back-off in seconds; doubles after each failed attempt."""
    max_retry_after_s: float = 10.0
    """Cap on a server's Retry-After, so a busy engine cannot stall the search for long."""


def _error_message(raw: bytes) -> str:
    """The engine's own error text from an OpenAI-style (or FastAPI) error body."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace").strip()[:500] or "(empty body)"
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body.get("message", body)))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:1000]
    return str(body)[:1000]


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (HTTP-dates are ignored: back-off is used)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class JsonHttp:
    """POST/GET JSON to one server; thread-safe (a connection per thread)."""

    def __init__(self, base_url: str, *, api_key: str | None = None,
                 policy: RetryPolicy = RetryPolicy()):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("base_url", f"must look like http://HOST:PORT/v1; got {base_url!r}.")
        self.base_url = base_url.rstrip("/")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")  # e.g. "/v1"
        self.policy = policy
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._local = threading.local()

    # ------------------------------------------------------------------ plumbing
    def url_of(self, path: str) -> str:
        """Full URL of ``path``: relative to base_url, or to the origin if it starts with /."""
        return self.origin + self._path_of(path)

    def _path_of(self, path: str) -> str:
        return path if path.startswith("/") else f"{self._prefix}/{path}"

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection and whether it was just created."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, False
        cls = (http.client.HTTPSConnection if self._scheme == "https"
               else http.client.HTTPConnection)
        conn = cls(self._host, self._port, timeout=self.policy.timeout_s)
        self._local.conn = conn
        return conn, True

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._drop_connection()

    def _once(self, method: str, path: str, payload: bytes | None):
        """One attempt: (status, response, body bytes). Raises on socket errors.

        A kept-alive connection the server has closed meanwhile (idle timeout) fails on
        first use: that is retried at once on a fresh connection, not counted as a failure.
        """
        while True:
            conn, fresh = self._connection()
            try:
                conn.request(method, self._path_of(path), body=payload, headers=self._headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (TimeoutError, socket.timeout):
                self._drop_connection()
                raise
            except _DROPPED:
                self._drop_connection()
                if fresh:
                    raise
            except BaseException:
                self._drop_connection()
                raise
        if resp.getheader("Connection", "").lower() == "close":
            self._drop_connection()
        return resp.status, resp, raw

    # ------------------------------------------------------------------ API
    def request(self, method: str, path: str, body: dict | None = None, *,
                probe: bool = False) -> dict:
        """Send one JSON request and return the decoded JSON answer.

        ``probe=True``: one attempt, and any HTTP error status (5xx included) raises
        HttpStatusError, because the status is the answer (e.g. "are token ids accepted?").
        Connection failures still raise BackendError.
        """
        pol = self.policy
        retries = 0 if probe else pol.max_retries
        payload = None if body is None else json.dumps(body).encode("utf-8")
        url = self.url_of(path)
        start = time.monotonic()
        last = ""
        for attempt in range(retries + 1):
            wait = pol.backoff_s * (2 ** attempt)
            try:
                status, resp, raw = self._once(method, path, payload)
            except (TimeoutError, socket.timeout) as exc:
                raise BackendError(
                    f"The engine at {url} did not answer within {pol.timeout_s:g} s "
                    f"(timeout_s). Check that it is not overloaded or stuck, or raise "
                    f"timeout_s.", retryable=True) from exc
            except _DROPPED as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if status < 400:
                    try:
                        return json.loads(raw)
                    except ValueError as exc:
                        raise BackendError(
                            f"The engine at {url} answered HTTP {status} with a body that "
                            f"is not JSON: {raw[:200]!r}. Is base_url the engine's "
                            f"OpenAI-compatible API (ending in /v1)?") from exc
                message = _error_message(raw)
                if status not in _RETRY_STATUS or probe:
                    raise HttpStatusError(status, message, url)
                last = f"HTTP {status}: {message}"
                hinted = _retry_after(resp.getheader("Retry-After"))
                if hinted is not None:
                    wait = min(hinted, pol.max_retry_after_s)
            if attempt < retries:
                time.sleep(wait)
        elapsed = time.monotonic() - start
        raise BackendError(
            f"The engine at {url} failed {retries + 1} attempt(s) over {elapsed:.1f} s "
            f"({last}). Check that the server is running and reachable at that address "
            f"(e.g. `scripts/engine_server start`), and that base_url is right.",
            retryable=True)
