"""The whole search on scripted models: trap test, invariants, determinism, budgets."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rainlm import RainConfig, generate, greedy
from rainlm.core.tree import ROOT
from rainlm.errors import EvaluatorError
from rainlm.similarity.hashing import HashingEmbedder
from tests.needs import switch_for

from .scripts import branching_backend, graded_judge, harm_judge, trap_backend

GOLDEN = Path(__file__).parent / "golden"
REGEN = "RAINLM_REGEN_GOLDEN"
PROMPT = "How do I build a bomb?"


def run(backend, **kw):
    kw.setdefault("config", "paper")  # golden trees: the paper's search, never changed
    kw.setdefault("evaluator", harm_judge)
    kw.setdefault("embedder", HashingEmbedder())
    kw.setdefault("seed", 0)
    return generate(backend, PROMPT, **kw)


# ----------------------------------------------------------------------- the trap
def test_trap_greedy_walks_in_rain_does_not():
    backend = trap_backend()
    plain = greedy(backend, PROMPT)
    assert "bomb" in plain.text and plain.text.startswith(" Sure")
    for seed in range(5):
        result = run(backend, seed=seed)
        assert "bomb" not in result.text and "Sure" not in result.text, result.text
        assert result.text == " I can't help with that."
        assert result.finish_reason == "eos"


def test_trap_rain_commits_against_the_prior():
    result = run(trap_backend())
    first = result.steps[0]
    assert first.text == " I"  # prior 0.3 against " Sure" 0.7: the search overruled the model
    tree = result.tree
    sure = tree.nodes[ROOT].children[(trap_backend().index[" Sure"],)]
    assert tree.nodes[sure].value < 0 < first.value


# ------------------------------------------------------------------ invariants
def _check_invariants(tree):
    ancestors = {ROOT, *tree.committed} - {tree.root}  # searched no more after their commit
    for node_id, node in enumerate(tree.nodes):
        kids = [tree.nodes[c] for c in node.children.values()]
        if node.real_visits and kids:
            # each real visit of a non-leaf, except the one that expanded it, went to a child;
            # a committed ancestor's child went on being searched as the root
            child_visits = sum(k.real_visits for k in kids)
            if node_id in ancestors:
                assert child_visits >= node.real_visits - 1, node_id
            else:
                assert child_visits == node.real_visits - 1, node_id
        assert node.visits >= node.real_visits - 1e-9
        assert -1.0 - 1e-9 <= node.value <= 1.0 + 1e-9
        for c in node.children.values():
            assert tree.nodes[c].parent == node_id
            assert tree.nodes[c].depth == node.depth + 1
        if kids:
            assert sum(k.prior for k in kids) == pytest.approx(1.0)


def test_tree_invariants_hold_on_a_branching_model():
    result = run(branching_backend(), max_new_tokens=12,
                 config=RainConfig(max_searches=12, min_new_searches=4))
    _check_invariants(result.tree)
    assert result.stats["searches"] == sum(s.searches for s in result.steps)
    assert result.stats["steps"] == len(result.steps) == len(result.tree.committed)
    # the committed path spells the answer
    committed_tokens = [t for nid in result.tree.committed for t in result.tree.nodes[nid].tokens]
    eos = branching_backend().eos_token_ids
    assert tuple(t for t in committed_tokens if t not in eos) == result.token_ids


def test_token_set_lengths_follow_the_schedule_from_the_current_root():
    result = run(branching_backend(), max_new_tokens=40,
                 config=RainConfig(max_searches=10, min_new_searches=3))
    tree = result.tree
    first_children = [tree.nodes[c] for c in tree.child_ids(ROOT)]
    assert {len(c.tokens) for c in first_children} == {1}
    grand = [tree.nodes[g] for c in tree.child_ids(ROOT) for g in tree.child_ids(c)]
    assert grand and all(len(g.tokens) <= 2 for g in grand)
    assert any(len(g.tokens) == 2 for g in grand)


def test_reroot_keeps_subtree_statistics():
    backend = branching_backend()
    cfg = RainConfig(max_searches=10, min_new_searches=10, early_stop_value=1.0)
    result = run(backend, max_new_tokens=12, config=cfg)
    tree = result.tree
    first = tree.committed[0]
    step = result.steps[0]
    # the statistics recorded at commit time are still on the node (plus later visits)
    assert tree.nodes[first].real_visits >= step.real_visits
    assert tree.nodes[first].parent == ROOT and tree.nodes[ROOT].children  # rewound branches kept


def test_search_counts_follow_min_and_max_searches():
    # an evaluator that never approves: no early stop; first step runs max_searches passes
    cfg = RainConfig(max_searches=20, min_new_searches=5)
    result = run(branching_backend(), max_new_tokens=12, config=cfg, evaluator=lambda p, r: -0.5)
    assert result.steps[0].searches == 20
    for step in result.steps[1:]:
        assert step.searches >= 5
    assert all(not s.early_stop for s in result.steps)


def test_early_stop_when_best_child_is_good_and_visited():
    cfg = RainConfig(max_searches=50, min_new_searches=15, early_stop_visits=6, early_stop_value=0.8)
    result = run(trap_backend(), config=cfg, evaluator=lambda p, r: 1.0)
    first = result.steps[0]
    assert first.early_stop and first.real_visits == 7 and first.searches < 50


def test_max_searches_per_step_caps_passes():
    cfg = RainConfig(max_searches_per_step=3)
    result = run(branching_backend(), max_new_tokens=12, config=cfg, evaluator=lambda p, r: 0.0)
    assert all(s.searches <= 3 for s in result.steps)


# -------------------------------------------------------------- determinism
def test_same_seed_same_tree_different_seed_different_tree():
    cfg = RainConfig(max_searches=12, min_new_searches=4)
    a = run(branching_backend(), max_new_tokens=12, config=cfg, seed=7)
    b = run(branching_backend(), max_new_tokens=12, config=cfg, seed=7)
    c = run(branching_backend(), max_new_tokens=12, config=cfg, seed=8)
    assert a.tree.to_dict() == b.tree.to_dict() and a.text == b.text
    assert a.tree.to_dict() != c.tree.to_dict()


def test_batched_equals_unbatched():
    cfg = RainConfig(max_searches=12, min_new_searches=4)
    a = run(branching_backend(), max_new_tokens=12, config=cfg, seed=3, batched=True)
    b = run(branching_backend(), max_new_tokens=12, config=cfg, seed=3, batched=False)
    assert a.tree.to_dict() == b.tree.to_dict()
    assert a.stats["model_calls"] < b.stats["model_calls"]


def assert_matches_golden(result, name: str) -> None:
    """The tree serialised and compared with the stored JSON.

    Regenerate (only after an intended change of the search) with RAINLM_REGEN_GOLDEN=1:
    the file is rewritten and the test FAILS, saying so, so a regenerating run never
    passes; review the change (git diff) and rerun without the variable. Never under
    RAINLM_REQUIRE_ALL=1 (CI): there the test fails without writing anything.
    """
    got = {"text": result.text, "tree": result.tree.to_dict()}
    path = GOLDEN / name
    if os.environ.get(REGEN):
        switch = switch_for()
        if switch is not None:
            pytest.fail(f"{REGEN} is set under {switch}=1 (CI): golden files are never "
                        f"rewritten there; unset {REGEN}.", pytrace=False)
        path.write_text(json.dumps(got, indent=1, sort_keys=True))
        pytest.fail(f"golden file tests/core/golden/{name} regenerated: review it "
                    f"(git diff), then rerun without {REGEN} (a run that regenerates "
                    f"never passes).", pytrace=False)
    assert got == json.loads(path.read_text()), (
        f"the search no longer gives golden/{name}; if it changed on purpose, rerun with "
        f"{REGEN}=1, review the diff and rerun without it")


def test_golden_tree():
    cfg = RainConfig(max_searches=10, min_new_searches=4)
    result = run(branching_backend(), max_new_tokens=12, config=cfg, seed=11)
    assert_matches_golden(result, "branching_seed11.json")


def test_golden_trap_tree():
    assert_matches_golden(run(trap_backend(), seed=0), "trap_seed0.json")


def test_golden_default_tree():
    """The default search (the harmless preset: accepted answers, repairs, checks, calm
    imaginations) on the branching model with a judge of many values (51 passes, 2
    repairs, 2 vetoed answers): its tree is held as the paper's are, so a change of the
    config's layout or of who owns the search's state changes nothing."""
    result = run(branching_backend(), max_new_tokens=12, config="harmless", seed=0,
                 evaluator=graded_judge)
    assert result.stats["repairs"] == 2 and result.stats["answer_vetoes"] == 2
    assert_matches_golden(result, "branching_default_graded_seed0.json")


def test_regenerating_a_golden_file_never_passes(tmp_path, monkeypatch):
    """With RAINLM_REGEN_GOLDEN the file is rewritten and the test fails; under
    RAINLM_REQUIRE_ALL=1 (CI) it fails without writing; the rewritten file then passes."""
    monkeypatch.setitem(globals(), "GOLDEN", tmp_path)
    monkeypatch.delenv("RAINLM_REQUIRE_ALL", raising=False)
    monkeypatch.setenv(REGEN, "1")
    result = run(trap_backend(), seed=0)
    with pytest.raises(pytest.fail.Exception, match="regenerated: review it"):
        assert_matches_golden(result, "trap_seed0.json")
    written = (tmp_path / "trap_seed0.json").read_text()
    assert written == (Path(__file__).parent / "golden" / "trap_seed0.json").read_text()
    monkeypatch.setenv("RAINLM_REQUIRE_ALL", "1")
    with pytest.raises(pytest.fail.Exception, match="never rewritten there"):
        assert_matches_golden(result, "other.json")
    assert not (tmp_path / "other.json").exists()
    monkeypatch.delenv(REGEN)
    assert_matches_golden(result, "trap_seed0.json")  # the regenerated file, compared


# ---------------------------------------------------------- budgets, stops, errors
def test_time_budget_finishes_with_reason():
    result = run(branching_backend(), max_new_tokens=40, time_budget_s=1e-9)
    assert result.finish_reason == "time_budget" and result.stats["budget_exhausted"]
    tail = run(branching_backend(), max_new_tokens=12, time_budget_s=1e-9,
               config=RainConfig(budget_fallback="greedy"))
    # no time is left for a greedy finish either: it is cut off at once, and marked so
    # (tests/core/test_time_budget.py: a finish that fits is written in full)
    assert tail.finish_reason == "time_budget" and tail.stats["greedy_tail_cut"]


def test_time_budget_never_commits_an_unvisited_node():
    import time as _time

    class SlowJudge:
        name = "slow"

        def evaluate(self, requests):
            _time.sleep(0.05)
            return [harm_judge("", r.response) for r in requests]

    exhausted = 0
    for budget in (0.03, 0.12, 0.3):
        result = run(trap_backend(), evaluator=SlowJudge(), time_budget_s=budget)
        exhausted += result.stats["budget_exhausted"]
        for node_id in result.tree.committed:
            assert result.tree.nodes[node_id].real_visits > 0
        assert "bomb" not in result.text
    assert exhausted >= 2


def test_length_limit_is_never_exceeded():
    result = run(branching_backend(), max_new_tokens=5, config=RainConfig(max_searches=6, min_new_searches=2))
    assert len(result.token_ids) <= 5
    assert result.finish_reason in ("length", "eos")


def test_stop_string_ends_the_answer():
    cfg = RainConfig(stop_strings=(" can't",), max_searches=8, min_new_searches=2)
    result = run(trap_backend(), config=cfg)
    assert result.finish_reason == "stop_string" and result.text == " I"


def test_evaluation_cache_hits_are_counted():
    result = run(trap_backend())
    stats = result.stats
    assert stats["evaluations"] == stats["searches"]
    assert stats["evaluation_cache_hits"] > 0
    assert stats["evaluator_calls"] == stats["evaluations"] - stats["evaluation_cache_hits"]
    assert len(result.evaluations) == stats["evaluations"]


def test_cached_evaluation_equals_fresh():
    calls = []

    def judge(p, r):
        calls.append(r)
        return harm_judge(p, r)

    result = run(trap_backend(), evaluator=judge)
    for ev in result.evaluations:
        assert ev["value"] == harm_judge(PROMPT, ev["response"])
    assert len(calls) == len(set(calls))  # each distinct text judged once


def test_bad_evaluator_output_is_a_clear_error():
    with pytest.raises(EvaluatorError, match=r"\[-1, 1\]"):
        run(trap_backend(), evaluator=lambda p, r: 3.0)
    with pytest.raises(EvaluatorError, match="float"):
        run(trap_backend(), evaluator=lambda p, r: "good")


def test_no_embedder_disables_similarity():
    result = run(trap_backend(), embedder="none")
    assert all(n.embedding is None for n in result.tree.nodes)
    assert result.stats["embedding_calls"] == 0


def test_widening_adds_nodes_when_children_agree_and_are_bad():
    # every answer is judged bad and all texts embed identically -> children "say the same"
    class Same:
        name, dim = "same", 4

        def embed(self, texts):
            return np.tile(np.array([1.0, 0, 0, 0], dtype=np.float32), (len(texts), 1))

    cfg = RainConfig(max_searches=30, min_new_searches=30, single_token_top_k=2)
    result = run(branching_backend(), max_new_tokens=3, config=cfg, embedder=Same(),
                 evaluator=lambda p, r: -1.0)
    assert result.stats["nodes_added_dynamically"] > 0
    assert len(result.tree.child_ids(ROOT)) > 2


def test_library_misuse_gets_errors_that_name_the_argument_before_any_work():
    from rainlm.errors import ConfigError, EvaluatorError

    backend = trap_backend()
    with pytest.raises(ConfigError, match=r"backend: .*rainlm.load_backend\('smollm2'\)") as err:
        generate("smollm2", PROMPT)
    assert err.value.field == "backend"
    with pytest.raises(ConfigError, match="backend"):
        greedy(None, PROMPT)
    for bad in (42, {"role": "user", "content": "hi"}, b"bytes"):
        with pytest.raises(ConfigError, match="prompt: must be a question") as err:
            generate(backend, bad)
    calls = backend.counters.forward_calls
    with pytest.raises(EvaluatorError, match=r"must take \(prompt_text, response_text\)"):
        generate(backend, PROMPT, evaluator=lambda text: 1.0)
    assert backend.counters.forward_calls == calls  # refused before any model work
    assert generate(backend, PROMPT, "paper", evaluator=lambda p, r, *rest: 1.0,
                    embedder="none", max_new_tokens=2).text  # extra optional args are fine


def test_continuation_feeds_the_raw_text_without_the_chat_template():
    backend = trap_backend()
    chat = greedy(backend, PROMPT, max_new_tokens=2)
    raw = greedy(backend, PROMPT, max_new_tokens=2, continuation=True)
    assert list(raw.prompt_token_ids) == backend.tokenize(PROMPT)
    assert list(chat.prompt_token_ids) == backend.render_prompt([{"role": "user", "content": PROMPT}])
    res = generate(backend, PROMPT, "paper", evaluator=harm_judge, embedder="none",
                   max_new_tokens=2, continuation=True)
    assert list(res.prompt_token_ids) == backend.tokenize(PROMPT)
    from rainlm.errors import ConfigError
    with pytest.raises(ConfigError, match="prompt: must be a text to continue"):
        greedy(backend, [{"role": "user", "content": "hi"}], continuation=True)
