"""Plain greedy decoding through the same backend interface (the baseline)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from rainlm.core.model_calls import ModelCalls, Steps
from rainlm.core.stopping import finish_reason


def greedy_continue(calls: ModelCalls, prompt_ids: Sequence[int], answer: list[int], *,
                    eos_ids: Collection[int], max_new_tokens: int,
                    stop_strings: Sequence[str],
                    detokenize: Callable[[Sequence[int]], str]) -> Steps[str]:
    """Extend ``answer`` in place with argmax tokens; returns the finish reason.

    Each step asks for one context that extends the previous one by a token, so a
    backend with a prefix cache encodes one new token per step (KV-cached greedy).
    """
    while True:
        reason = finish_reason(answer, eos_ids=eos_ids, max_new_tokens=max_new_tokens,
                               stop_strings=stop_strings, detokenize=detokenize)
        if reason is not None:
            return reason
        dist = (yield from calls.next_dists([list(prompt_ids) + answer]))[0]
        answer.append(dist.argmax())
