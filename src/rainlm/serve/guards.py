"""What every request passes before a route: the Host allow-list (DNS rebinding),
JSON-only POSTs (no cross-site form or text/plain posts), a strict content policy on
every page, the count of refused requests, and the API key (``authorize``)."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from rainlm.serve.errors import ApiError, error_body
from rainlm.serve.refusals import Refusals
from rainlm.serve.settings import ServerSettings

__all__ = ["AUTH", "REVIEW_CSP", "authorize", "install_guards", "read_body"]

REVIEW_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
              "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
              "frame-ancestors 'none'")
"""Content policy of the review page (and of every HTML page): its own inline script and
style, requests to this server only, never framed by another site."""


def allowed_hosts(settings: ServerSettings) -> set[str]:
    """Host names requests may address: this machine's, ``--allowed-host`` ones, and the
    bound address unless it is a wildcard."""
    hosts = {"127.0.0.1", "localhost", "::1", "[::1]", *settings.allowed_hosts}
    if settings.host not in ("0.0.0.0", "::"):
        hosts.add(settings.host)
    return hosts


def install_guards(app: FastAPI, settings: ServerSettings, refusals: Refusals) -> None:
    """Add the browser-safety and refusal-counting middleware to ``app``."""
    hosts = allowed_hosts(settings)

    @app.middleware("http")
    async def _browser_safety(request: Request, call_next: Any) -> Any:
        """Host allow-list, JSON-only POSTs, and the content policy on every page."""
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if name not in hosts:
            return JSONResponse(error_body(400, f"Host {host!r} is not allowed; this server answers "
                                                f"{sorted(hosts)} (start it with --allowed-host "
                                                f"NAME to add one)", code="invalid_host"),
                                status_code=400)
        has_body = request.headers.get("content-length", "0") != "0" or \
            "transfer-encoding" in request.headers
        if request.method == "POST" and has_body:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return JSONResponse(error_body(415, f"Content-Type must be application/json, got "
                                                    f"{kind or 'none'!r}", code="unsupported_media_type"),
                                    status_code=415)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.url.path == "/review" or \
                response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Content-Security-Policy"] = REVIEW_CSP
            response.headers["X-Frame-Options"] = "DENY"
        return response

    @app.middleware("http")
    async def _count_refusals(request: Request, call_next: Any) -> Any:
        """Count every 4xx answer, including the ones ``_browser_safety`` gives (this
        middleware is added last, so it runs outermost)."""
        response = await call_next(request)
        refusals.note(request.method, request.url.path, response.status_code)
        return response


def authorize(request: Request) -> None:
    """Bearer key on every /v1 route and /review; ?key= only on read-only GETs the
    review page links to (/review and its trace links)."""
    key = request.app.state.settings.api_key
    if key is None:
        return
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else None
    if given is None and request.method == "GET" and (
            request.url.path == "/review" or request.url.path.startswith("/v1/rain/traces/")):
        given = request.query_params.get("key")
    if given is None or not hmac.compare_digest(given.encode(), key.encode()):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer KEY' "
                            "(the key rain serve was started with)",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


AUTH = [Depends(authorize)]
"""The dependency list of every route that needs the key."""


async def read_body(request: Request) -> bytes:
    """The body, read chunk by chunk and no further than one chunk past the limit
    (``parse_body`` then answers 413), so an upload without Content-Length is never held
    whole."""
    limit = request.app.state.settings.max_body_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)
