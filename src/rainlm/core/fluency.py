"""How likely the model finds a whole answer: the fluency floor of the search
(``RainConfig.answers.answer_nll_margin``).

A rule judge grades only the rule. Under a rule that forbids common characters (commas,
capitals) the text the model finds unlikely is the easiest to keep it with, and the
search's first whole answer judged +1 would be noise. The floor makes fluency part of
the objective: the search first decodes the greedy answer (``core.reference``), and a
whole answer whose mean negative log-likelihood per token under the model (temperature
1, the answer's end-of-sequence token included when it has one) is more than the margin
above the greedy answer's is valued ``DISFLUENT_VALUE``, the lowest value, whatever the
judge said: it is never accepted, never kept as the best answer, and its path is backed
up as a failure, so the search turns to text the model would write. The floor follows
the prompt and the model (a bigger model's answers are likelier), not a fixed number.

The log-probabilities come from the search's own memo (``SearchContext.token_logprobs``,
the answer prefix ending with a token -> that token's log-probability): every token the
search imagined is put there as it is drawn (``remember_imagined``), so scoring a whole
answer asks the model only for the tokens it has not seen drawn (the greedy answer, a
tree path's first token sets), in one batched call.
"""

from __future__ import annotations

from collections.abc import Sequence

from rainlm.core.model_calls import ModelCalls, Steps

__all__ = ["DISFLUENT_VALUE", "SCORING_TOP_K", "mean_nll", "remember_imagined"]

DISFLUENT_VALUE = -1.0
"""The value of a whole answer above the fluency limit: as bad as any broken rule."""
SCORING_TOP_K = 20
"""Top-k asked of a sparse backend when scoring (a token it does not list is bounded by
the smallest listed log-prob: the NLL is then a lower bound)."""

Memo = dict[tuple[int, ...], float]


def remember_imagined(memo: Memo, answer: Sequence[int], tokens: Sequence[int],
                      logprobs: Sequence[float]) -> None:
    """Put the log-probabilities of imagined ``tokens`` (drawn after ``answer``) in the memo."""
    prefix = tuple(int(t) for t in answer)
    for token, logprob in zip(tokens, logprobs):
        prefix += (int(token),)
        memo.setdefault(prefix, float(logprob))


def mean_nll(calls: ModelCalls, prompt_ids: Sequence[int], ids: Sequence[int],
             memo: Memo) -> Steps[tuple[float, int]]:
    """The answer's mean negative log-likelihood per token, and how many of its tokens
    had to be scored (one batched model call for those not in ``memo``, which keeps
    them). An empty answer scores 0."""
    answer = [int(t) for t in ids]
    keys = [tuple(answer[:i + 1]) for i in range(len(answer))]
    missing = [i for i, key in enumerate(keys) if key not in memo]
    if missing:
        dists = yield from calls.next_dists([list(prompt_ids) + answer[:i] for i in missing],
                                            top_k=SCORING_TOP_K)
        for i, dist in zip(missing, dists):
            memo[keys[i]] = dist.logprob_bound(answer[i])[0]
    if not answer:
        return 0.0, 0
    return -sum(memo[key] for key in keys) / len(answer), len(missing)
