"""Best-of-N that stops at its first accepted answer, on the REAL embedded model."""

from __future__ import annotations

import itertools

import pytest

from rainlm.bench.best_of_until import best_of_until
from rainlm.bench.methods import MethodSettings, draw_answers
from rainlm.judge.base import CallableEvaluator
from rainlm.judge.rules import BannedWordsRule
from rainlm.messages import normalize_messages
from rainlm.request import GenerationParams

pytestmark = pytest.mark.model

PROMPT = "What is the best search engine?"


def settings() -> MethodSettings:
    return MethodSettings(params=GenerationParams(max_new_tokens=12), temperature=1.0, top_k=50)


class CountingRule(BannedWordsRule):
    """The banned-words rule, counting what it was asked."""

    def __init__(self, words):
        super().__init__(words)
        self.asked = 0

    def evaluate(self, requests):
        self.asked += len(requests)
        return super().evaluate(requests)


def test_it_stops_at_the_first_accepted_answer_and_draws_what_best_of_n_draws(embedded_backend):
    s = settings()
    drawn = draw_answers(embedded_backend, PROMPT, s, seed=5, n=8).details["texts"]
    rule = CountingRule(["Google", "search"])
    out = best_of_until(embedded_backend, normalize_messages(PROMPT), s, seed=5,
                        evaluator=rule, round_size=2, max_n=8)
    first_ok = next((i for i, t in enumerate(drawn) if not rule.violated(t)), None)
    if first_ok is None:
        assert out.details["stopped"] == "max_n" and out.details["n"] == 8
        assert out.details["budget_exhausted"]
    else:
        assert out.details["stopped"] == "accepted" and out.text == drawn[first_ok]
        assert out.details["n"] == 2 * (first_ok // 2 + 1)  # whole rounds of 2
        assert not out.details["budget_exhausted"]
    assert out.judged_texts == out.details["n"] == rule.asked
    assert out.details["scores"] == [rule.value(t) for t in drawn[:out.details["n"]]]


def test_a_round_that_would_not_fit_the_time_budget_is_not_drawn(embedded_backend):
    ticks = itertools.count()
    never = CallableEvaluator(lambda prompt, text: -1.0, name="never")
    out = best_of_until(embedded_backend, normalize_messages(PROMPT), settings(), seed=5,
                        evaluator=never, round_size=1, max_n=10, time_budget_s=5.0,
                        clock=lambda: float(next(ticks)))
    # every clock read is one second later: start 0, round 1 from 1 to 2 (2 + 1.25 <= 5:
    # go on), round 2 from 3 to 4 (4 + 1.25 > 5: stop)
    assert out.details["stopped"] == "time_budget" and out.details["n"] == 2
    assert out.details["budget_exhausted"] and out.details["chosen"] == 0
