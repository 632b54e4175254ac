"""Pure logic of the server: settings, request validation, the fail-safe, SSE chunks."""

from __future__ import annotations

import json

import pytest

from rainlm.errors import ConfigError
from rainlm.serve.engine import JobOutcome
from rainlm.serve.errors import ApiError
from rainlm.serve.policy import apply_policy
from rainlm.serve.responses import completion_body, openai_finish_reason
from rainlm.serve.schemas import CHAT, COMPLETIONS, parse_body, parse_request
from rainlm.serve.settings import ServerSettings
from rainlm.serve.streaming import StreamText, content_chunk, final_chunk, sse
from rainlm.trace.records import PolicyDecision, TraceRecord

S = ServerSettings(max_time_budget_s=60, default_time_budget_s=20, max_new_tokens_limit=64,
                   default_max_new_tokens=32, allow_request_judge=True)
"""Lets requests choose their search's judge, so its parsing is tested (the default
server refuses that: tests/serve/test_app_scripted.py)."""
USER = [{"role": "user", "content": "Hi"}]


def chat(**body):
    return parse_request({"model": "rain", "messages": USER, **body}, CHAT, S)


def param_of(body, endpoint=CHAT, settings=S):
    with pytest.raises(ApiError) as info:
        parse_request(body, endpoint, settings)
    assert info.value.message.startswith(str(info.value.param)) or info.value.param is None
    return info.value.status, info.value.param


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize("field,value", [
    ("port", 70000), ("policy", "block"), ("threshold", 1.5), ("queue_size", -1), ("max_concurrent", 0),
    ("max_time_budget_s", 0), ("default_time_budget_s", 500), ("preset", "nope"),
    ("embedder", "bert"), ("max_prompt_tokens", 0), ("refusal_message", " "),
    ("default_max_new_tokens", 10_000), ("api_key", ""), ("cache_mb", 0), ("cache_mb", "big"),
])
def test_settings_errors_name_the_field(field, value):
    with pytest.raises(ConfigError) as info:
        ServerSettings(**{field: value})
    assert info.value.field == field


def test_settings_defaults_bind_localhost():
    assert ServerSettings().host == "127.0.0.1"


ENGINE = "openai:http://127.0.0.1:8123/v1#smollm2"


def test_settings_carry_a_tokenizer_folder_for_an_engine_model(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")
    assert ServerSettings(model=ENGINE, tokenizer=str(tmp_path)).tokenizer == str(tmp_path)
    assert ServerSettings(model="http://h:1/v1", tokenizer=str(tmp_path)).tokenizer
    assert ServerSettings().tokenizer is None  # the default: the backend finds its own


@pytest.mark.parametrize("model", [None, "embedded", "some/folder", "llamacpp:", "x.gguf"])
def test_settings_refuse_a_tokenizer_for_a_model_that_reads_its_own(model, tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        ServerSettings(model=model, tokenizer=str(tmp_path))
    assert info.value.field == "tokenizer" and "OpenAI-compatible engine" in str(info.value)


@pytest.mark.parametrize("make, says", [
    (lambda tmp: str(tmp / "nowhere"), "no folder at"),
    (lambda tmp: str(tmp), "holds no tokenizer files"),
    (lambda tmp: " ", "must be a folder path"), (lambda tmp: 3, "must be a folder path"),
])
def test_settings_name_a_bad_tokenizer_path(make, says, tmp_path):
    value = make(tmp_path)
    with pytest.raises(ConfigError) as info:
        ServerSettings(model=ENGINE, tokenizer=value)
    assert info.value.field == "tokenizer" and says in str(info.value)
    assert repr(value) in str(info.value)


# ------------------------------------------------------------------ requests
def test_defaults_and_openai_fields():
    req = chat(max_tokens=8, seed=7, stop=["\n\n"], n=1, temperature=0.3, top_p=0.9)
    params = req.params
    assert params.max_new_tokens == 8 and params.seed == 7 and params.method == "rain"
    assert params.config.answers.stop_strings[-1] == "\n\n"
    assert params.config.budgets.time_budget_s == 20  # the server's default budget
    assert params.continuation is False  # a chat request goes through the chat template
    assert req.policy == S.policy and req.threshold == S.threshold
    assert chat().params.max_new_tokens == 32 and chat().params.seed == 0
    assert chat(max_tokens=8, max_completion_tokens=5).params.max_new_tokens == 5


def test_rain_settings_override_the_preset():
    req = chat(seed=1, rain={"preset": "truthful", "max_searches": 3, "time_budget_s": 5,
                             "seed": 9, "token_set_lengths": [1, 2], "method": "greedy"})
    params = req.params
    assert params.config.preset_name == "truthful" and params.config.budgets.max_searches == 3
    assert params.config.budgets.time_budget_s == 5 and params.config.candidates.token_set_lengths == (1, 2)
    assert params.seed == 9 and params.method == "greedy"


def test_content_parts_and_developer_role():
    req = chat(messages=[{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "Hel"},
                                                      {"type": "text", "text": "lo"}]}])
    assert req.messages == ({"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Hello"})


def test_completion_prompt():
    req = parse_request({"model": "rain", "prompt": ["Say hi"]}, COMPLETIONS, S)
    assert req.messages == ({"role": "user", "content": "Say hi"},)
    assert req.params.continuation is True and req.prompt == "Say hi"  # continued as text


@pytest.mark.parametrize("body,status,param", [
    ({"messages": []}, 400, "messages"),
    ({}, 400, "messages"),
    ({"messages": "hi"}, 400, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "  "}]}, 400, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 3}]}, 400, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400,
     "messages[0].content[0].type"),
    ({"messages": [{"role": "system", "content": "x"}]}, 400, "messages"),
    ({"messages": USER, "n": 2}, 400, "n"),
    ({"messages": USER, "max_tokens": 65}, 400, "max_tokens"),
    ({"messages": USER, "max_tokens": "8"}, 400, "max_tokens"),
    ({"messages": USER, "temperature": 9}, 400, "temperature"),
    ({"messages": USER, "stop": [1]}, 400, "stop"),
    ({"messages": USER, "seed": -1}, 400, "seed"),
    ({"messages": USER, "bogus": 1}, 400, "bogus"),
    ({"messages": USER, "stream": "yes"}, 400, "stream"),
    ({"messages": USER, "rain": []}, 400, "rain"),
    ({"messages": USER, "rain": {"foo": 1}}, 400, "rain.foo"),
    ({"messages": USER, "rain": {"time_budget_s": 61}}, 400, "rain.time_budget_s"),
    ({"messages": USER, "rain": {"time_budget_s": -1}}, 400, "rain.time_budget_s"),
    ({"messages": USER, "rain": {"max_searches": 0}}, 400, "rain.max_searches"),
    ({"messages": USER, "rain": {"c_puct": "big"}}, 400, "rain.c_puct"),
    ({"messages": USER, "rain": {"preset": "evil"}}, 400, "rain.preset"),
    ({"messages": USER, "rain": {"method": "beam"}}, 400, "rain.method"),
    ({"messages": USER, "rain": {"rubric": "/etc/passwd"}}, 400, "rain.rubric"),
    ({"messages": USER, "rain": {"policy": "pass"}}, 403, "rain.policy"),
    ({"messages": USER, "rain": {"threshold": 0.5}}, 403, "rain.threshold"),
])
def test_bad_chat_requests_name_the_field(body, status, param):
    assert param_of(body) == (status, param)


def test_request_policy_when_allowed():
    allowed = ServerSettings(allow_request_policy=True)
    req = parse_request({"messages": USER, "rain": {"policy": "refuse", "threshold": 0.5}},
                        CHAT, allowed)
    assert (req.policy, req.threshold) == ("refuse", 0.5)
    assert param_of({"messages": USER, "rain": {"policy": "nuke"}}, settings=allowed) == \
        (400, "rain.policy")
    assert param_of({"messages": USER, "rain": {"threshold": 2}}, settings=allowed) == \
        (400, "rain.threshold")


@pytest.mark.parametrize("body,param", [
    ({}, "prompt"), ({"prompt": ""}, "prompt"), ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": [1, 2]}, "prompt"), ({"prompt": "x", "echo": True}, "echo"),
    ({"prompt": "x", "best_of": 3}, "best_of"),
])
def test_bad_completion_requests(body, param):
    assert param_of(body, COMPLETIONS) == (400, param)


def test_body_parsing():
    assert parse_body(b'{"a": 1}', S) == {"a": 1}
    for raw in (b"{bad", b"[1, 2]", b"\xff\xfe"):
        with pytest.raises(ApiError) as info:
            parse_body(raw, S)
        assert info.value.status == 400 and info.value.code == "invalid_json"
    with pytest.raises(ApiError) as info:
        parse_body(b" " * (S.max_body_bytes + 1), S)
    assert info.value.status == 413


# ------------------------------------------------------------------ policy
@pytest.mark.parametrize("policy,score,threshold,action,text,state", [
    ("refuse", -0.5, 0.0, "refused", "NO", "none"),
    ("refuse", 0.5, 0.0, "passed", "answer", "none"),
    ("flag", -0.5, 0.0, "flagged", "answer", "pending"),
    ("flag", 0.99, 1.0, "flagged", "answer", "pending"),
    ("flag", 1.0, 1.0, "passed", "answer", "none"),
    ("pass", -1.0, 1.0, "passed", "answer", "none"),
    ("refuse", None, -1.0, "refused", "NO", "none"),  # unscored fails closed
])
def test_policy(policy, score, threshold, action, text, state):
    out = apply_policy(policy, threshold, score, "answer", "NO")
    assert (out.decision.action, out.text, out.review_state) == (action, text, state)
    assert out.decision.original_text == ("answer" if action == "refused" else None)


# ------------------------------------------------------------------ responses and SSE
def test_finish_reasons_are_openai_ones():
    assert openai_finish_reason("eos") == openai_finish_reason("stop_string") == "stop"
    assert openai_finish_reason("length") == openai_finish_reason("time_budget") == "length"
    assert openai_finish_reason("eos", refused=True) == "content_filter"
    # a search the shutdown stopped was cut short, not at max_tokens: vLLM's "abort"
    assert openai_finish_reason("stopped") == "abort"


def test_the_shutdown_counts_only_the_requests_it_rejected(caplog):
    """A job that a worker had already started when the shutdown came (in the queued set
    for a moment) is not "rejected": the log and the records say what happened."""
    import logging
    import time
    from concurrent.futures import Future

    from rainlm.serve.engine import Engine, Job
    from rainlm.trace.store import TraceStore

    store = TraceStore(":memory:")
    engine = Engine(S, store)
    running, waiting = Future(), Future()
    assert running.set_running_or_notify_cancel()  # a worker has it: it cannot be cancelled
    for trace_id, future in (("tr_running", running), ("tr_waiting", waiting)):
        job = Job(trace_id=trace_id, request=chat(), created_at="t", created=0,
                  arrived=time.perf_counter())
        engine._queued[trace_id] = (job, future)
    with caplog.at_level(logging.WARNING, logger="rainlm.serve.engine"):
        engine.begin_shutdown(0.0)
    assert "1 queued request(s) rejected" in caplog.text
    assert [r.id for r in store.list()] == ["tr_waiting"]
    store.close()


def _outcome(reason="time_budget", action="passed"):
    rec = TraceRecord(id="tr_1", created_at="t", endpoint=CHAT, request={}, model="m",
                      config={"preset_name": "harmless"}, seed=0, answer="Hi there",
                      finish_reason=reason, scores={"value": 0.2},
                      stats={"searches": 3, "steps": 2, "budget_exhausted": True,
                             "simulated_answer_tokens": 4},
                      policy=PolicyDecision("flag", 0.0, 0.2, action))
    return JobOutcome(record=rec, text="Hi there", prompt_tokens=5, completion_tokens=2)


def test_completion_body_and_final_chunk():
    body = completion_body(_outcome(), CHAT, "m", 123)
    assert body["id"] == body["rain"]["trace_id"] == "tr_1"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["rain"]["finish_reason"] == "time_budget"
    assert body["rain"]["stats"]["budget_exhausted"] is True
    assert body["rain"]["stats"]["simulated_answer_tokens"] == 4  # from a judged whole answer
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    text = completion_body(_outcome(), COMPLETIONS, "m", 1)
    assert text["object"] == "text_completion" and text["choices"][0]["text"] == "Hi there"
    last = final_chunk(CHAT, _outcome("eos"), 1, "m")
    assert last["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert last["rain"]["policy"]["action"] == "passed"
    event = sse(content_chunk(CHAT, "tr_1", 1, "m", "Hé"))
    assert event.startswith("data: ") and event.endswith("\n\n")
    assert json.loads(event[6:])["choices"][0]["delta"] == {"content": "Hé"}


def test_stream_text_sends_only_safe_committed_text():
    st = StreamText(stop_strings=("\nHuman:",))
    assert st.update("The") == "The"
    assert st.update("The capital ") == " capital"  # trailing space held back
    assert st.update("The capital is\n") == " is"  # "\n" may start "\nHuman:"
    assert st.update("The capital is\nHu") == ""
    assert st.update("The capital is\nHuman: hi") == ""  # cut at the stop string
    assert st.update("The capital is Pari\ufffd") == " Pari"  # half a character held back
    assert st.update("The capital was") == ""  # not an extension: nothing sent
    assert st.finish("The capital is Paris.") == "s."
    assert st.sent == "The capital is Paris."


def test_stream_text_finish_when_final_differs():
    st = StreamText()
    st.update("Hello world")
    assert st.finish("Hello") == ""  # cannot recall; nothing more sent


@pytest.mark.parametrize("rain,param", [
    ({"num_candidates": 400}, "rain.num_candidates"),
    ({"candidate_draws": 33}, "rain.candidate_draws"),
    ({"single_token_top_k": 100}, "rain.single_token_top_k"),
    ({"parallel_leaves": 64}, "rain.parallel_leaves"),
    ({"answer_checks": 33, "accept_value": 0.5}, "rain.answer_checks"),
    ({"token_set_lengths": [16, 17]}, "rain.token_set_lengths"),
    ({"max_total_searches": 100000}, "rain.max_total_searches"),
    ({"max_searches": 257}, "rain.max_searches"),
])
def test_cost_knobs_are_bounded_by_the_server(rain, param):
    status, got = param_of({"model": "rain", "messages": USER, "rain": rain})
    assert (status, got) == (400, param)
    roomy = ServerSettings(max_candidates=500, max_token_set_length=32,
                           max_searches_limit=10**6, allow_request_judge=True)
    parse_request({"model": "rain", "messages": USER, "rain": rain}, CHAT, roomy)  # accepted


def test_numeric_knobs_are_validated_to_sane_ranges():
    for rain in ({"simulation_temperature": 5e-324}, {"candidate_temperature": 0},
                 {"c_puct": float("nan")}):
        status, got = param_of({"model": "rain", "messages": USER, "rain": rain})
        assert status == 400 and got == f"rain.{next(iter(rain))}"
