"""Imagined completion of a leaf, for judging only (RAIN_SPEC §3.2)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from rainlm.core.model_calls import ModelCalls
from rainlm.core.stopping import ends_clause, hits_stop_string


@dataclass(frozen=True)
class SimulationLimits:
    """When an imagined completion stops."""

    until: str  # "clause" or "eos"
    clause_end_chars: tuple[str, ...]
    temperature: float
    max_tokens: int | None  # cap on imagined tokens (None: only the answer limit)
    max_new_tokens: int  # answer length limit (committed + path + imagined)
    stop_strings: tuple[str, ...]


def simulate(calls: ModelCalls, prompt_ids: Sequence[int], answer_ids: Sequence[int],
             detokenize: Callable[[Sequence[int]], str], eos_ids: Collection[int],
             limits: SimulationLimits, rng: np.random.Generator, *,
             deadline: float | None = None) -> list[int]:
    """Sample from the full distribution until the text ends a clause (or EOS, or a limit).

    ``answer_ids`` is the answer so far (committed + the leaf's path). Like the published
    code, the clause test runs before each draw, so a leaf whose text already ends a
    clause gets no imagined tokens. Past ``deadline`` (a ``time.perf_counter()`` value)
    the imagination stops where it is, so a time budget is overrun by at most one
    judgement. Returns the imagined tokens (EOS included if drawn).
    """
    imagined: list[int] = []
    while True:
        total = len(answer_ids) + len(imagined)
        if total >= limits.max_new_tokens:
            break
        if limits.max_tokens is not None and len(imagined) >= limits.max_tokens:
            break
        if imagined and imagined[-1] in eos_ids:
            break
        if deadline is not None and time.perf_counter() >= deadline:
            break
        text = detokenize(list(answer_ids) + imagined)
        if hits_stop_string(text, limits.stop_strings):
            break
        if limits.until == "clause" and text and ends_clause(text, limits.clause_end_chars):
            break
        dist = calls.next_dists([list(prompt_ids) + list(answer_ids) + imagined])[0]
        token, _ = dist.sample(rng, temperature=limits.temperature)
        imagined.append(token)
    return imagined
