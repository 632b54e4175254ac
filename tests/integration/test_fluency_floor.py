"""The fluency floor (``answer_nll_margin``) and calm imaginations (``simulation_top_k``)
with the real embedded model (the scripted cases: tests/core/test_fluency_floor.py): the greedy pass, the memo, the value of a disfluent answer,
and what the result says about the rule."""

from __future__ import annotations

import numpy as np
import pytest

from rainlm.api import generate, greedy
from rainlm.backends.steps import drive
from rainlm.fluency import answer_nll
from rainlm.config import RainConfig
from rainlm.core.fluency import mean_nll
from rainlm.core.model_calls import ModelCalls
from rainlm.core.simulation import SimulationLimits, simulate
from rainlm.core.stats import SearchStats
from rainlm.errors import ConfigError
from rainlm.judge.base import CallableEvaluator

pytestmark = pytest.mark.model

PROMPT = "Give me three tips for staying focused."
TOKENS = 20


def floor_config(**changes) -> RainConfig:
    return RainConfig.preset("harmless", answer_nll_margin=0.5, simulation_temperature=0.7,
                             simulation_top_k=40, max_total_searches=6).replace(**changes)


def test_bad_settings_are_refused_naming_the_field():
    with pytest.raises(ConfigError, match="answer_nll_margin"):
        RainConfig(answer_nll_margin=-0.1)
    with pytest.raises(ConfigError, match="simulation_top_k"):
        RainConfig(simulation_top_k=0)


def test_the_paper_preset_has_no_floor_and_samples_the_whole_vocabulary():
    paper = RainConfig.preset("paper")
    assert paper.answers.answer_nll_margin is None and paper.simulation.simulation_top_k is None
    assert paper.simulation.simulation_temperature == 1.0


def test_a_judge_that_accepts_everything_gets_greedys_answer_after_one_pass(embedded_backend):
    """The greedy pass is judged like any whole answer: accepted at once, RAIN answers
    as greedy does, and the result says it was accepted."""
    accept_all = CallableEvaluator(lambda prompt, text: 1.0, name="accept-all")
    rain = generate(embedded_backend, PROMPT, config=floor_config(), evaluator=accept_all,
                    max_new_tokens=TOKENS, seed=0)
    plain = greedy(embedded_backend, PROMPT, max_new_tokens=TOKENS)
    assert rain.text == plain.text
    assert rain.stats["searches"] == 1
    assert rain.stats["accepted"] is True and rain.stats["answer_value"] == 1.0
    nll = answer_nll(embedded_backend, plain.prompt_token_ids, plain.token_ids).nll
    assert rain.stats["greedy_reference_nll"] == pytest.approx(nll, abs=1e-3)


def test_an_answer_the_judge_never_accepts_says_so(embedded_backend):
    reject_all = CallableEvaluator(lambda prompt, text: -1.0, name="reject-all")
    rain = generate(embedded_backend, PROMPT, config=floor_config(), evaluator=reject_all,
                    max_new_tokens=TOKENS, seed=0)
    assert rain.stats["accepted"] is False
    assert rain.stats["budget_exhausted"] is True
    assert rain.stats["answer_value"] == -1.0


def test_with_a_zero_margin_an_answer_less_likely_than_greedys_is_valued_the_lowest(
        embedded_backend):
    """Margin 0: the judge says +1 to every text but greedy's own, and still every whole
    answer the model finds less likely than greedy's is valued -1 (the floor), counted,
    and never accepted; without the floor the first of them is accepted."""
    plain = greedy(embedded_backend, PROMPT, max_new_tokens=TOKENS)
    not_greedy = CallableEvaluator(lambda prompt, text: -1.0 if text == plain.text else 1.0,
                                   name="not-greedy")
    calm_free = dict(simulation_temperature=1.0, simulation_top_k=None)
    rain = generate(embedded_backend, PROMPT, config=floor_config(answer_nll_margin=0.0, **calm_free),
                    evaluator=not_greedy, max_new_tokens=TOKENS, seed=0)
    assert rain.stats["disfluent_answers"] >= 1
    nll = answer_nll(embedded_backend, rain.prompt_token_ids, rain.token_ids).nll
    assert rain.stats["accepted"] is (rain.text != plain.text and nll <= rain.stats["greedy_reference_nll"])
    assert rain.stats["accepted"] is False  # (at seed 0 no imagined answer beats greedy's likelihood)
    without = generate(embedded_backend, PROMPT,
                       config=floor_config(answer_nll_margin=None, **calm_free),
                       evaluator=not_greedy, max_new_tokens=TOKENS, seed=0)
    assert without.stats["accepted"] is True and without.stats["disfluent_answers"] == 0
    assert answer_nll(embedded_backend, without.prompt_token_ids, without.token_ids).nll \
        > rain.stats["greedy_reference_nll"]


def test_mean_nll_agrees_with_the_benchmarks_score_and_reuses_its_memo(embedded_backend):
    plain = greedy(embedded_backend, PROMPT, max_new_tokens=TOKENS)
    calls = ModelCalls(SearchStats())
    memo: dict = {}
    nll, scored = drive(mean_nll(calls, plain.prompt_token_ids, plain.token_ids, memo),
                        embedded_backend)
    assert scored == len(plain.token_ids)
    expected = answer_nll(embedded_backend, plain.prompt_token_ids, plain.token_ids).nll
    assert nll == pytest.approx(expected, abs=1e-4)
    calls_before = calls.stats.model_calls
    again, scored_again = drive(mean_nll(calls, plain.prompt_token_ids, plain.token_ids, memo),
                                embedded_backend)
    assert (again, scored_again) == (nll, 0) and calls.stats.model_calls == calls_before


def test_an_imagination_from_the_top_1_is_greedys_continuation(embedded_backend):
    """simulation_top_k=1 leaves one token to draw: the imagination is greedy decoding,
    and each token's model log-probability is kept beside it."""
    plain = greedy(embedded_backend, PROMPT, max_new_tokens=TOKENS)
    limits = SimulationLimits(until="eos", clause_end_chars=(), temperature=1.0, top_k=1,
                              max_tokens=None, max_new_tokens=TOKENS, stop_strings=())
    imagined = drive(simulate(ModelCalls(SearchStats()), plain.prompt_token_ids, [],
                              embedded_backend.detokenize, set(embedded_backend.eos_token_ids),
                              limits, np.random.default_rng(0)), embedded_backend)
    assert imagined.tokens[:len(plain.token_ids)] == list(plain.token_ids)
    assert all(p == 1.0 for p in imagined.probs)
    assert len(imagined.logprobs) == len(imagined.tokens)
    assert all(lp < 0 for lp in imagined.logprobs)
