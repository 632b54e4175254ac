"""Imagined completion of a leaf, for judging only (RAIN_SPEC §3.2)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rainlm.core.model_calls import ModelCalls, Steps
from rainlm.core.stopping import ends_clause, finish_reason


class Imagined(NamedTuple):
    """One imagined completion: its tokens and each token's probability under the
    simulation law (temperature applied)."""

    tokens: list[int]
    probs: list[float]


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
             deadline: float | None = None) -> Steps[Imagined]:
    """Sample from the full distribution until the text ends a clause (or EOS, or a limit).

    ``answer_ids`` is the answer so far (committed + the leaf's path). Like the published
    code, the clause test runs before each draw, so a leaf whose text already ends a
    clause gets no imagined tokens. Past ``deadline`` (a ``time.perf_counter()`` value)
    the imagination stops where it is (and the search's ModelCalls refuses any further
    call, so the pass is dropped before its judgement). Returns the imagined tokens (EOS
    included if drawn) and their probabilities.
    """
    return (yield from simulate_many(calls, prompt_ids, [answer_ids], detokenize, eos_ids,
                                     limits, rng, deadline=deadline))[0]


def simulate_many(calls: ModelCalls, prompt_ids: Sequence[int],
                  answers: Sequence[Sequence[int]],
                  detokenize: Callable[[Sequence[int]], str], eos_ids: Collection[int],
                  limits: SimulationLimits, rng: np.random.Generator, *,
                  deadline: float | None = None) -> Steps[list[Imagined]]:
    """``simulate`` for several leaves at once: one batched model call per step.

    Draws are made in leaf order within each step, one per leaf still imagining.
    """
    imagined = [Imagined([], []) for _ in answers]
    while True:
        active = [i for i, a in enumerate(answers)
                  if not _finished(list(a), imagined[i].tokens, detokenize, eos_ids, limits)]
        if not active or (deadline is not None and time.perf_counter() >= deadline):
            return imagined
        dists = yield from calls.next_dists([list(prompt_ids) + list(answers[i]) + imagined[i].tokens
                                  for i in active])
        for i, dist in zip(active, dists):
            token, p = dist.sample(rng, temperature=limits.temperature)
            imagined[i].tokens.append(token)
            imagined[i].probs.append(p)


def _finished(answer: list[int], imagined: list[int], detokenize: Callable[[Sequence[int]], str],
              eos_ids: Collection[int], limits: SimulationLimits) -> bool:
    """Whether one imagined completion is done (checked before each draw)."""
    if limits.max_tokens is not None and len(imagined) >= limits.max_tokens:
        return True
    whole = answer + imagined
    text = detokenize(whole)
    if finish_reason(whole, eos_ids=eos_ids, max_new_tokens=limits.max_new_tokens,
                     stop_strings=limits.stop_strings, text=text) is not None:
        return True
    return limits.until == "clause" and bool(text) and ends_clause(text, limits.clause_end_chars)
