"""RAIN end to end on the real embedded model (no mocks): the search is under test here."""

from __future__ import annotations


import pytest

import rainlm
from rainlm import RainConfig
from rainlm.core.tree import ROOT

pytestmark = pytest.mark.model

SMALL = RainConfig(max_searches=8, min_new_searches=3)


def penalise_blue(prompt: str, response: str) -> float:
    """A user rule as the value: never say 'blue'."""
    return -1.0 if "blue" in response.lower() else 1.0


def test_callable_evaluator_steers_the_real_model_away_from_a_word(embedded_backend):
    question = "What color is the sky?"
    plain = rainlm.greedy(embedded_backend, question, max_new_tokens=16)
    assert "blue" in plain.text.lower()  # greedy decoding uses the word
    result = rainlm.generate(embedded_backend, question, SMALL, max_new_tokens=16,
                             evaluator=penalise_blue, embedder="hashing", seed=0)
    assert "blue" not in result.text.lower(), result.text
    assert result.text.strip()
    # the search looked at branches that said "blue" and rewound away from them
    assert any(ev["value"] < 0 for ev in result.evaluations)


def test_short_rain_generation_ends_within_budget_and_tree_is_consistent(embedded_backend):
    budget = 15.0
    result = rainlm.generate(embedded_backend, "How do I make a pipe bomb?", max_new_tokens=24,
                             time_budget_s=budget, embedder="hashing", seed=1)
    # How far a budget can be overrun (one model call) is tested without a clock in
    # tests/core/test_search_settings.py; here: the outcome says whether it ran out.
    assert result.finish_reason in ("eos", "length", "time_budget", "search_budget")
    if result.finish_reason in ("time_budget", "search_budget"):
        assert result.stats["budget_exhausted"]
    tree = result.tree
    ancestors = {ROOT, *tree.committed} - {tree.root}
    for node_id, node in enumerate(tree.nodes):
        kids = [tree.nodes[c] for c in node.children.values()]
        if node.real_visits and kids and node_id not in ancestors:
            # kept simulations (default search): see tests/cli/test_cli_scripted.py
            assert node.real_visits - 2 <= sum(k.real_visits for k in kids) <= node.real_visits
        assert -1.0 <= node.value <= 1.0
    for step, node_id in zip(result.steps, tree.committed):
        if step.searches > 0 and not step.by_budget:  # forced steps commit unsearched
            assert tree.nodes[node_id].real_visits > 0
    # one evaluation per pass; a pass the time budget cut after its judgement adds one
    st = result.stats
    # (and keep_best_answer judges a budget's finish once: finish_judgements; a repair
    # judges prefixes to find where to start: repair_judgements; answer_checks judge an
    # answer's prefixes: check_judgements)
    passes = (st["evaluations"] - st["finish_judgements"] - st["repair_judgements"]
              - st["check_judgements"])
    assert st["searches"] <= passes <= st["searches"] + st["passes_cut_by_deadline"]
    assert result.stats["backend"]["forward_calls"] > 0


def test_same_seed_same_answer_on_the_real_model(embedded_backend):
    """Same seed → same answer and tree. Priors are compared to 1e-4: a forward through
    a different cache path (batched, stacked, cropped) moves log-probs by ~1e-5."""
    kw = dict(max_new_tokens=8, evaluator=penalise_blue, embedder="hashing", seed=5)
    embedded_backend.clear_cache()
    a = rainlm.generate(embedded_backend, "What color is grass?", SMALL, **kw)
    embedded_backend.clear_cache()
    b = rainlm.generate(embedded_backend, "What color is grass?", SMALL, **kw)
    assert a.text == b.text
    ta, tb = a.tree.to_dict()["nodes"], b.tree.to_dict()["nodes"]
    assert [(n["tokens"], n["visits"], n["value"]) for n in ta] == \
        [(n["tokens"], n["visits"], n["value"]) for n in tb]
    assert [n["prior"] for n in ta] == pytest.approx([n["prior"] for n in tb], abs=1e-4)


def test_searches_together_share_forward_passes_with_their_self_evaluation(embedded_backend):
    # generate_many on the real model with its own self-evaluation: the judge's model
    # calls are yielded like the search's and go out in the same batched calls (the
    # transformers backend ignores top_k, so the judge's calls and the search's mix)
    from rainlm.core.scheduler import BatchCounts

    config = RainConfig.preset("harmless").replace(max_total_searches=4)
    prompts = ["Name a colour.", "How do I make a pipe bomb?"]
    before = embedded_backend.counters.forward_calls
    counts = BatchCounts()
    results = rainlm.generate_many(embedded_backend, prompts, config, embedder="hashing",
                                   seed=[0, 1], max_new_tokens=6, batch_counts=counts)
    assert [r.stats["evaluator"] for r in results] == ["self-eval:harmless"] * 2
    assert all(r.stats["evaluator_calls"] > 0 and r.stats["searches"] > 0 for r in results)
    # rounds where both searches waited for the model sent one backend call for both
    assert max(counts.searches_per_model_call) == 2
    alone_calls = sum(r.stats["model_calls"] + r.stats["evaluator_calls"] for r in results)
    assert sum(counts.searches_per_model_call) == alone_calls
    assert counts.model_calls < alone_calls
    # and the backend ran fewer forward passes than the searches' calls (it splits a call
    # whose contexts extend different cached prefixes, unless they are decode steps;
    # measured: 37 passes for 50 calls)
    assert embedded_backend.counters.forward_calls - before < alone_calls
