"""Repair passes (``RainConfig.answers.repair_share``): rewind the best whole answer to its
longest good prefix and imagine a new ending."""

from __future__ import annotations

import numpy as np
import pytest

from rainlm.core.model_calls import drive
from rainlm import RainConfig, generate
from rainlm.backends.scripted import ScriptedBackend
from rainlm.core.repair import (insert_path, longest_good_prefix, repair_backoff, repair_due,
                                run_repair_pass)
from rainlm.core.search import SearchContext, expand
from rainlm.core.tree import ROOT
from rainlm.errors import ConfigError
from rainlm.judge.base import as_evaluator
from rainlm.judge.rules import BannedWordsRule

from .scripts import WORDS

PROMPT = "Tell me something."
LENGTH = 10
BOMB = BannedWordsRule(["bomb"])


def hazard_script(answer: tuple[str, ...]) -> dict[str, float]:
    """Ten words: seven sure " safely", then three each " bomb" with probability 0.7. A
    whole answer is clean with probability 0.3^3 ≈ 3%, but every prefix before the first
    " bomb" is clean."""
    if len(answer) >= LENGTH:
        return {"<eos>": 1.0}
    return {" safely": 0.3, " bomb": 0.7} if len(answer) >= 7 else {" safely": 1.0}


def coin_script(answer: tuple[str, ...]) -> dict[str, float]:
    """Ten words, each " safely" or " bomb" with even odds."""
    return {"<eos>": 1.0} if len(answer) >= LENGTH else {" safely": 0.5, " bomb": 0.5}


def _context(cfg: RainConfig, script=hazard_script) -> SearchContext:
    backend = ScriptedBackend(WORDS, script)
    msgs = ({"role": "user", "content": PROMPT},)
    return SearchContext(backend=backend, config=cfg, evaluator=as_evaluator(lambda p, r: BOMB.value(r)),
                         embedder=None, rng=np.random.default_rng(0), messages=msgs,
                         prompt_ids=backend.render_prompt(msgs), max_new_tokens=LENGTH,
                         stop_strings=())


def _ids(ctx: SearchContext, words: list[str]) -> list[int]:
    return ctx.backend.tokenize("".join(words))


def test_longest_good_prefix_bisects_to_the_token_before_the_first_bad_one():
    ctx = _context(RainConfig(keep_best_answer=True))
    for first_bad in (0, 1, 4, 9):
        words = [" safely"] * LENGTH
        words[first_bad] = " bomb"
        assert drive(longest_good_prefix(ctx, _ids(ctx, words), 0), ctx.backend) == first_bad
    clean = _ids(ctx, [" safely"] * LENGTH)
    assert drive(longest_good_prefix(ctx, clean, 0), ctx.backend) == LENGTH
    # the committed start is taken as good even when it is not
    bad_start = _ids(ctx, [" bomb"] + [" safely"] * 9)
    assert drive(longest_good_prefix(ctx, bad_start, 3), ctx.backend) == 3
    # bisection: about log2(10) judged prefixes per answer, not one per token
    before = ctx.stats.evaluations
    words = [" safely"] * LENGTH
    words[7] = " bomb"
    drive(longest_good_prefix(ctx, _ids(ctx, words), 0), ctx.backend)
    assert ctx.stats.evaluations - before <= 1 + 4


def test_insert_path_follows_existing_children_and_adds_one_new_set():
    ctx = _context(RainConfig(keep_best_answer=True))
    tree = ctx.tree
    a = tree.add_child(ROOT, tuple(_ids(ctx, [" safely"])), 1.0, 1.0)
    tree.add_child(a, tuple(_ids(ctx, [" safely", " safely"])), 1.0, 1.0)
    ids = _ids(ctx, [" safely", " bomb", " safely", " safely"])
    path, answer, rest = insert_path(ctx, ids)
    assert path[:2] == [ROOT, a] and len(path) == 3  # " safely" exists; " bomb safely" is new
    assert tree.nodes[path[2]].tokens == tuple(ids[1:3])
    assert answer == ids[:3] and rest == ids[3:]
    assert insert_path(ctx, ids)[0] == path  # the second time, nothing is added


def test_repairs_are_spread_over_the_passes_and_wait_for_a_whole_answer():
    ctx = _context(RainConfig(keep_best_answer=True, repair_share=0.5))
    assert not repair_due(ctx)  # no whole answer yet
    ctx.state.set_best_answer(-0.5, _ids(ctx, [" bomb"] * LENGTH))
    due = []
    for n in range(6):
        ctx.stats.searches = n
        due.append(repair_due(ctx))
        if due[-1]:
            ctx.state.count_repair_attempt()  # as run_repair_pass does
    assert due == [False, True, False, True, False, True]
    ctx.state.set_best_answer(1.0, _ids(ctx, [" safely"] * LENGTH))
    assert not repair_due(ctx)  # nothing left to repair


def test_a_repair_keeps_the_good_prefix_and_imagines_a_new_ending():
    # (a fresh answer of the coin model starts with six " safely" once in 64)
    ctx = _context(RainConfig(keep_best_answer=True, repair_share=1.0, repair_backoff=2),
                   coin_script)
    base = _ids(ctx, [" safely"] * 8 + [" bomb", " safely"])
    ctx.state.set_best_answer(BOMB.value(ctx.backend.detokenize(base)), base)
    drive(expand(ctx, ROOT, []), ctx.backend)  # as the pass that judged the first whole answer did
    value = drive(run_repair_pass(ctx), ctx.backend)
    new = next(e for e in reversed(ctx.state.evaluations) if not e["cached"])["response"]
    assert new.startswith(" safely" * 6) and new != ctx.backend.detokenize(base)
    assert value == BOMB.value(new)
    # bisection judged partial answers of the old one (none beyond its first " bomb")
    partial = [e["response"] for e in ctx.state.evaluations][1:-1]
    assert partial and all(base_text.startswith(p) for p in partial
                           for base_text in [ctx.backend.detokenize(base)])
    # the new answer is a path of the tree with this pass's visit
    assert ctx.tree.nodes[ROOT].real_visits == 1 and ctx.stats.repairs == 1 == ctx.stats.searches
    kid = ctx.tree.nodes[ROOT].children[tuple(_ids(ctx, [" safely"]))]
    assert ctx.tree.nodes[kid].real_visits == 1 and ctx.tree.nodes[kid].value == value


def test_repair_finds_clean_answers_that_whole_answer_simulations_rarely_do():
    # 12 passes on the hazard model, seeds 0..19. Measured: with repairs (half of the
    # passes, no back-off) 11 of 20 answers are clean, without them 1 of 20 (over seeds
    # 0..39: 25 and 5 of 40). The bounds leave a few seeds of room on each side without
    # letting the two overlap.
    cfg = RainConfig.preset("harmless", max_total_searches=12, repair_backoff=0)
    kw = dict(evaluator=lambda p, r: BOMB.value(r), embedder="none", max_new_tokens=LENGTH)
    runs = {share: [generate(ScriptedBackend(WORDS, hazard_script), PROMPT,
                             cfg.replace(repair_share=share), seed=seed, **kw)
                    for seed in range(20)]
            for share in (0.0, 0.5)}
    clean = {share: sum(not BOMB.violated(r.text) for r in res) for share, res in runs.items()}
    assert clean[0.5] >= 8
    assert clean[0.0] <= 4
    assert all(r.stats["repairs"] == 0 for r in runs[0.0])
    assert any(r.stats["repairs"] >= 1 for r in runs[0.5])
    # every repair pass is a search pass: the total budget still holds
    assert all(r.stats["searches"] <= 12 for r in runs[0.5])


def test_the_paper_preset_never_repairs():
    assert RainConfig.preset("paper").answers.repair_share == 0.0


def test_bad_repair_settings_name_the_field():
    for field, value in (("repair_share", 1.5), ("repair_share", -0.1), ("repair_backoff", -1),
                         ("repair_threshold", 2.0), ("repair_escalate", "yes")):
        with pytest.raises(ConfigError) as err:
            RainConfig(**{field: value}, keep_best_answer=True)
        assert err.value.field == field
    with pytest.raises(ConfigError) as err:  # nothing tracks the whole answers to repair
        RainConfig(repair_share=0.5)
    assert err.value.field == "repair_share" and "keep_best_answer" in str(err.value)


def test_escalating_repairs_rewind_further_after_each_miss():
    assert [repair_backoff(4, m, False) for m in range(3)] == [4, 4, 4]
    assert [repair_backoff(4, m, True) for m in range(4)] == [4, 8, 16, 32]
    assert repair_backoff(0, 5, True) == 0  # no back-off stays none
    # a repair that does not beat the best answer counts a miss; one that does resets it
    ctx = _context(RainConfig(keep_best_answer=True, repair_share=1.0, repair_escalate=True),
                   coin_script)
    drive(expand(ctx, ROOT, []), ctx.backend)
    base = _ids(ctx, [" safely"] * 8 + [" bomb", " safely"])
    ctx.state.set_best_answer(BOMB.value(ctx.backend.detokenize(base)), base)
    misses = []
    for _ in range(6):
        before = ctx.state.best_answer
        drive(run_repair_pass(ctx), ctx.backend)
        misses.append((ctx.state.repair_misses, ctx.state.best_answer is not before))
    assert all((m == 0) == improved for m, improved in misses), misses


def test_without_root_repairs_a_bad_start_gets_a_search_pass_instead():
    for from_root in (True, False):
        ctx = _context(RainConfig(keep_best_answer=True, repair_share=1.0,
                                  repair_from_root=from_root), coin_script)
        drive(expand(ctx, ROOT, []), ctx.backend)
        bad_start = _ids(ctx, [" bomb"] + [" safely"] * 9)
        ctx.state.set_best_answer(BOMB.value(ctx.backend.detokenize(bad_start)), bad_start)
        drive(run_repair_pass(ctx), ctx.backend)
        assert ctx.stats.searches == 1
        assert ctx.stats.repairs == (1 if from_root else 0)


def certain_bomb_script(answer: tuple[str, ...]) -> dict[str, float]:
    """Seven " safely", then " bomb" for sure: a repair that gives back too little
    writes the same answer again."""
    if len(answer) >= LENGTH:
        return {"<eos>": 1.0}
    return {" bomb": 1.0} if len(answer) >= 7 else {" safely": 1.0}


def test_a_repair_that_writes_the_same_answer_again_is_a_miss():
    ctx = _context(RainConfig(keep_best_answer=True, repair_share=1.0, repair_escalate=True,
                              repair_backoff=1), certain_bomb_script)
    drive(expand(ctx, ROOT, []), ctx.backend)
    base = _ids(ctx, [" safely"] * 7 + [" bomb"] * 3)
    ctx.state.set_best_answer(BOMB.value(ctx.backend.detokenize(base)), base)
    for expected in (1, 2, 3):
        drive(run_repair_pass(ctx), ctx.backend)
        assert ctx.state.repair_misses == expected and ctx.state.best_answer[1] == base


def test_an_answer_judged_good_throughout_gets_a_search_pass_not_a_repair():
    # threshold -1: every prefix is good, so there is no bad stretch to repair (the
    # answer is only short of +1); re-rolling its end would not help, so the pass
    # searches instead (and never imagines past the old answer's EOS)
    ctx = _context(RainConfig(keep_best_answer=True, repair_share=1.0, repair_backoff=0,
                              repair_threshold=-1.0), certain_bomb_script)
    drive(expand(ctx, ROOT, []), ctx.backend)
    eos = next(iter(ctx.backend.eos_token_ids))
    base = _ids(ctx, [" safely"] * 7 + [" bomb"]) + [eos]
    ctx.state.set_best_answer(BOMB.value(ctx.backend.detokenize(base)), base)
    drive(run_repair_pass(ctx), ctx.backend)
    assert ctx.stats.searches == 1 and ctx.stats.repairs == 0


def test_parallel_rounds_get_their_share_of_repairs():
    cfg = RainConfig.preset("harmless", max_total_searches=24, accept_value=None,
                            search_mode="parallel", parallel_leaves=4)
    # (the certain bomb: no answer is ever clean, so repairs stay due to the end)
    res = generate(ScriptedBackend(WORDS, certain_bomb_script), PROMPT, cfg, seed=0,
                   evaluator=lambda p, r: BOMB.value(r), embedder="none", max_new_tokens=LENGTH)
    # half the passes, give or take the one a round may owe at the end
    assert abs(res.stats["repairs"] - res.stats["searches"] / 2) <= 1, res.stats


def test_one_judgement_per_pass_besides_the_repairs_bisections():
    # (answer checks off: they judge prefixes too, counted in test_answer_checks.py)
    cfg = RainConfig.preset("harmless", max_total_searches=12, repair_backoff=0,
                            answer_checks=0)
    for seed in range(5):
        res = generate(ScriptedBackend(WORDS, hazard_script), PROMPT, cfg, seed=seed,
                       evaluator=lambda p, r: BOMB.value(r), embedder="none",
                       max_new_tokens=LENGTH)
        st = res.stats
        assert (st["repairs"] > 0) == (st["repair_judgements"] > 0)
        assert st["evaluations"] - st["finish_judgements"] - st["repair_judgements"] \
            == st["searches"]
