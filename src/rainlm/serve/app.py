"""``create_app``: the FastAPI application of ``rain serve`` (state lives on ``app.state``).

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /health``, ``GET /v1/rain/traces/{id}`` (JSON), ``GET /v1/rain/traces/{id}/html``
(the tree page), ``GET /review``, ``POST /v1/rain/reviews/{id}``, ``GET /openapi.json``
(``openapi.py``). Every error is in OpenAI's format (``errors.py``), except the 401 a
browser gets on an HTML page: a page saying how to pass the key.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

# This module is imported only to serve: the web framework is imported at the top so
# FastAPI can resolve the route signatures' annotations.
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rainlm.serve.engine import Engine, Job, JobFailed, NotReady, QueueFull, new_trace_id
from rainlm.serve.errors import ApiError, error_body
from rainlm.serve.openapi import openapi_schema
from rainlm.serve.refusals import Refusals
from rainlm.serve.responses import completion_body
from rainlm.serve.schemas import CHAT, COMPLETIONS, ParsedRequest, parse_body, parse_request
from rainlm.serve.settings import ServerSettings
from rainlm.serve.streaming import failure_body, start_stream, stream_job
from rainlm.trace.review_page import (TRACE_PAGE_SUFFIX, TRACES_PATH, render_key_hint_page,
                                      render_review_page)
from rainlm.trace.store import utc_now

__all__ = ["create_app"]

log = logging.getLogger("rainlm.serve")


REVIEW_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
              "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
              "frame-ancestors 'none'")
"""Content policy of the review page (and of every HTML page): its own inline script and
style, requests to this server only, never framed by another site."""


def _accepts_html(request: Request) -> bool:
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


def _is_page(request: Request) -> bool:
    """A read-only GET of an HTML page: ``/review`` or a trace's tree page."""
    path = request.url.path
    return request.method == "GET" and (
        path == "/review" or (path.startswith(TRACES_PATH) and path.endswith(TRACE_PAGE_SUFFIX)))


def create_app(settings: ServerSettings, *, backend: Any = None, store: Any = None,
               services: Any = None, on_ready: Callable[[], None] | None = None) -> Any:
    """Build the app. The model loads on the worker thread at startup (``/health`` says
    "loading" and requests get 503 until it is ready) unless ``backend`` is given.

    ``store``: a ``TraceStore`` (default: ``TraceStore(settings.db_path)``).
    ``services``: a ``rainlm.services.Services`` (how backend and embedder load).
    ``on_ready``: called (on the worker thread) once the model is loaded.
    """
    from rainlm.services import Services
    from rainlm.trace.store import TraceStore

    owns_store = store is None
    if store is None:
        store = TraceStore(settings.db_path)
    engine = Engine(settings, store)
    services = services if services is not None else Services()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start(services, backend, on_ready)
        try:
            yield
        finally:  # the running searches' records are written before the store closes
            engine.stop(settings.shutdown_timeout_s)
            if owns_store:
                store.close()

    app = FastAPI(title="rainlm", summary="OpenAI-compatible RAIN server", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.settings = settings
    app.state.store = store
    refusals = app.state.refusals = Refusals()

    # ------------------------------------------------------------------ errors
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Any:
        """The error as JSON; a browser opening a page without the key gets a page
        saying how to pass it (the key it sent is never shown)."""
        if exc.status == 401 and _is_page(request) and _accepts_html(request):
            return HTMLResponse(render_key_hint_page(request.url.path), status_code=401,
                                headers=exc.headers)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = (f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405)
                   else str(exc.detail))
        return JSONResponse(error_body(exc.status_code, message, code=code),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse(error_body(400, f"{param}: {first.get('msg', 'invalid request')}",
                                       param=param, code="invalid_value"), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("rain serve: unexpected error on %s", request.url.path)
        return JSONResponse(error_body(500, f"internal error: {type(exc).__name__}: {exc}",
                                       code="internal_error"), status_code=500)

    # ------------------------------------------------------------------ browsers
    hosts = {"127.0.0.1", "localhost", "::1", "[::1]", *settings.allowed_hosts}
    if settings.host not in ("0.0.0.0", "::"):
        hosts.add(settings.host)

    @app.middleware("http")
    async def _browser_safety(request: Request, call_next: Any) -> Any:
        """Host allow-list (DNS rebinding), JSON-only POSTs (no cross-site form or
        text/plain posts), and a strict content policy on every page."""
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

    # ------------------------------------------------------------------ auth
    def _authorize(request: Request) -> None:
        """Bearer key on every /v1 route and /review; ?key= only on read-only GETs the
        review page links to (/review and its trace links)."""
        key = settings.api_key
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

    auth = [Depends(_authorize)]

    # ------------------------------------------------------------------ routes
    @app.get("/health")
    def health() -> JSONResponse:
        """200 only when requests can be served (as vLLM's /health); 503 with the reason
        (loading, stopping, failed) before that, so probes send no traffic too early."""
        body = {**engine.health(), "refused": refusals.snapshot()}
        if body["status"] == "ok":
            return JSONResponse(body)
        why = {"loading": "the model is still loading",
               "stopping": "the server is shutting down"}.get(body["status"], body.get("error"))
        return JSONResponse({**body, "reason": why}, status_code=503,
                            headers={"Retry-After": str(settings.retry_after_s)})

    def served_names() -> list[str]:
        """The model names requests may use: the model's own and the alias "rain"."""
        return list(dict.fromkeys([engine.model_name, "rain"]))

    @app.get("/v1/models", dependencies=auth)
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                            "owned_by": "rainlm"} for name in served_names()]}

    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat_completions(request: Request) -> Any:
        return await _complete(request, CHAT)

    @app.post("/v1/completions", dependencies=auth)
    async def completions(request: Request) -> Any:
        return await _complete(request, COMPLETIONS)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        """The request contract (open, like /health: it holds no secret)."""
        return openapi_schema(settings, model_name="rain")

    async def read_body(request: Request) -> bytes:
        """The body, read chunk by chunk and no further than one chunk past the limit
        (``parse_body`` then answers 413), so an upload without Content-Length is never
        held whole."""
        chunks, size = [], 0
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > settings.max_body_bytes:
                break
        return b"".join(chunks)

    async def _complete(request: Request, endpoint: str) -> Any:
        arrived, created, created_at = time.perf_counter(), int(time.time()), utc_now()
        req = parse_request(parse_body(await read_body(request), settings), endpoint, settings)
        _ready_or_503()
        if req.model is not None and req.model not in served_names():
            raise ApiError(404, f"The model {req.model!r} does not exist on this server; use one "
                                f"of {served_names()} (GET /v1/models)", param="model",
                           code="model_not_found")
        await run_in_threadpool(_check_prompt_length, req)  # a long prompt never stalls the loop
        try:
            engine.admit()
        except QueueFull as exc:
            raise ApiError(429, f"the server is busy ({settings.queue_size} requests already "
                                f"wait); retry after {exc.retry_after_s} s",
                           code="queue_full",
                           headers={"Retry-After": str(exc.retry_after_s)}) from None
        except NotReady as exc:
            raise _not_ready(exc) from None
        job = Job(trace_id=new_trace_id(), request=req, created_at=created_at, created=created,
                  arrived=arrived)
        model = engine.model_name
        if req.stream:
            started = start_stream(engine, job)  # submitted now: the place is always released
            return StreamingResponse(stream_job(engine, job, model, started),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache",
                                              "X-Accel-Buffering": "no"})
        try:
            outcome = await engine.run(job)
        except JobFailed as exc:
            status, body = failure_body(exc)
            return JSONResponse(body, status_code=status)
        except NotReady as exc:
            raise _not_ready(exc) from None
        return JSONResponse(completion_body(outcome, endpoint, model, created))

    def _ready_or_503() -> None:
        try:
            engine.check_ready()
        except NotReady as exc:
            raise _not_ready(exc) from None

    def _not_ready(exc: NotReady) -> ApiError:
        what = {"loading": "the model is still loading", "stopping": "the server is shutting down",
                "failed": f"the model failed to load ({exc.detail})"}.get(exc.state, exc.state)
        return ApiError(503, f"{what}; retry later", code=f"model_{exc.state}",
                        headers={"Retry-After": str(settings.retry_after_s)})

    def _check_prompt_length(req: ParsedRequest) -> None:
        # The tokenizer only (no cache, no model), through the shared door's tokenizer lock.
        from rainlm.errors import ConfigError

        from rainlm.api import prompt_token_ids

        param = "prompt" if req.continuation else "messages"
        try:
            n = len(prompt_token_ids(engine.shared.client(), req.prompt, req.messages, req.continuation))
        except ConfigError as exc:  # e.g. the chat template rejects the conversation
            raise ApiError(400, f"{param}: {exc}", param=param, code="invalid_value") from None
        if n > settings.max_prompt_tokens:
            raise ApiError(400, f"{param}: the prompt is {n} tokens (as the model reads it); "
                                f"this server's limit is {settings.max_prompt_tokens} "
                                f"(--max-prompt-tokens)", param=param,
                           code="context_length_exceeded")

    @app.get("/v1/rain/traces/{trace_id}", dependencies=auth)
    def get_trace(trace_id: str) -> dict[str, Any]:
        return _record_or_404(lambda: store.get(trace_id), trace_id).to_dict()

    @app.get(TRACES_PATH + "{trace_id}" + TRACE_PAGE_SUFFIX, dependencies=auth,
             response_class=HTMLResponse)
    def get_trace_page(trace_id: str) -> HTMLResponse:
        """The record as the standalone tree page (``rain trace html``), read-only."""
        from rainlm.trace.render_html import render_tree_html

        record = _record_or_404(lambda: store.get(trace_id), trace_id)
        return HTMLResponse(render_tree_html(record))

    @app.get("/review", dependencies=auth, response_class=HTMLResponse)
    def review_page() -> HTMLResponse:
        return HTMLResponse(render_review_page(store.list(review_state="pending")))

    @app.post("/v1/rain/reviews/{trace_id}", dependencies=auth)
    async def post_review(trace_id: str, request: Request) -> dict[str, Any]:
        decision, note, reviewer = _review_body(parse_body(await read_body(request), settings))
        record = await run_in_threadpool(
            _record_or_404, lambda: store.decide(trace_id, decision, note=note,
                                                 reviewer=reviewer), trace_id)
        return record.to_dict()

    return app


def _review_body(body: dict[str, Any]) -> tuple[str, str | None, str | None]:
    for key in body:
        if key not in ("decision", "note", "reviewer"):
            raise ApiError(400, f"{key}: unrecognized field (decision, note, reviewer)",
                           param=key, code="unknown_parameter")
    decision = body.get("decision")
    if decision not in ("approved", "rejected"):
        raise ApiError(400, f"decision: must be 'approved' or 'rejected', got {decision!r}",
                       param="decision", code="invalid_value")
    out = [decision]
    for key in ("note", "reviewer"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise ApiError(400, f"{key}: must be a string or null", param=key,
                           code="invalid_type")
        out.append(value or None)
    return out[0], out[1], out[2]


def _record_or_404(fetch: Callable[[], Any], trace_id: str) -> Any:
    from rainlm.trace.store import ReviewStateError, TraceNotFoundError

    try:
        return fetch()
    except TraceNotFoundError:
        raise ApiError(404, f"no trace with id {trace_id!r} in the audit database",
                       param="trace_id", code="trace_not_found") from None
    except ReviewStateError as exc:
        raise ApiError(409, str(exc), param="trace_id", code="not_pending") from None

