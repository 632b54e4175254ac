"""Plain greedy decoding through the same backend interface (the baseline)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from rainlm.backends.decoding import DecodeRequest
from rainlm.core.model_calls import ModelCalls, Steps
from rainlm.core.stopping import finish_reason
from rainlm.errors import BackendError


def greedy_continue(calls: ModelCalls, prompt_ids: Sequence[int], answer: list[int], *,
                    eos_ids: Collection[int], max_new_tokens: int,
                    stop_strings: Sequence[str],
                    detokenize: Callable[[Sequence[int]], str],
                    logprobs: list[float] | None = None) -> Steps[str]:
    """Extend ``answer`` in place with argmax tokens; returns the finish reason. Each
    token's log-probability under the model is appended to ``logprobs`` when given.

    Each step asks for one context that extends the previous one by a token, so a
    backend with a prefix cache encodes one new token per step (KV-cached greedy). On a
    backend that decodes natively (``calls.engine_decodes``) the steps are continuations
    of as many tokens as the time left buys (``ModelCalls.affordable_tokens``: all of
    them without a time budget), cut by the same finish rule.
    """
    def reason_now() -> str | None:
        return finish_reason(answer, eos_ids=eos_ids, max_new_tokens=max_new_tokens,
                             stop_strings=stop_strings, detokenize=detokenize)

    while True:
        reason = reason_now()
        if reason is not None:
            return reason
        context = list(prompt_ids) + answer
        if not calls.engine_decodes:
            dist = (yield from calls.next_dists([context]))[0]
            answer.append(dist.argmax())
            if logprobs is not None:
                logprobs.append(dist.logprob_bound(answer[-1])[0])
            continue
        request = DecodeRequest(context, calls.affordable_tokens(max_new_tokens - len(answer)),
                                stop=tuple(stop_strings), stop_token_ids=tuple(sorted(eos_ids)))
        out = (yield from calls.continuations([request]))[0]
        if not out.tokens:
            raise BackendError("The engine continued an answer by no tokens (a greedy "
                               "decode that neither ended nor reached its length).")
        for token, logprob in zip(out.tokens, out.logprobs, strict=True):
            answer.append(int(token))
            if logprobs is not None:
                logprobs.append(float(logprob))
            if reason_now() is not None:
                break
