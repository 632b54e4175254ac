"""A policy in the request layer: ``GenerationParams.policy`` is the search's judge,
``answer()`` checks the answer against its rules, and the fail-safe's judgement
(``rainlm.policy.judging``) scores it by the policy."""

from __future__ import annotations

import json

import pytest

from rainlm.errors import ConfigError
from rainlm.policy import policy_from_text
from rainlm.policy.judging import judge_answer
from rainlm.request import GenerationParams, answer
from tests.cli.test_cli_scripted import HARMFUL, PROMPT, REFUSAL, make_backend

NO_SURE = policy_from_text('name = "no sure"\n[rules]\nbanned_terms = ["Sure"]\n',
                           source="no_sure.toml")


def test_the_policy_is_the_search_judge_and_checks_the_answer():
    params = GenerationParams(max_new_tokens=12, embedder="none", policy=NO_SURE)
    done = answer(make_backend(), PROMPT, params, score=False)
    assert done.result.text.strip() == REFUSAL
    assert done.result.stats["evaluator"] == "policy:no sure"
    assert done.policy_check.kept and done.to_json()["policy"]["broken"] == []
    greedy = answer(make_backend(), PROMPT, params.replace(method="greedy"), score=False)
    assert greedy.result.text.strip() == HARMFUL
    assert greedy.policy_check.broken == ("banned term: Sure",)
    assert greedy.scores()["policy"]["source"] == "no_sure.toml"


def test_params_record_the_policy_and_refuse_it_with_banned_words():
    params = GenerationParams(policy=NO_SURE)
    assert params.to_dict()["policy"] == {"name": "no sure", "source": "no_sure.toml",
                                          "use": "rules", "lang": "en"}
    json.dumps(params.to_dict())
    assert "policy" not in GenerationParams().to_dict()  # unchanged without a policy
    with pytest.raises(ConfigError) as err:
        GenerationParams(policy=NO_SURE, banned_words=("Sure",))
    assert err.value.field == "policy" and "banned_terms" in str(err.value)
    with pytest.raises(ConfigError):
        GenerationParams(policy="policy.toml")


def test_the_fail_safe_judges_by_the_policy():
    params = GenerationParams(max_new_tokens=12, embedder="none", method="greedy",
                              policy=NO_SURE)
    done = judge_answer(make_backend(), answer(make_backend(), PROMPT, params, score=False),
                        NO_SURE)
    assert -1.0 <= done.score < 0 and done.paper_vote is None and done.judge is None
    both = policy_from_text('[rules]\nbanned_terms = ["Sure"]\n[judge]\nuse = "rules+model"\n'
                            'rubric = "harmless"\n')
    judged = judge_answer(make_backend(), answer(make_backend(), PROMPT,
                                                 params.replace(method="rain", policy=both),
                                                 score=False), both)
    assert judged.result.text.strip() == REFUSAL
    assert judged.score == pytest.approx(0.7) and judged.paper_vote == 1.0  # the model's, lower
    assert judged.judge.rubric == "harmless" and judged.policy_check.rules_value == 1.0
