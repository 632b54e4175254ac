"""Fluency of an answer: the model's mean negative log-likelihood per token.

An answer that keeps a rule by being noise is a failure, and the rule cannot see it;
how unlikely the model finds its own answer can. ``answer_nll`` asks the backend for
the next-token distribution after every prefix of the answer (one ``next_logprobs``
call per chunk of prefixes: in-process backends with a prefix cache run them as one
extension) and averages ``-log p(token)``.

A sparse backend (an HTTP engine's top-k) may not list the answer's token; its
log-probability is then taken as the smallest listed one (an upper bound on the
probability, so the NLL is a lower bound) and the result is marked approximate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FLUENCY_MARGIN", "Fluency", "answer_nll"]
FLUENCY_MARGIN = 1.0
"""Nats per token an answer may lie above greedy's NLL on the same prompt and still
count as fluent: the frontier's and the pilot's margin (fixed before any run), and the
line past which ``rain generate --compare`` says an answer is less fluent than greedy's."""
CHUNK = 64
"""Prefixes sent to the backend per call."""
TOP_K = 20
"""Top-k asked of a sparse backend."""


@dataclass(frozen=True)
class Fluency:
    """How likely the model finds an answer."""

    nll: float | None
    """Mean negative log-likelihood per token, in nats (None: an empty answer)."""
    tokens: int
    """Tokens scored."""
    approximate: bool = False
    """Some token was missing from a sparse backend's top-k (``nll`` is a lower bound)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"nll", "tokens", "approximate"}`` (JSON-ready)."""
        return {"nll": None if self.nll is None else round(self.nll, 4),
                "tokens": self.tokens, "approximate": self.approximate}


def answer_nll(backend: Any, prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> Fluency:
    """The answer's mean NLL per token given the prompt (EOS and stop tokens included
    only as far as they are in ``answer_ids``)."""
    answer = [int(t) for t in answer_ids]
    if not answer:
        return Fluency(None, 0)
    prompt = [int(t) for t in prompt_ids]
    total = 0.0
    approximate = False
    for start in range(0, len(answer), CHUNK):
        stop = min(start + CHUNK, len(answer))
        contexts = [prompt + answer[:i] for i in range(start, stop)]
        dists = backend.next_logprobs(contexts, top_k=TOP_K)
        for dist, token in zip(dists, answer[start:stop], strict=True):
            lp, missing = dist.logprob_bound(token)
            total -= lp
            approximate |= missing
    return Fluency(total / len(answer), len(answer), approximate)

