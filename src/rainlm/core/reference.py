"""The greedy pass that opens a search with a fluency floor (``answer_nll_margin``).

The greedy answer is what the model would write: the search decodes it first (keeping
each token's log-probability), sets the floor (``state.nll_limit``: its mean NLL per token
plus the margin) and treats it as a judged whole answer: accepted at once when the
judge accepts it (RAIN then answers as greedy would), otherwise the best answer so far
that repairs start from (the next pass may be a repair of it). The root is expanded
first (unless the greedy answer was accepted), so the pass's value is backed up through
the root's child that starts the greedy answer. It is one pass of the search budget.
"""

from __future__ import annotations

from rainlm.core.fluency import mean_nll
from rainlm.core.greedy import greedy_continue
from rainlm.core.model_calls import Steps
from rainlm.core.repair import insert_path
from rainlm.core.search import (SearchContext, accepted_answer, expand, finish_pass, judge,
                                note_whole_answer, remember_logprobs)

__all__ = ["greedy_reference_pass"]


def greedy_reference_pass(ctx: SearchContext) -> Steps[None]:
    """Decode, score and judge the greedy answer from the current root (see the module)."""
    committed = list(ctx.answer_tokens(ctx.tree.root))
    ids, logprobs = list(committed), []
    with ctx.stats.phase("simulate"):
        yield from greedy_continue(ctx.calls, ctx.prompt_ids, ids, eos_ids=ctx.eos_ids,
                                   max_new_tokens=ctx.max_new_tokens,
                                   stop_strings=ctx.stop_strings, detokenize=ctx.detokenize,
                                   logprobs=logprobs)
    remember_logprobs(ctx, committed, ids[len(committed):], logprobs)
    nll, scored = yield from mean_nll(ctx.calls, ctx.prompt_ids, ids, ctx.state.token_logprobs)
    ctx.stats.fluency_scored_tokens += scored
    ctx.stats.greedy_reference_nll = round(nll, 4)
    ctx.state.set_fluency_floor(nll + float(ctx.config.answers.answer_nll_margin or 0.0))
    value = yield from note_whole_answer(ctx, ids, (yield from judge(ctx, ids)))
    if accepted_answer(ctx) is None and not ctx.tree.nodes[ctx.tree.root].expanded:
        with ctx.stats.phase("expand"):
            yield from expand(ctx, ctx.tree.root, committed)
    yield from finish_pass(ctx, *insert_path(ctx, ids), value)
