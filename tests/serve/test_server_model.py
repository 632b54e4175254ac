"""``rain serve`` as a real subprocess on the embedded model, driven by the openai client.

Two server processes: the main one (API key, request policies allowed) and one with
``--queue-size 1`` for the 429 test. Requests are tiny (8 tokens, 2 searches per step,
a few seconds of budget) so the module runs in a couple of minutes on 2 cores.
"""

from __future__ import annotations

import json
import threading

import pytest

from tests.needs import require_embedded_model, require_installed
from tests.serve.server import running_server

pytestmark = pytest.mark.model

KEY = "sk-test-rain"
TINY = {"max_searches_per_step": 2, "time_budget_s": 4, "seed": 1}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
REFUSAL = "Sorry, I will not answer that."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_installed("torch", "transformers", "fastapi", "uvicorn", "openai")
    require_embedded_model()
    tmp = tmp_path_factory.mktemp("serve")
    args = ["--db", str(tmp / "audit.sqlite3"), "--api-key", KEY, "--embedder", "hashing",
            "--device", "cpu", "--allow-request-policy", "--policy", "pass",
            "--refusal-message", REFUSAL, "--default-time-budget", "4",
            "--max-time-budget", "30", "--max-new-tokens-limit", "32", "--queue-size", "8"]
    with running_server(args, tmp / "server.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120)


def get_trace(server, trace_id: str) -> dict:
    import httpx

    resp = httpx.get(f"{server.url}/v1/rain/traces/{trace_id}",
                     headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def ask(client, rain=None, **kw):
    return client.chat.completions.create(model="rain", messages=kw.pop("messages", QUESTION),
                                          max_tokens=kw.pop("max_tokens", 8),
                                          extra_body={"rain": {**TINY, **(rain or {})}}, **kw)


# ------------------------------------------------------------------ plain requests
def test_chat_completion_with_rain_object_and_audit_record(server, client):
    """A RAIN answer that searched (the server's largest budget, 30 s, leaves room for
    at least one pass even on a busy machine), its rain object and its audit record."""
    roomy = {"time_budget_s": 30}
    resp = ask(client, rain=roomy, temperature=0.7, top_p=0.5)  # accepted and ignored
    choice = resp.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    rain = resp.model_extra["rain"]
    assert resp.id == rain["trace_id"] and rain["method"] == "rain" and rain["seed"] == 1
    assert rain["stats"]["searches"] >= 1, rain["stats"]  # RAIN searched: not greedy alone
    assert rain["stats"]["wall_time_s"] > 0
    assert -1.0 <= rain["score"] <= 1.0 and rain["policy"]["action"] == "passed"
    assert resp.usage.completion_tokens <= 8 and resp.usage.prompt_tokens > 5
    record = get_trace(server, resp.id)
    assert record["answer"] == choice.message.content
    assert record["request"]["rain"] == {**TINY, **roomy}
    assert record["request"]["temperature"] == 0.7
    assert KEY not in json.dumps(record)
    assert record["config"]["max_searches_per_step"] == 2 and record["error"] is None
    assert record["trace"]["tree"]["nodes"]
    assert record["stats"]["total_s"] >= record["stats"]["queue_s"] + record["stats"]["score_s"]
    assert record["scores"]["value"] == rain["score"]


def test_streaming_sends_committed_text_that_adds_up_to_the_answer(server, client):
    # the server's largest budget: 2 passes per step end the search long before it, even on
    # a busy machine, so the seeded search (and its number of steps) does not hang on time
    stream = ask(client, stream=True, rain={"time_budget_s": 30}, max_tokens=12,
                 messages=[{"role": "user", "content": "Name three fruits."}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    final = chunks[-1]
    assert final.choices[0].finish_reason in ("stop", "length")
    rain = final.model_extra["rain"]
    assert all(c.id == rain["trace_id"] for c in chunks)
    record = get_trace(server, rain["trace_id"])
    assert "".join(deltas) == record["answer"]
    assert rain["stats"]["steps"] >= 2 and record["answer"]
    assert len(deltas) >= 2, "committed token sets should arrive as separate chunks"


def test_completions_and_models(client):
    resp = client.completions.create(model="rain", prompt="The sky is", max_tokens=8,
                                     extra_body={"rain": TINY})
    assert resp.object == "text_completion" and isinstance(resp.choices[0].text, str)
    assert resp.usage.prompt_tokens == 3  # "The sky is" as is; the chat template made it 33
    assert resp.model_extra["rain"]["trace_id"] == resp.id
    models = client.models.list()
    assert "SmolLM2" in models.data[0].id and models.data[1].id == "rain"


def test_time_budget_exhausted_is_reported(client):
    resp = ask(client, rain={"time_budget_s": 0.2, "max_searches_per_step": 50})
    rain = resp.model_extra["rain"]
    assert rain["finish_reason"] == "time_budget" and rain["stats"]["budget_exhausted"]
    assert resp.choices[0].finish_reason == "length"


def test_greedy_method(client):
    resp = ask(client, rain={"method": "greedy"})
    assert resp.model_extra["rain"]["method"] == "greedy"
    assert "Paris" in resp.choices[0].message.content


# ------------------------------------------------------------------ the fail-safe
def test_refuse_policy_replaces_the_answer_and_keeps_the_original(server, client):
    resp = ask(client, rain={"policy": "refuse", "threshold": 1.0})
    assert resp.choices[0].message.content == REFUSAL
    assert resp.choices[0].finish_reason == "content_filter"
    record = get_trace(server, resp.id)
    assert record["answer"] == REFUSAL and record["policy"]["action"] == "refused"
    assert record["policy"]["original_text"] == record["trace"]["text"]


def test_flag_policy_queues_for_review_and_review_post_decides(server, client):
    import httpx

    resp = ask(client, rain={"policy": "flag", "threshold": 1.0})
    assert resp.model_extra["rain"]["review_state"] == "pending"
    assert resp.choices[0].message.content == get_trace(server, resp.id)["trace"]["text"]
    page = httpx.get(f"{server.url}/review", params={"key": KEY}, timeout=30)
    assert page.status_code == 200 and resp.id in page.text
    decided = httpx.post(f"{server.url}/v1/rain/reviews/{resp.id}", timeout=30,
                         headers={"Authorization": f"Bearer {KEY}"},
                         json={"decision": "rejected", "note": "unsure"})
    assert decided.status_code == 200 and decided.json()["review_state"] == "rejected"
    assert get_trace(server, resp.id)["review"]["note"] == "unsure"


def test_pass_policy_sends_and_records(server, client):
    resp = ask(client, rain={"policy": "pass", "threshold": 1.0})
    record = get_trace(server, resp.id)
    assert record["policy"]["action"] == "passed" and record["review_state"] == "none"


# ------------------------------------------------------------------ errors
def test_api_key_required(server):
    import httpx
    from openai import AuthenticationError, OpenAI

    wrong = OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(AuthenticationError):
        wrong.models.list()
    assert httpx.get(f"{server.url}/review", timeout=10).status_code == 401
    assert httpx.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"


def test_bad_requests_name_the_field(server, client):
    import httpx
    from openai import BadRequestError

    cases = [({"n": 2}, "n"), ({"extra_body": {"rain": {"bogus": 1}}}, "rain.bogus"),
             ({"extra_body": {"rain": {"time_budget_s": 31}}}, "rain.time_budget_s"),
             ({"max_tokens": 33}, "max_tokens"),
             ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
             ({"messages": [{"role": "user", "content": ""}]}, "messages[0].content")]
    for kw, param in cases:
        kw = {"model": "rain", "messages": QUESTION, "max_tokens": 8, **kw}
        with pytest.raises(BadRequestError) as info:
            client.chat.completions.create(**kw)
        assert info.value.body["param"] == param, info.value.body
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for raw in (b"{oops", b"[]", b'{"messages": "hi"}'):
        resp = httpx.post(f"{server.url}/v1/chat/completions", content=raw, headers=headers)
        assert resp.status_code == 400
        assert resp.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(BadRequestError) as info:
        client.chat.completions.create(
            model="rain", max_tokens=8,
            messages=[{"role": "user", "content": "word " * 3000}])
    assert info.value.body["code"] == "context_length_exceeded"
    assert httpx.get(f"{server.url}/v1/rain/traces/tr_missing", headers=headers).status_code == 404


# ------------------------------------------------------------------ concurrency
def _parallel(fn, n: int) -> list:
    results: list = [None] * n

    def run(i: int) -> None:
        try:
            results[i] = fn()
        except Exception as exc:  # collected and asserted by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def test_four_simultaneous_requests_all_succeed(client):
    prompts = iter([f"Say the number {i} in words." for i in range(4)])  # distinct: no cache hits
    results = _parallel(lambda: ask(client, rain={"time_budget_s": 2}, messages=[
        {"role": "user", "content": next(prompts)}]), 4)
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.id for r in results}) == 4
    assert all(r.model_extra["rain"]["stats"]["searches"] >= 1
               or r.model_extra["rain"]["stats"]["budget_exhausted"] for r in results)


@pytest.mark.parametrize("concurrent", [1, 2])
def test_full_queue_answers_429_with_retry_after(tmp_path, concurrent):
    """``concurrent`` searches running (--max-concurrent), one waiting (--queue-size 1):
    the next two get 429.

    Synchronised on what the server reports (/health: running, queue depth), not on
    timing: each request is sent only once the previous ones are running or queued, and
    the searches' time budget (20 s) is far longer than the two rejected requests take.
    """
    require_installed("torch", "transformers", "fastapi", "uvicorn", "httpx")
    require_embedded_model()
    import httpx

    args = ["--db", str(tmp_path / "audit.sqlite3"), "--embedder", "hashing", "--device", "cpu",
            "--queue-size", "1", "--policy", "pass", "--max-concurrent", str(concurrent)]
    with running_server(args, tmp_path / "server.log") as srv:
        body = {"model": "rain", "messages": QUESTION, "max_tokens": 64,
                "rain": {"time_budget_s": 20, "max_searches_per_step": 200}}

        def health() -> dict:
            return httpx.get(f"{srv.url}/health", timeout=10).json()

        def until(cond) -> None:
            for _ in range(6000):  # a condition the server reaches within ms; 60 s is a hang
                if cond(health()):
                    return
                threading.Event().wait(0.01)
            raise AssertionError(health())

        post = lambda: httpx.post(f"{srv.url}/v1/chat/completions", json=body, timeout=120)
        results: list = [None] * (concurrent + 1)
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, post()))
                   for i in range(concurrent + 1)]
        for i in range(concurrent):
            threads[i].start()
            until(lambda h, i=i: h["running"] == i + 1)
        threads[-1].start()
        until(lambda h: h["queue_depth"] == 1)
        rejected = [post(), post()]
        for t in threads:
            t.join(timeout=300)
        assert [r.status_code for r in results] == [200] * (concurrent + 1), [r.text for r in results]
        assert [r.status_code for r in rejected] == [429, 429]
        for r in rejected:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"]["type"] == "rate_limit_error"
        final = health()
        assert final["queue_depth"] == 0 and final["busy"] is False and final["running"] == 0


def test_client_disconnect_does_not_wedge_the_worker(server, client):
    import httpx

    body = {"model": "rain", "messages": [{"role": "user", "content": "Tell me a story."}],
            "max_tokens": 16, "stream": True, "rain": {"time_budget_s": 3}}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"}) as resp:
        assert resp.status_code == 200
        next(resp.iter_lines())  # the role chunk; then hang up mid-search
    resp = ask(client, messages=[{"role": "user", "content": "Say hello."}])
    assert resp.model_extra["rain"]["trace_id"] == resp.id
    # the disconnected search may still run beside it (--max-concurrent): it ends within
    # its 3 s budget, so the server is idle again well within 60 s
    for _ in range(1200):
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        if not health["busy"]:
            break
        threading.Event().wait(0.05)
    assert health["busy"] is False and health["queue_depth"] == 0
