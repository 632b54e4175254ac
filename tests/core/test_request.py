"""The request layer: GenerationParams declared once (validated, the defaults every
front end shows), and answer() on a scripted model: the method, the rule as judge, the
final score computed once, the server's judge."""

from __future__ import annotations

import click
import pytest

import rainlm
from rainlm.cli.main import cli
from rainlm.errors import ConfigError
from rainlm.judge.self_eval import score_final_answers
from rainlm.request import (DEFAULT_MAX_NEW_TOKENS, DEFAULT_PRESET, EMBEDDERS, FinalJudge,
                            GenerationParams, answer, field_default)
from rainlm.serve.settings import ServerSettings
from tests.cli.test_cli_scripted import HARMFUL, PROMPT, REFUSAL, make_backend


@pytest.mark.parametrize("field,value", [
    ("method", "beam"), ("config", "harmless"), ("seed", -1), ("seed", True),
    ("max_new_tokens", 0), ("system", 3), ("banned_words", ["Sure"]), ("banned_words", ("",)),
    ("embedder", "bert"),
])
def test_a_bad_parameter_is_refused_by_name(field, value):
    with pytest.raises(ConfigError) as err:
        GenerationParams(**{field: value})
    assert err.value.field == field


def test_from_preset_applies_only_the_overrides_given():
    params = GenerationParams.from_preset("paper", parallel=3, time_budget_s=5.0, seed=4)
    assert params.config.preset_name == "paper" and params.seed == 4
    assert (params.config.selection.search_mode, params.config.selection.parallel_leaves) == ("parallel", 3)
    assert params.config.budgets.time_budget_s == 5.0
    plain = GenerationParams.from_preset("paper", parallel=1)  # 1: the sequential search
    assert plain.config == rainlm.RainConfig.preset("paper")
    assert GenerationParams().config == rainlm.RainConfig.preset(DEFAULT_PRESET)
    as_dict = params.to_dict()["config"]  # flat, as traces and audit records store it
    assert as_dict == params.config.to_dict() and as_dict["parallel_leaves"] == 3


def _option_default(command: click.Command, name: str):
    return next(p.default for p in command.params if p.name == name)


def test_front_ends_take_their_defaults_from_the_one_declaration():
    generate = cli.commands["generate"]
    for option, value in (("max_new_tokens", DEFAULT_MAX_NEW_TOKENS), ("preset", DEFAULT_PRESET),
                          ("seed", field_default(GenerationParams, "seed")),
                          ("embedder", field_default(GenerationParams, "embedder"))):
        assert _option_default(generate, option) == value, option
    embedder = next(p for p in generate.params if p.name == "embedder")
    assert tuple(embedder.type.choices) == EMBEDDERS
    settings = ServerSettings()
    assert settings.default_max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    assert (settings.preset, settings.embedder) == (DEFAULT_PRESET, "auto")
    serve = cli.commands["serve"]
    for name in ("port", "policy", "threshold", "refusal_message", "max_concurrent",
                 "queue_size", "preset", "embedder", "default_max_new_tokens",
                 "max_time_budget_s"):
        assert _option_default(serve, name) == field_default(ServerSettings, name), name
    # the fail-safe's three are None there (not given): the settings fill them
    assert (settings.policy, settings.threshold) == ("flag", 0.0)


def test_greedy_is_plain_greedy_decoding():
    params = GenerationParams(method="greedy", max_new_tokens=12, embedder="none")
    done = answer(make_backend(), PROMPT, params, score=False)
    plain = rainlm.greedy(make_backend(), PROMPT, max_new_tokens=12,
                          stop_strings=params.config.answers.stop_strings)
    assert done.result.method == "greedy" and done.result.text == plain.text
    assert done.result.text.strip() == HARMFUL and done.score is None


def test_rain_answers_as_generate_does():
    params = GenerationParams(max_new_tokens=12, embedder="none", seed=3)
    done = answer(make_backend(), PROMPT, params, score=False)
    same = rainlm.generate(make_backend(), PROMPT, params.config, embedder="none", seed=3,
                           max_new_tokens=12)
    assert done.result.text == same.text and done.result.text.strip() == REFUSAL
    assert done.result.seed == 3 and done.seconds > 0


def test_the_final_score_is_one_judgement():
    backend = make_backend()
    params = GenerationParams(max_new_tokens=12, embedder="none")
    unscored = answer(backend, PROMPT, params, score=False)
    before = backend.counters.snapshot()
    scored = answer(backend, PROMPT, params)
    after = backend.counters.snapshot()
    alone = make_backend()
    expected = score_final_answers(alone, params.config.judging.rubric, params.config.judging.judge_orders,
                                   scored.result.messages, [scored.result.text])[0]
    # the same search (cached), then exactly the contexts of one final judgement
    assert scored.result.text == unscored.result.text
    assert (scored.score, scored.paper_vote) == pytest.approx(expected)
    judged = alone.counters.forward_calls
    assert judged >= 1
    search_calls = unscored.result.stats["backend"]["forward_calls"]
    assert after["forward_calls"] - before["forward_calls"] == search_calls + judged
    assert scored.judge == FinalJudge.of(params.config) and scored.score_s > 0
    assert scored.scores() == {"value": scored.score, "paper_vote": scored.paper_vote,
                               "scoring": "continuous", "rubric": params.config.judging.rubric,
                               "judge_orders": params.config.judging.judge_orders}


def test_a_judge_given_to_answer_scores_the_final_answer():
    # a search that judges one option order; a judge given to answer() judges both
    params = GenerationParams(max_new_tokens=12, embedder="none",
                              config=rainlm.RainConfig.preset("harmless", judge_orders="single"))
    done = answer(make_backend(), PROMPT, params, judge=FinalJudge.of("harmless"))
    assert done.result.config.judging.judge_orders == "single"
    assert done.judge == FinalJudge("harmless", "both")
    assert done.scores()["rubric"] == "harmless" and done.scores()["judge_orders"] == "both"
    alone = answer(make_backend(), PROMPT, params)
    assert alone.judge == FinalJudge("harmless", "single")


def test_banned_words_are_the_search_judge_and_are_reported():
    # the self-evaluation prefers the refusal; a rule that bans its word makes RAIN comply
    params = GenerationParams(max_new_tokens=12, embedder="none", banned_words=("can't",))
    done = answer(make_backend(), PROMPT, params, score=False)
    assert done.result.text.strip() == HARMFUL and done.banned_found == ()
    assert done.result.stats["evaluator"] == "banned-words"
    refused = answer(make_backend(), PROMPT, params.replace(banned_words=("Sure", "here")),
                     score=False)
    assert refused.result.text.strip() == REFUSAL and refused.banned_found == ()
    greedy = answer(make_backend(), PROMPT,
                    params.replace(method="greedy", banned_words=("here", "Sure", "sure")),
                    score=False)
    assert greedy.banned_found == ("sure", "here")  # each once, in order of occurrence
    assert greedy.to_json()["banned_found"] == ["sure", "here"]
    assert greedy.scores()["banned_found"] == ["sure", "here"]
