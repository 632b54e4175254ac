"""The app's exception handlers: every error leaves in OpenAI's format (``errors.py``),
except the 401 a browser gets on an HTML page: a page saying how to pass the key."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rainlm.serve.errors import ApiError, error_body
from rainlm.trace.review_page import TRACE_PAGE_SUFFIX, TRACES_PATH, render_key_hint_page

__all__ = ["install_error_handlers", "is_page"]

log = logging.getLogger("rainlm.serve")


def accepts_html(request: Request) -> bool:
    """The client asks for a page: its Accept header lists ``text/html`` (q > 0), as a
    browser's navigation does (API clients send ``application/json`` or ``*/*``)."""
    for part in request.headers.get("accept", "").split(","):
        kind, *params = (p.strip().lower() for p in part.split(";"))
        if kind != "text/html":
            continue
        q = next((v for n, _, v in (p.partition("=") for p in params) if n.strip() == "q"), "1")
        try:
            return float(q) > 0
        except ValueError:
            return False
    return False


def is_page(request: Request) -> bool:
    """A read-only GET of an HTML page: ``/review`` or a trace's tree page."""
    path = request.url.path
    return request.method == "GET" and (
        path == "/review" or (path.startswith(TRACES_PATH) and path.endswith(TRACE_PAGE_SUFFIX)))


async def _api_error(request: Request, exc: ApiError) -> Any:
    """The error as JSON; a browser opening a page without the key gets a page saying how
    to pass it (the key it sent is never shown)."""
    if exc.status == 401 and is_page(request) and accepts_html(request):
        return HTMLResponse(render_key_hint_page(request.url.path), status_code=401,
                            headers=exc.headers)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = (f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405)
               else str(exc.detail))
    return JSONResponse(error_body(exc.status_code, message, code=code),
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    return JSONResponse(error_body(400, f"{param}: {first.get('msg', 'invalid request')}",
                                   param=param, code="invalid_value"), status_code=400)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("rain serve: unexpected error on %s", request.url.path)
    return JSONResponse(error_body(500, f"internal error: {type(exc).__name__}: {exc}",
                                   code="internal_error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer ``ApiError``, unknown routes, FastAPI's own validation errors and any
    unexpected failure in OpenAI's error format."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
