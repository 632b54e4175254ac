"""Reward-guided decoding in the style of ARGS (Khanov, Burapacheep and Li, ICLR 2024):
a baseline that spends its judge token by token instead of searching.

ARGS-greedy: at each step take the ``top_k`` most probable next tokens and pick

    argmax_t  log p(t | answer) + weight · value(answer + t)

where ``value`` is the judge's score of the extended answer (any Evaluator: a rule, a
synthetic judge or the model's self-evaluation). Model cost: one next-token
distribution per answer token, as greedy decoding; judge cost: ``top_k`` texts per step
(fewer when several candidates give the same text, e.g. end-of-turn). The ARGS paper
uses k = 10 and w between 1 and 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rainlm.core.model_calls import ModelCalls, drive
from rainlm.core.stats import SearchStats
from rainlm.core.stopping import finish_reason, truncate_at_stop
from rainlm.judge.base import EvalRequest, Evaluator, check_value

__all__ = ["ArgsOutcome", "args_decode"]


@dataclass(frozen=True)
class ArgsOutcome:
    """One ARGS answer."""

    text: str
    """The answer text, cut at the first stop string."""
    token_ids: tuple[int, ...]
    """The answer's token ids (without end-of-turn)."""
    finish_reason: str
    """"eos", "length" or "stop_string"."""
    steps: int
    """Tokens chosen (end-of-turn included)."""
    judged_texts: int
    """Distinct texts sent to the judge."""


def args_decode(backend: Any, messages: Sequence[Mapping[str, str]], evaluator: Evaluator, *,
                top_k: int = 10, weight: float = 1.5, max_new_tokens: int = 128,
                stop_strings: Sequence[str] = ()) -> ArgsOutcome:
    """Answer ``messages`` with ARGS-greedy (see the module docstring)."""
    calls = ModelCalls(SearchStats())
    prompt_ids = list(backend.render_prompt(messages))
    eos = frozenset(backend.eos_token_ids)
    name = getattr(evaluator, "name", "evaluator")
    values: dict[str, float] = {}  # judged text -> value (each text judged once)
    answer: list[int] = []
    reason = None
    while reason is None:
        dist = drive(calls.next_dists([prompt_ids + answer], top_k=top_k), backend)[0]
        ids, probs = dist.top_k(top_k)
        texts = [truncate_at_stop(backend.detokenize(answer + [int(t)]), stop_strings)
                 for t in ids]
        todo = [t for t in dict.fromkeys(texts) if t not in values]
        if todo:
            scores = evaluator.evaluate([EvalRequest(tuple(messages), t) for t in todo])
            values.update((t, check_value(v, name)) for t, v in zip(todo, scores))
        best = max(range(len(ids)),
                   key=lambda i: (math.log(max(float(probs[i]), 1e-300)) + weight * values[texts[i]], -i))
        answer.append(int(ids[best]))
        reason = finish_reason(answer, eos_ids=eos, max_new_tokens=max_new_tokens,
                               stop_strings=stop_strings, detokenize=backend.detokenize)
    kept = [t for t in answer if t not in eos]
    text = truncate_at_stop(backend.detokenize(kept), stop_strings)
    return ArgsOutcome(text, tuple(kept), reason, len(answer), len(values))
