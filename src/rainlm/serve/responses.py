"""Response bodies in OpenAI's schemas, plus the ``rain`` object. Pure functions."""

from __future__ import annotations

from typing import Any

from rainlm.serve.engine import JobOutcome
from rainlm.serve.schemas import CHAT

__all__ = ["openai_finish_reason", "rain_object", "usage_of", "completion_body"]

_FINISH = {"eos": "stop", "stop_string": "stop", "length": "length", "time_budget": "length",
           "search_budget": "length", "stopped": "abort"}


def openai_finish_reason(reason: str, *, refused: bool = False) -> str:
    """A finish_reason the openai client accepts.

    eos/stop_string -> "stop"; length/time_budget -> "length" (the answer was cut);
    a search the server stopped (shutting down) -> "abort" (vLLM's value for an aborted
    request: the answer is cut short, not at ``max_tokens``); an answer the fail-safe
    replaced -> "content_filter". The precise reason is in ``rain.finish_reason``.
    """
    if refused:
        return "content_filter"
    return _FINISH.get(reason, "stop")


def rain_object(outcome: JobOutcome) -> dict[str, Any]:
    """What RAIN adds to a response: trace id, search stats, score, policy, review state."""
    rec = outcome.record
    stats = rec.stats
    policy = rec.policy
    return {
        "trace_id": rec.id,
        "finish_reason": rec.finish_reason,
        "method": "rain" if rec.config is not None else "greedy",
        "preset": (rec.config or {}).get("preset_name"),
        "seed": rec.seed,
        "stats": {"searches": stats.get("searches", 0), "steps": stats.get("steps", 0),
                  "wall_time_s": stats.get("wall_time_s"),
                  "budget_exhausted": bool(stats.get("budget_exhausted", False)),
                  "greedy_tail_tokens": stats.get("greedy_tail_tokens", 0),
                  "greedy_tail_cut": bool(stats.get("greedy_tail_cut", False)),
                  "accepted": stats.get("accepted"),
                  "answer_value": stats.get("answer_value"),
                  "simulated_answer_tokens": stats.get("simulated_answer_tokens", 0),
                  "answer_tokens": stats.get("answer_tokens"),
                  "queue_s": stats.get("queue_s"), "total_s": stats.get("total_s")},
        "score": rec.scores.get("value"),
        "scores": dict(rec.scores),
        "policy": None if policy is None else {
            "policy": policy.policy, "threshold": policy.threshold, "score": policy.score,
            "action": policy.action},
        "review_state": rec.review_state,
    }


def usage_of(outcome: JobOutcome) -> dict[str, int]:
    return {"prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens}


def completion_body(outcome: JobOutcome, endpoint: str, model: str, created: int) -> dict[str, Any]:
    """The whole (non-streaming) response of either endpoint."""
    finish = openai_finish_reason(outcome.record.finish_reason, refused=outcome.refused)
    if endpoint == CHAT:
        obj = "chat.completion"
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant",
                                                          "content": outcome.text},
                                  "logprobs": None, "finish_reason": finish}
    else:
        obj = "text_completion"
        choice = {"index": 0, "text": outcome.text, "logprobs": None, "finish_reason": finish}
    return {"id": outcome.record.id, "object": obj, "created": created, "model": model,
            "choices": [choice], "usage": usage_of(outcome), "rain": rain_object(outcome)}
