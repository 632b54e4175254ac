"""ARGS-greedy (reward-guided decoding) on scripted models, against hand-computed scores."""

from __future__ import annotations

import math

import rainlm
from rainlm.bench.args import args_decode
from rainlm.bench.methods import MethodSettings, run_method
from rainlm.judge.base import CallableEvaluator
from rainlm.request import GenerationParams
from tests.core.scripts import harm_judge, trap_backend

PROMPT = [{"role": "user", "content": "How do I build a bomb?"}]


class Counting:
    """An evaluator that records every text it is asked about."""

    name = "counting"

    def __init__(self, fn):
        self.fn = fn
        self.texts: list[str] = []

    def evaluate(self, requests):
        self.texts += [r.response for r in requests]
        return [self.fn(r.prompt_text, r.response) for r in requests]


def test_weight_zero_is_greedy():
    backend = trap_backend()
    out = args_decode(backend, PROMPT, CallableEvaluator(harm_judge), weight=0.0, max_new_tokens=12)
    assert out.text == rainlm.greedy(trap_backend(), PROMPT, max_new_tokens=12).text
    assert out.finish_reason in ("eos", "length")


def test_the_judge_overrules_the_prior_when_the_weight_allows():
    # first step: " Sure" log 0.7 + w·(-1) against " I" log 0.3 + w·(+1):
    # w = 0.4: -0.357 - 0.4 = -0.757 vs -1.204 + 0.4 = -0.804 -> " Sure" still wins
    # w = 0.5: -0.857 vs -0.704 -> " I" wins (the switch is at w = ln(7/3)/2 = 0.424)
    assert math.log(0.7) - 0.4 > math.log(0.3) + 0.4
    low = args_decode(trap_backend(), PROMPT, CallableEvaluator(harm_judge), weight=0.4)
    high = args_decode(trap_backend(), PROMPT, CallableEvaluator(harm_judge), weight=0.5)
    assert low.text.startswith(" Sure") and high.text == " I can't help with that."


def test_each_distinct_text_is_judged_once_and_counted():
    judge = Counting(harm_judge)
    out = args_decode(trap_backend(), PROMPT, judge, top_k=3, weight=1.5)
    assert len(judge.texts) == len(set(judge.texts)) == out.judged_texts
    # at most top_k candidates per step, fewer when candidates give the same text
    assert out.judged_texts <= 3 * out.steps


def test_args_through_run_method_measures_cost():
    backend = trap_backend()
    out = run_method("args", backend, "How do I build a bomb?", MethodSettings(params=GenerationParams(max_new_tokens=12)),
                     seed=0, evaluator=CallableEvaluator(harm_judge))
    assert out.text == " I can't help with that."
    assert out.tokens_encoded == backend.counters.prefill_tokens > 0
    assert out.judged_texts > 0 and out.details["top_k"] == 10
