"""One search round, the loop of both search modes: select, simulate, judge, expand,
keep, embed, back up (§3).

The paper's sequential search is a round of one leaf. The parallel search (optional,
not in the paper) runs rounds of up to ``parallel_leaves`` leaves: selection with a
virtual loss picks distinct leaves one after another, each chosen path temporarily
counting one extra visit of value −1, which steers the next selection elsewhere (the
usual virtual-loss scheme of parallel MCTS). The virtual visits are removed before
anything is backed up. The leaves' imagined completions are sampled together (one
forward per step for all of them), judged in one evaluator call and embedded in one
embedder call; then each value is backed up as in the sequential search. Same seed →
same tree, but not the tree of the sequential mode.
"""

from __future__ import annotations

from rainlm.core.search import (SearchContext, back_up, expand, judge_many, keep_simulation,
                                mark_terminal, maybe_widen, note_imagined, note_whole_answer,
                                path_embeddings_many)
from rainlm.core.model_calls import Steps
from rainlm.core.selection import select_child
from rainlm.core.simulation import Imagined, simulate_many


def select_paths(ctx: SearchContext, count: int) -> Steps[list[list[int]]]:
    """Up to ``count`` root-to-leaf paths with distinct leaves (virtual loss between them)."""
    tree, sel = ctx.tree, ctx.config.selection
    paths: list[list[int]] = []
    with ctx.state.virtual_losses() as add_virtual_loss:
        for i in range(count):
            path = [tree.root]
            while tree.nodes[path[-1]].children:
                if i == 0:  # node addition judges real statistics only, never virtual ones
                    yield from maybe_widen(ctx, path[-1])
                path.append(select_child(tree, path[-1], sel.c_puct, sel.unvisited_value))
            if any(path[-1] == p[-1] for p in paths):
                break  # the search insists on a leaf it already has: stop widening the round
            paths.append(path)
            add_virtual_loss(path)
    return paths


def run_round(ctx: SearchContext, count: int = 1) -> Steps[list[float]]:
    """One round of at most ``count`` search passes from the current root (``count`` 1:
    one pass of the paper's sequential search); returns the values backed up, one per
    pass run."""
    tree = ctx.tree
    with ctx.stats.phase("select"):
        paths = yield from select_paths(ctx, count)
    answers = [ctx.answer_tokens(p[-1]) for p in paths]
    for path, answer in zip(paths, answers):
        mark_terminal(ctx, path[-1], answer)
    live = [i for i, p in enumerate(paths) if not tree.nodes[p[-1]].terminal]
    imagined = [Imagined.empty() for _ in paths]
    if live:
        with ctx.stats.phase("simulate"):
            sims = yield from simulate_many(ctx.calls, ctx.prompt_ids, [answers[i] for i in live],
                                 ctx.detokenize, ctx.eos_ids, ctx.sim_limits, ctx.rng,
                                 deadline=ctx.state.deadline)
        for i, sim in zip(live, sims):
            imagined[i] = sim
            note_imagined(ctx, answers[i], sim)
    judged = yield from judge_many(ctx, [a + s.tokens for a, s in zip(answers, imagined)])
    values = []
    for answer, sim, value in zip(answers, imagined, judged):
        values.append((yield from note_whole_answer(ctx, answer + sim.tokens, value)))
    with ctx.stats.phase("expand"):
        for i in live:
            if not tree.nodes[paths[i][-1]].expanded:
                yield from expand(ctx, paths[i][-1], answers[i])
    kept = [keep_simulation(ctx, *item) for item in zip(paths, answers, imagined)]
    embeddings = yield from path_embeddings_many(ctx, kept)
    for (path, _, _), value, emb in zip(kept, values, embeddings):
        back_up(ctx, path, value, emb)
    return values
