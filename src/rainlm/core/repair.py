"""Repair passes: rewind the best judged whole answer to just before its first bad
stretch and imagine a new ending from there (``RainConfig.answers.repair_share``).

Not in the paper. RAIN judges partial answers and rewinds away from bad ones one token
set at a time, from the root; a whole answer that goes wrong late is otherwise thrown
away together with its good beginning. A repair pass keeps that beginning: it bisects
the answer's prefixes with the evaluator (partial answers, as RAIN judges them) for the
longest one still judged at least ``repair_threshold``, backs off ``repair_backoff``
tokens (so the model can rephrase rather than finish the same word), imagines the rest
to the end of the answer, judges it, and keeps it in the tree as a path whose nodes get
the pass's visit and value like any simulation. Each repair spends the model's tokens
only on the new ending, and the answer's bad stretch moves later with every repair that
improves it.
"""

from __future__ import annotations

import math
from dataclasses import replace

from rainlm.core.model_calls import Steps
from rainlm.core.rounds import run_round
from rainlm.core.search import (SearchContext, child_holding, finish_pass, judge,
                                note_imagined, note_whole_answer)
from rainlm.core.simulation import simulate


def repair_due(ctx: SearchContext) -> bool:
    """Whether the next pass is a repair: ``repair_share`` of the passes (spread evenly;
    the first pass never, unless it was the greedy pass of ``answer_nll_margin``) while the best judged whole answer is below ``accept_value``
    (below +1 without one)."""
    cfg, best = ctx.config, ctx.state.best_answer
    if cfg.answers.repair_share <= 0 or best is None:
        return False
    target = 1.0 if cfg.answers.accept_value is None else cfg.answers.accept_value
    if best[0] >= target:
        return False
    # owed, not stepped: a parallel round adds several passes at once
    owed = math.floor((ctx.stats.searches + 1) * cfg.answers.repair_share)
    return ctx.state.repair_attempts < owed


def run_repair_pass(ctx: SearchContext) -> Steps[float]:
    """One repair pass of the best judged whole answer; returns the value backed up."""
    cfg, tree = ctx.config, ctx.tree
    assert ctx.state.best_answer is not None  # repair_due() holds
    base = ctx.state.best_answer[1]
    committed = len(ctx.answer_tokens(tree.root))
    ctx.state.count_repair_attempt()
    before = ctx.stats.evaluations
    try:
        good = yield from longest_good_prefix(ctx, base, committed)
    finally:  # (the time budget may stop it mid-way)
        ctx.stats.repair_judgements += ctx.stats.evaluations - before
    if good >= len(base) or (good <= committed and not cfg.answers.repair_from_root):
        # no bad stretch to repair (the answer is only short of accept_value, e.g. a
        # neutral 0 where a refusal is wanted: the fix is not at its end), or nothing
        # to keep: a plain search pass instead
        return (yield from run_round(ctx))[0]
    answers = cfg.answers
    back = repair_backoff(answers.repair_backoff, ctx.state.repair_misses, answers.repair_escalate)
    cut = max(committed, good - back)  # good < len(base): never past the old answer's end
    limits = replace(ctx.sim_limits, until="eos", max_tokens=None)  # to the answer's end
    with ctx.stats.phase("simulate"):
        imagined = yield from simulate(ctx.calls, ctx.prompt_ids, base[:cut], ctx.detokenize, ctx.eos_ids,
                            limits, ctx.rng, deadline=ctx.state.deadline)
    note_imagined(ctx, base[:cut], imagined)
    ids = base[:cut] + imagined.tokens
    best_before = ctx.state.best_answer
    # (note_whole_answer resets repair_misses when the best answer changes)
    value = yield from note_whole_answer(ctx, ids, (yield from judge(ctx, ids)))
    if ctx.state.best_answer is best_before:
        ctx.state.count_repair_miss()
    yield from finish_pass(ctx, *insert_path(ctx, ids), value)
    ctx.stats.repairs += 1
    return value


def repair_backoff(backoff: int, misses: int, escalate: bool) -> int:
    """Tokens a repair gives back: ``backoff``, doubled for each repair in a row that
    did not beat the best answer when ``escalate`` (a bad word the prefix makes
    unavoidable is escaped by rewinding further, up to a fresh answer)."""
    return backoff * 2 ** min(misses, 16) if escalate and backoff else backoff


def longest_good_prefix(ctx: SearchContext, ids: list[int], start: int) -> Steps[int]:
    """The largest n in [start, len(ids)] whose prefix ``ids[:n]`` the evaluator judges at
    least ``repair_threshold``, by bisection (``start`` is taken as good: the committed
    answer is final). Assumes a prefix judged bad stays bad when it grows, as a rule's
    verdict does; for other judges it finds one boundary between a good and a bad
    prefix. Judged texts are cached like every judgement."""
    threshold = ctx.config.answers.repair_threshold
    if (yield from judge(ctx, ids)) >= threshold:
        return len(ids)
    good, bad = start, len(ids)
    while bad - good > 1:
        mid = (good + bad) // 2
        if (yield from judge(ctx, ids[:mid])) >= threshold:
            good = mid
        else:
            bad = mid
    return good


def insert_path(ctx: SearchContext, ids: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Walk the answer ``ids`` down the tree from the root, token set by token set, and
    add the first set no child holds as a new child (prior from its share of nothing:
    probability 0, so only the back-up makes it attractive).

    Returns (path from the root, answer tokens at its end, the tokens of ``ids`` below
    it)."""
    tree = ctx.tree
    node = tree.root
    path = [node]
    pos = len(ctx.answer_tokens(node))
    while pos < len(ids):
        kids = tree.child_ids(node)
        if not kids:
            break
        length = max(len(tree.nodes[c].tokens) for c in kids)
        tokens = tuple(ids[pos:pos + length])
        child, added = child_holding(ctx, node, tokens, 0.0)
        path.append(child)
        pos += len(tokens)
        node = child
        if added:
            break
    return path, list(ids[:pos]), list(ids[pos:])


__all__ = ["insert_path", "longest_good_prefix", "repair_backoff", "repair_due", "run_repair_pass"]
