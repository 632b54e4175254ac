"""What the audit trail stores about one request: plain, JSON-ready records.

The server builds a ``TraceRecord`` per request and hands it to ``TraceStore.record``
(one SQLite transaction, so a record is either complete or absent). The CLI
(``rain trace``, ``rain review``) and the server's ``/v1/rain/traces/{id}`` and
``/review`` read them back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["TraceRecord", "ReviewDecision", "PolicyDecision", "REVIEW_STATES", "STARTED",
           "INTERRUPTED"]

ReviewState = Literal["none", "pending", "approved", "rejected"]
REVIEW_STATES: tuple[str, ...] = ("none", "pending", "approved", "rejected")
STARTED = "started"
"""``finish_reason`` of a request's record while it runs: written before its search starts
and before any byte of its answer leaves the server; completed when the answer ends."""
INTERRUPTED = "interrupted"
"""``finish_reason`` of a "started" record whose server died; set when it restarts."""


@dataclass(frozen=True)
class PolicyDecision:
    """What the fail-safe did with the final answer."""

    policy: Literal["refuse", "flag", "pass"]
    """The policy in force for this request."""
    threshold: float
    """Answers whose self-evaluation score is below this are acted on, in [-1, 1]."""
    score: float | None
    """The final answer's self-evaluation score in [-1, 1] (None: not scored)."""
    action: Literal["passed", "refused", "flagged"]
    """What happened: the answer went out unchanged, was replaced, or went out flagged."""
    original_text: str | None = None
    """The model's answer when it was replaced by the refusal message (else None)."""


@dataclass(frozen=True)
class ReviewDecision:
    """A human's decision on a flagged answer."""

    decision: Literal["approved", "rejected"]
    note: str | None
    reviewer: str | None
    decided_at: str
    """ISO-8601 UTC time of the decision."""


@dataclass(frozen=True)
class TraceRecord:
    """One request to the server, complete enough to explain its answer afterwards."""

    id: str
    """Opaque id, e.g. ``"tr_3f2a..."`` (also returned to the client as the response id)."""
    created_at: str
    """ISO-8601 UTC time the request arrived."""
    endpoint: str
    """"/v1/chat/completions" or "/v1/completions"."""
    request: dict[str, Any]
    """The request body as received (after JSON parsing; the API key is never stored)."""
    model: str
    config: dict[str, Any] | None
    """The effective RainConfig (``RainConfig.to_dict()``); None for method "greedy"."""
    seed: int | None
    answer: str
    """The text sent to the client (the refusal message when the policy refused)."""
    finish_reason: str
    """Why the answer ended ("eos", "length", "time_budget", ...), or ``STARTED`` while
    the request runs, ``INTERRUPTED`` when its server died first."""
    scores: dict[str, Any] = field(default_factory=dict)
    """Self-evaluation of the final answer, e.g. {"value": 0.4, "scoring": "paper"}."""
    stats: dict[str, Any] = field(default_factory=dict)
    """``GenerationResult.stats`` plus server timings (queue_s, total_s)."""
    trace: dict[str, Any] | None = None
    """``GenerationResult.trace(detokenize)``: tree (with node text), steps, evaluations."""
    policy: PolicyDecision | None = None
    review_state: str = "none"
    """"none", "pending" (flagged, awaiting a human), "approved" or "rejected"."""
    review: ReviewDecision | None = None
    error: str | None = None
    """Set when the request failed after it was accepted (the answer is then empty)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
