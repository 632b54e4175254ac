"""TraceRecords built from answers: the server's requests, the CLI's answers, and the
trace JSON files ``rain generate --trace`` writes — one shape for the audit trail."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rainlm.errors import RainError
from rainlm.jsonable import json_ready
from rainlm.trace.records import PolicyDecision, TraceRecord

__all__ = ["new_trace_id", "record_from_result", "record_from_trace_file"]


def new_trace_id() -> str:
    """An opaque record id: ``tr_`` + 24 hex digits."""
    return "tr_" + uuid.uuid4().hex[:24]


def record_from_result(result: Any, *, trace_id: str, created_at: str, endpoint: str,
                       request: dict[str, Any], detokenize: Any, scores: dict[str, Any],
                       answer: str | None = None, model: str | None = None,
                       stats: dict[str, Any] | None = None,
                       policy: PolicyDecision | None = None,
                       review_state: str = "none") -> TraceRecord:
    """The audit record of one answer (a ``GenerationResult`` of RAIN or greedy).

    ``answer``: the text the user received (default the result's); ``model``: the name
    to record (default the result's); ``stats``: the result's stats plus the caller's
    own timings."""
    rain = result.method == "rain"
    return TraceRecord(
        id=trace_id, created_at=created_at, endpoint=endpoint, request=request,
        model=result.model if model is None else model, config=json_ready(result.config.to_dict()) if rain else None,
        seed=result.seed if rain else None,
        answer=result.text if answer is None else answer, finish_reason=result.finish_reason,
        scores=scores, stats=json_ready(stats if stats is not None else result.stats),
        trace=json_ready(result.trace(detokenize)), policy=policy, review_state=review_state)


def record_from_trace_file(path: str | Path) -> TraceRecord:
    """A record to show from a trace JSON file (``rain generate --trace FILE``)."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RainError(f"cannot read the trace file {path}: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("tree"), dict):
        raise RainError(f"{path} is not a trace file written by `rain generate --trace` "
                        "(no search tree in it)")
    mtime = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    scores = (payload.get("final_evaluations") or {}).get("rain") or {}
    return TraceRecord(
        id=path.name, created_at=mtime.isoformat(timespec="seconds"),
        endpoint="rain generate --trace", request={"messages": payload.get("messages", [])},
        model=str(payload.get("model", "?")), config=payload.get("config"),
        seed=payload.get("seed"), answer=str(payload.get("text", "")),
        finish_reason=str(payload.get("finish_reason", "?")),
        scores={"value": scores.get("score"), "paper_vote": scores.get("paper_vote"),
                "scoring": "continuous", "rubric": scores.get("rubric")} if scores else {},
        stats=payload.get("stats") or {}, trace=payload)
