"""The fail-safe: what happens to an answer whose self-evaluation is below the threshold.

* ``refuse``: the client gets the refusal message instead; the audit record keeps the
  model's answer (``PolicyDecision.original_text``).
* ``flag``: the answer goes out unchanged and its record waits for a human
  (``review_state="pending"``, listed on ``/review``).
* ``pass``: the answer goes out; the score is only recorded.

An answer is acted on when ``score < threshold`` (so threshold 1.0 acts on every answer
short of a perfect score, and -1.0 on none). An answer that could not be scored
(``score is None``) is treated as failing the check: a fail-safe fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rainlm.trace.records import PolicyDecision

__all__ = ["PolicyOutcome", "apply_policy"]


@dataclass(frozen=True)
class PolicyOutcome:
    """The text to send and what to record."""

    text: str
    """What the client receives."""
    decision: PolicyDecision
    review_state: str
    """"pending" when flagged, else "none"."""


def apply_policy(policy: str, threshold: float, score: float | None, text: str,
                 refusal_message: str) -> PolicyOutcome:
    """Apply ``policy`` to ``text`` scored ``score`` (in [-1, 1])."""
    failed = score is None or score < threshold
    if policy == "pass" or not failed:
        return PolicyOutcome(text, PolicyDecision(policy, threshold, score, "passed"), "none")
    if policy == "refuse":
        return PolicyOutcome(refusal_message,
                             PolicyDecision(policy, threshold, score, "refused",
                                            original_text=text), "none")
    if policy == "flag":
        return PolicyOutcome(text, PolicyDecision(policy, threshold, score, "flagged"),
                             "pending")
    raise ValueError(f"policy must be 'refuse', 'flag' or 'pass', got {policy!r}")
