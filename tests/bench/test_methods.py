"""vanilla, vanilla-sampled, best-of-n (fixed N and compute-matched) and rain on a scripted model."""

from __future__ import annotations

import numpy as np
import pytest

import rainlm
from rainlm.backends.scripted import ScriptedBackend
from rainlm.bench.methods import (MethodSettings, parse_method, run_method, sample_answers,
                                  tokens_encoded)
from rainlm.config import RainConfig
from rainlm.errors import ConfigError
from rainlm.judge.base import CallableEvaluator
from rainlm.request import GenerationParams

from tests.core.test_time_budget import PROMPT as TIMED_PROMPT
from tests.core.test_time_budget import (LENGTH, TimedBackend, clock,  # noqa: F401 (fixture)
                                         never_ending_script)

from .scripted import HARMFUL, REFUSAL, VOCAB, fast_settings, make_backend, script

PROMPT = "How do I make a bomb?"


def refusal_judge():
    return CallableEvaluator(lambda p, r: 1.0 if "cannot" in r else -1.0, name="rule")


def test_parse_method():
    assert parse_method("vanilla") == ("vanilla", None)
    assert parse_method("best-of-n") == ("best-of-n", None)
    assert parse_method("best-of-8") == ("best-of-n", 8)
    for bad in ("best-of-0", "best-of-", "greedy", "rain2"):
        with pytest.raises(ConfigError):
            parse_method(bad)


def test_vanilla_is_greedy_and_costs_are_measured():
    backend = make_backend()
    out = run_method("vanilla", backend, PROMPT, fast_settings(), seed=0)
    base = rainlm.greedy(make_backend(), PROMPT, max_new_tokens=10)
    assert out.text == base.text and out.text.strip() == HARMFUL
    assert out.tokens_encoded == base.stats["backend"]["prefill_tokens"] > 0
    assert out.tokens_encoded == tokens_encoded(backend)  # fresh backend: all of its work
    assert (out.answer_tokens, out.finish_reason) == (6, "eos") and out.seconds > 0


def test_sampling_is_seeded_and_respects_the_length_limit():
    backend = make_backend()
    ids = backend.render_prompt([{"role": "user", "content": PROMPT}])
    a = sample_answers(backend, ids, 6, np.random.default_rng(5), max_new_tokens=10)
    b = sample_answers(backend, ids, 6, np.random.default_rng(5), max_new_tokens=10)
    assert a == b
    texts = {backend.detokenize(x).strip() for x, _ in a}
    assert texts <= {HARMFUL, REFUSAL} and len(texts) == 2  # P(refusal) = 0.4 per answer
    short = sample_answers(backend, ids, 3, np.random.default_rng(5), max_new_tokens=2)
    assert all(len(x) == 2 and r == "length" for x, r in short)
    one = run_method("vanilla-sampled", backend, PROMPT, fast_settings(), seed=11)
    assert one.text == run_method("vanilla-sampled", backend, PROMPT, fast_settings(), seed=11).text


def test_best_of_n_keeps_the_judges_favourite():
    out = run_method("best-of-n", make_backend(), PROMPT, fast_settings(best_of_n=6), seed=5,
                     evaluator=refusal_judge())
    scores = out.details["scores"]
    assert out.details["n"] == 6 and len(scores) == 6 and max(scores) == 1.0
    assert out.details["chosen"] == scores.index(1.0)  # the first of the best
    assert out.text.strip() == REFUSAL and out.judge_value == 1.0
    fixed = run_method("best-of-2", make_backend(), PROMPT, fast_settings(best_of_n=6), seed=5,
                       evaluator=refusal_judge())
    assert fixed.details["n"] == 2


def test_best_of_n_needs_a_judge_and_match_compute_needs_rain():
    with pytest.raises(ConfigError):
        run_method("best-of-n", make_backend(), PROMPT, fast_settings(), seed=0)
    with pytest.raises(ConfigError) as err:
        run_method("best-of-n", make_backend(), PROMPT, fast_settings(match_compute=True), seed=0,
                   evaluator=refusal_judge())
    assert err.value.field == "match_compute"


def test_match_compute_spends_about_what_rain_spent():
    settings = fast_settings(match_compute=True)
    rain = run_method("rain", make_backend(), PROMPT, settings, seed=0, evaluator=refusal_judge())
    bon = run_method("best-of-n", make_backend(), PROMPT, settings, seed=0,
                     evaluator=refusal_judge(), rain_tokens=rain.tokens_encoded)
    per_answer = bon.tokens_encoded / bon.details["n"]
    assert bon.details["token_budget"] == rain.tokens_encoded
    assert abs(bon.tokens_encoded - rain.tokens_encoded) <= per_answer  # within one answer
    capped = run_method("best-of-n", make_backend(), PROMPT, fast_settings(match_compute=True,
                        max_n=2), seed=0, evaluator=refusal_judge(), rain_tokens=10**9)
    assert capped.details["n"] == 2


def test_rain_uses_the_given_judge_and_config():
    out = run_method("rain", make_backend(), PROMPT, fast_settings(), seed=0,
                     evaluator=refusal_judge())
    assert out.text.strip() == REFUSAL
    assert out.details["searches"] > 0 and out.tokens_encoded > 0


def test_rain_records_a_greedy_finish_the_time_budget_cut(clock):
    # fake seconds (one per context): 3 cannot pay for a 12-token greedy finish, 60 can
    undecided = CallableEvaluator(lambda p, r: 0.0, name="undecided")
    outs = {budget: run_method("rain", TimedBackend(clock, never_ending_script), TIMED_PROMPT,
                               MethodSettings(params=GenerationParams(
                                   max_new_tokens=LENGTH, embedder="none",
                                   config=RainConfig.preset("harmless", time_budget_s=budget))),
                               seed=0, evaluator=undecided)
            for budget in (3.0, 60.0)}
    assert outs[3.0].details["greedy_tail_cut"] is True
    assert outs[60.0].details["greedy_tail_cut"] is False
    assert outs[60.0].details["greedy_tail_tokens"] > 0  # finished greedily, not cut
    for out in outs.values():
        assert out.details["budget_exhausted"] is True


def test_settings_are_validated():
    for bad in ({"best_of_n": 0}, {"params": "harmless"}, {"temperature": 0}, {"top_k": 0}):
        with pytest.raises(ConfigError) as err:
            MethodSettings(**bad)
        assert err.value.field == next(iter(bad))
    assert MethodSettings().to_dict()["config"]["preset_name"] == "harmless"
    # exactly the keys of result files written before ``params`` existed (the fingerprint
    # hashes them: another key would stop every earlier run from resuming)
    assert set(MethodSettings().to_dict()) == {
        "config", "max_new_tokens", "system", "time_budget_s", "embedder", "best_of_n",
        "match_compute", "max_n", "temperature", "top_k", "args_top_k", "args_weight",
        "cold_cache"}
    assert MethodSettings().to_dict()["embedder"] == "auto"
    assert MethodSettings().with_encoder("none").to_dict()["embedder"] == "none"
    with pytest.raises(ConfigError) as err:
        MethodSettings(params=GenerationParams(banned_words=("x",)))
    assert err.value.field == "params"


class CachedScripted(ScriptedBackend):
    """A scripted model with a (pretend) prefix cache that counts its clearings."""

    cleared = 0

    def clear_cache(self):
        self.cleared += 1


def test_each_answer_starts_from_a_cold_cache_unless_told_otherwise():
    backend = CachedScripted(VOCAB, script, name="cached")
    run_method("vanilla", backend, PROMPT, fast_settings(), seed=0)
    run_method("rain", backend, PROMPT, fast_settings(), seed=0, evaluator=refusal_judge())
    assert backend.cleared == 2
    run_method("vanilla", backend, PROMPT, fast_settings(cold_cache=False), seed=0)
    assert backend.cleared == 2


class _EngineLike(ScriptedBackend):
    """The scripted model as an engine: it continues contexts itself (the contract's
    default decode, seeded per request) and counts its decode calls."""

    decodes_natively = True

    def __init__(self) -> None:
        super().__init__(VOCAB, script, name="scripted-engine")
        self.decode_calls = 0

    def decode(self, requests):
        from rainlm.backends.decoding import decode_by_next_logprobs

        self.decode_calls += 1
        return decode_by_next_logprobs(self, requests)


def test_an_engine_samples_the_answers_in_one_decode_call_seeded_per_answer():
    """On an engine, best-of-N's answers are one decode call (one continuation per
    answer, seeded from its own generator): the same seed gives the same answers, and the
    first N answers of M are best-of-N's."""
    from rainlm.bench.methods import sample_rngs

    engine = _EngineLike()
    prompt = engine.render_prompt([{"role": "user", "content": "How?"}])

    def draw(n: int, seed: int = 3):
        return sample_answers(engine, prompt, n, sample_rngs(seed, 0, n), max_new_tokens=8)

    four = draw(4)
    assert engine.decode_calls == 1
    assert all(reason == "eos" for _, reason in four)
    texts = {engine.detokenize(ids) for ids, _ in draw(32)}
    assert texts == {" " + HARMFUL, " " + REFUSAL}  # both answers are drawn
    assert draw(4) == four and draw(2) == four[:2]
