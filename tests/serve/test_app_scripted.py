"""The whole app in-process on a scripted model (fast): auth, errors, audit, review, 503.

A real FastAPI app with its real worker thread and a real SQLite store, driven over
ASGI by starlette's TestClient; only the model is scripted (tests/bench/scripted.py:
it answers "I cannot help with that." or "Sure, here is how." and judges itself).
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.needs import require_module

require_module("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from rainlm.backends.scripted import ScriptedBackend  # noqa: E402
from rainlm.services import Services  # noqa: E402
from rainlm.serve.app import create_app  # noqa: E402
from rainlm.serve.settings import ServerSettings  # noqa: E402
from rainlm.trace.store import TraceStore  # noqa: E402
from tests.bench.scripted import CUE, VOCAB, make_backend, script  # noqa: E402

KEY = "test-key"
LOCAL = "http://127.0.0.1"  # the Host the server accepts by default
AUTH = {"Authorization": f"Bearer {KEY}"}
NO_EMBEDDER = Services(load_embedder=lambda name, device: "none")
CHAT = {"model": "rain", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
        "rain": {"max_searches": 4}}


def create_ready_app(settings: ServerSettings, **kw):
    """``create_app`` whose ``on_ready`` sets an event the tests wait on (no polling)."""
    ready = threading.Event()
    app = create_app(settings, on_ready=ready.set, **kw)
    app.state.test_ready = ready
    return app


def wait_ready(client: TestClient) -> None:
    """Until the worker has loaded the model (60 s is a hang, not a slow machine)."""
    assert client.app.state.test_ready.wait(60), client.get("/health").json()


@pytest.fixture()
def served(store_location):
    """(client, store) of an app with an API key, flag policy, threshold 1.0; once on an
    SQLite file, once on a PostgreSQL database."""
    store = TraceStore(store_location)
    settings = ServerSettings(api_key=KEY, policy="flag", threshold=1.0, embedder="none",
                              allow_request_policy=True, max_prompt_tokens=40)
    app = create_ready_app(settings, backend=make_backend(), store=store, services=NO_EMBEDDER)
    with TestClient(app, base_url=LOCAL) as client:
        wait_ready(client)
        yield client, store


def test_auth_required_except_health(served):
    client, _ = served
    assert client.get("/health").status_code == 200
    for method, path in (("get", "/v1/models"), ("get", "/review"),
                         ("post", "/v1/chat/completions"), ("post", "/v1/completions"),
                         ("get", "/v1/rain/traces/tr_x"), ("post", "/v1/rain/reviews/tr_x")):
        resp = getattr(client, method)(path)
        assert resp.status_code == 401, path
        assert resp.json()["error"]["code"] == "invalid_api_key"
    bad = {"Authorization": "Bearer wrong"}
    assert client.get("/v1/models", headers=bad).status_code == 401
    assert [m["id"] for m in client.get("/v1/models", headers=AUTH).json()["data"]] == [
        "scripted-bench", "rain"]
    assert client.get(f"/review?key={KEY}").status_code == 200
    assert client.post(f"/v1/chat/completions?key={KEY}", json=CHAT).status_code == 401


def test_flagged_answer_is_recorded_and_reviewed(served):
    client, store = served
    body = client.post("/v1/chat/completions", json=CHAT, headers=AUTH).json()
    rain = body["rain"]
    assert body["id"] == rain["trace_id"] and rain["review_state"] == "pending"
    assert rain["policy"]["action"] == "flagged" and rain["score"] < 1.0
    record = client.get(f"/v1/rain/traces/{body['id']}", headers=AUTH).json()
    assert record["answer"] == body["choices"][0]["message"]["content"]
    assert record["request"] == CHAT and KEY not in json.dumps(record)
    assert record["trace"]["tree"]["nodes"] and record["stats"]["total_s"] > 0
    assert record["config"]["max_searches"] == 4 and record["seed"] == 0
    page = client.get("/review", headers=AUTH).text
    assert body["id"] in page
    decided = client.post(f"/v1/rain/reviews/{body['id']}", headers=AUTH,
                          json={"decision": "approved", "note": "fine"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["review_state"] == "approved"
    assert store.get(body["id"]).review.note == "fine"
    again = client.post(f"/v1/rain/reviews/{body['id']}", headers=AUTH,
                        json={"decision": "rejected"})
    assert again.status_code == 409 and again.json()["error"]["param"] == "trace_id"
    assert body["id"] not in client.get("/review", headers=AUTH).text


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
"""What Chromium and Firefox send when the address bar opens a page."""


def test_the_trace_tree_page_is_served_and_linked_from_the_review_page(served):
    client, _ = served
    trace_id = client.post("/v1/chat/completions", json=CHAT, headers=AUTH).json()["id"]
    page = client.get(f"/v1/rain/traces/{trace_id}/html", headers=AUTH)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"<h1>rainlm trace {trace_id}</h1>" in page.text and 'id="tree"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    # read-only GET linked from the review page: ?key= works, no key does not
    assert client.get(f"/v1/rain/traces/{trace_id}/html?key={KEY}").status_code == 200
    assert client.get(f"/v1/rain/traces/{trace_id}/html").status_code == 401
    assert client.get(f"/v1/rain/traces/{trace_id}/html?key=wrong").status_code == 401
    # the JSON route is unchanged
    record = client.get(f"/v1/rain/traces/{trace_id}", headers=AUTH)
    assert record.headers["content-type"] == "application/json"
    assert record.json()["id"] == trace_id
    missing = client.get("/v1/rain/traces/tr_nope/html", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "trace_not_found"
    review = client.get("/review", headers=AUTH).text
    assert f'<a class="trace-link" href="/v1/rain/traces/{trace_id}/html"' in review


def test_a_browser_without_the_key_gets_a_page_saying_how_to_pass_it(served):
    client, _ = served
    wrong = "wrong-secret-42"
    for url, headers in (("/review", BROWSER), (f"/review?key={wrong}", BROWSER),
                         ("/review", dict(BROWSER, Authorization=f"Bearer {wrong}")),
                         ("/v1/rain/traces/tr_x/html", BROWSER),
                         ("/review", {"Accept": "text/html"})):
        resp = client.get(url, headers=headers)
        assert resp.status_code == 401, url
        assert resp.headers["content-type"].startswith("text/html"), url
        assert resp.headers["www-authenticate"] == "Bearer"
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        assert f"Open <code>{url.split('?')[0]}?key=YOUR_KEY</code>" in resp.text
        assert "<code>Authorization: Bearer KEY</code>" in resp.text
        assert wrong not in resp.text and KEY not in resp.text
    # API clients (no text/html in Accept, or refused with q=0) keep the JSON error
    for accept in (None, "*/*", "application/json", "text/html;q=0, application/json"):
        resp = client.get("/review", headers={"Accept": accept} if accept else {})
        assert resp.status_code == 401, accept
        assert resp.json()["error"]["code"] == "invalid_api_key", accept
    # every other route keeps its JSON 401, whatever the client accepts
    for method, path in (("get", "/v1/models"), ("get", "/v1/rain/traces/tr_x"),
                         ("post", "/v1/rain/reviews/tr_x"), ("post", "/v1/chat/completions")):
        resp = getattr(client, method)(path, headers=BROWSER)
        assert resp.status_code == 401, path
        assert resp.json()["error"]["code"] == "invalid_api_key", path
    assert client.get(f"/review?key={KEY}", headers=BROWSER).status_code == 200


def test_review_and_trace_errors(served):
    client, _ = served
    missing = client.get("/v1/rain/traces/tr_nope", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert client.post("/v1/rain/reviews/tr_nope", headers=AUTH,
                       json={"decision": "approved"}).status_code == 404
    bad = client.post("/v1/rain/reviews/tr_nope", headers=AUTH, json={"decision": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "decision"


def test_refuse_policy_streams_only_after_the_check(served):
    client, store = served
    body = dict(CHAT, stream=True, rain={"max_searches": 4, "policy": "refuse"})
    with client.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as resp:
        assert resp.status_code == 200
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    texts = [c["choices"][0]["delta"].get("content") for c in chunks]
    refusal = ServerSettings().refusal_message
    assert [t for t in texts if t] == [refusal]  # one chunk, after the check
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "content_filter"
    record = store.get(final["rain"]["trace_id"])
    assert record.answer == refusal and record.policy.action == "refused"
    assert record.policy.original_text and record.policy.original_text != refusal


def test_bad_inputs_get_openai_errors(served):
    client, _ = served
    cases = [
        (b"{not json", 400, None),
        (b'"a string"', 400, None),
        (json.dumps({"messages": []}).encode(), 400, "messages"),
        (json.dumps({"messages": [{"role": "user", "content": "x" * 400}]}).encode(), 400,
         "messages"),
        (json.dumps(dict(CHAT, rain={"max_searches": "many"})).encode(), 400,
         "rain.max_searches"),
    ]
    for raw, status, param in cases:
        resp = client.post("/v1/chat/completions", content=raw,
                           headers=dict(AUTH, **{"Content-Type": "application/json"}))
        assert resp.status_code == status, (raw, resp.text)
        error = resp.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error"
        assert set(error) == {"message", "type", "param", "code"}
    too_long = client.post("/v1/chat/completions", headers=AUTH,
                           json={"messages": [{"role": "user", "content": "x" * 400}]})
    assert too_long.json()["error"]["code"] == "context_length_exceeded"
    huge = client.post("/v1/completions", content=b" " * 2_000_000,
                       headers=dict(AUTH, **{"Content-Type": "application/json"}))
    assert huge.status_code == 413
    assert client.get("/v1/nothing", headers=AUTH).json()["error"]["code"] == "not_found"
    # the server still answers
    assert client.post("/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200


def test_refused_requests_are_counted_by_status_in_health(served):
    client, store = served
    assert client.get("/health").json()["refused"] == {}
    client.get("/v1/models")  # no key: 401
    client.get("/v1/models", headers={"Authorization": "Bearer wrong"})  # 401
    client.post("/v1/completions", content=b" " * 2_000_000,
                headers=dict(AUTH, **{"Content-Type": "application/json"}))  # 413
    client.post("/v1/chat/completions", content=b"{}", headers=dict(AUTH, **{"Content-Type": "text/plain"}))  # 415
    client.get("/v1/nothing", headers=AUTH)  # 404
    client.get("/v1/models", headers=dict(AUTH, Host="evil.example"))  # 400, from the middleware
    assert client.post("/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200
    assert client.get("/health").json()["refused"] == {"400": 1, "401": 2, "404": 1, "413": 1,
                                                       "415": 1}
    # refusals are counted, not stored: only the one accepted request left a record
    assert len(store.list()) == 1


class BrokenBackend(ScriptedBackend):
    """Renders prompts, then fails inside the search."""

    def next_logprobs(self, contexts, *, top_k=None):
        raise RuntimeError("the accelerator caught fire")


def test_failure_inside_search_is_500_with_an_error_record(tmp_path):
    store = TraceStore(tmp_path / "audit.sqlite3")
    backend = BrokenBackend(["a"], {(): {"a": 1.0}})
    app = create_ready_app(ServerSettings(embedder="none"), backend=backend, store=store,
                     services=NO_EMBEDDER)
    with TestClient(app, base_url=LOCAL) as client:
        wait_ready(client)
        resp = client.post("/v1/chat/completions", json=CHAT)
        assert resp.status_code == 500
        error = resp.json()["error"]
        assert error["type"] == "server_error" and "caught fire" in error["message"]
        stream = client.post("/v1/chat/completions", json=dict(CHAT, stream=True))
        assert '"error"' in stream.text and stream.text.endswith("data: [DONE]\n\n")
        records = store.list(limit=10)
        assert len(records) == 2 and all("caught fire" in r.error for r in records)
        assert all(r.answer == "" for r in records)
        assert client.get("/health").json()["busy"] is False


class FailingStore(TraceStore):
    """An audit store whose writes fail (a full disk): reads still work."""

    def record(self, rec, *, owner=None):
        raise OSError("disk full")


def test_a_request_whose_record_cannot_be_written_is_not_run(tmp_path):
    """No record, no answer: 503 (retry later), the search never starts, the place in
    the queue is freed (the next request gets the same answer, not 429)."""
    backend = make_backend()
    app = create_ready_app(ServerSettings(embedder="none", queue_size=0, max_concurrent=1),
                           backend=backend, store=FailingStore(":memory:"), services=NO_EMBEDDER)
    with TestClient(app, base_url=LOCAL) as client:
        wait_ready(client)
        for stream in (False, True, False):
            resp = client.post("/v1/chat/completions", json=dict(CHAT, stream=stream))
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["code"] == "audit_unavailable"
            assert resp.headers["retry-after"]
        assert backend.counters.forward_calls == 0
        assert client.get("/health").json()["queue_depth"] == 0


def test_a_failed_fail_safe_judgement_keeps_the_answers_stats_in_its_record(tmp_path):
    def judge_on_fire(answer):
        if answer and answer[-1] == CUE:  # the fail-safe's judge prompt
            raise RuntimeError("the judge caught fire")
        return script(answer)

    store = TraceStore(tmp_path / "audit.sqlite3")
    backend = ScriptedBackend(VOCAB, judge_on_fire, name="scripted-judge-fails")
    app = create_ready_app(ServerSettings(embedder="none"), backend=backend, store=store,
                           services=NO_EMBEDDER)
    with TestClient(app, base_url=LOCAL) as client:
        wait_ready(client)
        resp = client.post("/v1/chat/completions",
                           json=dict(CHAT, rain={"method": "greedy"}))  # no judge in the search
        assert resp.status_code == 500 and "caught fire" in resp.json()["error"]["message"]
    (record,) = store.list(limit=10)
    assert "caught fire" in record.error and record.answer == ""
    assert record.stats["answer_tokens"] > 0 and record.stats["model_calls"] > 0


def test_503_with_retry_after_while_loading(tmp_path):
    release = threading.Event()

    def slow_load(model, device):
        release.wait(10)
        return make_backend()

    services = Services(load_backend=slow_load, load_embedder=lambda name, device: "none")
    app = create_ready_app(ServerSettings(db_path=":memory:", embedder="none"), services=services)
    with TestClient(app, base_url=LOCAL) as client:
        loading = client.get("/health")  # a probe sends no traffic yet
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        assert loading.json()["reason"] == "the model is still loading"
        assert int(loading.headers["Retry-After"]) >= 1
        resp = client.post("/v1/chat/completions", json=CHAT)
        assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1
        assert resp.json()["error"]["code"] == "model_loading"
        release.set()
        wait_ready(client)
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_the_engine_loads_its_model_with_the_settings_tokenizer(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text("{}", encoding="utf-8")
    seen = []

    def load_backend(model, device, **kw):
        seen.append((model, kw))
        return make_backend()

    services = Services(load_backend=load_backend, load_embedder=lambda name, device: "none")
    settings = ServerSettings(db_path=":memory:", embedder="none", tokenizer=str(tmp_path),
                              model="openai:http://127.0.0.1:9/v1#smollm2")
    with TestClient(create_ready_app(settings, services=services), base_url=LOCAL) as client:
        wait_ready(client)
    assert seen == [("openai:http://127.0.0.1:9/v1#smollm2", {"tokenizer": str(tmp_path)})]


class TemplateRejects:
    """A backend whose chat template refuses the conversation (like a strict template)."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def render_prompt(self, messages):
        from rainlm.errors import ConfigError

        raise ConfigError("messages", "the model's chat template rejects this conversation")


def test_a_conversation_the_template_rejects_is_a_400_not_a_500(tmp_path):
    app = create_ready_app(ServerSettings(embedder="none"), backend=TemplateRejects(make_backend()),
                     store=TraceStore(tmp_path / "a.sqlite3"), services=NO_EMBEDDER)
    with TestClient(app, base_url=LOCAL) as client:
        wait_ready(client)
        resp = client.post("/v1/chat/completions", json=CHAT)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == "messages"


def test_a_backend_config_error_inside_the_search_is_the_servers_fault():
    from rainlm.errors import ConfigError
    from rainlm.serve.engine import JobFailed
    from rainlm.serve.errors import failure_body

    status, body = failure_body(JobFailed(None, ConfigError("n_ctx", "context too long")))
    assert status == 500 and body["error"]["code"] == "search_failed"
    status, body = failure_body(JobFailed(None, ConfigError("max_searches", "must be >= 1")))
    assert status == 400 and body["error"]["param"] == "rain.max_searches"


def test_a_stream_whose_client_never_reads_still_frees_its_queue_place(tmp_path):
    """The job is submitted before the response starts: even if the body is never
    iterated, the search runs, is recorded, and its queue place comes back."""
    import asyncio

    from rainlm.serve.engine import Engine, Job
    from rainlm.serve.schemas import parse_request
    from rainlm.serve.streaming import start_stream

    settings = ServerSettings(embedder="none", queue_size=0, max_concurrent=1)
    store = TraceStore(tmp_path / "s.sqlite3")
    engine = Engine(settings, store)
    engine.start(NO_EMBEDDER, make_backend()).result(timeout=30)
    req = parse_request({**CHAT, "stream": True}, "/v1/chat/completions", settings)

    async def leave_before_reading():
        engine.admit()
        job = Job(trace_id="tr_stream", request=req, created_at="t", created=0,
                  arrived=time.perf_counter())
        started = start_stream(engine, job)  # the client goes away: nothing iterates
        await asyncio.wait_for(asyncio.shield(started.task), timeout=30)

    asyncio.run(leave_before_reading())
    assert engine.health()["queue_depth"] == 0
    engine.admit()  # queue_size 0: this succeeds only if the place was released
    assert store.get("tr_stream").answer
    engine.stop()


@pytest.mark.parametrize("rain,param", [
    ({"rubric": "truthful"}, "rain.rubric"),
    ({"scoring": "continuous"}, "rain.scoring"),
    ({"judge_orders": "single"}, "rain.judge_orders"),
    ({"preset": "truthful"}, "rain.preset"),    # another rubric
    ({"preset": "adversarial"}, "rain.preset"),
])
def test_requests_cannot_choose_how_they_are_judged(served, rain, param):
    client, store = served
    before = len(store.list())
    resp = client.post("/v1/chat/completions", json=dict(CHAT, rain=rain), headers=AUTH)
    assert resp.status_code == 403, resp.text
    err = resp.json()["error"]
    assert err["param"] == param and err["code"] == "judge_not_allowed"
    assert "--allow-request-judge" in err["message"]
    ok = client.post("/v1/chat/completions", json=dict(CHAT, rain={"preset": "paper"}),
                     headers=AUTH)  # the paper preset judges with the same rubric
    assert ok.status_code == 200
    assert len(store.list()) == before + 1


def test_the_fail_safe_judges_with_the_servers_rubric_even_when_requests_choose(tmp_path):
    """The search judges as the request chose (its record's config says so); the
    fail-safe judges every answer with the server's rubric and orders all the same. (The
    adversarial rubric: another rubric, whose options the scripted judge can read.)"""
    store = TraceStore(tmp_path / "audit.sqlite3")
    settings = ServerSettings(api_key=KEY, policy="refuse", threshold=0.5, embedder="none",
                              allow_request_judge=True)
    app = create_ready_app(settings, backend=make_backend(), store=store, services=NO_EMBEDDER)
    chosen = {"max_searches": 4, "rubric": "adversarial", "judge_orders": "single",
              "scoring": "continuous"}
    with TestClient(app, base_url=LOCAL) as client:
        wait_ready(client)
        searched = client.post("/v1/chat/completions", json=dict(CHAT, rain=chosen),
                               headers=AUTH).json()
        plain = client.post("/v1/chat/completions", headers=AUTH,
                            json=dict(CHAT, rain={**chosen, "method": "greedy"})).json()
    record = store.get(searched["id"])
    assert searched["rain"]["method"] == "rain" and record.config is not None
    assert {k: record.config[k] for k in ("rubric", "judge_orders", "scoring")} == \
        {"rubric": "adversarial", "judge_orders": "single", "scoring": "continuous"}
    for rec in (record, store.get(plain["id"])):
        assert rec.scores["rubric"] == "harmless" and rec.scores["judge_orders"] == "both"
    # greedy complies ("Sure, here is how."): the server's harmless judge refuses it
    assert plain["choices"][0]["finish_reason"] == "content_filter"
    assert store.get(plain["id"]).policy.action == "refused"


def test_hostile_bodies_get_400_naming_the_field(served):
    """Inputs that used to raise inside the server (RecursionError, unhashable values,
    lone surrogates) are refused with 400 before any work, and the server goes on."""
    client, store = served
    before = len(store.list())
    deep = "[" * 100_000 + "]" * 100_000
    nested: object = "x"
    for _ in range(40):
        nested = [nested]
    cases = [
        (('{"messages": ' + deep + "}").encode(), None),
        (json.dumps({"messages": [{"role": "user", "content": nested}]}).encode(),
         "messages[0].content" + "[0]" * 30),  # depth 3 + 30 > MAX_DEPTH (32)
        (json.dumps(dict(CHAT, messages=[{"role": {}, "content": "hi"}])).encode(),
         "messages[0].role"),
        (json.dumps(dict(CHAT, messages=[{"role": [], "content": "hi"}])).encode(),
         "messages[0].role"),
        (json.dumps(dict(CHAT, rain={"preset": {}})).encode(), "rain.preset"),
        (json.dumps(dict(CHAT, rain={"method": []})).encode(), "rain.method"),
        (b'{"model": "rain", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
         "messages[0].content"),
        (b'{"model": "rain", "user": "\\udfff", "messages": [{"role": "user", "content": "hi"}]}',
         "user"),
        (b'{"model": "rain", "\\ud800": 1, "messages": [{"role": "user", "content": "hi"}]}', "body"),
        (b'{"model": "rain", "stop": ["\\ud800"], "messages": [{"role": "user", "content": "hi"}]}',
         "stop[0]"),
    ]
    for raw, param in cases:
        resp = client.post("/v1/chat/completions", content=raw,
                           headers=dict(AUTH, **{"Content-Type": "application/json"}))
        assert resp.status_code == 400, (raw[:80], resp.text)
        assert resp.json()["error"]["param"] == param, raw[:80]
    assert len(store.list()) == before  # refused before any search: nothing to audit
    assert client.post("/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200


def test_browser_facing_safety(tmp_path):
    """Host allow-list against DNS rebinding, JSON-only POSTs against cross-site posts,
    a strict content policy on the review page, Allow on 405."""
    settings = ServerSettings(api_key=None, embedder="none", allowed_hosts=("rain.internal",))
    app = create_ready_app(settings, backend=make_backend(), store=TraceStore(tmp_path / "a.sqlite3"),
                     services=NO_EMBEDDER)
    with TestClient(app, base_url=LOCAL) as client:
        wait_ready(client)
        for host in ("evil.example", "127.0.0.1.evil.example", "attacker:8000"):
            resp = client.get("/v1/models", headers={"Host": host})
            assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_host"
            assert "--allowed-host" in resp.json()["error"]["message"]
        for host in ("localhost:8000", "127.0.0.1", "rain.internal", "[::1]:8000"):
            assert client.get("/v1/models", headers={"Host": host}).status_code == 200, host
        plain = client.post("/v1/chat/completions", content=json.dumps(CHAT),
                            headers={"Content-Type": "text/plain"})
        assert plain.status_code == 415
        assert plain.json()["error"]["code"] == "unsupported_media_type"
        assert plain.json()["error"]["type"] == "invalid_request_error"  # the client's error
        form = client.post("/v1/rain/reviews/tr_x", data={"decision": "approved"})
        assert form.status_code == 415
        page = client.get("/review")
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        wrong = client.put("/v1/chat/completions")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


def test_an_unknown_model_is_404_model_not_found(served):
    client, store = served
    before = len(store.list())
    resp = client.post("/v1/chat/completions", json=dict(CHAT, model="gpt-4o"), headers=AUTH)
    assert resp.status_code == 404
    err = resp.json()["error"]
    assert err["code"] == "model_not_found" and err["param"] == "model"
    assert "'gpt-4o' does not exist" in err["message"] and "rain" in err["message"]
    for name in ("rain", "scripted-bench"):
        ok = client.post("/v1/chat/completions", json=dict(CHAT, model=name), headers=AUTH)
        assert ok.status_code == 200, name
    assert len(store.list()) == before + 2


def test_completions_continue_the_raw_prompt_and_chat_uses_the_template(served):
    client, _ = served
    text = " I cannot"
    comp = client.post("/v1/completions", headers=AUTH,
                       json={"model": "rain", "prompt": text, "max_tokens": 4,
                             "rain": {"max_searches": 4}}).json()
    chat = client.post("/v1/chat/completions", headers=AUTH,
                       json={"model": "rain", "messages": [{"role": "user", "content": text}],
                             "max_tokens": 4, "rain": {"max_searches": 4}}).json()
    n_text = len(make_backend().tokenize(text))
    assert comp["usage"]["prompt_tokens"] == n_text  # no chat template: the text as is
    assert chat["usage"]["prompt_tokens"] == n_text + 2  # <user> ... <assistant>


def test_the_time_budget_keeps_room_for_the_fail_safe_judgement(served):
    # The first request measures the judgement; later ones give their generation the
    # budget less what the judgement of their prompt and longest answer should take.
    # The record keeps the budget the request asked for; the stats say what ran.
    client, store = served
    body = dict(CHAT, rain={"max_searches": 4, "time_budget_s": 30})
    first = client.post("/v1/chat/completions", json=body, headers=AUTH).json()
    second = client.post("/v1/chat/completions", json=body, headers=AUTH).json()
    before = store.get(first["rain"]["trace_id"])
    after = store.get(second["rain"]["trace_id"])
    assert before.stats["score_reserve_s"] == 0.0 and before.config["time_budget_s"] == 30
    assert before.stats["generation_budget_s"] == 30
    reserve = after.stats["score_reserve_s"]
    assert 0 < reserve <= 15  # never more than half the budget
    assert after.stats["generation_budget_s"] == pytest.approx(30 - reserve, abs=1e-3)
    assert after.config["time_budget_s"] == 30  # what the request asked for
    assert after.trace["config"]["time_budget_s"] == 30


class SlowBackend(ScriptedBackend):
    """The bench's scripted model, ``DELAY_S`` real seconds per model call."""

    DELAY_S = 0.1

    def next_logprobs(self, contexts, *, top_k=None):
        time.sleep(self.DELAY_S)
        return super().next_logprobs(contexts, top_k=top_k)


def test_a_greedy_answer_the_time_budget_ended_says_so_as_rain_does(tmp_path):
    # 0.15 s cannot pay for the 7 greedy calls of "Sure, here is how." (0.1 s each)
    store = TraceStore(tmp_path / "audit.sqlite3")
    backend = SlowBackend(VOCAB, script, name="scripted-slow")
    app = create_ready_app(ServerSettings(api_key=KEY, embedder="none"), backend=backend,
                           store=store, services=NO_EMBEDDER)
    with TestClient(app, base_url=LOCAL) as client:
        wait_ready(client)
        bodies = [dict(CHAT, rain={"method": "greedy", "time_budget_s": budget})
                  for budget in (0.15, 30)]
        cut, whole = (client.post("/v1/chat/completions", json=b, headers=AUTH).json()
                      for b in bodies)
    assert cut["rain"]["method"] == "greedy" and cut["rain"]["finish_reason"] == "time_budget"
    assert cut["rain"]["stats"]["budget_exhausted"] is True
    assert store.get(cut["id"]).stats["budget_exhausted"] is True
    assert whole["rain"]["finish_reason"] == "eos"
    assert store.get(whole["id"]).stats["budget_exhausted"] is False


def test_generation_budget_keeps_the_judgement_inside_the_time_budget():
    from rainlm.serve.engine import generation_budget

    assert generation_budget(None, 1.0) is None
    assert generation_budget(10.0, 0.0) == 10.0  # nothing measured yet
    assert generation_budget(10.0, 1.0) == pytest.approx(9.0)
    assert generation_budget(10.0, 50.0) == 5.0  # at least half stays the generation's


def test_the_judgement_is_priced_as_a_fixed_cost_plus_a_part_per_token():
    from collections import deque

    from rainlm.serve.engine import expected_judgement_seconds as expected

    assert expected([], 500) == 0.0
    # no two lengths far enough apart: no slope to fit, priced per token (cautious)
    assert expected([(40, 0.48), (44, 0.52)], 400) == pytest.approx(400 * 1.0 / 84)
    # budget_bound.py's judgements: a cold first one (3 s), then ~0.5 s whatever the
    # length; a 528-token request is priced near 0.5 s (per token alone: over 3 s)
    seen = deque([(471, 3.0), (40, 0.48), (470, 0.51), (490, 0.52), (60, 0.50), (480, 0.50)])
    assert 0.45 < expected(seen, 528) < 0.6
    # an exact line 0.2 + 0.001 × tokens is recovered, with no spread
    line = [(t, 0.2 + 0.001 * t) for t in (100, 300, 500)]
    assert expected(line, 1000) == pytest.approx(1.2)
    # judgements that got faster with length give no negative slope: the median fixed
    # cost (0.4) plus the median distance from it (0.1)
    assert expected([(100, 0.5), (300, 0.4), (500, 0.3)], 1000) == pytest.approx(0.5)


def test_the_cache_budget_setting_reaches_the_backend(tmp_path, caplog):
    from rainlm.serve.engine import Engine

    budgeted = make_backend()
    budgeted.cache_budget_bytes = 512 * 2**20  # as the transformers backend has it
    engine = Engine(ServerSettings(embedder="none", cache_mb=64), TraceStore(tmp_path / "a.db"))
    engine.start(NO_EMBEDDER, budgeted).result(timeout=30)
    assert budgeted.cache_budget_bytes == 64 * 2**20 and engine.health()["status"] == "ok"
    engine.stop()
    # a backend without a budgeted cache (an HTTP engine) loads anyway, with a warning
    engine = Engine(ServerSettings(embedder="none", cache_mb=64), TraceStore(tmp_path / "b.db"))
    with caplog.at_level("WARNING", logger="rainlm.serve"):
        engine.start(NO_EMBEDDER, make_backend()).result(timeout=30)
    assert engine.health()["status"] == "ok" and "--cache-mb ignored" in caplog.text
    engine.stop()


def test_the_review_queue_routes_hand_out_the_oldest_and_the_page_shows_it(served):
    from dataclasses import replace

    from tests.trace.helpers import make_record

    client, store = served
    base = make_record("tr_base")
    for i in range(51):  # more than the page's 50 newest
        store.record(replace(base, id=f"tr_{i:02d}",
                             created_at=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00"))
    assert "tr_00" not in client.get("/review", headers=AUTH).text
    taken = client.post("/v1/rain/review-queue/next", headers=AUTH, json={"reviewer": "ana"})
    assert taken.status_code == 200 and taken.json()["record"]["id"] == "tr_00"
    page = client.get("/review?trace=tr_00", headers=AUTH).text
    assert 'id="review-tr_00"' in page and "held by ana until" in page
    counts = client.get("/v1/rain/review-queue", headers=AUTH).json()
    assert counts["pending"] == 51 and counts["held"] == 1
    decided = client.post("/v1/rain/reviews/tr_00", headers=AUTH,
                          json={"decision": "approved", "reviewer": "bo"})
    assert decided.status_code == 409 and "held by reviewer 'ana'" in decided.json()["error"]["message"]
    for bad in ({}, {"reviewer": ""}, {"reviewer": "a", "hold_s": 0}, {"reviewer": 3},
                {"reviewer": "a", "x": 1}, {"reviewer": "a", "hold_s": True}):
        resp = client.post("/v1/rain/review-queue/next", headers=AUTH, json=bad)
        assert resp.status_code == 400, (bad, resp.text)
    assert client.get("/review?trace=tr_nope", headers=AUTH).status_code == 200
    assert client.post("/v1/rain/review-queue/next", json={"reviewer": "a"}).status_code == 401
