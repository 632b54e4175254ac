"""Simulation stop rules (§3.2), root prior mixing at expansion (§3.3), commit re-mix (§2)."""

import numpy as np
import pytest

from rainlm.core.model_calls import drive
from rainlm import RainConfig
from rainlm.backends.scripted import ScriptedBackend
from rainlm.core.decode import commit
from rainlm.core.model_calls import ModelCalls
from rainlm.core.search import SearchContext, expand
from rainlm.core.simulation import SimulationLimits, simulate
from rainlm.core.stats import SearchStats
from rainlm.core.tree import ROOT
from rainlm.judge.base import as_evaluator

VOCAB = [" a", " b", ",", "."]


def limits(**kw):
    base = dict(until="clause", clause_end_chars=(",", ".", "?", ":", ";", "\n"), temperature=1.0,
                top_k=None, max_tokens=None, max_new_tokens=50, stop_strings=())
    base.update(kw)
    return SimulationLimits(**base)


def sim(script, answer=(), **kw):
    backend = ScriptedBackend(VOCAB, script)
    calls = ModelCalls(SearchStats())
    prompt = backend.render_prompt([{"role": "user", "content": "q"}])
    ids = [backend.index[t] for t in answer]
    out = drive(simulate(calls, prompt, ids, backend.detokenize, backend.eos_token_ids,
                         limits(**kw), np.random.default_rng(0)), backend)
    return [backend.vocab[t] for t in out.tokens]


def three_words_then_comma(answer):
    return {",": 1.0} if len(answer) >= 3 else {" a": 1.0}


def test_simulation_stops_at_the_end_of_a_clause():
    assert sim(three_words_then_comma) == [" a", " a", " a", ","]


def test_no_imagined_tokens_when_the_text_already_ends_a_clause():
    assert sim(three_words_then_comma, answer=(" a", ",")) == []


def test_simulation_stops_at_eos_and_at_the_length_limit():
    assert sim(lambda a: {"<eos>": 1.0}) == ["<eos>"]
    assert sim(lambda a: {" a": 1.0}, max_new_tokens=5) == [" a"] * 5
    assert sim(lambda a: {" a": 1.0}, answer=(" b", " b"), max_new_tokens=5) == [" a"] * 3
    assert sim(lambda a: {" a": 1.0}, max_tokens=2) == [" a", " a"]


def test_simulate_until_eos_ignores_clause_ends():
    script = lambda a: {"<eos>": 1.0} if len(a) >= 4 else {",": 1.0}  # noqa: E731
    assert sim(script, until="eos") == [",", ",", ",", ",", "<eos>"]


def _context(script, cfg):
    backend = ScriptedBackend(VOCAB, script)
    msgs = ({"role": "user", "content": "q"},)
    return SearchContext(backend=backend, config=cfg, evaluator=as_evaluator(lambda p, r: 0.0),
                         embedder=None, rng=np.random.default_rng(0), messages=msgs,
                         prompt_ids=backend.render_prompt(msgs), max_new_tokens=20, stop_strings=())


LAW = {" a": 0.5, " b": 0.3, ",": 0.2}


def test_root_priors_are_mixed_with_uniform_at_expansion_but_deeper_ones_are_not():
    ctx = _context(lambda a: LAW, RainConfig())
    drive(expand(ctx, ROOT, []), ctx.backend)
    priors = [ctx.tree.nodes[c].prior for c in ctx.tree.child_ids(ROOT)]
    assert priors == pytest.approx([0.75 * p + 0.25 / 3 for p in (0.5, 0.3, 0.2)])
    child = ctx.tree.child_ids(ROOT)[0]
    drive(expand(ctx, child, list(ctx.tree.nodes[child].tokens)), ctx.backend)  # depth 1: 2-token sets, not mixed
    kids = [ctx.tree.nodes[c] for c in ctx.tree.child_ids(child)]
    assert all(len(k.tokens) == 2 for k in kids)
    raw = np.array([k.prob for k in kids])
    assert [k.prior for k in kids] == pytest.approx(list(raw / raw.sum()))


def test_commit_reroots_and_remixes_the_new_roots_priors():
    ctx = _context(lambda a: LAW, RainConfig())
    drive(expand(ctx, ROOT, []), ctx.backend)
    child = ctx.tree.child_ids(ROOT)[0]
    drive(expand(ctx, child, list(ctx.tree.nodes[child].tokens)), ctx.backend)
    before = [ctx.tree.nodes[c].prior for c in ctx.tree.child_ids(child)]
    step = commit(ctx, child, searches=3, early=False, by_budget=False)
    assert ctx.tree.root == child and ctx.tree.committed == [child]
    after = [ctx.tree.nodes[c].prior for c in ctx.tree.child_ids(child)]
    k = len(before)
    assert after == pytest.approx([0.75 * p + 0.25 / k for p in before])
    assert step.searches == 3 and step.tokens == ctx.tree.nodes[child].tokens
