"""Imagined completion of a leaf, for judging only (RAIN_SPEC §3.2)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rainlm.backends.decoding import SEED_RANGE, DecodeRequest
from rainlm.core.expansion import law_probability
from rainlm.core.model_calls import ModelCalls, Steps
from rainlm.core.stopping import ends_clause, finish_reason


class Imagined(NamedTuple):
    """One imagined completion: its tokens, each token's probability under the
    simulation law (temperature and top-k applied) and its log-probability under the
    model (what the fluency floor scores, ``core.fluency``)."""

    tokens: list[int]
    probs: list[float]
    logprobs: list[float]

    @classmethod
    def empty(cls) -> "Imagined":
        return cls([], [], [])


@dataclass(frozen=True)
class SimulationLimits:
    """When an imagined completion stops."""

    until: str  # "clause" or "eos"
    clause_end_chars: tuple[str, ...]
    temperature: float
    top_k: int | None  # imagined tokens from the top-k (None: the whole vocabulary)
    max_tokens: int | None  # cap on imagined tokens (None: only the answer limit)
    max_new_tokens: int  # answer length limit (committed + path + imagined)
    stop_strings: tuple[str, ...]


def simulate(calls: ModelCalls, prompt_ids: Sequence[int], answer_ids: Sequence[int],
             detokenize: Callable[[Sequence[int]], str], eos_ids: Collection[int],
             limits: SimulationLimits, rng: np.random.Generator, *,
             deadline: float | None = None) -> Steps[Imagined]:
    """Sample (from the whole distribution unless ``limits.top_k``) until the text ends
    a clause (or EOS, or a limit).

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

    Draws are made in leaf order within each step, one per leaf still imagining. On a
    backend that decodes natively (``calls.engine_decodes``) each leaf's imagination is
    one continuation instead (``simulate_on_engine``).
    """
    if calls.engine_decodes:
        return (yield from simulate_on_engine(calls, prompt_ids, answers, detokenize, eos_ids,
                                              limits, rng, deadline=deadline))
    imagined = [Imagined.empty() for _ in answers]
    while True:
        active = [i for i, a in enumerate(answers)
                  if not _finished(list(a), imagined[i].tokens, detokenize, eos_ids, limits)]
        if not active or (deadline is not None and time.perf_counter() >= deadline):
            return imagined
        dists = yield from calls.next_dists([list(prompt_ids) + list(answers[i]) + imagined[i].tokens
                                  for i in active])
        for i, dist in zip(active, dists):
            token, p = dist.sample(rng, top_k=limits.top_k, temperature=limits.temperature)
            imagined[i].tokens.append(token)
            imagined[i].probs.append(p)
            imagined[i].logprobs.append(dist.logprob_bound(token)[0])


def simulate_on_engine(calls: ModelCalls, prompt_ids: Sequence[int],
                       answers: Sequence[Sequence[int]],
                       detokenize: Callable[[Sequence[int]], str], eos_ids: Collection[int],
                       limits: SimulationLimits, rng: np.random.Generator, *,
                       deadline: float | None = None) -> Steps[list[Imagined]]:
    """``simulate_many`` by the engine's own sampling: each leaf still imagining is one
    ``DecodeRequest`` (seeded from ``rng``, so the same seed gives the same imagination),
    stopping at the clause ends, the stop strings and the end-of-sequence ids. The same
    finish rule as the step-by-step imagination (``_finished``, before each token) cuts
    what comes back; a leaf the engine stopped early (a clause character that the rule
    does not read as an ending) is asked again. The engine samples the law the
    in-process step-by-step imagination samples (the whole vocabulary, or its top-k);
    its draws differ."""
    imagined = [Imagined.empty() for _ in answers]
    stops = tuple(limits.stop_strings) + (
        tuple(limits.clause_end_chars) if limits.until == "clause" else ())
    exhausted: set[int] = set()  # leaves the engine gave nothing more for
    while True:
        active = [i for i, a in enumerate(answers) if i not in exhausted
                  and not _finished(list(a), imagined[i].tokens, detokenize, eos_ids, limits)]
        if not active or (deadline is not None and time.perf_counter() >= deadline):
            return imagined
        requests = [DecodeRequest(list(prompt_ids) + list(answers[i]) + imagined[i].tokens,
                                  max_tokens=calls.affordable_tokens(
                                      _room(answers[i], imagined[i], limits)),
                                  temperature=limits.temperature, stop=stops,
                                  stop_token_ids=tuple(sorted(eos_ids)),
                                  seed=int(rng.integers(SEED_RANGE)), top_k=limits.top_k,
                                  report_top=0 if limits.temperature == 1.0
                                  and limits.top_k is None
                                  else max(REPORTED_TOP, limits.top_k or 0))
                    for i in active]
        outs = yield from calls.continuations(requests)
        for i, out in zip(active, outs):
            taken = 0
            for j, (token, logprob) in enumerate(zip(out.tokens, out.logprobs)):
                if _finished(list(answers[i]), imagined[i].tokens, detokenize, eos_ids, limits):
                    break
                top = out.top[j] if out.top else None
                imagined[i].tokens.append(int(token))
                imagined[i].probs.append(law_probability(token, logprob, top,
                                                         limits.temperature, limits.top_k))
                imagined[i].logprobs.append(float(logprob))
                taken += 1
            if taken == 0:
                exhausted.add(i)


REPORTED_TOP = 20
"""Least number of top log-probabilities asked with each imagined token away from the
model's own law (temperature 1, no top-k; the OpenAI API's and vLLM's default cap): the
top-k when larger, clipped by the backend to its cap (then the law's probability is
renormalised over what came back: ``docs/engines.md``)."""


def _room(answer: Sequence[int], imagined: Imagined, limits: SimulationLimits) -> int:
    """Tokens one imagination may still draw (>= 1 while it is not finished)."""
    room = limits.max_new_tokens - len(answer) - len(imagined.tokens)
    if limits.max_tokens is not None:
        room = min(room, limits.max_tokens - len(imagined.tokens))
    return max(room, 1)


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
