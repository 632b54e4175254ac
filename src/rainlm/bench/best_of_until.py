"""Best-of-N that stops at its first accepted answer, within a time budget.

The fair peer of RAIN, which ends at the first whole answer its judge accepts: answers
are sampled in rounds of ``round_size`` (one batch each), every round is judged, and
the method stops as soon as an answer's value reaches ``accept``, when ``max_n``
answers were drawn, or when another round would not fit the time budget (at 1.25 times
the longest round so far). The first round always runs, so there is an answer. Without an
accepted answer the judge's best is returned (first of the best on ties) and the
outcome says the budget ended it.

Answer i is seeded by (seed, i) as in best-of-n, so with the same settings the first
answers are the same whatever the budget.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rainlm.bench.methods import (MethodOutcome, MethodSettings, first_best, sample_answers,
                                  sample_rngs, tokens_encoded)
from rainlm.core.stopping import truncate_at_stop
from rainlm.errors import ConfigError
from rainlm.judge.base import EvalRequest, Evaluator

__all__ = ["ROUND_MARGIN", "best_of_until"]

ROUND_MARGIN = 1.25
"""Another round is drawn only when this many times the longest round so far still fits
the time budget (rounds vary: later answers can be longer)."""


def best_of_until(backend: Any, messages: Sequence[Mapping[str, str]], settings: MethodSettings,
                  *, seed: int, evaluator: Evaluator, accept: float = 1.0, round_size: int = 2,
                  time_budget_s: float | None = None, max_n: int | None = None,
                  clock: Any = time.perf_counter) -> MethodOutcome:
    """Sample, judge and stop early (see the module). ``details``: ``n`` drawn,
    ``scores``, ``chosen``, ``stopped`` ("accepted", "time_budget" or "max_n"),
    ``budget_exhausted`` when no answer was accepted, and per round the tokens encoded
    and seconds so far (``round_tokens``, ``round_seconds``: with one answer per round,
    what a run with a smaller ``max_n`` would have spent), ``texts``, ``answer_ids``
    and ``finish_reasons`` of every answer drawn."""
    max_n = settings.max_n if max_n is None else max_n
    if not isinstance(round_size, int) or isinstance(round_size, bool) or round_size < 1:
        raise ConfigError("round_size", f"must be an integer >= 1, got {round_size!r}")
    stops = settings.stop_strings(backend)
    prompt_ids = backend.render_prompt(messages)
    start = clock()
    samples: list[tuple[list[int], str]] = []
    texts: list[str] = []
    scores: list[float] = []
    stopped = "max_n"
    longest = 0.0
    encoded_before = tokens_encoded(backend)
    round_tokens: list[int] = []
    round_seconds: list[float] = []
    while len(samples) < max_n:
        round_start = clock()
        size = min(round_size, max_n - len(samples))
        new = sample_answers(backend, prompt_ids, size, sample_rngs(seed, len(samples), size),
                             max_new_tokens=settings.max_new_tokens, stop_strings=stops,
                             temperature=settings.temperature, top_k=settings.top_k)
        new_texts = [truncate_at_stop(backend.detokenize(ids), stops) for ids, _ in new]
        scores += [float(v) for v in evaluator.evaluate(
            [EvalRequest(tuple(messages), t) for t in new_texts])]
        samples, texts = samples + new, texts + new_texts
        now = clock()
        round_tokens.append(tokens_encoded(backend) - encoded_before)
        round_seconds.append(round(now - start, 4))
        if max(scores) >= accept:
            stopped = "accepted"
            break
        longest = max(longest, now - round_start)
        if time_budget_s is not None and (now - start) + ROUND_MARGIN * longest > time_budget_s:
            stopped = "time_budget"
            break
    best = next(i for i, v in enumerate(scores) if v >= accept) if stopped == "accepted" \
        else first_best(scores)
    details = {"n": len(samples), "scores": scores, "chosen": best, "stopped": stopped,
               "round_size": round_size, "time_budget_s": time_budget_s,
               "budget_exhausted": stopped != "accepted", "round_tokens": round_tokens,
               "round_seconds": round_seconds, "texts": texts,
               "answer_ids": [list(ids) for ids, _ in samples],
               "finish_reasons": [reason for _, reason in samples]}
    return MethodOutcome(texts[best], 0.0, 0, len(samples[best][0]), samples[best][1], details,
                         judge_value=scores[best], judged_texts=len(texts),
                         answer_ids=tuple(samples[best][0]))
