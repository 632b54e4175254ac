"""The outer loop: search, commit the most-visited child, re-root (RAIN_SPEC §2)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from rainlm.core.greedy import greedy_continue
from rainlm.core.model_calls import DeadlineReached, Steps
from rainlm.core.rounds import run_round
from rainlm.core.progress import ProgressCallback, emit_progress
from rainlm.core.reference import greedy_reference_pass
from rainlm.core.repair import repair_due, run_repair_pass
from rainlm.core.search import (SearchContext, accepted_answer, judge, remember_logprobs,
                                whole_answer_value)
from rainlm.core.selection import commit_choice, most_visited_child
from rainlm.core.stopping import finish_reason as answer_finish_reason


@dataclass(frozen=True)
class StepRecord:
    """One committed token set and how the search got there."""

    tokens: tuple[int, ...]
    text: str
    visits: float  # n of the committed child (virtual visits included)
    real_visits: int
    value: float  # q of the committed child
    searches: int  # new search passes run in this step
    early_stop: bool  # ended by the T_m / V rule
    by_budget: bool  # committed after the time budget ran out (no search)
    from_simulation: bool = False  # the rest of a judged whole answer (accept / keep best)


@dataclass(frozen=True)
class DecodeOutcome:
    answer_ids: list[int]  # everything committed (EOS included if committed)
    finish_reason: str  # "eos" | "length" | "stop_string" | "time_budget" | "search_budget" | "stopped"
    steps: list[StepRecord]
    budget_exhausted: bool
    greedy_tail_tokens: int  # tokens added by the greedy fallback after the budget


EARLY_RESERVE_SHARE = 0.75
"""Most of the time budget the finish may reserve while the decode speed rests on fewer
than a window of decode steps (``ModelCalls.speed_settled``): a few slow first steps
cannot end the search before a quarter of the budget is spent (measured on the demo:
the first decode steps beside two busy processes took 0.4-1.8 s, later ones 0.1 s)."""


def rain_decode(ctx: SearchContext, *,
                on_progress: ProgressCallback | None = None) -> Steps[DecodeOutcome]:
    """Run RAIN until EOS, the length limit, a stop string or the time budget (steps:
    the model calls it needs are yielded, ``core.model_calls``).

    ``on_progress`` (optional) is called with a ProgressEvent after every search pass
    and every commit."""
    cfg, tree = ctx.config, ctx.tree
    start = time.perf_counter()
    ctx.state.set_budget_end(None if cfg.budgets.time_budget_s is None
                             else start + cfg.budgets.time_budget_s)
    if ctx.state.budget_end is not None and cfg.budgets.budget_fallback == "greedy":
        # the model calls re-check the reserve on every call: the first pass measures
        # the speed, and a pass that would eat the finish's time stops at its next call
        ctx.calls.reserve = lambda: finish_reserve(ctx)
    set_search_deadline(ctx)
    steps: list[StepRecord] = []
    if cfg.answers.answer_nll_margin is not None:  # the fluency floor starts from greedy's answer
        try:
            yield from greedy_reference_pass(ctx)
        except DeadlineReached:  # no time even for greedy: the search goes on without a floor
            ctx.stats.passes_cut_by_deadline += 1
        emit_progress(ctx, on_progress, start)
    while True:
        reason = finish_reason(ctx)
        if reason is not None:
            return DecodeOutcome(ctx.answer_tokens(tree.root), reason, steps, False, 0)
        if forced_step(ctx):
            ctx.stats.forced_steps += 1
            steps.append(commit(ctx, most_visited_child(tree, tree.root), 0, False, by_budget=False))
            forget_unreachable_answer(ctx)
            emit_progress(ctx, on_progress, start)
            continue
        searches, early, out_of_time = (0, False, False) if accepted_answer(ctx) is not None \
            else (yield from search_step(ctx, on_progress, start))
        found = accepted_answer(ctx)
        if found is not None:  # a judged whole answer reached accept_value: answer with it
            steps.append(commit_answer(ctx, found, searches))
            emit_progress(ctx, on_progress, start)
            return DecodeOutcome(found, finish_reason(ctx) or "length", steps, False, 0)
        if out_of_time:  # commit only what the search has looked at, then finish
            reason = ("stopped" if ctx.calls.stopped else
                      "search_budget" if total_searches_spent(ctx) else "time_budget")
            return (yield from finish_by_budget(ctx, steps, on_progress, start, searches,
                                                reason=reason))
        best = commit_choice(tree, tree.root, cfg.selection.commit_rule)
        if best is None:  # the root could not be expanded (nothing left to search)
            return (yield from finish_by_budget(ctx, steps, on_progress, start, searches))
        steps.append(commit(ctx, best, searches, early, by_budget=False))
        forget_unreachable_answer(ctx)
        emit_progress(ctx, on_progress, start)


def total_searches_spent(ctx: SearchContext) -> bool:
    """Whether the search has run ``max_total_searches`` passes (its budget in passes).
    A search that ran out of time is told apart by this, not by the clock: a model call
    may have stopped a pass for the finish's reserve before ``state.deadline``."""
    total = ctx.config.budgets.max_total_searches
    return total is not None and ctx.stats.searches >= total


def set_search_deadline(ctx: SearchContext) -> None:
    """Set the search's deadline (``state.deadline``; the model calls' is the budget's
    end): the time budget's end, less — with ``budget_fallback="greedy"`` — the time the
    finish is expected to take (``finish_reserve``: a greedy finish of the answer's remaining
    tokens at ``ModelCalls.seconds_per_token``, and the comparison with the best judged
    answer), so that the finish also ends within the budget. Called before every pass: the
    reserve shrinks as the answer is committed and follows the measured speed."""
    end = ctx.state.budget_end
    if end is not None and ctx.calls.reserve is not None:
        end -= ctx.calls.reserve()
    ctx.state.set_deadline(end)
    ctx.calls.deadline = ctx.state.budget_end


def finish_reserve(ctx: SearchContext) -> float:
    """Seconds the finish should take: a greedy finish of the tokens not yet committed,
    and — with ``keep_best_answer``, once there is a best judged whole answer — the
    judgement that compares the finished answer with it."""
    left = ctx.max_new_tokens - len(ctx.answer_tokens(ctx.tree.root))
    reserve = max(0, left) * ctx.calls.seconds_per_token()
    if ctx.config.answers.keep_best_answer and ctx.state.best_answer is not None:
        reserve += ctx.calls.seconds_per_judgement()
    if not ctx.calls.speed_settled() and ctx.config.budgets.time_budget_s is not None:
        # a speed measured on a few steps (a burst of load from another process, first
        # use) must not end the search for good: the finish may be cut off instead
        reserve = min(reserve, EARLY_RESERVE_SHARE * ctx.config.budgets.time_budget_s)
    return reserve


def search_step(ctx: SearchContext, on_progress: ProgressCallback | None = None,
                start: float = 0.0) -> Steps[tuple[int, bool, bool]]:
    """Search passes for one step: at least ``min_new_searches`` and until the root's
    subtree has ``max_searches`` real visits, ending early when the best child has
    real_visits > T_m and q > V (checked after every pass, as the published code does).
    Returns (passes run, ended early, ran out of time)."""
    cfg, tree = ctx.config, ctx.tree
    root = tree.nodes[tree.root]
    budget = max(cfg.budgets.max_searches - root.real_visits, cfg.budgets.min_new_searches)
    if cfg.budgets.max_searches_per_step is not None:
        budget = min(budget, cfg.budgets.max_searches_per_step)
    if cfg.budgets.max_total_searches is not None:
        left = cfg.budgets.max_total_searches - ctx.stats.searches
        if left <= 0:
            return 0, False, True
        steps_left = expected_steps_left(ctx)
        share = max(cfg.budgets.step_budget_share, 1.0 / steps_left)
        budget = min(budget, step_allowance(left, share))
    done = 0
    while done < budget:
        set_search_deadline(ctx)
        deadline = ctx.state.deadline
        if ctx.calls.stopped or (deadline is not None and time.perf_counter() >= deadline):
            return done, False, True
        try:
            if repair_due(ctx):
                yield from run_repair_pass(ctx)
                done += 1
            else:  # the sequential search is a round of one leaf
                sel = cfg.selection
                leaves = sel.parallel_leaves if sel.search_mode == "parallel" else 1
                done += len((yield from run_round(ctx, min(leaves, budget - done))))
        except DeadlineReached:  # the pass stopped before its next call: nothing backed up
            ctx.stats.passes_cut_by_deadline += 1
            return done, False, True
        emit_progress(ctx, on_progress, start)
        if accepted_answer(ctx) is not None:
            return done, False, False
        if early_stop(ctx):
            ctx.stats.early_stops += 1
            return done, True, False
    deadline = ctx.state.deadline
    out_of_time = deadline is not None and time.perf_counter() >= deadline
    return done, False, out_of_time


def step_allowance(left: int, share: float) -> int:
    """Passes one step may spend from a total budget: ceil(share × left), at least 1.

    The caller's share is ``max(step_budget_share, 1 / expected steps left)``: the first
    steps get the most, what a step leaves (an early stop) raises the allowance of the
    next ones, and the last expected step may spend all that is left."""
    return min(left, max(1, math.ceil(share * left)))


def expected_steps_left(ctx: SearchContext) -> int:
    """Steps still to commit if the answer runs to its length limit: the token-set length
    schedule walked from the current step (``depth_origin="answer"``), or steps of the
    root's set length (``"root"``: each commit is a child of the current root)."""
    cfg = ctx.config
    length = len(ctx.answer_tokens(ctx.tree.root))
    if cfg.candidates.depth_origin == "root":  # each step commits a child of the root: depth 0's
        return max(1, math.ceil((ctx.max_new_tokens - length) / cfg.candidates.token_set_length(0)))
    depth = ctx.tree.nodes[ctx.tree.root].depth
    steps = 0
    while length < ctx.max_new_tokens:
        length += cfg.candidates.token_set_length(depth + steps)
        steps += 1
    return max(steps, 1)


def forced_step(ctx: SearchContext) -> bool:
    """With ``skip_forced_steps``: the root was expanded and has one candidate only."""
    root = ctx.tree.nodes[ctx.tree.root]
    return ctx.config.budgets.skip_forced_steps and root.expanded and len(root.children) == 1


def early_stop(ctx: SearchContext) -> bool:
    """The best child has real_visits > T_m and q > V (§2)."""
    best = most_visited_child(ctx.tree, ctx.tree.root)
    if best is None:
        return False
    child = ctx.tree.nodes[best]
    budgets = ctx.config.budgets
    return child.real_visits > budgets.early_stop_visits and child.value > budgets.early_stop_value


def commit(ctx: SearchContext, child_id: int, searches: int, early: bool, *,
           by_budget: bool) -> StepRecord:
    """Append the child's tokens to the answer and make it the root (§2).

    Its subtree and statistics are kept (the arena keeps rewound branches for the
    trace); its children's priors are re-mixed: p ← 0.75·p + 0.25/len(children).
    """
    child = ctx.tree.nodes[child_id]
    ctx.state.commit(child_id, root_mix=ctx.config.candidates.root_prior_mix)
    ctx.stats.steps += 1
    return StepRecord(tokens=child.tokens, text=ctx.detokenize(child.tokens),
                      visits=child.visits, real_visits=child.real_visits, value=child.value,
                      searches=searches, early_stop=early, by_budget=by_budget)


def finish_reason(ctx: SearchContext) -> str | None:
    """Why the committed answer is finished, or None if it is not."""
    return answer_finish_reason(ctx.answer_tokens(ctx.tree.root), eos_ids=ctx.eos_ids,
                                max_new_tokens=ctx.max_new_tokens,
                                stop_strings=ctx.stop_strings, detokenize=ctx.detokenize)


def finish_by_budget(ctx: SearchContext, steps: list[StepRecord],
                     on_progress: ProgressCallback | None = None, start: float = 0.0,
                     searches: int = 0, *, reason: str = "time_budget") -> Steps[DecodeOutcome]:
    """Anytime finish: commit the most-visited path that the search has looked at
    (never an unvisited node), then truncate or (``budget_fallback="greedy"``) finish
    with plain greedy decoding. ``searches`` is the pass count of the interrupted step.
    With ``keep_best_answer``, a judged whole answer below the committed one that was
    judged higher than that finish replaces it (the finish is not shown as progress
    until this is decided, so nothing streamed is taken back). The finish is judged as a
    whole answer (the fluency floor applies) when there is a best answer to compare it
    with or an ``accept_value``, so the result can say whether its answer was accepted.

    The finish reason is ``reason`` ("time_budget", "search_budget" when
    ``max_total_searches`` ran out, "stopped" when the caller stopped the search: then
    never a greedy tail and never a swap) unless the answer itself ends (EOS, length,
    stop string).
    """
    budget_reason = reason
    tree = ctx.tree
    keep_best = ctx.config.answers.keep_best_answer and not ctx.calls.stopped
    best = ctx.state.best_answer if keep_best else None
    at_budget = (tree.root, len(tree.committed), len(steps))
    shown = None if best is not None else on_progress
    while finish_reason(ctx) is None:
        choice = commit_choice(tree, tree.root, ctx.config.selection.commit_rule)
        if choice is None or tree.nodes[choice].real_visits == 0:
            break
        steps.append(commit(ctx, choice, searches, False, by_budget=True))
        searches = 0
        emit_progress(ctx, shown, start)
    answer = ctx.answer_tokens(tree.root)
    reason = finish_reason(ctx)
    tail = 0
    # the finish is not searched, but it stays inside the time budget (the search left it
    # the time it should take: set_search_deadline); past the budget's end it is cut off
    ctx.state.set_deadline(ctx.state.budget_end)
    ctx.calls.deadline = ctx.state.budget_end
    ctx.calls.reserve = None
    if reason is None and ctx.config.budgets.budget_fallback == "greedy" and not ctx.calls.stopped:
        before = len(answer)
        logprobs: list[float] = []
        try:
            yield from greedy_continue(ctx.calls, ctx.prompt_ids, answer, eos_ids=ctx.eos_ids,
                                       max_new_tokens=ctx.max_new_tokens,
                                       stop_strings=ctx.stop_strings, detokenize=ctx.detokenize,
                                       logprobs=logprobs)
        except DeadlineReached:  # stopped or out of time during the tail: keep what it wrote
            budget_reason = "stopped" if ctx.calls.stopped else "time_budget"
            ctx.stats.greedy_tail_cut = not ctx.calls.stopped
        tail = len(answer) - before
        remember_logprobs(ctx, answer[:before], answer[before:], logprobs)
    # comparing with the best judged whole answer is part of the finish: one judgement
    # past the budget's end (a stop still ends it)
    ctx.calls.deadline = None
    judged = budget_reason != "stopped" and not ctx.calls.stopped and (
        best is not None or ctx.config.answers.accept_value is not None)  # (says if accepted)
    value = (yield from finish_value(ctx, answer)) if judged else math.nan
    if best is not None and best[1] != answer and best[0] > value:
        # rewind the commits made here (never shown) and commit the judged answer instead
        root, del_from, steps_from = at_budget
        ctx.state.rewind_commits(root, del_from)
        ctx.stats.steps -= len(steps) - steps_from
        del steps[steps_from:]
        steps.append(commit_answer(ctx, best[1], searches=0))
        answer, tail = best[1], 0
        ctx.stats.greedy_tail_cut = False  # the cut finish is not the answer any more
        reason = finish_reason(ctx)
    if shown is None:
        emit_progress(ctx, on_progress, start)
    return DecodeOutcome(answer, reason or budget_reason, steps, True, tail)


def finish_value(ctx: SearchContext, answer: list[int]) -> Steps[float]:
    """The finished answer's value as a whole answer (the fluency floor and the checks
    apply, as to every whole answer, and the result reports it: ``answer_value``), or
    NaN (which nothing beats) when the caller stopped the search during the judgement."""
    known = ctx.state.whole_values.get(tuple(answer))
    if known is not None:  # judged before, with its floor and checks
        return known
    ctx.stats.finish_judgements += 1
    try:
        return (yield from whole_answer_value(ctx, answer, (yield from judge(ctx, answer))))
    except DeadlineReached:
        return math.nan


def forget_unreachable_answer(ctx: SearchContext) -> None:
    """After a commit: drop the best judged whole answer if it does not start with the
    committed answer (committed tokens are final: they may have been shown)."""
    best = ctx.state.best_answer
    if best is not None:
        committed = ctx.answer_tokens(ctx.tree.root)
        if best[1][:len(committed)] != committed:
            ctx.state.forget_best_answer()


def commit_answer(ctx: SearchContext, ids: list[int], searches: int) -> StepRecord:
    """Commit the rest of a judged whole answer that starts with the committed answer:
    one token set (an existing child if one holds exactly those tokens, else a new
    child), marked ``from_simulation``. Its tokens count in ``simulated_answer_tokens``."""
    tree = ctx.tree
    rest = tuple(ids[len(ctx.answer_tokens(tree.root)):])
    ctx.stats.simulated_answer_tokens = len(rest)
    child_id = tree.nodes[tree.root].children.get(rest)
    if child_id is None:
        child_id = ctx.state.add_child(tree.root, rest, 0.0,
                                       root_mix=ctx.config.candidates.root_prior_mix)
        ctx.stats.nodes_created += 1
    return replace(commit(ctx, child_id, searches, False, by_budget=False), from_simulation=True)
