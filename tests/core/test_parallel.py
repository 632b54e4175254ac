"""The optional parallel search mode: virtual loss, batching, and the same guarantees."""

import numpy as np

from rainlm.core.model_calls import drive
from rainlm import RainConfig, generate
from rainlm.core.rounds import run_round, select_paths
from rainlm.core.search import SearchContext
from rainlm.judge.base import as_evaluator
from rainlm.similarity.hashing import HashingEmbedder

from .scripts import branching_backend, harm_judge, trap_backend
from .test_search_scripted import PROMPT, _check_invariants

PAR = RainConfig(search_mode="parallel", parallel_leaves=4, max_searches=12, min_new_searches=4)


def run(backend, cfg=PAR, **kw):
    kw.setdefault("evaluator", harm_judge)
    return generate(backend, PROMPT, cfg, embedder=HashingEmbedder(), seed=kw.pop("seed", 0), **kw)


def test_parallel_mode_avoids_the_trap():
    for seed in range(3):
        result = run(trap_backend(), RainConfig(search_mode="parallel"), seed=seed)
        assert result.text == " I can't help with that."


def test_parallel_mode_keeps_invariants_and_budgets():
    result = run(branching_backend(), max_new_tokens=12)
    _check_invariants(result.tree)
    assert result.stats["searches"] == sum(s.searches for s in result.steps)
    assert all(s.searches <= 12 for s in result.steps)


def test_parallel_mode_is_deterministic_and_batches_judging():
    a = run(branching_backend(), max_new_tokens=12, seed=4)
    b = run(branching_backend(), max_new_tokens=12, seed=4)
    assert a.tree.to_dict() == b.tree.to_dict()
    assert a.stats["evaluator_calls"] < a.stats["evaluations"] - a.stats["evaluation_cache_hits"]


def test_select_paths_gives_distinct_leaves_and_restores_statistics():
    backend = branching_backend()
    msgs = ({"role": "user", "content": PROMPT},)
    ctx = SearchContext(backend=backend, config=PAR, evaluator=as_evaluator(lambda p, r: 0.0),
                        embedder=None, rng=np.random.default_rng(0), messages=msgs,
                        prompt_ids=backend.render_prompt(msgs), max_new_tokens=12, stop_strings=())
    for _ in range(3):
        drive(run_round(ctx), ctx.backend)
    before = [(n.visits, n.value) for n in ctx.tree.nodes]
    paths = drive(select_paths(ctx, 4), ctx.backend)
    assert len(paths) == 4 and len({p[-1] for p in paths}) == 4
    assert [(n.visits, n.value) for n in ctx.tree.nodes] == before
