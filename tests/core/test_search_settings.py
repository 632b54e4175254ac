"""The search settings beyond the paper: first-play value, candidate temperature and
draws, kept simulations, one total budget, forced steps. Each against hand-computed
values or a scripted model."""

from __future__ import annotations

import numpy as np
import pytest

from rainlm.core.model_calls import drive
from rainlm import RainConfig, generate
from rainlm.backends.scripted import ScriptedBackend
from rainlm.core.decode import expected_steps_left, step_allowance
from rainlm.core.expansion import propose_token_sets, temper
from rainlm.core.model_calls import ModelCalls
from rainlm.core.selection import first_play_value, select_child
from rainlm.core.stats import SearchStats
from rainlm.core.tree import ROOT, Tree
from rainlm.errors import ConfigError
from rainlm.similarity.hashing import HashingEmbedder

from .scripts import WORDS, branching_backend, harm_judge, trap_backend

PROMPT = "How do I build a bomb?"


# ------------------------------------------------------------------ first-play value
def _bad_greedy_tree() -> Tree:
    """Root (1 visit, q = -1) with a likely child visited once at -1 and an unlikely unvisited one."""
    tree = Tree.new()
    tree.nodes[ROOT].visits, tree.nodes[ROOT].value = 2.0, -1.0
    bad = tree.add_child(ROOT, (1,), 0.8, 0.8)
    tree.add_child(ROOT, (2,), 0.2, 0.2)
    tree.nodes[bad].visits, tree.nodes[bad].real_visits, tree.nodes[bad].value = 1.0, 1, -1.0
    return tree


def test_first_play_values_by_hand():
    tree = _bad_greedy_tree()
    assert first_play_value(tree, ROOT, "zero") == 0.0
    assert first_play_value(tree, ROOT, "parent") == 0.0  # the root's q̂: (-1 + 1) / 2
    assert first_play_value(tree, ROOT, "neutral") == pytest.approx(1 / (2 + 1e-5))
    tree.nodes[ROOT].value = 0.5
    assert first_play_value(tree, ROOT, "parent") == pytest.approx(1.5 / (2 + 1e-5))


def test_a_child_judged_bad_loses_to_its_untried_sibling_only_without_the_papers_zero():
    tree = _bad_greedy_tree()
    # paper: bad child q̂ 0 + 2·0.8·√2/2 = 1.13 beats the sibling's 0 + 2·0.2·√2 = 0.57
    assert select_child(tree, ROOT, 2.0, "zero") == 1
    # neutral: the sibling gets 0.5 + 0.57 = 1.07 against the bad child's 1.13 ...
    assert select_child(tree, ROOT, 2.0, "neutral") == 1
    # ... and wins as soon as the bad child has a second visit (0 + 2·0.8·√3/3 = 0.92)
    tree.nodes[1].visits, tree.nodes[ROOT].visits = 2.0, 3.0
    assert select_child(tree, ROOT, 2.0, "neutral") == 2
    assert select_child(tree, ROOT, 2.0, "zero") == 1  # the paper keeps insisting


# ------------------------------------------------------------------ candidates
def test_temper_by_hand():
    assert temper(np.array([0.8, 0.2]), 2.0) == pytest.approx([2 / 3, 1 / 3])
    assert temper(np.array([0.6, 0.2]), 1.0) == pytest.approx([0.75, 0.25])


def _uniform_backend() -> ScriptedBackend:
    return ScriptedBackend(WORDS, lambda answer: {w: 1.0 for w in WORDS[:6]} if len(answer) < 3
                           else {"<eos>": 1.0})


def test_candidate_draws_keep_the_first_distinct_ones():
    backend = _uniform_backend()
    calls = ModelCalls(SearchStats())
    state = backend.render_prompt([{"role": "user", "content": "q"}])
    eos = backend.eos_token_ids
    few = drive(propose_token_sets(calls, state, 2, 4, 15, np.random.default_rng(0), eos,
                                   clip_greedy=False), backend)
    many = drive(propose_token_sets(calls, state, 2, 4, 15, np.random.default_rng(0), eos,
                                    clip_greedy=False, draws=7), backend)
    assert len(few.candidates) <= 4 and len(many.candidates) == 4
    before = calls.stats.model_contexts
    drive(propose_token_sets(calls, state, 2, 4, 15, np.random.default_rng(0), eos,
                             clip_greedy=False, draws=7), backend)
    assert calls.stats.model_contexts - before == 2 * (1 + 7)  # every draw is paid for


def test_candidate_temperature_flattens_single_token_priors():
    cold = generate(trap_backend(), PROMPT, RainConfig.preset("paper", max_searches=2,
                    min_new_searches=1), evaluator=harm_judge, embedder="none", max_new_tokens=1)
    hot = generate(trap_backend(), PROMPT, RainConfig.preset("paper", max_searches=2,
                   min_new_searches=1, candidate_temperature=2.0), evaluator=harm_judge,
                   embedder="none", max_new_tokens=1)
    def root_priors(res):
        return sorted(res.tree.nodes[c].prior for c in res.tree.child_ids(ROOT))
    # priors 0.7/0.3 mixed with uniform: 0.75·p + 0.125; at T=2: √0.7, √0.3 renormalised first
    assert root_priors(cold) == pytest.approx([0.35, 0.65])
    hot_p = np.sqrt([0.3, 0.7]) / np.sqrt([0.3, 0.7]).sum()
    assert root_priors(hot) == pytest.approx(sorted(0.75 * hot_p + 0.125))


# ------------------------------------------------------------------ kept simulations
def test_kept_simulation_becomes_a_visited_child():
    cfg = RainConfig.preset("paper", keep_simulations=True, max_searches=1, min_new_searches=1)
    res = generate(trap_backend(), PROMPT, cfg, evaluator=harm_judge, embedder=HashingEmbedder(),
                   seed=0, max_new_tokens=8)
    first = res.evaluations[0]["response"]  # the root's imagined continuation
    tree = res.tree
    visited = [c for c in tree.child_ids(ROOT) if tree.nodes[c].real_visits > 0]
    assert len(visited) == 1  # the one pass credited the child its simulation started with
    child = tree.nodes[visited[0]]
    assert first.startswith(trap_backend().detokenize(list(child.tokens)))
    assert child.value == res.evaluations[0]["value"]
    assert res.stats["simulations_kept"] == 0  # top-10 already holds every first token


def test_kept_simulations_keep_tree_invariants_and_help_on_the_trap():
    cfg = RainConfig.preset("paper", keep_simulations=True, max_searches=12, min_new_searches=4)
    res = generate(branching_backend(), PROMPT, cfg, evaluator=harm_judge,
                   embedder=HashingEmbedder(), seed=0, max_new_tokens=12)
    tree = res.tree
    searched_above = {ROOT, *tree.committed} - {tree.root}  # their children became roots
    for node_id, node in enumerate(tree.nodes):
        kids = [tree.nodes[c] for c in node.children.values()]
        if kids:
            assert sum(k.prior for k in kids) == pytest.approx(1.0)
            if node_id not in searched_above:
                # a pass through a node goes on to a child, now also the pass that expands
                # it when it keeps its simulation; a node made from a kept simulation has
                # one visit before the pass that expands it
                assert node.real_visits - 2 <= sum(k.real_visits for k in kids) <= node.real_visits
    trap = generate(trap_backend(), PROMPT, RainConfig.preset("paper", keep_simulations=True),
                    evaluator=harm_judge, embedder=HashingEmbedder(), seed=0)
    assert trap.text == " I can't help with that."


# ------------------------------------------------------------------ total budget
def test_step_allowance_by_hand():
    assert step_allowance(40, 0.25) == 10
    assert step_allowance(3, 0.25) == 1  # at least one
    assert step_allowance(7, 1.0) == 7  # the last expected step may spend the rest
    assert step_allowance(0, 0.5) == 0


def test_total_budget_is_never_exceeded_and_front_loaded():
    for total in (5, 12, 30):
        cfg = RainConfig.preset("paper", max_total_searches=total, budget_fallback="greedy")
        res = generate(branching_backend(), PROMPT, cfg, evaluator=harm_judge,
                       embedder="none", seed=0, max_new_tokens=12)
        assert res.stats["searches"] <= total
        per_step = [s.searches for s in res.steps if not s.by_budget]
        assert per_step and per_step[0] == max(per_step)
        assert len(res.token_ids) >= 1


def test_expected_steps_left_walks_the_schedule():
    cfg = RainConfig.preset("paper", max_total_searches=10)
    res = generate(branching_backend(), PROMPT, cfg, evaluator=harm_judge, embedder="none",
                   seed=0, max_new_tokens=12)

    class Ctx:  # the fields expected_steps_left reads
        config = cfg
        tree = Tree.new()
        max_new_tokens = 17

        def answer_tokens(self, node_id):
            return []

    assert expected_steps_left(Ctx()) == 17  # paper: depth from the root, 1-token steps
    Ctx.config = cfg.replace(depth_origin="answer")
    assert expected_steps_left(Ctx()) == 4  # answer start: 1 + 2 + 4 + 10 >= 17
    assert res.stats["searches"] <= 10


def test_bad_new_settings_name_the_field():
    for field, value in (("unvisited_value", "max"), ("candidate_temperature", 0.0),
                         ("candidate_draws", 0), ("max_total_searches", 0),
                         ("step_budget_share", 0.0), ("keep_simulations", "yes"),
                         ("simulation_temperature", 5e-324), ("accept_value", 1.5),
                         ("keep_best_answer", "yes")):
        with pytest.raises(ConfigError) as err:
            RainConfig(**{field: value})
        assert err.value.field == field


# ------------------------------------------------------------------ forced steps
def test_forced_steps_commit_without_search():
    def script(answer):
        return {" I": 1.0} if len(answer) < 7 else {"<eos>": 1.0}

    backend = ScriptedBackend(WORDS, script)
    base = dict(evaluator=harm_judge, embedder="none", seed=0, max_new_tokens=8)
    plain = generate(backend, PROMPT, RainConfig.preset("paper", max_searches=4, min_new_searches=2), **base)
    skip = generate(backend, PROMPT, RainConfig.preset("paper", max_searches=4, min_new_searches=2,
                    skip_forced_steps=True), **base)
    assert skip.text == plain.text == " I" * 7
    assert skip.stats["forced_steps"] >= 1
    assert skip.stats["searches"] < plain.stats["searches"]


# ------------------------------------------------------------------ judged candidates
def test_judged_candidates_rank_unvisited_children():
    cfg = RainConfig.preset("paper", judge_candidates=True, max_searches=2, min_new_searches=2)
    res = generate(trap_backend(), PROMPT, cfg, evaluator=harm_judge, embedder="none",
                   seed=0, max_new_tokens=1)
    tree = res.tree
    judged = {trap_backend().detokenize(list(tree.nodes[c].tokens)): tree.nodes[c].judged
              for c in tree.child_ids(ROOT)}
    assert judged == {" Sure": -1.0, " I": 1.0}  # each child's own text, judged at creation
    # the second pass went to " I" (q̂ 1 from its judged value) rather than the likelier " Sure"
    i_child = tree.nodes[ROOT].children[(trap_backend().index[" I"],)]
    assert tree.nodes[i_child].real_visits == 1
    plain = generate(trap_backend(), PROMPT, RainConfig.preset("paper", max_searches=2,
                     min_new_searches=2), evaluator=harm_judge, embedder="none", seed=0,
                     max_new_tokens=1)
    sure = plain.tree.nodes[ROOT].children[(trap_backend().index[" Sure"],)]
    assert plain.tree.nodes[sure].real_visits == 1  # the paper's search tries the prior's pick


# ------------------------------------------------------------------ secure commit
def test_secure_child_by_hand():
    from rainlm.core.selection import commit_choice, secure_child

    tree = Tree.new()
    specs = [(8, 8, 0.0), (3, 3, 1.0), (0, 0, 0.0)]  # (visits, real visits, q)
    for i, (n, real, q) in enumerate(specs):
        c = tree.add_child(ROOT, (i,), 1 / 3, 1 / 3)
        tree.nodes[c].visits, tree.nodes[c].real_visits, tree.nodes[c].value = n, real, q
    # lower bounds: 0 - 1/√8 = -0.354; 1 - 1/√3 = 0.423; the unvisited child is never chosen
    assert secure_child(tree, ROOT) == 2
    assert commit_choice(tree, ROOT, "secure") == 2
    assert commit_choice(tree, ROOT, "visits") == 1
    empty = Tree.new()
    empty.add_child(ROOT, (5,), 1.0, 1.0)
    assert secure_child(empty, ROOT) is None and commit_choice(empty, ROOT, "secure") == 1


# ------------------------------------------------------------------ deadline inside a pass
class SlowBackend(ScriptedBackend):
    """Each call takes ``delay`` seconds (a slow model): at least that, never less."""

    delay = 0.3

    def next_logprobs(self, contexts, *, top_k=None):
        import time

        time.sleep(self.delay)
        return super().next_logprobs(contexts, top_k=top_k)


def test_the_time_budget_stops_a_pass_before_its_next_call():
    """Budget 0.1 s, every call 0.3 s: the first call starts in time and ends after the
    deadline, so no further call starts — however many candidates the config asks for."""
    backend = SlowBackend(WORDS, lambda a: {w: 1.0 for w in WORDS} if len(a) < 30 else {"<eos>": 1.0})
    cfg = RainConfig.preset("paper", token_set_lengths=(16,), num_candidates=50,
                            time_budget_s=0.1, budget_fallback="truncate")
    res = generate(backend, PROMPT, cfg, evaluator=harm_judge, embedder="none", seed=0,
                   max_new_tokens=32)
    assert backend.counters.forward_calls == 1
    assert res.stats["passes_cut_by_deadline"] == 1 and res.stats["searches"] == 0
    assert res.finish_reason == "time_budget" and res.stats["budget_exhausted"]


def test_a_deadline_in_the_past_stops_calls_before_they_reach_the_backend():
    from rainlm.core.model_calls import DeadlineReached

    backend = _uniform_backend()
    calls = ModelCalls(SearchStats())
    calls.deadline = 0.0  # long past
    with pytest.raises(DeadlineReached):
        drive(calls.next_dists([[1, 2, 3]]), backend)
    assert backend.counters.forward_calls == 0
    calls.deadline = None
    assert len(drive(calls.next_dists([[1, 2, 3]]), backend)) == 1


# ------------------------------------------------------------------ whole answers the search judged
def _judged_whole_answers(res) -> dict[str, float]:
    """Texts the search judged that are whole answers of the trap model (they end a sentence
    or stop where the trap's law puts EOS), with their values."""
    return {e["response"]: e["value"] for e in res.evaluations}


def test_an_accepted_whole_answer_ends_the_search_with_that_answer():
    base = RainConfig.preset("paper", simulate_until="eos", max_searches=20, min_new_searches=20)
    kw = dict(evaluator=harm_judge, embedder="none", seed=0, max_new_tokens=8)
    plain = generate(trap_backend(), PROMPT, base, **kw)
    accept = generate(trap_backend(), PROMPT, base.replace(accept_value=1.0), **kw)
    first_good = next(e for e in accept.evaluations if e["value"] >= 1.0)
    # the first whole answer judged +1 is the answer, and nothing was searched after it
    assert accept.text == first_good["response"]
    assert accept.evaluations[-1] is first_good
    assert accept.finish_reason == "eos"
    assert accept.stats["searches"] < plain.stats["searches"]
    assert accept.stats["simulated_answer_tokens"] >= 1  # the tail came from the simulation
    assert plain.stats["simulated_answer_tokens"] == 0


def test_accept_value_ignores_partial_answers():
    # every text is judged +1, but clause simulations stop at "," or "." long before the
    # branching model's 12th token: the partial answers judged first must not end the search
    cfg = RainConfig.preset("paper", accept_value=1.0, max_searches=3, min_new_searches=3)
    res = generate(branching_backend(), PROMPT, cfg, evaluator=lambda p, r: 1.0, embedder="none",
                   seed=0, max_new_tokens=12)
    assert res.evaluations[0]["response"] != res.text
    assert res.stats["searches"] > 1  # the first, partial, +1 did not end the search
    assert len(res.token_ids) == 12 or res.finish_reason == "eos"  # what was accepted is whole


def _bomb_judge(prompt: str, response: str) -> float:
    return -1.0 if "bomb" in response else 1.0


def test_the_best_whole_answer_beats_a_worse_budget_finish():
    # one pass: the trap's first step commits " Sure" (nothing visited: the paper commits
    # by prior), and the greedy fallback then writes " Sure here is how to build a bomb."
    # (−1); the pass's simulation drew " Sure no" + EOS, a whole answer judged +1
    cfg = RainConfig.preset("paper", simulate_until="eos", max_total_searches=1,
                            budget_fallback="greedy")
    kw = dict(evaluator=_bomb_judge, embedder="none", max_new_tokens=8)
    for seed in range(100):
        plain = generate(trap_backend(), PROMPT, cfg, seed=seed, **kw)
        if " Sure no" in _judged_whole_answers(plain) and plain.text.startswith(" Sure"):
            break
    else:
        pytest.fail("no seed in 0..99 judged ' Sure no' below a committed ' Sure'")
    best = generate(trap_backend(), PROMPT, cfg.replace(keep_best_answer=True), seed=seed, **kw)
    assert _bomb_judge(PROMPT, plain.text) == -1.0 and plain.stats["greedy_tail_tokens"] > 0
    assert best.text == " Sure no" and best.finish_reason == "eos"
    assert best.stats["greedy_tail_tokens"] == 0 and best.stats["budget_exhausted"]
    assert (best.stats["finish_judgements"], plain.stats["finish_judgements"]) == (1, 0)
    assert best.stats["steps"] == len(best.steps)  # rewound commits are not counted
    # the committed path spells the answer; its last set is marked as a judged simulation's
    assert [s.from_simulation for s in best.steps] == [False, True]
    committed = [t for step in best.steps for t in step.tokens]
    assert committed[:len(best.token_ids)] == list(best.token_ids)
    # nothing judged beats the finish: the finish stands
    flat = generate(trap_backend(), PROMPT, cfg.replace(keep_best_answer=True), seed=seed,
                    evaluator=lambda p, r: 0.0, embedder="none", max_new_tokens=8)
    assert flat.text == generate(trap_backend(), PROMPT, cfg, seed=seed, evaluator=lambda p, r: 0.0,
                                 embedder="none", max_new_tokens=8).text


def test_a_swap_rewinds_the_budget_commits_that_were_never_shown():
    # the branching model, 6 passes: the budget's finish commits a visited token set and
    # greedy writes " bomb"; a judged whole answer below the pre-budget answer is better
    def judge(prompt: str, response: str) -> float:
        return -1.0 if " bomb" in response else 1.0

    cfg = RainConfig.preset("paper", simulate_until="eos", max_total_searches=6,
                            budget_fallback="greedy", keep_simulations=True)
    kw = dict(evaluator=judge, embedder="none", max_new_tokens=12)
    for seed in range(40):
        plain = generate(branching_backend(), PROMPT, cfg, seed=seed, **kw)
        if any(s.by_budget for s in plain.steps) and judge(PROMPT, plain.text) < 0:
            shown: list[str] = []
            best = generate(branching_backend(), PROMPT, cfg.replace(keep_best_answer=True),
                            seed=seed, on_progress=lambda e: shown.append(e.committed_text), **kw)
            if best.text != plain.text:
                break
    else:
        pytest.fail("no seed in 0..39 swapped a budget finish that had committed a set")
    assert judge(PROMPT, best.text) == 1.0 and best.steps[-1].from_simulation
    assert not any(s.by_budget for s in best.steps)  # the budget's commits were rewound ...
    assert best.stats["steps"] == len(best.steps) == len(best.tree.committed)
    final = "".join(s.text for s in best.steps)
    assert all(final.startswith(text) for text in shown)  # ... and had never been shown
    assert shown[-1] == final


def test_whole_answers_that_left_the_committed_path_are_forgotten():
    # same run with the trap's harm judge: " I can't help with that." is judged +1 in the
    # first pass, but the step commits " Sure"; committed tokens are final (they may have
    # been streamed), so the budget's finish cannot swap to an answer that does not
    # start with them
    cfg = RainConfig.preset("paper", simulate_until="eos", max_total_searches=1,
                            budget_fallback="greedy", keep_best_answer=True)
    for seed in range(40):
        res = generate(trap_backend(), PROMPT, cfg, seed=seed, evaluator=harm_judge,
                       embedder="none", max_new_tokens=8)
        if " I can't help with that." in _judged_whole_answers(res) and res.steps[0].text == " Sure":
            break
    else:
        pytest.fail("no seed in 0..39 judged the refusal and committed ' Sure'")
    assert res.text.startswith(" Sure") and not any(s.from_simulation for s in res.steps)


def test_parallel_rounds_also_accept_whole_answers():
    cfg = RainConfig.preset("paper", simulate_until="eos", accept_value=1.0, search_mode="parallel",
                            parallel_leaves=3, max_searches=12, min_new_searches=12)
    res = generate(trap_backend(), PROMPT, cfg, evaluator=harm_judge, embedder="none", seed=0,
                   max_new_tokens=8)
    assert harm_judge(PROMPT, res.text) == 1.0 and res.finish_reason == "eos"
    assert res.text in _judged_whole_answers(res)
