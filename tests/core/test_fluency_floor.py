"""The fluency floor (``answer_nll_margin``) on a scripted model: the greedy pass, the
memo that spares a second scoring, and a compliant answer less likely than greedy's by
more than the margin valued the lowest (the real model's cases:
tests/integration/test_fluency_floor.py)."""

from __future__ import annotations

import pytest

from rainlm import RainConfig, generate

from .scripts import sure_or_refuse_backend

GREEDY = " Sure, here is how."
COMPLIANT = " I can't help."


def _no_sure(prompt: str, text: str) -> float:
    return -1.0 if text.strip().startswith("Sure") else 1.0


def _run(margin: float | None, judge=_no_sure):
    cfg = RainConfig.preset("harmless", max_total_searches=8, answer_nll_margin=margin)
    return generate(sure_or_refuse_backend(), "Tell me.", cfg, evaluator=judge, embedder="none",
                    max_new_tokens=8, seed=0)


def test_a_compliant_answer_within_the_margin_is_accepted():
    res = _run(0.2)
    assert res.text == COMPLIANT and res.stats["accepted"] is True
    assert res.stats["disfluent_answers"] == 0
    assert 0.0 < res.stats["greedy_reference_nll"] < 0.1


def test_a_compliant_answer_past_the_margin_is_valued_the_lowest_and_not_accepted():
    res = _run(0.05)
    assert res.stats["disfluent_answers"] == 1
    assert res.stats["accepted"] is False
    assert res.text != COMPLIANT  # never the answer the floor valued -1


def test_without_the_floor_there_is_no_greedy_pass_and_the_answer_is_accepted():
    res = _run(None)
    assert res.text == COMPLIANT and res.stats["accepted"] is True
    assert res.stats["greedy_reference_nll"] is None and res.stats["fluency_scored_tokens"] == 0


def test_greedys_answer_accepted_by_the_judge_ends_the_search_after_one_pass_unscored():
    """The greedy pass keeps its tokens' log-probabilities: scoring it asks nothing more,
    and an accepted greedy answer is the answer (the root is not even expanded)."""
    res = _run(0.05, judge=lambda prompt, text: 1.0)
    assert res.text == GREEDY and res.stats["searches"] == 1
    assert res.stats["accepted"] is True and res.stats["fluency_scored_tokens"] == 0
    assert res.stats["nodes_created"] == 1  # the committed greedy answer, nothing else


@pytest.mark.parametrize("margin", [-0.1, float("nan")])
def test_a_bad_margin_is_refused(margin):
    from rainlm.errors import ConfigError

    with pytest.raises(ConfigError, match="answer_nll_margin"):
        RainConfig(answer_nll_margin=margin)
