"""The OpenAI-compatible routes: ``POST /v1/chat/completions``, ``POST /v1/completions``,
``GET /v1/models``, and the open ``GET /health`` and ``GET /openapi.json``. Each reads
the server's state (settings, engine, refusal counts) from ``app.state``."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rainlm.serve.engine import Engine, Job, JobFailed, NotReady, QueueFull, new_trace_id
from rainlm.serve.errors import ApiError, failure_body
from rainlm.serve.guards import AUTH, read_body
from rainlm.serve.openapi import openapi_schema
from rainlm.serve.responses import completion_body
from rainlm.serve.schemas import CHAT, COMPLETIONS, ParsedRequest, parse_body, parse_request
from rainlm.serve.settings import ServerSettings
from rainlm.serve.streaming import start_stream, stream_job
from rainlm.trace.store import utc_now

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _settings(request: Request) -> ServerSettings:
    return request.app.state.settings


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """200 only when requests can be served (as vLLM's /health); 503 with the reason
    (loading, stopping, failed) before that, so probes send no traffic too early."""
    body = {**_engine(request).health(), "refused": request.app.state.refusals.snapshot()}
    if body["status"] == "ok":
        return JSONResponse(body)
    why = {"loading": "the model is still loading",
           "stopping": "the server is shutting down"}.get(body["status"], body.get("error"))
    return JSONResponse({**body, "reason": why}, status_code=503,
                        headers={"Retry-After": str(_settings(request).retry_after_s)})


def served_names(engine: Engine) -> list[str]:
    """The model names requests may use: the model's own and the alias "rain"."""
    return list(dict.fromkeys([engine.model_name, "rain"]))


@router.get("/v1/models", dependencies=AUTH)
def models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                        "owned_by": "rainlm"}
                                       for name in served_names(_engine(request))]}


@router.post("/v1/chat/completions", dependencies=AUTH)
async def chat_completions(request: Request) -> Any:
    return await _complete(request, CHAT)


@router.post("/v1/completions", dependencies=AUTH)
async def completions(request: Request) -> Any:
    return await _complete(request, COMPLETIONS)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> dict[str, Any]:
    """The request contract (open, like /health: it holds no secret)."""
    return openapi_schema(_settings(request), model_name="rain")


async def _complete(request: Request, endpoint: str) -> Any:
    engine, settings = _engine(request), _settings(request)
    arrived, created, created_at = time.perf_counter(), int(time.time()), utc_now()
    req = parse_request(parse_body(await read_body(request), settings), endpoint, settings)
    try:
        engine.check_ready()
    except NotReady as exc:
        raise not_ready(exc, settings) from None
    if req.model is not None and req.model not in served_names(engine):
        raise ApiError(404, f"The model {req.model!r} does not exist on this server; use one "
                            f"of {served_names(engine)} (GET /v1/models)", param="model",
                       code="model_not_found")
    # the tokenizer on a worker thread: a long prompt never stalls the event loop
    await run_in_threadpool(_check_prompt_length, req, engine, settings)
    try:
        engine.admit()
    except QueueFull as exc:
        raise ApiError(429, f"the server is busy ({settings.queue_size} requests already "
                            f"wait); retry after {exc.retry_after_s} s",
                       code="queue_full",
                       headers={"Retry-After": str(exc.retry_after_s)}) from None
    except NotReady as exc:
        raise not_ready(exc, settings) from None
    job = Job(trace_id=new_trace_id(), request=req, created_at=created_at, created=created,
              arrived=arrived)
    # the record exists before the search starts and before any byte is sent
    opening = asyncio.ensure_future(run_in_threadpool(engine.open_record, job))
    try:
        await asyncio.shield(opening)
    except asyncio.CancelledError:  # the client went away: free the place, say so on record
        opening.add_done_callback(lambda done: engine.abandon(job, done))
        raise
    except Exception as exc:
        log.exception("rain serve: could not write the audit record of %s", job.trace_id)
        raise ApiError(503, f"the audit trail cannot be written ({type(exc).__name__}); the "
                            f"request was not run; retry later", code="audit_unavailable",
                       headers={"Retry-After": str(settings.retry_after_s)}) from None
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
        raise not_ready(exc, settings) from None
    return JSONResponse(completion_body(outcome, endpoint, model, created))


def not_ready(exc: NotReady, settings: ServerSettings) -> ApiError:
    """503 saying why (loading, stopping, failed), with Retry-After."""
    what = {"loading": "the model is still loading", "stopping": "the server is shutting down",
            "failed": f"the model failed to load ({exc.detail})"}.get(exc.state, exc.state)
    return ApiError(503, f"{what}; retry later", code=f"model_{exc.state}",
                    headers={"Retry-After": str(settings.retry_after_s)})


def _check_prompt_length(req: ParsedRequest, engine: Engine, settings: ServerSettings) -> None:
    """400 for a prompt longer than ``max_prompt_tokens`` as the model reads it. The
    tokenizer only (no cache, no model), through the shared backend's tokenizer lock."""
    from rainlm.api import prompt_token_ids
    from rainlm.errors import ConfigError

    continuation = req.params.continuation
    param = "prompt" if continuation else "messages"
    try:
        n = len(prompt_token_ids(engine.shared.client(), req.prompt, req.messages, continuation))
    except ConfigError as exc:  # e.g. the chat template rejects the conversation
        raise ApiError(400, f"{param}: {exc}", param=param, code="invalid_value") from None
    if n > settings.max_prompt_tokens:
        raise ApiError(400, f"{param}: the prompt is {n} tokens (as the model reads it); "
                            f"this server's limit is {settings.max_prompt_tokens} "
                            f"(--max-prompt-tokens)", param=param,
                       code="context_length_exceeded")
