"""The backend contract's second primitive: continue many contexts by several tokens.

``Backend.next_logprobs`` gives one next-token distribution per context; a search that
imagines to the end of a clause, or a greedy finish, then needs one call per token.
Serving engines decode many tokens per request natively, so a backend may offer the
optional hook

    ``decode(requests: Sequence[DecodeRequest]) -> list[Decoded]``

which continues each request's context by greedy decoding (``temperature`` 0) or
sampling (seeded; ``samples`` continuations of one context) up to ``max_tokens``, an
end-of-sequence id or a stop string, and returns the tokens with their
log-probabilities: one ``Decoded`` per continuation, in request order
(``continuations_of`` counts them). ``decode_by_next_logprobs`` is the
same primitive built on ``next_logprobs`` alone (what a backend without the hook gets:
``decode``), so third-party backends keep working.

The caller applies its own finish rule to the returned tokens (``core.simulation``,
``core.greedy``): an engine may stop at a stop string the caller's rule reads
differently (a clause end inside a token), and then the caller asks again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rainlm.backends.base import Backend

__all__ = ["DecodeRequest", "Decoded", "SEED_RANGE", "continuations_of", "decode",
           "decode_by_next_logprobs", "decodes_natively", "finish_of"]

SEED_RANGE = 2**31 - 1
"""Seeds a caller draws for an engine's sampling come from its own generator in [0, this)."""


@dataclass(frozen=True)
class DecodeRequest:
    """One context to continue."""

    context: list[int]
    """Token ids (prompt + answer so far)."""
    max_tokens: int
    """At most this many new tokens (>= 1)."""
    temperature: float = 0.0
    """0: greedy (argmax); else sample the whole vocabulary at this temperature."""
    stop: tuple[str, ...] = ()
    """Stop once the new text contains one of these (the token holding it is kept)."""
    stop_token_ids: tuple[int, ...] = ()
    """Stop after one of these tokens (it is kept): the end-of-sequence ids."""
    seed: int | None = None
    """Seed of the sampling (same seed, same context: same tokens); ignored when greedy."""
    top_k: int | None = None
    """Sample among the k likeliest tokens only (renormalised); None: the whole vocabulary."""
    report_top: int = 0
    """Also return this many top log-probabilities per token (``Decoded.top``)."""
    samples: int = 1
    """Independent continuations of this context (sampled: one seed draws them all, so
    the same seed gives the same ones; greedy ones are all alike)."""


@dataclass(frozen=True)
class Decoded:
    """What one ``DecodeRequest`` produced."""

    tokens: list[int]
    """The new tokens, the stopping one included."""
    logprobs: list[float]
    """The model's natural-log probability of each token (no temperature, no top-k: the
    caller works out the law it drew from, ``core.expansion.law_probability``)."""
    finish: str
    """"eos" (a stop token), "stop" (a stop string) or "length" (max_tokens)."""
    top: list[dict[int, float]] | None = None
    """With ``report_top``: per token, the model's top log-probabilities by token id."""


def decodes_natively(backend: object) -> bool:
    """Whether ``backend`` continues contexts itself (an engine, in one request) rather
    than through ``next_logprobs`` one token at a time. A backend says so with a true
    ``decodes_natively`` attribute beside its ``decode`` method."""
    return callable(getattr(backend, "decode", None)) and bool(
        getattr(backend, "decodes_natively", False))


def decode(backend: Backend, requests: Sequence[DecodeRequest]) -> list[Decoded]:
    """``backend.decode(requests)`` where the backend decodes natively
    (``decodes_natively``), else ``decode_by_next_logprobs``."""
    if not requests:
        return []
    if decodes_natively(backend):
        return list(backend.decode(list(requests)))  # type: ignore[attr-defined]
    return decode_by_next_logprobs(backend, requests)


def continuations_of(requests: Sequence[DecodeRequest]) -> int:
    """How many ``Decoded`` the requests get back."""
    return sum(r.samples for r in requests)


def finish_of(tokens: Sequence[int], text: str, request: DecodeRequest) -> str | None:
    """Why a continuation (``tokens``, whose text is ``text``) is finished under
    ``request``, or None: the rule both implementations stop by."""
    if tokens and tokens[-1] in request.stop_token_ids:
        return "eos"
    if request.stop and any(s in text for s in request.stop):
        return "stop"
    if len(tokens) >= request.max_tokens:
        return "length"
    return None


def decode_by_next_logprobs(backend: Backend,
                            requests: Sequence[DecodeRequest]) -> list[Decoded]:
    """The primitive on ``next_logprobs`` alone: one batched call per token for all the
    requests still going. Sampling uses ``numpy.random.default_rng(seed)`` per request,
    one draw per token, over the distribution the backend returns (the whole vocabulary
    in process; the engine's top-k on a sparse backend)."""
    for r in requests:
        if r.max_tokens < 1 or r.samples < 1:
            raise ValueError(f"max_tokens and samples must be >= 1; got {r.max_tokens}, "
                             f"{r.samples}")
    rngs = [np.random.default_rng(r.seed) for r in requests]
    rows = [(r, rng) for r, rng in zip(requests, rngs) for _ in range(r.samples)]
    tokens: list[list[int]] = [[] for _ in rows]
    logprobs: list[list[float]] = [[] for _ in rows]
    tops: list[list[dict[int, float]]] = [[] for _ in rows]
    finish: list[str | None] = [None for _ in rows]
    while True:
        active = [i for i, f in enumerate(finish) if f is None]
        if not active:
            return [Decoded(t, lp, f or "length", top if r.report_top else None)
                    for t, lp, f, top, (r, _) in zip(tokens, logprobs, finish, tops, rows)]
        dists = backend.next_logprobs([list(rows[i][0].context) + tokens[i] for i in active])
        for i, dist in zip(active, dists):
            r, rng = rows[i]
            if r.temperature == 0:
                token = int(dist.top_k(r.top_k or 1)[0][0])
            else:
                token, _ = dist.sample(rng, top_k=r.top_k, temperature=r.temperature)
            tokens[i].append(token)
            logprobs[i].append(float(np.log(max(dist.prob_of(token), 1e-300))))
            if r.report_top:
                ids, probs = dist.top_k(r.report_top)
                tops[i].append({int(t): float(np.log(p)) for t, p in zip(ids, probs) if p > 0})
            text = backend.detokenize(tokens[i]) if r.stop else ""
            finish[i] = finish_of(tokens[i], text, r)
