"""The audit routes: ``GET /v1/rain/traces/{id}`` (the record as JSON),
``GET /v1/rain/traces/{id}/html`` (the tree page), ``GET /review`` (the human review
page), ``POST /v1/rain/reviews/{id}`` (a reviewer's decision), and the review queue
several reviewers share: ``GET /v1/rain/review-queue`` (its counts, read from the store,
so every replica answers the same) and ``POST /v1/rain/review-queue/next`` (the oldest
pending record nobody holds, now held for the reviewer). The store is
``app.state.store``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from rainlm.serve.errors import ApiError
from rainlm.serve.guards import AUTH, read_body
from rainlm.serve.schemas import parse_body
from rainlm.trace.review_page import TRACE_PAGE_SUFFIX, TRACES_PATH, render_review_page

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/rain/traces/{trace_id}", dependencies=AUTH)
def get_trace(trace_id: str, request: Request) -> dict[str, Any]:
    store = request.app.state.store
    return _record_or_404(lambda: store.get(trace_id), trace_id).to_dict()


@router.get(TRACES_PATH + "{trace_id}" + TRACE_PAGE_SUFFIX, dependencies=AUTH,
            response_class=HTMLResponse)
def get_trace_page(trace_id: str, request: Request) -> HTMLResponse:
    """The record as the standalone tree page (``rain trace html``), read-only."""
    from rainlm.trace.render_html import render_tree_html

    store = request.app.state.store
    return HTMLResponse(render_tree_html(_record_or_404(lambda: store.get(trace_id), trace_id)))


@router.get("/review", dependencies=AUTH, response_class=HTMLResponse)
def review_page(request: Request, trace: str | None = None) -> HTMLResponse:
    """The 50 newest answers awaiting review; ``?trace=ID`` puts that pending one on top
    (where "Take next" sends a reviewer whose answer is older than those shown)."""
    from rainlm.trace.store import TraceNotFoundError

    store = request.app.state.store
    records = store.list(review_state="pending")
    if trace is not None and all(r.id != trace for r in records):
        try:
            wanted = store.get(trace)
        except TraceNotFoundError:
            wanted = None
        if wanted is not None and wanted.review_state == "pending":
            records = [wanted, *records]
    return HTMLResponse(render_review_page(records, holds=store.holds([r.id for r in records]),
                                           counts=store.review_counts()))


@router.get("/v1/rain/review-queue", dependencies=AUTH)
def review_queue(request: Request) -> dict[str, Any]:
    """The queue's counts: pending (and held), approved, rejected, none."""
    return {"object": "rain.review_queue", **request.app.state.store.review_counts()}


@router.post("/v1/rain/review-queue/next", dependencies=AUTH)
async def review_queue_next(request: Request) -> dict[str, Any]:
    """``{"reviewer": NAME, "hold_s": SECONDS}`` -> ``{"record": RECORD | null}``."""
    from rainlm.trace.store import DEFAULT_HOLD_S

    store = request.app.state.store
    body = parse_body(await read_body(request), request.app.state.settings)
    for key in body:
        if key not in ("reviewer", "hold_s"):
            raise ApiError(400, f"{key}: unrecognized field (reviewer, hold_s)", param=key,
                           code="unknown_parameter")
    reviewer = body.get("reviewer")
    if not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > 200:
        raise ApiError(400, "reviewer: must name the reviewer (a string of 1-200 characters)",
                       param="reviewer", code="invalid_value")
    hold_s = body.get("hold_s", DEFAULT_HOLD_S)
    if isinstance(hold_s, bool) or not isinstance(hold_s, (int, float)) or not (
            0 < hold_s <= 86_400):
        raise ApiError(400, "hold_s: must be seconds in (0, 86400]", param="hold_s",
                       code="invalid_value")
    record = await run_in_threadpool(store.claim_next, reviewer, hold_s=float(hold_s))
    return {"object": "rain.review_claim", "record": None if record is None else record.to_dict()}


@router.post("/v1/rain/reviews/{trace_id}", dependencies=AUTH)
async def post_review(trace_id: str, request: Request) -> dict[str, Any]:
    store = request.app.state.store
    body = parse_body(await read_body(request), request.app.state.settings)
    decision, note, reviewer = _review_body(body)
    record = await run_in_threadpool(
        _record_or_404, lambda: store.decide(trace_id, decision, note=note,
                                             reviewer=reviewer), trace_id)
    return record.to_dict()


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
