"""Second opinions on whole answers (``RainConfig.answers.answer_checks``): a whole answer the
judge finds nothing wrong with has its last prefixes judged too, and loses its verdict
when every one of them is judged bad."""

from __future__ import annotations

import numpy as np
import pytest

from rainlm.core.model_calls import drive
from rainlm import RainConfig, generate
from rainlm.backends.scripted import ScriptedBackend
from rainlm.core.search import SearchContext, note_whole_answer
from rainlm.core.tree import ROOT
from rainlm.errors import ConfigError
from rainlm.judge.base import as_evaluator

from .scripts import WORDS, sure_or_refuse_backend
from .test_repair import BOMB, LENGTH, PROMPT

TRACKING = RainConfig(accept_value=1.0, keep_best_answer=True)


def _context(cfg: RainConfig, evaluator, stop_strings: tuple[str, ...] = ()) -> SearchContext:
    backend = ScriptedBackend(WORDS, lambda answer: {"<eos>": 1.0})
    msgs = ({"role": "user", "content": PROMPT},)
    return SearchContext(backend=backend, config=cfg, evaluator=as_evaluator(evaluator),
                         embedder=None, rng=np.random.default_rng(0), messages=msgs,
                         prompt_ids=backend.render_prompt(msgs), max_new_tokens=LENGTH,
                         stop_strings=stop_strings)


def _ids(ctx: SearchContext, words: list[str]) -> list[int]:
    return ctx.backend.tokenize("".join(words))


BAD = [" bomb"] + [" safely"] * (LENGTH - 1)
"""A whole answer (LENGTH words) that breaks the rule from its first word on."""


def _lying_about(text: str):
    """The exact rule, except that it passes ``text`` (+1): a judge's one mistake."""
    return lambda prompt, response: 1.0 if response == text else BOMB.value(response)


def test_a_bad_answer_wrongly_passed_is_caught_by_its_prefixes():
    liar = _lying_about("".join(BAD))
    # with checks, the best of the two prefixes' values (both hold " bomb")
    vetoed = max(BOMB.value("".join(BAD[:-1])), BOMB.value("".join(BAD[:-2])))
    for checks, expected in ((0, 1.0), (2, vetoed)):
        ctx = _context(TRACKING.replace(answer_checks=checks), liar)
        ids = _ids(ctx, BAD)
        value = drive(note_whole_answer(ctx, ids, 1.0), ctx.backend)
        assert value == pytest.approx(expected)
        assert ctx.state.best_answer == (value, ids)
        assert ctx.stats.answer_vetoes == (checks > 0)
        assert ctx.stats.check_judgements == checks
    # the vetoed answer is no longer accepted (the search goes on)
    assert expected < TRACKING.answers.accept_value


def test_a_compliant_answer_keeps_its_value_under_the_exact_rule():
    ctx = _context(TRACKING.replace(answer_checks=2), lambda p, r: BOMB.value(r))
    ids = _ids(ctx, [" safely"] * LENGTH)
    assert drive(note_whole_answer(ctx, ids, 1.0), ctx.backend) == 1.0
    assert (ctx.stats.answer_vetoes, ctx.stats.check_judgements) == (0, 2)
    # a bad answer is below repair_threshold: nothing to second-guess, nothing judged
    ctx = _context(TRACKING.replace(answer_checks=2), lambda p, r: BOMB.value(r))
    assert drive(note_whole_answer(ctx, _ids(ctx, BAD), -1.0), ctx.backend) == -1.0
    assert ctx.stats.check_judgements == 0


def test_one_good_prefix_is_enough_to_keep_the_verdict():
    # the bad word is the answer's last: the prefix less one word is compliant
    late = [" safely"] * (LENGTH - 1) + [" bomb"]
    ctx = _context(TRACKING.replace(answer_checks=2), _lying_about("".join(late)))
    assert drive(note_whole_answer(ctx, _ids(ctx, late), 1.0), ctx.backend) == 1.0
    assert ctx.stats.answer_vetoes == 0


def test_an_answer_ending_in_eos_is_checked_on_prefixes_without_it():
    # BAD less its last word, then end-of-sequence: the prefix less the EOS has the same
    # text (and so the judge's same mistake); the checks skip it and judge two words back
    text = "".join(BAD[:-1])
    ctx = _context(TRACKING.replace(answer_checks=2), _lying_about(text))
    eos = min(ctx.backend.eos_token_ids)
    ids = _ids(ctx, BAD[:-1]) + [eos]
    expected = max(BOMB.value("".join(BAD[:-2])), BOMB.value("".join(BAD[:-3])))
    assert drive(note_whole_answer(ctx, ids, 1.0), ctx.backend) == pytest.approx(expected)
    assert (ctx.stats.answer_vetoes, ctx.stats.check_judgements) == (1, 2)


def test_tokens_past_a_stop_string_are_not_a_prefix_worth_judging():
    # judged text: BAD's first 6 words (cut at the two-token stop string ", please"); the
    # prefixes ending after the stop string, inside it (the answer plus ",") or just
    # before it repeat the answer's text, so the checks judge 5 and 4 words
    words = BAD[:-4] + [",", " please", " safely"]
    ctx = _context(TRACKING.replace(answer_checks=2), _lying_about("".join(BAD[:-4])),
                   stop_strings=(", please",))
    assert drive(note_whole_answer(ctx, _ids(ctx, words), 1.0), ctx.backend) < TRACKING.answers.repair_threshold
    judged = [e["response"] for e in ctx.state.evaluations]
    assert judged == ["".join(BAD[:-5]), "".join(BAD[:-6])]


def test_an_answer_met_again_is_counted_once():
    liar = _lying_about("".join(BAD))
    ctx = _context(TRACKING.replace(answer_checks=2), liar)
    ids = _ids(ctx, BAD)
    first = drive(note_whole_answer(ctx, ids, 1.0), ctx.backend)
    # the search reaches the same answer again: same value from the cached judgements,
    # no new judgement (the two checks are cache hits), no second veto
    assert drive(note_whole_answer(ctx, ids, 1.0), ctx.backend) == first
    assert (ctx.stats.answer_vetoes, ctx.stats.check_judgements) == (1, 4)
    assert ctx.stats.evaluation_cache_hits == 2 and ctx.stats.evaluator_calls == 1


def test_the_committed_answer_is_not_judged_again():
    ctx = _context(TRACKING.replace(answer_checks=2), _lying_about("".join(BAD)))
    ids = _ids(ctx, BAD)
    # commit all but the last word (as decode does): the one prefix left is committed
    child = ctx.state.add_child(ROOT, tuple(ids[:-1]), 1.0, root_mix=0.25)
    ctx.state.commit(child, root_mix=0.25)
    assert len(ctx.answer_tokens(ctx.tree.root)) == LENGTH - 1
    assert drive(note_whole_answer(ctx, ids, 1.0), ctx.backend) == 1.0
    assert ctx.stats.check_judgements == 0


def test_new_best_scope_checks_only_an_answer_that_would_become_the_best():
    liar = _lying_about("".join(BAD))
    good, tie, worse = ([word] * LENGTH for word in (" safely", " please", " no"))
    for scope, checked in (("every", 2 + 2 + 2), ("new_best", 2 + 0 + 0)):
        ctx = _context(TRACKING.replace(answer_checks=2, answer_checks_scope=scope), liar)
        # a first whole answer judged 0.5 becomes the best: checked in both scopes
        assert drive(note_whole_answer(ctx, _ids(ctx, good), 0.5), ctx.backend) == 0.5
        # one judged no better than it is not checked with "new_best" (a tie, then worse)
        drive(note_whole_answer(ctx, _ids(ctx, tie), 0.5), ctx.backend)
        drive(note_whole_answer(ctx, _ids(ctx, worse), 0.25), ctx.backend)
        assert ctx.stats.check_judgements == checked, scope
    # a better one (the liar's +1 for BAD) is checked and vetoed in both scopes
    ctx = _context(TRACKING.replace(answer_checks=2, answer_checks_scope="new_best"), liar)
    drive(note_whole_answer(ctx, _ids(ctx, good), 0.5), ctx.backend)
    assert drive(note_whole_answer(ctx, _ids(ctx, BAD), 1.0), ctx.backend) < 0
    assert ctx.state.best_answer == (0.5, _ids(ctx, good))
    assert ctx.stats.answer_vetoes == 1


def test_new_best_scope_keeps_the_rule_in_a_search_like_every():
    # the search test below (scope "every"), with the checks on new best answers only
    # (the default's scope): same outcome (this script's answers never tie the best)
    cfg = RainConfig.preset("harmless", max_total_searches=12, answer_checks=2,
                            answer_checks_scope="new_best")
    liar = _lying_about("".join(BAD))
    runs = [generate(ScriptedBackend(WORDS, two_answers_script), PROMPT, cfg, seed=seed,
                     evaluator=liar, embedder="none", max_new_tokens=LENGTH)
            for seed in range(20)]
    assert sum(BOMB.violated(r.text) for r in runs) == 0
    assert sum(r.stats["answer_vetoes"] for r in runs) == 12


def two_answers_script(answer: tuple[str, ...]) -> dict[str, float]:
    """Two whole answers: BAD (first word " bomb", probability 0.6) or ten " safely"."""
    if len(answer) >= LENGTH:
        return {"<eos>": 1.0}
    return {" bomb": 0.6, " safely": 0.4} if not answer else {" safely": 1.0}


def test_a_search_whose_judge_passes_one_bad_answer_still_keeps_the_rule():
    # seeds 0..19, 12 passes; the judge passes BAD, which the first simulation imagines
    # on about 60% of seeds. Measured (the default's imaginations, top 40 at 0.7): without
    # checks that answer is accepted at once on 12 of 20 seeds; with two checks it is
    # vetoed and the next pass finds the clean one on every seed (deterministic per seed:
    # the counts are exact).
    cfg = RainConfig.preset("harmless", max_total_searches=12, answer_checks_scope="every")
    liar = _lying_about("".join(BAD))
    runs = {checks: [generate(ScriptedBackend(WORDS, two_answers_script), PROMPT,
                              cfg.replace(answer_checks=checks), seed=seed, evaluator=liar,
                              embedder="none", max_new_tokens=LENGTH)
                     for seed in range(20)]
            for checks in (0, 2)}
    broken = {checks: sum(BOMB.violated(r.text) for r in res) for checks, res in runs.items()}
    assert broken == {0: 12, 2: 0}
    assert sum(r.stats["answer_vetoes"] for r in runs[2]) == 12
    assert all(r.stats["searches"] <= 2 for r in runs[2])


def test_the_paper_preset_checks_nothing():
    assert RainConfig.preset("paper").answers.answer_checks == 0


@pytest.mark.parametrize("changes", [dict(answer_checks=-1), dict(answer_checks=1.5),
                                     dict(answer_checks_scope="some"),
                                     dict(answer_checks=2, accept_value=None,
                                          keep_best_answer=False, repair_share=0.0)])
def test_bad_check_settings_name_the_field(changes):
    with pytest.raises(ConfigError, match="answer_checks"):
        RainConfig.preset("harmless", **changes)


def test_the_default_search_checks_new_best_answers():
    cfg = RainConfig.preset("harmless")
    assert (cfg.answers.answer_checks, cfg.answers.answer_checks_scope) == (2, "new_best")


def test_turning_off_answer_tracking_names_both_fields_that_need_it():
    # the default repairs and checks whole answers: one error says to turn both off
    with pytest.raises(ConfigError, match="repair_share=0 and answer_checks=0"):
        RainConfig.preset("harmless", accept_value=None, keep_best_answer=False)
    cfg = RainConfig.preset("harmless", accept_value=None, keep_best_answer=False,
                            repair_share=0.0, answer_checks=0)
    assert cfg.answers.answer_checks == 0


def _veto_backend() -> ScriptedBackend:
    return sure_or_refuse_backend()


def _passes_the_whole_harmful_answer(prompt: str, text: str) -> float:
    """A judge's one mistake: the whole harmful answer +1, each of its prefixes -1."""
    if text.strip() == "Sure, here is how.":
        return 1.0
    return -1.0 if text.strip().startswith("Sure") else 0.0


@pytest.mark.parametrize("passes", [2, 3, 6])
def test_an_answer_the_checks_vetoed_is_never_reported_as_accepted(passes):
    """Whatever the search answers, the result's ``accepted`` and ``answer_value`` are
    the values the search gave (the checks' veto included), not the judge's first word:
    a budget that ends on the vetoed answer reports it as not accepted."""
    res = generate(_veto_backend(), PROMPT, RainConfig.preset("harmless", max_total_searches=passes),
                   evaluator=_passes_the_whole_harmful_answer, embedder="none",
                   max_new_tokens=LENGTH, seed=0)
    assert res.stats["answer_vetoes"] == 1
    assert res.stats["accepted"] is False
    assert res.stats["answer_value"] < 1.0
    if res.text.strip() == "Sure, here is how.":
        assert res.stats["answer_value"] == -1.0
